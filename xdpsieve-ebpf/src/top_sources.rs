//! Who is being dropped: per source address, the packets the rules dropped, would have
//! dropped (monitor rules) or found over a limit, for `xdpsieve top` and `status --top`.
//!
//! A per-CPU array indexed by a hash of the source (direct mapped), so the drop path pays
//! an inlined array lookup, a compare and a few adds: no hash-table helper (an LRU hash
//! lookup, this module's first design, doubled the cost of a drop), no atomics (userspace
//! sums the CPUs). A source not in its slot takes it with a chance of one in
//! `TOP_SOURCES_HOLD_ONE_IN` per packet (sample and hold), and only once the holder's claim
//! is spent (see `TOP_SOURCES_MAX_CLAIM`): a heavy hitter is held within a few dozen
//! packets and then counted exactly, while a spoofed flood of one-packet sources seldom
//! takes a slot from a source that is still sending. The counts are therefore a floor: a
//! source's packets before it was held are not in them, and two heavy sources that share a
//! slot are counted one at a time. Only dropped and marked packets come here, and only when userspace
//! turned it on (`features::TOP_SOURCES`, read-only data).

use aya_ebpf::{helpers::generated::bpf_get_prandom_u32, macros::map, maps::PerCpuArray};
use xdpsieve_common::{
    record_flags,
    walk::{
        SourceSlot, SourceStats, TOP_SOURCES_ENTRIES, TOP_SOURCES_HOLD_ONE_IN,
        TOP_SOURCES_MAX_CLAIM, top_sources_slot,
    },
};

use crate::parse::Packet;

#[map]
static TOP_SOURCES: PerCpuArray<SourceSlot> = PerCpuArray::with_max_entries(TOP_SOURCES_ENTRIES, 0);

/// Counts a dropped or marked packet against its source. Not inlined: its paths (held or
/// not, sampled or not) end at its return, so they do not multiply the paths after it.
#[inline(never)]
pub(crate) fn count(pkt: &Packet, frame_len: u32, dropped: bool, marks: u8) {
    let Some(slot) = TOP_SOURCES.get_ptr_mut(top_sources_slot(pkt.family, &pkt.src)) else {
        return;
    };
    // SAFETY: this CPU's value of a per-CPU map, for this program run.
    let slot = unsafe { &mut *slot };
    if slot.key.family != pkt.family || slot.key.addr != pkt.src {
        // Another source's slot (or none's): sample and hold, against its claim.
        // SAFETY: helper without arguments.
        if unsafe { bpf_get_prandom_u32() } % TOP_SOURCES_HOLD_ONE_IN != 0 {
            return;
        }
        if slot.claim != 0 {
            slot.claim -= 1;
            return;
        }
        slot.key.family = pkt.family;
        slot.key.addr = pkt.src;
        // Field by field, volatile: the compiler turns a zeroed struct into a call to
        // `memset`, a BPF-to-BPF call.
        let words = core::ptr::addr_of_mut!(slot.stats).cast::<u64>();
        for i in 0..size_of::<SourceStats>() / 8 {
            // SAFETY: in bounds of the 8-aligned stats.
            unsafe { core::ptr::write_volatile(words.add(i), 0) };
        }
    }
    if slot.claim < TOP_SOURCES_MAX_CLAIM {
        slot.claim += 1;
    }
    let bytes = u64::from(frame_len);
    let stats = &mut slot.stats;
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
