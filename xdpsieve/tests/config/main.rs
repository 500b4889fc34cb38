//! The configuration file, end to end, with the real binary: `check-config` on the packaged
//! file and on broken ones (as an unprivileged user, without the kernel); `run --config`
//! over a veth pair that filters, captures and logs what the file says, reloads the file's
//! rules, and lets a flag override a key; and `keep_on_stop`: a flood to a dropped port
//! across a stop that keeps the firewall and the run that takes it over delivers nothing
//! at the socket behind the firewall.
//!
//! The `run` tests need root; under `CI` they fail rather than skip when they cannot run.

mod check;
mod keep;
mod run;

use std::{
    path::Path,
    process::{Command, Output, Stdio},
};

use xdpsieve_testkit::{
    child,
    fwnet::{Net, Run},
    tool::text,
};

/// The build under test.
const BINARY: &str = env!("CARGO_BIN_EXE_xdpsieve");

/// `xdpsieve run --config FILE ARGS` in the firewall's namespace, waited on until
/// `status` shows it live.
fn run_config(net: &Net, config: &Path, args: &[&str]) -> Run {
    let mut command = net.command(BINARY);
    command.arg("run").arg("--config").arg(config).args(args);
    let mut run = child::Firewall::spawn_command(command, Stdio::null());
    run.wait_until(|| {
        let status = net.xdpsieve(&["status", "--json"]);
        String::from_utf8_lossy(&status.stdout).contains("\"live\": true")
    });
    Run(run)
}

/// `xdpsieve ARGS` here, to completion.
fn xdpsieve(args: &[&str]) -> Output {
    Command::new(BINARY)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running xdpsieve")
}
