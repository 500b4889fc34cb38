//! Running a packet tool (tcpdump, tshark) on a capture file the test wrote.

use std::process::Command;

/// Runs `program ARGS` and returns its standard output; panics when it cannot run or fails.
pub fn tool(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
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
