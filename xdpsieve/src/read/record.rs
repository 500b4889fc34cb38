//! Decoding capture records from the ring buffer, and turning their kernel timestamps
//! (`CLOCK_TAI`, taken when the XDP program saw the packet) into wall-clock time.
//!
//! Records come from the kernel, but are still checked: a record shorter than its header or
//! whose `cap_len` overruns it is an error the caller counts, never a panic.

use std::time::Duration;

use xdpsieve_common::{CAPTURE_HEADER_LEN, CaptureHeader, MAX_SNAPLEN, record_flags, verdict};

/// One decoded capture record, borrowing its packet bytes from the ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaptureRecord<'a> {
    pub timestamp_tai_ns: u64,
    pub ifindex: u32,
    pub rx_queue: u32,
    pub orig_len: u32,
    pub rule_id: u32,
    /// Low byte of the rule generation that judged the packet (see `Config::generation`).
    pub generation: u8,
    pub verdict: Verdict,
    pub malformed: bool,
    /// The program could not reach the L4 header the rules need (see `--unclassifiable`).
    pub unclassifiable: bool,
    /// The monitor rule that marked the packet (it would have decided it), 0: none.
    pub shadow_rule_id: u32,
    /// The packet was over a limit rule's budget: dropped by `rule_id`, or marked by
    /// `shadow_rule_id` (a limit rule in monitor mode).
    pub over_limit: bool,
    pub data: &'a [u8],
}

/// The XDP verdict of a recorded packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Aborted,
    Drop,
    Pass,
    Other(u8),
}

impl Verdict {
    pub fn from_raw(raw: u8) -> Self {
        match raw {
            verdict::ABORTED => Verdict::Aborted,
            verdict::DROP => Verdict::Drop,
            verdict::PASS => Verdict::Pass,
            other => Verdict::Other(other),
        }
    }

    /// The `enum xdp_action` value, as the pcapng verdict option carries it.
    pub fn raw(self) -> u8 {
        match self {
            Verdict::Aborted => verdict::ABORTED,
            Verdict::Drop => verdict::DROP,
            Verdict::Pass => verdict::PASS,
            Verdict::Other(v) => v,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Verdict::Aborted => "ABORTED",
            Verdict::Drop => "DROP",
            Verdict::Pass => "PASS",
            Verdict::Other(_) => "OTHER",
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record of {0} bytes is shorter than its {CAPTURE_HEADER_LEN}-byte header")]
    Short(usize),
    #[error("record claims {cap_len} packet bytes but carries {available}")]
    Overrun { cap_len: u32, available: usize },
    #[error("record captured {cap_len} bytes of a {orig_len}-byte packet")]
    Inconsistent { cap_len: u32, orig_len: u32 },
}

impl<'a> CaptureRecord<'a> {
    /// Decodes one ring-buffer record (header followed by packet bytes).
    pub fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let Some((header, data)) = bytes.split_at_checked(CAPTURE_HEADER_LEN) else {
            return Err(DecodeError::Short(bytes.len()));
        };
        // SAFETY: CaptureHeader is repr(C) plain integers (any bit pattern is valid) and
        // `header` holds exactly size_of::<CaptureHeader>() bytes.
        let h: CaptureHeader = unsafe { std::ptr::read_unaligned(header.as_ptr().cast()) };
        let data = data.get(..h.cap_len as usize).ok_or(DecodeError::Overrun {
            cap_len: h.cap_len,
            available: data.len(),
        })?;
        if h.cap_len > h.orig_len || h.cap_len > MAX_SNAPLEN {
            return Err(DecodeError::Inconsistent {
                cap_len: h.cap_len,
                orig_len: h.orig_len,
            });
        }
        Ok(CaptureRecord {
            timestamp_tai_ns: h.timestamp_ns,
            ifindex: h.ifindex,
            rx_queue: h.rx_queue,
            orig_len: h.orig_len,
            rule_id: h.rule_id,
            generation: h.generation,
            verdict: Verdict::from_raw(h.verdict),
            malformed: h.flags & record_flags::MALFORMED != 0,
            unclassifiable: h.flags & record_flags::UNCLASSIFIABLE != 0,
            shadow_rule_id: if h.flags & record_flags::MONITOR != 0 {
                h.shadow_rule_id
            } else {
                0
            },
            over_limit: h.flags & record_flags::OVER_LIMIT != 0,
            data,
        })
    }
}

/// Converts `CLOCK_TAI` nanoseconds to time since the Unix epoch.
///
/// The offset is sampled from the kernel's own clocks rather than assumed (TAI-UTC is 37 s
/// on a synced host but 0 where nobody set it), and re-sampled by [`WallClock::refresh`] so a
/// stepped system clock is followed.
#[derive(Debug, Clone, Copy)]
pub struct WallClock {
    realtime_minus_tai_ns: i128,
    synced: std::time::Instant,
}

/// How often [`WallClock::refresh`] re-reads the offset, to follow a stepped clock.
const RESYNC_EVERY: Duration = Duration::from_secs(1);

impl WallClock {
    pub fn new() -> Self {
        let mut clock = WallClock {
            realtime_minus_tai_ns: 0,
            synced: std::time::Instant::now(),
        };
        clock.resync();
        clock
    }

