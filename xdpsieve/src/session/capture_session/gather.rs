//! How long the reader lets records gather in the rings between two drains.
//!
//! Each drain costs a wakeup, a write and a flush, whatever it carries: under steady
//! traffic, a longer pause spreads that over more records. Measured in one session with
//! `cargo xtask bench --quick --only capture`, 64-byte frames from one core: 90 and 95 ns
//! of reader CPU per frame with a fixed 1 ms pause, 73 and 74 ns with 5 ms. But a pause is
//! ring space: records that do not fit are lost (and counted), and a fixed 5 ms lost some
//! when 512-byte frames came from both cores into rings of 4 MiB per CPU.
//!
//! So the pause follows how full the fullest ring was when the drain began: it doubles
//! (up to [`LONGEST`]) while the rings stay nearly empty, halves (down to [`SHORTEST`]) as
//! soon as one fills past a quarter, and goes back to [`START`] after a quiet spell, so
//! that a burst after idle meets the same 1 ms pause as it always did. A drain of
//! [`BUSY_DRAIN`] records or more means the reader is behind: it goes on at once. Sources
//! that cannot tell how full they are (perf buffers, the tests' memory queue) keep 1 ms.
//!
//! A pause past 1 ms is taken only where the rings could take a burst through all of it:
//! the longest pause is what the smallest ring holds at [`BURST_BYTES_PER_MS`] (a flood of
//! 1 GB/s into one CPU, most of a 10 GbE link on one receive queue), so a run whose rings
//! are small (`--ring-size` shared out over many CPUs: 256 KiB each on 32 CPUs with the
//! default) never pauses longer than it did before, when the pause was a fixed 1 ms.
//!
//! The longest pause is also the longest a lone packet waits in a ring under traffic, far
//! within the 100 ms the latency test holds the capture to.

use std::time::Duration;

/// The pause after a quiet spell, and for sources that cannot tell how full they are.
pub(super) const START: Duration = Duration::from_millis(1);
/// The longest pause of all: the most a record waits while traffic flows.
pub(super) const LONGEST: Duration = Duration::from_millis(5);
/// The burst a pause must leave room for, in bytes per millisecond into one ring.
pub(super) const BURST_BYTES_PER_MS: usize = 1_000_000;
/// The shortest pause short of none.
pub(super) const SHORTEST: Duration = Duration::from_micros(250);
/// Records in one drain above which the reader does not pause before the next: it is
/// behind, and a pause lets the ring fill further.
pub(super) const BUSY_DRAIN: u64 = 4096;
/// A drain that began with the fullest ring under this share lengthens the pause.
const GROW_BELOW: f64 = 1.0 / 16.0;
/// A drain that began with a ring over this share shortens it.
const SHRINK_ABOVE: f64 = 1.0 / 4.0;

/// The reader's pause between drains, adapted drain by drain.
#[derive(Debug, Clone, Copy)]
pub(super) struct Gather {
    pause: Duration,
    /// The longest pause the rings allow (see the module doc).
    longest: Duration,
}

impl Gather {
    /// For rings the smallest of which holds `smallest_ring` bytes (`None`: sources that
    /// cannot tell).
    pub(super) fn new(smallest_ring: Option<usize>) -> Gather {
        let longest = smallest_ring.map_or(START, |bytes| {
            let holds = Duration::from_secs_f64(bytes as f64 / BURST_BYTES_PER_MS as f64 / 1e3);
            holds.clamp(START, LONGEST)
        });
        Gather {
            pause: START,
            longest,
        }
    }

    /// The pause before the next drain, after one that read `drained` records and began
    /// with the fullest ring `fill` full (`None`: its sources cannot tell). Zero: none.
    pub(super) fn after_drain(&mut self, drained: u64, fill: Option<f64>) -> Duration {
        if drained == 0 {
            // Quiet: the next records wake the reader, and meet the usual pause.
            self.pause = START;
            return Duration::ZERO;
        }
        let Some(fill) = fill else {
            return if drained >= BUSY_DRAIN {
                Duration::ZERO
            } else {
                START
            };
        };
        if drained >= BUSY_DRAIN || fill > SHRINK_ABOVE {
            self.pause = (self.pause / 2).max(SHORTEST);
        } else if fill < GROW_BELOW {
            self.pause = (self.pause * 2).min(self.longest);
        }
        if drained >= BUSY_DRAIN {
            Duration::ZERO
        } else {
            self.pause
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rings of 8 MiB: room for the longest pause.
    const BIG: Option<usize> = Some(8 << 20);

    #[test]
    fn nearly_empty_rings_lengthen_the_pause_up_to_the_longest() {
        let mut g = Gather::new(BIG);
        let pauses: Vec<Duration> = (0..5).map(|_| g.after_drain(100, Some(0.01))).collect();
        assert_eq!(pauses[0], Duration::from_millis(2));
        assert_eq!(pauses[1], Duration::from_millis(4));
        assert!(pauses[2..].iter().all(|&p| p == LONGEST), "{pauses:?}");
    }

    #[test]
    fn a_filling_ring_shortens_it_and_a_quiet_spell_starts_over() {
        let mut g = Gather::new(BIG);
        for _ in 0..5 {
            g.after_drain(100, Some(0.01));
        }
        assert_eq!(g.after_drain(100, Some(0.3)), LONGEST / 2);
        assert_eq!(g.after_drain(100, Some(0.1)), LONGEST / 2, "between: kept");
        for _ in 0..10 {
            g.after_drain(100, Some(0.5));
        }
        assert_eq!(g.after_drain(100, Some(0.5)), SHORTEST);
        assert_eq!(g.after_drain(0, Some(0.0)), Duration::ZERO);
        assert_eq!(g.after_drain(1, Some(0.0)), START * 2);
    }

    #[test]
    fn a_reader_behind_goes_on_at_once() {
        let mut g = Gather::new(BIG);
        assert_eq!(g.after_drain(BUSY_DRAIN, Some(0.01)), Duration::ZERO);
        assert_eq!(g.after_drain(BUSY_DRAIN, None), Duration::ZERO);
        assert_eq!(
            g.after_drain(1, Some(0.1)),
            START / 2,
            "halved while behind"
        );
    }

    #[test]
    fn sources_that_cannot_tell_keep_one_millisecond() {
        let mut g = Gather::new(None);
        for _ in 0..5 {
            assert_eq!(g.after_drain(10, None), START);
        }
    }

    #[test]
    fn small_rings_never_pause_past_what_a_burst_leaves_room_for() {
        // 256 KiB per CPU (the default 8M over 32 CPUs): as before, 1 ms at most.
        let mut g = Gather::new(Some(256 << 10));
        for _ in 0..5 {
            assert_eq!(g.after_drain(100, Some(0.0)), START);
        }
        // 2 MiB: about 2.1 ms.
        let mut g = Gather::new(Some(2 << 20));
        let pauses: Vec<Duration> = (0..5).map(|_| g.after_drain(100, Some(0.0))).collect();
        let most = *pauses.iter().max().unwrap_or(&Duration::ZERO);
        assert!(most > START * 2 && most < START * 3, "{pauses:?}");
    }
}
