//! The end of a run. An explicit stop (a signal, `-c` reached) removes the firewall and
//! its pins, unless the run keeps it (`--keep-on-stop`) or hands it over (SIGQUIT, which
//! `systemctl restart` sends: the next run takes it over); a failure of the run loop
//! itself leaves it in force (fail-static). A firewall left in force is left exactly as a crash
//! leaves it (link, program, maps and description pinned, the interface's lock released
//! with the process), so the next run takes it over without a gap; the run says how to
//! take it over or remove it. Either way the record sources are drained to the end, the
//! capture gets its closing blocks and the summary is printed.

use std::io;

use anyhow::{Context as _, Result};

use super::{capture_session::CaptureSession, start::Running};
use crate::{instance::pins, observe::stats};

/// Ends the run the loop left with `loop_result`; returns its error, if any, after the
/// summary.
pub(super) fn finish(mut running: Running, loop_result: io::Result<()>) -> Result<()> {
    // An explicit stop (a signal, -c reached) removes the firewall: detach first, then
    // drain, so every record the program produced is accounted for. With keep_on_stop it
    // stays, as after a crash: nothing of it is removed, and the next run takes it over. A
    // failed output stops only itself (the loop goes on); only a failure of the loop itself
    // ends it otherwise, and that is not a request to stop filtering: the firewall stays in
    // force without a recorder (fail-static).
    let explicit_stop = loop_result.is_ok();
    let handover = running
        .signals
        .handover
        .load(std::sync::atomic::Ordering::Relaxed);
    let keep = running.keep_on_stop || handover;
    if explicit_stop {
        running.service.stopping(if keep {
            "xdpsieve: stopping; the firewall stays in force for the next run to take over"
        } else {
            "xdpsieve: stopping; removing the firewall"
        });
    }
    if explicit_stop && !keep {
        running.firewall.detach_all();
        for owner in &running.owners {
            pins::remove(owner);
        }
    } else {
        if explicit_stop {
            // Kept: the records from now on are counted as lost for want of a reader, as
            // they would be two seconds after a crash; those already in the rings are
            // drained below.
            if let Err(e) = running.firewall.reader_gone() {
                crate::base::log::warning(format_args!(
                    "xdpsieve: warning: {e}; records are counted as lost for want of a reader \
                     only once the heartbeat is two seconds old"
                ));
            }
        }
        let why = match (explicit_stop, handover) {
            (true, true) => "handover (SIGQUIT): ",
            (true, false) => "keep_on_stop: ",
            (false, _) => "",
        };
        for interface in &running.interfaces {
            crate::base::log::info(format_args!(
                "xdpsieve: {why}the firewall on {0} stays in force without a recorder; take \
                 it over with `xdpsieve run -i {0} ...` or remove it with `xdpsieve stop -i {0}`",
                interface.name
            ));
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
    crate::base::log::info(stats::summary(&snapshot, &written, &running.rules));
    loop_result.context("waiting for records")
}
