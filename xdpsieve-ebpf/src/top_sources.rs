//! Who is being dropped: per source address, the packets the rules dropped, would have
//! dropped (monitor rules) or found over a limit, for `xdpsieve top` and `status --top`.
//!
//! An LRU per-CPU hash (no atomics on the drop path of a one-source flood; userspace sums
//! the CPUs). A source not yet tracked is added with a chance of one in
//! `TOP_SOURCES_HOLD_ONE_IN` per packet (sample and hold): a heavy hitter is held within a
//! few dozen packets and then counted exactly, while a spoofed flood of one-packet sources
//! seldom reaches the table's insert path, the costly one, and seldom pushes the heavy
//! hitters out. The counts are therefore a floor: a source's packets before it was held
//! are not in them. Only dropped and marked packets come here, and only when userspace
//! turned it on (`features::TOP_SOURCES`, read-only data).

use aya_ebpf::{helpers::generated::bpf_get_prandom_u32, macros::map, maps::LruPerCpuHashMap};
use xdpsieve_common::{
    record_flags,
    walk::{SourceKey, SourceStats, TOP_SOURCES_ENTRIES, TOP_SOURCES_HOLD_ONE_IN},
};

use crate::parse::Packet;

#[map]
static TOP_SOURCES: LruPerCpuHashMap<SourceKey, SourceStats> =
    LruPerCpuHashMap::with_max_entries(TOP_SOURCES_ENTRIES, 0);

/// Counts a dropped or marked packet against its source. Not inlined: its paths (held or
/// not, sampled or not) end at its return, so they do not multiply the paths after it.
#[inline(never)]
pub(crate) fn count(pkt: &Packet, frame_len: u32, dropped: bool, marks: u8) {
    let key = SourceKey {
        family: pkt.family,
        _pad: [0; 3],
        addr: pkt.src,
    };
    let bytes = u64::from(frame_len);
    let stats = match TOP_SOURCES.get_ptr_mut(key) {
        Some(stats) => stats,
        None => {
            // SAFETY: helper without arguments.
            if unsafe { bpf_get_prandom_u32() } % TOP_SOURCES_HOLD_ONE_IN != 0 {
                return;
            }
            if TOP_SOURCES.insert(key, SourceStats::default(), 0).is_err() {
                return;
            }
            match TOP_SOURCES.get_ptr_mut(key) {
                Some(stats) => stats,
                None => return,
            }
        }
    };
    // SAFETY: this CPU's value of a per-CPU map, for this program run.
    let stats = unsafe { &mut *stats };
    if marks & record_flags::MONITOR != 0 {
        stats.would += 1;
        stats.would_bytes += bytes;
    }
    if dropped {
        if marks & record_flags::OVER_LIMIT != 0 {
            stats.limited += 1;
            stats.limited_bytes += bytes;
        } else {
            stats.dropped += 1;
            stats.dropped_bytes += bytes;
        }
    }
}
