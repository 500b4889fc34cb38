//! The recording side of a run as one object: its record sources, the recorder with the
//! capture file (or the rotating files and their `-z` commands) and the event log.
//!
//! The kernel-facing side (the firewall, attaching, the interface watcher, signals) stays
//! in the rest of [`crate::session`], which drives this object: [`CaptureOutputs::open`]
//! before anything is loaded (a bad path costs nothing), [`CaptureOutputs::into_session`]
//! once the program's record sources exist, then [`CaptureSession::poll`] and
//! [`CaptureSession::housekeeping`] in the run loop and [`CaptureSession::finish`] at the
//! end. The sources may be kernel rings or [`Source::Memory`]: the same object, and so the
//! rotation and the shutdown order, runs without a network in the tests.
//!
//! The end has a fixed order, in [`CaptureSession::finish`]: no record is taken after it
//! starts but those still in the sources; the final drain (event log, then capture); the
//! current file closed with its statistics (pcapng interface statistics blocks); only then
//! its `-z` command, given a bounded time; the figures for the summary last.

use std::{io, os::fd::RawFd, path::PathBuf, time::Duration};

use anyhow::{Context as _, Result, bail};
use xdpsieve_common::InterfaceCounters;

use crate::{
    base::counters::WriterStats,
    configure::rules::RuleSet,
    instance::bans::Banner,
    read::source::{Source, wait_readable},
    write::capture::{CaptureWriter, Format, Interface},
    write::event_log::{EventFormatter, LogFormat},
    write::output::{RecordWriter, Sink, WRITE_BUFFER},
    write::recorder::{EventLog, Recorder},
    write::rotation::{
        RotationPlan,
        rotator::{CounterProbe, Rotator},
    },
};

/// What to record and where: the part of the run plan the recording side needs.
#[derive(Debug, Clone)]
pub struct CapturePlan {
    /// Whether packets are captured at all (a capture mask that is not empty, with `-w`).
    pub capture: bool,
    /// The capture file; `-` is standard output. With `rotation`, the files' pattern.
    pub write: Option<String>,
    pub rotation: Option<RotationPlan>,
    pub format: Format,
    /// The files' snap length (see `RunPlan::file_snaplen`).
    pub file_snaplen: u32,
    /// `-c`: stop after this many captured packets.
    pub count: Option<u64>,
    /// Whether events are logged (a log mask, or a rule with `log = true`).
    pub logging: bool,
    pub log_format: LogFormat,
    /// The event log's file; standard output when absent.
    pub log_file: Option<PathBuf>,
}

/// The capture's output as opened before the kernel is touched: one file (or standard
/// output), or the first file of a rotating capture with its rotator.
enum CaptureOut {
    One(Sink),
    Rotating(Box<(Rotator<Sink>, CaptureWriter<Sink>)>),
}

/// Which of the program's record streams a source is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Packets for the capture file.
    Capture,
    /// Events for the log.
    Events,
}

/// The outputs of a [`CapturePlan`], open and not yet fed.
pub struct CaptureOutputs {
    plan: CapturePlan,
    capture: Option<CaptureOut>,
    /// The log's sink and its name in messages.
    log: Option<(Sink, String)>,
}

fn open_output(path: &str) -> Result<Sink> {
    use std::io::IsTerminal as _;
    if path == "-" {
        if io::stdout().is_terminal() {
            bail!(
                "refusing to write a binary capture to a terminal; redirect `-w -` to a file or a pipe"
            );
        }
        return Sink::stdout().context("opening standard output");
    }
    Sink::create(path.as_ref()).with_context(|| format!("cannot open output file {path}"))
}

impl CaptureOutputs {
    /// Opens the capture file (or the first of a rotating capture) and the event log.
    pub fn open(plan: CapturePlan, interfaces: &[Interface]) -> Result<CaptureOutputs> {
        let capture = match (&plan.write, &plan.rotation) {
            (Some(pattern), Some(rotation)) if plan.capture => {
                Some(CaptureOut::Rotating(Box::new(
                    Rotator::start(
                        rotation.clone(),
                        pattern,
                        plan.format,
                        plan.file_snaplen,
                        interfaces,
                    )
                    .context("opening the first capture file")?,
                )))
            }
            (Some(path), None) if plan.capture => Some(CaptureOut::One(open_output(path)?)),
            _ => None,
        };
        let log = match (&plan.log_file, plan.logging) {
            (_, false) => None,
            (Some(path), true) => Some((
                Sink::create(path)
                    .with_context(|| format!("cannot open log file {}", path.display()))?,
                path.display().to_string(),
            )),
            (None, true) => Some((
                Sink::stdout().context("opening standard output")?,
                "standard output".into(),
            )),
        };
        Ok(CaptureOutputs { plan, capture, log })
    }