    /// A clock with a fixed offset, for tests.
    pub fn with_offset_ns(realtime_minus_tai_ns: i128) -> Self {
        WallClock {
            realtime_minus_tai_ns,
            synced: std::time::Instant::now(),
        }
    }

    /// Re-reads the offset when the last reading is more than a second old.
    pub fn refresh(&mut self) {
        if self.synced.elapsed() >= RESYNC_EVERY {
            self.resync();
        }
    }

    pub fn resync(&mut self) {
        // Bracket the realtime read with two TAI reads and use their midpoint.
        let tai_before = clock_ns(libc::CLOCK_TAI);
        let real = clock_ns(libc::CLOCK_REALTIME);
        let tai_after = clock_ns(libc::CLOCK_TAI);
        self.realtime_minus_tai_ns = real - (tai_before + tai_after) / 2;
        self.synced = std::time::Instant::now();
    }

    pub fn to_unix(&self, tai_ns: u64) -> Duration {
        let ns = (i128::from(tai_ns) + self.realtime_minus_tai_ns).max(0);
        Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
    }
}

impl Default for WallClock {
    fn default() -> Self {
        Self::new()
    }
}

fn clock_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec to write into; both clocks exist on every kernel that
    // runs this program (CLOCK_TAI since 2.6.26).
    unsafe { libc::clock_gettime(clock, &mut ts) };
    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(cap_len: u32, orig_len: u32, payload: &[u8]) -> Vec<u8> {
        let h = CaptureHeader {
            timestamp_ns: 1_000_000_123,
            ifindex: 4,
            rx_queue: 1,
            orig_len,
            cap_len,
            rule_id: 9,
            verdict: verdict::DROP,
            flags: record_flags::MALFORMED,
            generation: 0,
            _pad: 0,
            shadow_rule_id: 0,
            _pad2: 0,
        };
        // SAFETY: reading a repr(C) struct without padding as bytes.
        let mut bytes =
            unsafe { std::slice::from_raw_parts((&raw const h).cast::<u8>(), CAPTURE_HEADER_LEN) }
                .to_vec();
        bytes.extend_from_slice(payload);
        bytes
    }

    #[test]
    fn decodes_header_and_data() {
        let bytes = record(3, 1500, &[1, 2, 3, 0, 0, 0, 0, 0]); // ring pads to 8 bytes
        let r = CaptureRecord::decode(&bytes).unwrap();
        assert_eq!(r.data, &[1, 2, 3]);
        assert_eq!(
            (r.ifindex, r.rx_queue, r.orig_len, r.rule_id),
            (4, 1, 1500, 9)
        );
        assert_eq!(r.verdict, Verdict::Drop);
        assert!(r.malformed);
        assert_eq!(r.timestamp_tai_ns, 1_000_000_123);
    }

    #[test]
    fn rejects_short_and_overrunning_records() {
        assert_eq!(CaptureRecord::decode(&[0; 7]), Err(DecodeError::Short(7)));
        let bytes = record(10, 1500, &[0; 4]);
        assert_eq!(
            CaptureRecord::decode(&bytes),
            Err(DecodeError::Overrun {
                cap_len: 10,
                available: 4
            })
        );
        let bytes = record(4, 2, &[0; 4]);
        assert!(matches!(
            CaptureRecord::decode(&bytes),
            Err(DecodeError::Inconsistent { .. })
        ));
    }

    #[test]
    fn wall_clock_offsets() {
        let clock = WallClock::with_offset_ns(1_700_000_000_000_000_000);
        assert_eq!(clock.to_unix(5).as_nanos(), 1_700_000_000_000_000_005);
        let live = WallClock::new();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        let tai_now = clock_ns(libc::CLOCK_TAI) as u64;
        let converted = live.to_unix(tai_now);
        let diff = converted.as_secs_f64() - now.as_secs_f64();
        assert!(diff.abs() < 1.0, "wall clock off by {diff} s");
    }
}
