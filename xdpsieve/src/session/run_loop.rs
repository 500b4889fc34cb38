//! The run loop: drain the record sources (through the
//! [`super::capture_session::CaptureSession`]), watch the interfaces, beat the heartbeat,
//! expire timed set entries, publish the writers' counts, and answer the signals (a status
//! line, a reload through [`super::hup`]) until an explicit stop (SIGINT, SIGTERM, `-c`
//! reached), a handover (SIGQUIT) or a failure of the waiting itself; under systemd, it
//! says so ([`super::service`]) and feeds the watchdog on every turn.

use std::{io, sync::atomic::Ordering, time::Duration};

use anyhow::Result;

use super::start::Running;
use crate::{base::snapshot::Snapshot, observe::stats, write::capture::Interface};

/// How often the run loop tells the program a recorder is reading (see
/// `Firewall::heartbeat`); well under `READER_TIMEOUT_NS`.
const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(100);

/// Removes the set entries whose timeout passed (through the first interface whose
/// firewall can be read); warns once if that fails.
fn expire_sets(
    expirer: &mut crate::instance::sets::command::Expirer,
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
                    crate::base::log::info(format_args!("xdpsieve: {n} set entries expired"));
                }
                return;
            }
            Err(e) => error = Some(e),
        }
    }
    if let Some(e) = error
        && !std::mem::replace(warned, true)
    {
        crate::base::log::warning(format_args!(
            "xdpsieve: warning: cannot expire timed set entries: {e:#}"
        ));
    }
}

/// Bans the keys the program told of (through the first interface whose firewall can be
/// changed); warns once if that fails.
fn ban(running: &mut Running, warned: &mut bool) {
    let mut error = None;
    for interface in &running.interfaces {
        match running.capture.ban(&interface.name, running.quiet) {
            Ok(()) => return,
            Err(e) => error = Some(e),
        }
    }
    if let Some(e) = error
        && !std::mem::replace(warned, true)
    {
        crate::base::log::warning(format_args!(
            "xdpsieve: warning: cannot make automatic bans: {e:#}"
        ));
    }
}

/// The first `STATUS=`: where the run filters.
fn ready_status(running: &Running) -> String {
    let names: Vec<String> = running
        .interfaces
        .iter()
        .map(|i| crate::base::text::escape(&i.name).into_owned())
        .collect();
    format!(
        "xdpsieve: filtering on {} with {} rules (generation {})",
        names.join(", "),
        running.rules.rules.len(),
        running.meta.reload.generation
    )
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
    let interval = running.stats_interval;
    let mut last_stats = (std::time::Instant::now(), Snapshot::default());
    let mut loop_result: io::Result<()> = Ok(());
    let mut last_heartbeat = std::time::Instant::now();
    // Timed set entries are removed here while a recorder runs (see `instance::sets`).
    let mut expirer = crate::instance::sets::command::Expirer::default();
    let mut expiry_warned = false;
    let mut ban_warned = false;
    let mut hup = super::hup::HupReload::default();
    // Attached (or taken over) and recording: systemd may go on.
    running.service.ready(&ready_status(running));
    let mut last_status = (
        std::time::Instant::now(),
        if running.service.notifying() {
            running
                .firewall
                .snapshot(running.rules.rules.len(), running.capture.perf_lost())?
        } else {
            Snapshot::default()
        },
    );
    // When the run is asked to stop while a reload loads or is asked for, the loop goes on
    // (draining) until the reload is in force, for at most RELOAD_GRACE: the rules left in
    // force are those asked for last.
    let mut stopping_since: Option<std::time::Instant> = None;
    loop {
        let stopping = running.signals.stop.load(Ordering::Relaxed)
            || running.signals.handover.load(Ordering::Relaxed)
            || running.capture.limit_reached();
        if stopping {
            // A SIGHUP that came with or before the stop is carried out too.
            if !hup.pending() && !running.signals.reload_asked.load(Ordering::Relaxed) {
                break;
            }
            let since = *stopping_since.get_or_insert_with(std::time::Instant::now);
            if since.elapsed() >= RELOAD_GRACE {
                hup.abandon(&running.meta);
                break;
            }
        }
        // Only waiting can fail here: a failed output stops itself and says so, and the
        // loop goes on draining (and counting) its records.
        if let Err(e) = running.capture.poll(Duration::from_millis(100)) {
            loop_result = Err(e);
            break;
        }
        // At once after the notices woke the poll: a ban is due within 100 ms of the key
        // going over.
        ban(running, &mut ban_warned);
        for event in running.watcher.poll(&mut running.firewall) {
            crate::base::log::write(event.priority(), &event);
        }
        if last_heartbeat.elapsed() >= HEARTBEAT_INTERVAL {
            if let Err(e) = running.firewall.heartbeat() {
                crate::base::log::warning(format_args!("xdpsieve: warning: {e}"));
            }
            last_heartbeat = std::time::Instant::now();
            running.capture.housekeeping();
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
        let failed = running.capture.failed_outputs();
        if last_state.0.elapsed() >= Duration::from_secs(1) || failed != last_state.1 {
            if let Err(e) = running.writer_state.update(&running.capture.stats())
                && !state_warned
            {
                crate::base::log::warning(format_args!(
                    "xdpsieve: warning: cannot publish the writers' counts for `xdpsieve status`: {e}"
                ));
                state_warned = true;
            }
            last_state = (std::time::Instant::now(), failed);
        }
        if let Some(done) = hup.poll(
            &running.signals.reload_asked,
            &running.meta,
            &mut running.service,
        ) {
            (running.firewall, running.rules, running.meta) =
                (done.firewall, done.rules, done.meta);
            running
                .capture
                .add_generation(running.meta.reload.generation, &running.rules);
            running
                .capture
                .ban_rules(&running.rules, running.meta.reload.generation);
        }
        running.service.tick();
        if running.service.status_due() {
            let now = running
                .firewall
                .snapshot(running.rules.rules.len(), running.capture.perf_lost())?;
            let secs = last_status.0.elapsed().as_secs_f64();
            let written = running.capture.stats();
            running
                .service
                .status(&stats::interval_line(&last_status.1, &now, &written, secs));
            last_status = (std::time::Instant::now(), now);
        }
        let asked = running.signals.status_asked.swap(false, Ordering::Relaxed);
        if asked || interval.is_some_and(|i| last_stats.0.elapsed() >= i) {
            let perf_lost = running.capture.perf_lost();
            let now = running
                .firewall
                .snapshot(running.rules.rules.len(), perf_lost)?;
            let secs = last_stats.0.elapsed().as_secs_f64();
            let written = running.capture.stats();
            crate::base::log::info(format_args!(
                "{}",
                stats::interval_line(&last_stats.1, &now, &written, secs)
            ));
            last_stats = (std::time::Instant::now(), now);
        }
    }
    Ok(loop_result)
}

/// How long a run asked to stop waits for a reload in progress to come into force.
const RELOAD_GRACE: Duration = Duration::from_secs(30);
