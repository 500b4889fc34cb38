//! The recorder and the event log: drain their record sources, decode each record, and write
//! it out (capture file, log lines), counting everything they do not write.

use std::{collections::HashMap, io};

use crate::{
    capture::{CaptureWriter, Packet},
    event::EventFormatter,
    record::{CaptureRecord, WallClock},
    rules::RuleSet,
    source::Source,
    stats::WriterStats,
};

/// Writes capture records to a pcap or pcapng file.
pub struct Recorder<W: io::Write> {
    source: Source,
    writer: CaptureWriter<W>,
    clock: WallClock,
    /// pcapng comment per rule id, built once.
    comments: HashMap<u32, String>,
    limit: Option<u64>,
    stats: WriterStats,
}

impl<W: io::Write> Recorder<W> {
    /// `limit` is `-c COUNT`: records past it are read (to keep the buffers moving) and
    /// counted but not written.
    pub fn new(
        source: Source,
        writer: CaptureWriter<W>,
        rules: &RuleSet,
        limit: Option<u64>,
    ) -> Self {
        let mut comments: HashMap<u32, String> = rules
            .rules
            .iter()
            .map(|r| (r.id, format!("rule={} id={}", r.name, r.id)))
            .collect();
        comments.insert(0, "rule=default id=0".to_string());
        Recorder {
            source,
            writer,
            clock: WallClock::new(),
            comments,
            limit,
            stats: WriterStats::default(),
        }
    }

    pub fn source(&self) -> &Source {
        &self.source
    }

    /// Writes every record available now and flushes. Returns how many were written.
    pub fn drain(&mut self) -> io::Result<u64> {
        self.clock.refresh();
        let Recorder {
            source,
            writer,
            clock,
            comments,
            limit,
            stats,
            ..
        } = self;
        let mut written = 0;
        let mut result = Ok(());
        let with_comments = writer.writes_comments();
        source.drain(|bytes| {
            let record = match CaptureRecord::decode(bytes) {
                Ok(r) => r,
                Err(_) => {
                    stats.undecodable += 1;
                    return;
                }
            };
            if result.is_err() || limit.is_some_and(|limit| stats.written >= limit) {
                stats.past_count += 1;
                return;
            }
            // A hash lookup per record is a fair share of a small record's cost: only
            // for the format that writes it.
            let mut comment = if with_comments {
                comments.get(&record.rule_id).map_or("", String::as_str)
            } else {
                ""
            };
            // Rare (an attack, or junk): the allocation is paid only by these records.
            let unclassifiable;
            if with_comments && record.unclassifiable {
                unclassifiable = format!("{comment} unclassifiable");
                comment = &unclassifiable;
            }
            result = writer.write(&Packet {
                timestamp: clock.to_unix(record.timestamp_tai_ns),
                ifindex: record.ifindex,
                rx_queue: record.rx_queue,
                orig_len: record.orig_len,
                verdict: record.verdict.raw(),
                comment,
                data: record.data,
            });
            if result.is_ok() {
                stats.written += 1;
                written += 1;
            }
        });
        result?;
        if written > 0 {
            self.writer.flush()?;
        }
        Ok(written)
    }

    pub fn limit_reached(&self) -> bool {
        self.limit.is_some_and(|limit| self.stats.written >= limit)
    }

    pub fn stats(&self) -> WriterStats {
        self.stats
    }

    /// Flushes and returns the writer (to add closing blocks).
    pub fn finish(mut self) -> io::Result<CaptureWriter<W>> {
        self.writer.flush()?;
        Ok(self.writer)
    }
}

/// Writes events as log lines.
pub struct EventLog<W: io::Write> {
    source: Source,
    formatter: EventFormatter,
    out: W,
    line: String,
    logged: u64,
    undecodable: u64,
}

impl<W: io::Write> EventLog<W> {
    pub fn new(source: Source, formatter: EventFormatter, out: W) -> Self {
        EventLog {
            source,
            formatter,
            out,
            line: String::with_capacity(64 * 1024),
            logged: 0,
            undecodable: 0,
        }
    }

    pub fn source(&self) -> &Source {
        &self.source
    }

    /// Writes every event available now and flushes. Returns how many were written.
    pub fn drain(&mut self) -> io::Result<u64> {
        self.formatter.refresh_clock();
        let EventLog {
            source,
            formatter,
            out,
            line,
            logged,
            undecodable,
            ..
        } = self;
        let mut written = 0;
        let mut result = Ok(());
        source.drain(|bytes| match crate::event::decode(bytes) {
            Ok(event) => {
                formatter.write_line(&event, line);
                written += 1;
                // Hand lines to the writer in chunks, not one write per event.
                if line.len() >= 60 * 1024 && result.is_ok() {
                    result = out.write_all(line.as_bytes());
                    line.clear();
                }
            }
            Err(_) => *undecodable += 1,
        });
        result?;
        if !line.is_empty() {
            out.write_all(line.as_bytes())?;
            line.clear();
        }
        if written > 0 {
            out.flush()?;
        }
        *logged += written;
        Ok(written)
    }

    /// Lines written and records that failed to decode.
    pub fn counts(&self) -> (u64, u64) {
        (self.logged, self.undecodable)
    }
}
