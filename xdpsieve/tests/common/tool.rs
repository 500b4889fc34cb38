//! Running a tool (tcpdump, tshark, bpftool, curl) to completion and taking its output.

use std::process::Command;

/// Runs `program ARGS` and returns its standard output; panics when it cannot run or fails.
pub fn tool(program: &str, args: &[&str]) -> String {
    tool_with(Command::new(program), program, args)
}

/// As [`tool`], with the command for `program` made by the caller: in a test's network
/// namespace, say.
pub fn tool_with(mut command: Command, program: &str, args: &[&str]) -> String {
    let out = command
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program} (cargo xtask setup installs it): {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
