//! The recorder: waits on the capture ring, decodes each record and writes it to the
//! capture file, counting everything it does not write.

use std::{
    collections::HashMap,
    io,
    os::fd::AsRawFd,
    time::{Duration, Instant},
};

use aya::maps::{MapData, RingBuf};

use crate::{
    capture::{CaptureWriter, Packet},
    record::{CaptureRecord, WallClock},
    rules::RuleSet,
    stats::WriterStats,
};

/// How often the TAI-to-wall-clock offset is re-read, to follow a stepped clock.
const CLOCK_RESYNC: Duration = Duration::from_secs(1);

pub struct Recorder<W: io::Write> {
    ring: RingBuf<MapData>,
    writer: CaptureWriter<W>,
    clock: WallClock,
    clock_synced: Instant,
    /// pcapng comment per rule id, built once.
    comments: HashMap<u32, String>,
    limit: Option<u64>,
    stats: WriterStats,
}

impl<W: io::Write> Recorder<W> {
    /// `limit` is `-c COUNT`: records past it are read (to keep the ring moving) and counted
    /// but not written.
    pub fn new(
        ring: RingBuf<MapData>,
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
            ring,
            writer,
            clock: WallClock::new(),
            clock_synced: Instant::now(),
            comments,
            limit,
            stats: WriterStats::default(),
        }
    }

    /// Waits up to `timeout` for the ring to have records. A signal ends the wait early.
    pub fn wait(&self, timeout: Duration) -> io::Result<bool> {
        let mut fds = libc::pollfd {
            fd: self.ring.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: fds is one valid pollfd.
        let ready = unsafe { libc::poll(&mut fds, 1, ms) };
        if ready < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                return Ok(false);
            }
            return Err(err);
        }
        Ok(ready > 0)
    }

    /// Writes every record now in the ring and flushes. Returns how many were written.
    pub fn drain(&mut self) -> io::Result<u64> {
        if self.clock_synced.elapsed() >= CLOCK_RESYNC {
            self.clock.resync();
            self.clock_synced = Instant::now();
        }
        let mut written = 0;
        while let Some(item) = self.ring.next() {
            let record = match CaptureRecord::decode(&item) {
                Ok(r) => r,
                Err(_) => {
                    self.stats.undecodable += 1;
                    continue;
                }
            };
            if self.limit.is_some_and(|limit| self.stats.written >= limit) {
                self.stats.past_count += 1;
                continue;
            }
            let comment = self
                .comments
                .get(&record.rule_id)
                .map_or("", String::as_str);
            self.writer.write(&Packet {
                timestamp: self.clock.to_unix(record.timestamp_tai_ns),
                ifindex: record.ifindex,
                rx_queue: record.rx_queue,
                orig_len: record.orig_len,
                verdict: record.verdict.raw(),
                comment,
                data: record.data,
            })?;
            self.stats.written += 1;
            written += 1;
        }
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

    /// Flushes and returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.writer.flush()?;
        Ok(self.writer.into_inner())
    }
}