    /// Starts recording: `source` is asked for the capture's records only when there is a
    /// capture, for the events only when there is a log (in that order). Names the rules
    /// of `generation` when it is not the first (a firewall taken over).
    /// `probe` reads the interfaces' counters for a rotating capture's per-file statistics.
    pub fn into_session(
        self,
        mut source: impl FnMut(Stream) -> Result<Source>,
        rules: &RuleSet,
        interfaces: &[Interface],
        generation: u32,
        probe: Option<CounterProbe>,
    ) -> Result<CaptureSession> {
        let CaptureOutputs { plan, capture, log } = self;
        let recorder = match capture {
            Some(output) => {
                let (writer, rotator) = match output {
                    CaptureOut::One(output) => (
                        CaptureWriter::new(plan.format, output, plan.file_snaplen, interfaces),
                        None,
                    ),
                    CaptureOut::Rotating(both) => {
                        let (rotator, writer) = *both;
                        (writer, Some(rotator))
                    }
                };
                let target = match plan.write.as_deref() {
                    Some("-") | None => "standard output",
                    Some(path) => path,
                };
                let recorder =
                    Recorder::new(source(Stream::Capture)?, writer, target, rules, plan.count);
                Some(match (rotator, probe) {
                    (Some(rotator), Some(probe)) => {
                        recorder.with_rotation(rotator.with_counters(probe))
                    }
                    (Some(rotator), None) => recorder.with_rotation(rotator),
                    (None, _) => recorder,
                })
            }
            None => None,
        };
        let event_log = match log {
            Some((out, target)) => {
                let names: Vec<(u32, String)> = interfaces
                    .iter()
                    .map(|i| (i.ifindex, i.name.clone()))
                    .collect();
                let formatter = EventFormatter::new(plan.log_format, rules, &names);
                let out = RecordWriter::new(out, WRITE_BUFFER);
                Some(EventLog::new(
                    source(Stream::Events)?,
                    formatter,
                    out,
                    &target,
                ))
            }
            None => None,
        };
        let mut session = CaptureSession::new(recorder, event_log);
        if generation != 1 {
            session.add_generation(generation, rules);
        }
        Ok(session)
    }
}

/// The recording side of a run (see the module doc).
pub struct CaptureSession {
    recorder: Option<Recorder<Sink>>,
    event_log: Option<EventLog<Sink>>,
    /// The sources' descriptors, fixed for the run (the notices' one included).
    fds: Vec<RawFd>,
    /// Ban notices (`LIMIT_NOTICES`), with the banner that turns them into bans; present
    /// when a rule bans (see `instance::bans`).
    notices: Option<(Source, Banner)>,
    /// The pause between drains (see [`gather`]).
    gather: gather::Gather,
}

/// What the recording side wrote and lost, at its end.
#[derive(Debug, Clone, Copy, Default)]
pub struct Finished {
    /// The capture's and the event log's counts together.
    pub written: WriterStats,
    /// Samples the perf buffers reported lost (0 with the ring buffer).
    pub perf_lost: u64,
}

impl CaptureSession {
    pub fn new(
        recorder: Option<Recorder<Sink>>,
        event_log: Option<EventLog<Sink>>,
    ) -> CaptureSession {
        let mut fds = Vec::new();
        fds.extend(recorder.iter().flat_map(|r| r.source().fds()));
        fds.extend(event_log.iter().flat_map(|l| l.source().fds()));
        let smallest_ring = recorder
            .iter()
            .map(Recorder::source)
            .chain(event_log.iter().map(EventLog::source))
            .filter_map(Source::smallest_ring)
            .min();
        CaptureSession {
            recorder,
            event_log,
            fds,
            notices: None,
            gather: gather::Gather::new(smallest_ring),
        }
    }

    /// Reads ban notices from `source` from now on: they wake [`CaptureSession::poll`] at
    /// once, and [`CaptureSession::ban`] applies them.
    pub fn read_notices(&mut self, source: Source, banner: Banner) {
        self.fds.extend(source.fds());
        self.notices = Some((source, banner));
    }

    /// Turns the notices read so far into bans on the firewall of `iface`, and logs them
    /// (the event log, or the journal without one). A failure to lock or change the sets
    /// is returned (the notices wait for the next call).
    pub fn ban(&mut self, iface: &str, quiet: bool) -> Result<()> {
        let Some((source, banner)) = self.notices.as_mut() else {
            return Ok(());
        };
        source.drain(|bytes| banner.push_record(bytes));
        let bans = banner.tick(iface)?;
        match self.event_log.as_mut() {
            Some(log) => log.log_bans(&bans),
            None if !quiet => {
                for b in &bans {
                    crate::base::log::info(format_args!(
                        "xdpsieve: {} {} into set {} for {} s (rule {}, {} packets/s seen)",
                        if b.renewed { "ban renewed:" } else { "banned" },
                        b.key,
                        crate::base::text::escape(&b.set),
                        b.expires_in_ms / 1000,
                        crate::base::text::escape(&b.rule),
                        b.rate_seen_pps,
                    ));
                }
            }
            None => {}
        }
        Ok(())
    }

