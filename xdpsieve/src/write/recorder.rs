//! The recorder and the event log: drain their record sources, decode each record, and write
//! it out (capture file, log lines), counting everything they do not write.
//!
//! A failed output (disk full, I/O error, a reader that went away) stops that output only:
//! one line on stderr says so, the ring keeps being drained (so the program's buffer does
//! not fill and the other output keeps working), and every record from then on, as well as
//! those the failed write took down with it, is counted as "not written: output failed".
//! Filtering does not depend on any of this: the program in the kernel drops what the rules
//! drop whatever userspace does. Counts are of records wholly in the output (see
//! [`crate::write::output::RecordWriter`]).

use crate::{
    base::counters::WriterStats,
    configure::rules::{Action, RuleSet, RuleSpec},
    read::record::{CaptureRecord, WallClock},
    read::source::Source,
    write::capture::{CaptureWriter, Packet},
    write::event_log::EventFormatter,
    write::generations::Generations,
    write::output::{Failure, Output, RecordWriter},
    write::rotation::rotator::{COMMANDS_AT_EXIT, Rotator},
};

/// What an output did with the records it was given.
#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    /// Records handed to the writer while it was healthy (written, buffered, or taken
    /// down by the failed write).
    accepted: u64,
    /// Records that arrived after the output failed.
    after_failure: u64,
    undecodable: u64,
}

impl Tally {
    /// Records not written because the output failed.
    /// `written_before`: the records in the files a rotating capture finished before
    /// `out`'s.
    fn not_written<W: Output>(&self, out: &RecordWriter<W>, written_before: u64) -> u64 {
        (self.after_failure + self.accepted)
            .saturating_sub(written_before + out.written() + out.pending())
    }
}

/// The one line that says an output stopped, printed once.
fn announce(what: &str, failure: &Failure) {
    let cut = match &failure.cut_error {
        Some(e) => format!(" (could not cut the file back to its last whole record: {e})"),
        None => String::new(),
    };
    crate::base::log::warning(format_args!(
        "xdpsieve: {what} stopped: {}{cut}; filtering goes on; records not written are counted",
        failure.message
    ));
}

/// Writes capture records to a pcap or pcapng file.
pub struct Recorder<W: Output> {
    source: Source,
    writer: CaptureWriter<W>,
    /// "capture to FILE", for the failure line.
    what: String,
    clock: WallClock,
    /// pcapng comment per rule id, built once per rule generation.
    /// Per rule: its comment (`rule=NAME id=N`), and its mark on the records of packets
    /// it marked in monitor mode (` would-drop=NAME id=N`).
    comments: Generations<(String, String)>,
    limit: Option<u64>,
    past_count: u64,
    tally: Tally,
    /// `-C`/`-G`: the files after the first; `None` writes one file.
    rotation: Option<Rotator<W>>,
}

fn unix_now() -> std::time::Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

impl<W: Output> Recorder<W> {
    /// `limit` is `-c COUNT`: records past it are read (to keep the buffers moving) and
    /// counted but not written. `target` names the output in messages ("dropped.pcap",
    /// "standard output"). Writes the file header at once, so a reader of `-w -` sees it
    /// and an output that cannot be written is reported before any traffic.
    pub fn new(
        source: Source,
        writer: CaptureWriter<W>,
        target: &str,
        rules: &RuleSet,
        limit: Option<u64>,
    ) -> Self {
        let comments = Generations::new(1, rules, comment(1), default_comment(1));
        let mut recorder = Recorder {
            source,
            writer,
            what: format!("capture to {target}"),
            clock: WallClock::new(),
            comments,
            limit,
            past_count: 0,
            tally: Tally::default(),
            rotation: None,
        };
        let _ = recorder.writer.flush();
        recorder.report_failure();
        recorder
    }

    /// Rotates the capture's files as `rotator` (which opened the first, `writer`'s) says.
    pub fn with_rotation(mut self, rotator: Rotator<W>) -> Self {
        self.rotation = Some(rotator);
        self
    }

    pub fn source(&self) -> &Source {
        &self.source
    }

    /// Between drains: reaps the `-z` commands that ended and reports failures.
    pub fn housekeeping(&mut self) {
        if let Some(rotation) = &mut self.rotation {
            rotation.poll_commands();
        }
    }

    /// Counted packets wholly in the capture's files.
    fn written(&mut self) -> u64 {
        let before = self.rotation.as_ref().map_or(0, Rotator::written_before);
        before + self.writer.output().written()
    }

    /// Names the rules of `generation` in the comments (a reload); records of the previous
    /// generations still in the ring keep theirs.
    pub fn add_generation(&mut self, generation: u32, rules: &RuleSet) {
        self.comments.add(
            generation,
            rules,
            comment(generation),
            default_comment(generation),
        );
    }

