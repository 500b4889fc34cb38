//! Running a command to completion and taking its output: a tool (tcpdump, tshark, bpftool,
//! curl, `xdpsieve status`) whose failure fails the test, with what it said.

use std::process::{Command, Output, Stdio};

/// Runs `program ARGS` and returns its standard output; panics when it cannot run or fails.
pub fn tool(program: &str, args: &[&str]) -> String {
    tool_with(Command::new(program), program, args)
}

/// As [`tool`], with the command for `program` made by the caller: in a test's network
/// namespace, say.
pub fn tool_with(mut command: Command, program: &str, args: &[&str]) -> String {
    command.args(args);
    stdout_of(&mut command, program)
}

/// Runs `command` (standard input closed) and returns its standard output; panics when it
/// cannot run, naming `what` (a tool `cargo xtask setup` installs, or what the command
/// does), or when it fails, with its standard error.
pub fn stdout_of(command: &mut Command, what: &str) -> String {
    let out = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {what} (cargo xtask setup installs it): {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}): {command:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Standard output and standard error of `out`, as text for messages and matching.
pub fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
