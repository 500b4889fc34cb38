//! The run loop: drain the record sources, watch the interfaces, beat the heartbeat,
//! expire timed set entries, publish the writers' counts, and answer the signals (a status
//! line, a reload through [`super::hup`]) until an explicit stop (SIGINT, SIGTERM, `-c`
//! reached) or a failure of the waiting itself.

use std::{io, sync::atomic::Ordering, time::Duration};

use anyhow::Result;

use super::{name_generation, start::Running, writer_stats};
use crate::{
    capture::Interface,
    recorder::{EventLog, Recorder},
    source::wait_readable,
    stats::{self, Snapshot},
};

/// Records in one drain above which the reader does not pause before the next: it is
/// behind, and a millisecond's pause lets the ring fill further.
const BUSY_DRAIN: u64 = 4096;

/// How often the run loop tells the program a recorder is reading (see
/// `Firewall::heartbeat`); well under `READER_TIMEOUT_NS`.
const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(100);

/// Removes the set entries whose timeout passed (through the first interface whose
/// firewall can be read); warns once if that fails.
fn expire_sets(
    expirer: &mut crate::configure::sets::live::command::Expirer,
    interfaces: &[Interface],
    quiet: bool,
    warned: &mut bool,
) {
    let mut error = None;
    for interface in interfaces {
        match expirer.tick(&interface.name) {
            Ok(0) => return,
            Ok(n) => {
                if !quiet {
                    eprintln!("xdpsieve: {n} set entries expired");
                }
                return;
            }
            Err(e) => error = Some(e),
        }
    }
    if let Some(e) = error
        && !std::mem::replace(warned, true)
    {
        eprintln!("xdpsieve: warning: cannot expire timed set entries: {e:#}");
    }
}

/// Runs until an explicit stop (`Ok(Ok(()))`) or a failure of the waiting (`Ok(Err)`):
/// the finish tells the two apart. An `Err` (the counters could not be read for a status
/// line) ends the run at once, with the firewall left in force.
pub(super) fn run_loop(running: &mut Running) -> Result<io::Result<()>> {
    let mut last_state = (
        std::time::Instant::now()
            .checked_sub(Duration::from_secs(1))
            .unwrap_or_else(std::time::Instant::now),
        0,
    );
    let mut state_warned = false;
    let mut fds = Vec::new();
    fds.extend(running.recorder.iter().flat_map(|r| r.source().fds()));
    fds.extend(running.event_log.iter().flat_map(|l| l.source().fds()));
    let interval = running.stats_interval;
    let mut last_stats = (std::time::Instant::now(), Snapshot::default());
    let mut loop_result: io::Result<()> = Ok(());
    let mut last_heartbeat = std::time::Instant::now();
    // Timed set entries are removed here while a recorder runs (see `sets::live`).
    let mut expirer = crate::configure::sets::live::command::Expirer::default();
    let mut expiry_warned = false;
    let mut hup = super::hup::HupReload::default();
    while !running.signals.stop.load(Ordering::Relaxed)
        && !running
            .recorder
            .as_mut()
            .is_some_and(Recorder::limit_reached)
    {
        // Only waiting can fail here: a failed output stops itself and says so, and the
        // loop goes on draining (and counting) its records.
        match wait_readable(&fds, Duration::from_millis(100)) {
            Ok(true) => {
                let mut drained = 0;
                if let Some(r) = running.recorder.as_mut() {
                    drained += r.drain();
                }
                if let Some(l) = running.event_log.as_mut() {
                    drained += l.drain();
                }
                if drained > 0 && drained < BUSY_DRAIN {
                    // Let records gather: under steady traffic a wakeup, a write and a
                    // flush per record would cost more than the record itself. The
                    // buffers hold far more than a millisecond of traffic. A drain this
                    // large means the reader is behind: it goes straight on instead.
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            Ok(false) => {}
            Err(e) => {
                loop_result = Err(e);
                break;
            }
        }
        for event in running.watcher.poll(&mut running.firewall) {
            eprintln!("{event}");
        }
        if last_heartbeat.elapsed() >= HEARTBEAT_INTERVAL {
            if let Err(e) = running.firewall.heartbeat() {
                eprintln!("xdpsieve: warning: {e}");
            }
            last_heartbeat = std::time::Instant::now();
            if let Some(r) = running.recorder.as_mut() {
                r.housekeeping();
            }
            if !running.meta.sets.is_empty() {
                expire_sets(
                    &mut expirer,
                    &running.interfaces,
                    running.quiet,
                    &mut expiry_warned,
                );
            }
        }
        // About once a second, and at once when an output fails.
        let failed = usize::from(running.recorder.as_mut().is_some_and(Recorder::failed))
            + usize::from(running.event_log.as_ref().is_some_and(EventLog::failed));
        if last_state.0.elapsed() >= Duration::from_secs(1) || failed != last_state.1 {
            if let Err(e) = running
                .writer_state
                .update(&writer_stats(&mut running.recorder, &running.event_log))
                && !state_warned
            {
                eprintln!(
                    "xdpsieve: warning: cannot publish the writers' counts for `xdpsieve status`: {e}"
                );
                state_warned = true;
            }
            last_state = (std::time::Instant::now(), failed);
        }
        if let Some(done) = hup.poll(&running.signals.reload_asked, &running.meta) {
            (running.firewall, running.rules, running.meta) =
                (done.firewall, done.rules, done.meta);
            name_generation(
                &mut running.recorder,
                &mut running.event_log,
                running.meta.reload.generation,
                &running.rules,
            );
        }
        let asked = running.signals.status_asked.swap(false, Ordering::Relaxed);
        if asked || interval.is_some_and(|i| last_stats.0.elapsed() >= i) {
            let perf_lost = running
                .recorder
                .as_ref()
                .map_or(0, |r| r.source().perf_lost())
                + running
                    .event_log
                    .as_ref()
                    .map_or(0, |l| l.source().perf_lost());
            let now = running
                .firewall
                .snapshot(running.rules.rules.len(), perf_lost)?;
            let secs = last_stats.0.elapsed().as_secs_f64();
            let written = writer_stats(&mut running.recorder, &running.event_log);
            eprintln!(
                "{}",
                stats::interval_line(&last_stats.1, &now, &written, secs)
            );
            last_stats = (std::time::Instant::now(), now);
        }
    }
    Ok(loop_result)
}