    /// Writes every record available now and flushes. Returns how many records it read.
    pub fn drain(&mut self) -> u64 {
        self.clock.refresh();
        let Recorder {
            source,
            writer,
            clock,
            comments,
            limit,
            past_count,
            tally,
            rotation,
            ..
        } = self;
        let mut read = 0;
        let with_comments = writer.writes_comments();
        let now = unix_now();
        source.drain(|bytes| {
            read += 1;
            let record = match CaptureRecord::decode(bytes) {
                Ok(r) => r,
                Err(_) => {
                    tally.undecodable += 1;
                    return;
                }
            };
            if writer.output().failure().is_some() || rotation.as_ref().is_some_and(Rotator::failed)
            {
                tally.after_failure += 1;
                return;
            }
            if limit.is_some_and(|limit| tally.accepted >= limit)
                || rotation.as_ref().is_some_and(Rotator::stopped)
            {
                *past_count += 1;
                return;
            }
            if let Some(rotation) = rotation.as_mut()
                && !rotation.before_packet(writer, now)
            {
                // The capture stopped at this packet: -G's -W files are done, or the
                // next file failed (said once, by the rotator or the writer's report).
                if rotation.stopped() {
                    *past_count += 1;
                } else {
                    tally.after_failure += 1;
                }
                return;
            }
            // A hash lookup per record is a fair share of a small record's cost: only
            // for the format that writes it.
            let mut comment = if with_comments {
                comments
                    .get(record.generation, record.rule_id)
                    .map_or("", |((c, _), _)| c.as_str())
            } else {
                ""
            };
            // Rare (an attack, junk, a rule on trial): the allocation is paid only by
            // these records.
            let marked;
            if with_comments
                && (record.unclassifiable || record.over_limit || record.shadow_rule_id != 0)
            {
                let mark = comments
                    .get(record.generation, record.shadow_rule_id)
                    .filter(|_| record.shadow_rule_id != 0)
                    .map_or("", |((_, m), _)| m.as_str());
                marked = format!(
                    "{comment}{mark}{}{}",
                    if record.over_limit { " over-limit" } else { "" },
                    if record.unclassifiable {
                        " unclassifiable"
                    } else {
                        ""
                    }
                );
                comment = &marked;
            }
            writer.write(&Packet {
                timestamp: clock.to_unix(record.timestamp_tai_ns),
                ifindex: record.ifindex,
                rx_queue: record.rx_queue,
                orig_len: record.orig_len,
                verdict: record.verdict.raw(),
                comment,
                data: record.data,
            });
            if let Some(rotation) = rotation.as_mut() {
                rotation.wrote(record.ifindex);
            }
            tally.accepted += 1;
        });
        if read > 0 {
            // A failure is kept in the writer and reported below.
            let _ = self.writer.flush();
        }
        self.report_failure();
        read
    }

    fn report_failure(&mut self) {
        if let Some(failure) = self.writer.output().take_unannounced_failure() {
            // A rotating capture names the file that failed, not the -w pattern.
            let what = match &self.rotation {
                Some(r) => format!("capture to {}", crate::base::text::escape_path(r.current())),
                None => self.what.clone(),
            };
            announce(&what, failure);
        }
    }

    /// Whether `-c COUNT` packets are in the files, or `-G` with `-W` wrote its last file.
    pub fn limit_reached(&mut self) -> bool {
        let written = self.written();
        self.limit.is_some_and(|limit| written >= limit)
            || self.rotation.as_ref().is_some_and(Rotator::stopped)
    }

    /// Whether the output failed (and stopped).
    pub fn failed(&mut self) -> bool {
        self.writer.output().failure().is_some()
            || self.rotation.as_ref().is_some_and(Rotator::failed)
    }

    pub fn stats(&mut self) -> WriterStats {
        let before = self.rotation.as_ref().map_or(0, Rotator::written_before);
        let (overwritten, removed_for_room) = self
            .rotation
            .as_ref()
            .map(Rotator::packets_gone)
            .unwrap_or_default();
        let out = self.writer.output();
        WriterStats {
            written: before + out.written(),
            capture_not_written: self.tally.not_written(out, before),
            past_count: self.past_count,
            undecodable: self.tally.undecodable,
            overwritten,
            removed_for_room,
            ..WriterStats::default()
        }
        .merge(self.source.stats())
    }

