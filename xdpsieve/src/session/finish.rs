//! The end of a run. An explicit stop (a signal, `-c` reached) removes the firewall and
//! its pins; a failure of the run loop itself leaves it in force (fail-static) and says
//! how to take it over or remove it. Either way the record sources are drained to the end,
//! the capture gets its closing blocks and the summary is printed.

use std::io;

use anyhow::{Context as _, Result};

use super::{capture_session::CaptureSession, start::Running};
use crate::{instance::pins, observe::stats};

/// Ends the run the loop left with `loop_result`; returns its error, if any, after the
/// summary.
pub(super) fn finish(mut running: Running, loop_result: io::Result<()>) -> Result<()> {
    // An explicit stop (a signal, -c reached) removes the firewall: detach first, then
    // drain, so every record the program produced is accounted for. A failed output stops
    // only itself (the loop goes on); only a failure of the loop itself ends it otherwise,
    // and that is not a request to stop filtering: the firewall stays in force without a
    // recorder (fail-static).
    let explicit_stop = loop_result.is_ok();
    if explicit_stop {
        running.firewall.detach_all();
        for owner in &running.owners {
            pins::remove(owner);
        }
    } else {
        for interface in &running.interfaces {
            eprintln!(
                "xdpsieve: the firewall on {0} stays in force without a recorder; take it over \
                 with `xdpsieve run -i {0} ...` or remove it with `xdpsieve stop -i {0}`",
                interface.name
            );
        }
    }
    // The final drain, the closing blocks and the -z commands, in their order.
    let Running {
        capture,
        firewall,
        interfaces,
        rules,
        ..
    } = &mut running;
    let finished = std::mem::replace(capture, CaptureSession::new(None, None)).finish(|| {
        let per_interface = firewall.interface_counters()?;
        Ok(interfaces
            .iter()
            .map(|i| i.ifindex)
            .zip(per_interface)
            .collect())
    })?;
    let snapshot = firewall.snapshot(rules.rules.len(), finished.perf_lost)?;
    let written = finished.written;
    eprint!("{}", stats::summary(&snapshot, &written, &running.rules));
    loop_result.context("waiting for records")
}
