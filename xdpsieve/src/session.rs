//! One run of the firewall, from a validated [`plan::RunPlan`] to the summary, in three
//! parts:
//!
//! - `start`: claim the interfaces' pin directories, open the outputs
//!   ([`capture_session`]), load the program, open its record sources, attach (or take
//!   over a firewall left behind), publish for `status`, print the start-up line;
//! - `run_loop`: drain the records, watch the interfaces, beat the heartbeat, expire
//!   timed set entries, answer signals (and `hup`: reload on SIGHUP), until an explicit
//!   stop;
//! - `finish`: detach (or, when the loop itself failed, leave the firewall in force),
//!   the final drain, the closing blocks and the summary.
//!
//! Under systemd (`Type=notify`), `service` tells the service manager where the run is
//! (ready, reloading, stopping, its status line) and feeds its watchdog from the loop.
//!
//! The recording side (sources, recorder, capture files and their rotation, event log, and
//! its shutdown order) is one object, [`capture_session::CaptureSession`], which the loop
//! and the finish drive and which runs without a kernel in its tests.
//!
//! The binary (`src/bin/xdpsieve/run.rs`) turns the command line into the plan ([`plan`]);
//! everything that touches the kernel, the files or the terminal after that happens here.

use anyhow::Result;

pub mod capture_session;
mod finish;
mod hup;
pub mod plan;
mod run_loop;
mod service;
mod start;

/// Runs the firewall as `plan` says, until an explicit stop (or a failure of the loop
/// itself, which leaves the firewall in force).
pub fn run(plan: plan::RunPlan) -> Result<()> {
    let mut running = start::start(plan)?;
    // An error here (not a failure of the waiting, which the finish handles) ends the run
    // at once: the firewall stays in force, as on any end that is not an explicit stop.
    let loop_result = run_loop::run_loop(&mut running)?;
    finish::finish(running, loop_result)
}