    /// At close: the closing blocks (pcapng interface statistics, ifindex and counters of
    /// each interface), only on a healthy output, then the last flush.
    /// A rotating capture closes its last file as it closed the others (its own packets in
    /// the statistics) and gives the `-z` commands [`COMMANDS_AT_EXIT`] to end.
    pub fn finish(&mut self, interfaces: &[(u32, xdpsieve_common::InterfaceCounters)]) {
        if let Some(rotation) = &mut self.rotation {
            rotation.finish(&mut self.writer, unix_now(), COMMANDS_AT_EXIT);
        } else if !self.failed() {
            for (ifindex, counters) in interfaces {
                self.writer.write_interface_statistics(*ifindex, counters);
            }
        }
        let _ = self.writer.flush();
        self.report_failure();
    }
}

/// Writes events as log lines.
pub struct EventLog<W: Output> {
    source: Source,
    formatter: EventFormatter,
    out: RecordWriter<W>,
    /// "event log to FILE", for the failure line.
    what: String,
    line: String,
    tally: Tally,
}

impl<W: Output> EventLog<W> {
    /// `target` names the output in messages.
    pub fn new(
        source: Source,
        formatter: EventFormatter,
        out: RecordWriter<W>,
        target: &str,
    ) -> Self {
        EventLog {
            source,
            formatter,
            out,
            what: format!("event log to {target}"),
            line: String::with_capacity(1024),
            tally: Tally::default(),
        }
    }

    pub fn source(&self) -> &Source {
        &self.source
    }

    /// Names the rules of `generation` (a reload); see [`EventFormatter::add_generation`].
    pub fn add_generation(&mut self, generation: u32, rules: &RuleSet) {
        self.formatter.add_generation(generation, rules);
    }

    /// Writes every event available now and flushes. Returns how many records it read.
    pub fn drain(&mut self) -> u64 {
        self.formatter.refresh_clock();
        let EventLog {
            source,
            formatter,
            out,
            line,
            tally,
            ..
        } = self;
        let mut read = 0;
        source.drain(|bytes| {
            read += 1;
            match crate::read::event::decode(bytes) {
                Ok(_) if out.failure().is_some() => tally.after_failure += 1,
                Ok(event) => {
                    line.clear();
                    formatter.write_line(&event, line);
                    out.put(line.as_bytes());
                    out.end_record(true);
                    tally.accepted += 1;
                }
                Err(_) => tally.undecodable += 1,
            }
        });
        if read > 0 {
            let _ = self.out.flush();
        }
        if let Some(failure) = self.out.take_unannounced_failure() {
            announce(&self.what, failure);
        }
        read
    }

    /// Writes one line per ban (see `write::ban_line`), counted with the events.
    pub fn log_bans(&mut self, bans: &[crate::instance::bans::BanEvent]) {
        if bans.is_empty() {
            return;
        }
        let now = std::time::SystemTime::now();
        for ban in bans {
            if self.out.failure().is_some() {
                self.tally.after_failure += 1;
                continue;
            }
            self.line.clear();
            super::ban_line::write_ban(self.formatter.format(), ban, now, &mut self.line);
            self.out.put(self.line.as_bytes());
            self.out.end_record(true);
            self.tally.accepted += 1;
        }
        let _ = self.out.flush();
        if let Some(failure) = self.out.take_unannounced_failure() {
            announce(&self.what, failure);
        }
    }

    /// Whether the output failed (and stopped).
    pub fn failed(&self) -> bool {
        self.out.failure().is_some()
    }

    /// Lines written, lines not written because the output failed, records that failed
    /// to decode, and the ring's skips after corrupt lengths.
    pub fn stats(&self) -> WriterStats {
        WriterStats {
            logged: self.out.written(),
            log_not_written: self.tally.not_written(&self.out, 0),
            undecodable: self.tally.undecodable,
            ..WriterStats::default()
        }
        .merge(self.source.stats())
    }
}

/// The pcapng comment of a rule: `rule=NAME id=N`, and ` generation=G` after a reload (the
/// first rules of a run say nothing of it, as before reloads existed); and its mark on a
/// packet it marked in monitor mode: ` would-drop=NAME id=N` (` would-pass=` for a pass
/// rule), after the comment of the rule that decided.
fn comment(generation: u32) -> impl Fn(&RuleSpec) -> (String, String) {
    move |rule| {
        let (id, name) = (rule.id, crate::base::text::escape(&rule.name));
        let comment = if generation == 1 {
            format!("rule={name} id={id}")
        } else {
            format!("rule={name} id={id} generation={generation}")
        };
        let would = match rule.action {
            Action::Drop => "would-drop",
            Action::Pass => "would-pass",
        };
        (comment, format!(" {would}={name} id={id}"))
    }
}

fn default_comment(generation: u32) -> (String, String) {
    let comment = if generation == 1 {
        "rule=default id=0".to_string()
    } else {
        format!("rule=default id=0 generation={generation}")
    };
    (comment, String::new())
}