    /// A reload put `rules` (generation `generation`) in force: bans follow its rules.
    pub fn ban_rules(&mut self, rules: &RuleSet, generation: u32) {
        if let Some((_, banner)) = self.notices.as_mut() {
            banner.set_rules(rules, generation);
        }
    }

    /// One step of the run loop: waits up to `timeout` for records, and writes every
    /// record available then. Returns how many it read; only the waiting can fail (a failed
    /// output stops itself and says so, and its records go on being drained and counted).
    pub fn poll(&mut self, timeout: Duration) -> io::Result<u64> {
        let ready = self.sources().any(Source::ready_now) || wait_readable(&self.fds, timeout)?;
        if !ready {
            return Ok(0);
        }
        let drained = self.drain();
        // Let records gather: under steady traffic a wakeup, a write and a flush per
        // record would cost more than the record itself. How long follows how full the
        // rings were (see `gather`).
        let fill = self.sources().filter_map(Source::fill).reduce(f64::max);
        let pause = self.gather.after_drain(drained, fill);
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
        Ok(drained)
    }

    /// Writes every record available now, the capture's then the event log's.
    pub fn drain(&mut self) -> u64 {
        let mut drained = 0;
        if let Some(r) = self.recorder.as_mut() {
            drained += r.drain();
        }
        if let Some(l) = self.event_log.as_mut() {
            drained += l.drain();
        }
        drained
    }

    /// Between drains (with the heartbeat): reaps the `-z` commands that ended.
    pub fn housekeeping(&mut self) {
        if let Some(r) = self.recorder.as_mut() {
            r.housekeeping();
        }
    }

    /// Whether the capture is done: `-c COUNT` packets written, or `-G` with `-W` wrote
    /// its last file.
    pub fn limit_reached(&mut self) -> bool {
        self.recorder.as_mut().is_some_and(Recorder::limit_reached)
    }

    /// Which record streams this run writes: (capture, events). The program is told (see
    /// `Firewall::publish_writers`), so that it counts the records of the others rather
    /// than send them to a ring nothing drains.
    pub fn streams(&self) -> (bool, bool) {
        (self.recorder.is_some(), self.event_log.is_some())
    }

    /// How many outputs failed (and stopped): a change is published at once.
    pub fn failed_outputs(&mut self) -> usize {
        usize::from(self.recorder.as_mut().is_some_and(Recorder::failed))
            + usize::from(self.event_log.as_ref().is_some_and(EventLog::failed))
    }

    /// What the capture and the event log wrote and failed to write, together.
    pub fn stats(&mut self) -> WriterStats {
        let capture = self
            .recorder
            .as_mut()
            .map(Recorder::stats)
            .unwrap_or_default();
        capture
            .merge(
                self.event_log
                    .as_ref()
                    .map(EventLog::stats)
                    .unwrap_or_default(),
            )
            .merge(
                self.notices
                    .as_ref()
                    .map(|(source, banner)| banner.stats().merge(source.stats()))
                    .unwrap_or_default(),
            )
    }

    /// Samples the perf buffers reported lost so far.
    pub fn perf_lost(&self) -> u64 {
        self.sources().map(Source::perf_lost).sum()
    }

    /// Names the rules of `generation` in the capture's comments and the event log.
    pub fn add_generation(&mut self, generation: u32, rules: &RuleSet) {
        if let Some(r) = self.recorder.as_mut() {
            r.add_generation(generation, rules);
        }
        if let Some(l) = self.event_log.as_mut() {
            l.add_generation(generation, rules);
        }
    }

    fn sources(&self) -> impl Iterator<Item = &Source> {
        let capture = self.recorder.iter().map(Recorder::source);
        capture.chain(self.event_log.iter().map(EventLog::source))
    }

    /// Ends the recording in its fixed order (see the module doc). The caller has stopped
    /// the records at their origin (detached) when it means to; `closing` gives the
    /// interfaces' counters for the closing statistics of a capture that does not rotate,
    /// read after the final drain. Its error ends the run before the closing blocks.
    pub fn finish(
        mut self,
        closing: impl FnOnce() -> Result<Vec<(u32, InterfaceCounters)>>,
    ) -> Result<Finished> {
        if let Some(log) = self.event_log.as_mut() {
            log.drain();
        }
        if let Some(r) = self.recorder.as_mut() {
            r.drain();
            let closing = closing()?;
            r.finish(&closing);
        }
        Ok(Finished {
            perf_lost: self.perf_lost(),
            written: self.stats(),
        })
    }
}

mod gather;
#[cfg(test)]
mod tests;
