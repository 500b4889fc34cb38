//! The divergence check (see the parent module's doc for why the counts must agree): every
//! few seconds, the packets each interface received against the packets the program saw
//! on it, over the same window.

use xdpsieve_common::MAX_INTERFACES;

use super::{DIVERGENCE_EVERY, DIVERGENCE_MIN, Event, Watcher, netlink};
use crate::configure::loader::Firewall;

impl Watcher {
    /// The program's packets for `ifindex`: its own slot, or the shared last slot (an
    /// interface that came back with a new ifindex is counted there).
    fn slot_of(&self, ifindex: u32) -> usize {
        self.slots
            .iter()
            .position(|&s| s == ifindex)
            .unwrap_or(MAX_INTERFACES)
    }

    /// Samples (rx_packets, program packets) per interface, rx first (see the module doc).
    pub(super) fn samples(&self, firewall: &Firewall) -> Result<Vec<Option<(u64, u64)>>, String> {
        let rx: Vec<Option<u64>> = self
            .interfaces
            .iter()
            .map(|w| {
                netlink::get_link(&w.name)
                    .ok()
                    .flatten()
                    .filter(|l| l.ifindex == w.ifindex)
                    .and_then(|l| l.rx_packets)
            })
            .collect();
        let counters = firewall
            .interface_counters()
            .map_err(|e| format!("reading the program's counters: {e}"))?;
        // Interfaces sharing a slot (several re-created ones) are compared as one: each gets
        // the sums of its slot group.
        let mut sums = vec![(0u64, 0u64, true); MAX_INTERFACES + 1];
        for (w, rx) in self.interfaces.iter().zip(&rx) {
            let slot = self.slot_of(w.ifindex);
            match rx {
                Some(rx) => sums[slot].0 += rx,
                None => sums[slot].2 = false,
            }
            sums[slot].1 = counters.get(slot).map_or(0, |c| c.packets);
        }
        Ok(self
            .interfaces
            .iter()
            .map(|w| {
                let (rx, program, complete) = sums[self.slot_of(w.ifindex)];
                complete.then_some((rx, program))
            })
            .collect())
    }

    pub(super) fn sample_baselines(&mut self, firewall: &Firewall) {
        let samples = self.samples(firewall).unwrap_or_default();
        for (i, w) in self.interfaces.iter_mut().enumerate() {
            w.baseline = samples.get(i).copied().flatten();
        }
    }

    pub(super) fn check_divergence(&mut self, firewall: &Firewall, events: &mut Vec<Event>) {
        let samples = match self.samples(firewall) {
            Ok(s) => s,
            Err(what) => {
                events.push(Event::CannotWatch { what });
                return;
            }
        };
        let seconds = DIVERGENCE_EVERY.as_secs();
        for (w, sample) in self.interfaces.iter_mut().zip(samples) {
            let baseline = std::mem::replace(&mut w.baseline, sample);
            let (Some((rx0, prog0)), Some((rx1, prog1))) = (baseline, sample) else {
                continue;
            };
            if !w.program_expected() {
                w.diverging = None;
                continue;
            }
            let (received, unseen) = unseen((rx0, prog0), (rx1, prog1));
            if diverges(received, unseen) {
                if w.diverging.is_none() {
                    events.push(Event::Diverging {
                        interface: w.name.clone(),
                        unseen,
                        received,
                        seconds,
                    });
                }
                w.diverging = Some((unseen, received));
            } else if w.diverging.take().is_some() {
                events.push(Event::Converged {
                    interface: w.name.clone(),
                });
            }
        }
    }
}

/// (received, unseen) over a window from two (interface rx, program packets) samples.
/// Counters that went backwards (a re-created interface starts from zero) count as nothing.
fn unseen(start: (u64, u64), end: (u64, u64)) -> (u64, u64) {
    let received = end.0.saturating_sub(start.0);
    let seen = end.1.saturating_sub(start.1);
    (received, received.saturating_sub(seen))
}

/// Markedly more received than seen: at least [`DIVERGENCE_MIN`] packets and 5%.
fn diverges(received: u64, unseen: u64) -> bool {
    unseen >= DIVERGENCE_MIN && unseen.saturating_mul(20) >= received
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_or_relative_noise_is_not_divergence() {
        // Program saw everything (or more: frames in flight when rx was read).
        assert_eq!(unseen((100, 100), (1100, 1105)), (1000, 0));
        assert!(!diverges(1000, 0));
        // A few frames short: noise.
        assert!(!diverges(1000, DIVERGENCE_MIN - 1));
        // Under 5% of a large window: noise.
        assert!(!diverges(1_000_000, 40_000));
        // Three queues of four without the program.
        let (received, missed) = unseen((0, 0), (400, 100));
        assert_eq!(missed, 300);
        assert!(diverges(received, missed));
        // Counters reset by a re-created interface.
        assert_eq!(unseen((500, 500), (10, 10)), (0, 0));
    }
}
