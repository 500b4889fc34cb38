//! Fragments share their first fragment's verdict: the filter remembers the outcome of each
//! first fragment in an LRU map keyed like the kernel's reassembly queue, and later
//! fragments (which carry no L4 header) take it. Without this, a later fragment would be
//! judged by the rules that need no ports, so a pass rule's fragmented datagram would lose
//! its tail under a default drop, and records of a dropped datagram would stop at its first
//! fragment. Only fragments come here.

use aya_ebpf::{macros::map, maps::LruHashMap};
use xdpsieve_common::{Counters, MAX_FRAGMENTED_DATAGRAMS};

use crate::parse::{Packet, special};

/// The outcome of each first fragment seen, for the fragments that follow it.
#[map]
static FRAGMENT_VERDICTS: LruHashMap<FragmentKey, FirstFragment> =
    LruHashMap::with_max_entries(MAX_FRAGMENTED_DATAGRAMS, 0);

/// What identifies a datagram's fragments: the kernel's reassembly key (addresses, IP
/// identification, and for IPv4 the protocol), plus the protocol for IPv6, whose later
/// fragments repeat it in their fragment header. A later fragment that names another
/// protocol than its first is an orphan: judged without ports, and counted.
#[repr(C)]
#[derive(Clone, Copy)]
struct FragmentKey {
    src: [u32; 4],
    dst: [u32; 4],
    id: u32,
    family: u8,
    protocol: u8,
    _pad: u16,
}

/// A first fragment's outcome, as later fragments take it.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct FirstFragment {
    pub verdict: u8,
    pub log: u8,
    /// The walk's marks (see `outcome::Outcome`), and 1 when a monitor rule marked it.
    pub marks: u8,
    pub would: u8,
    pub rule_id: u32,
    /// The rule-counter slot (0: no rule decided).
    pub slot: u32,
    /// The monitor rule that marked the first fragment (0: none): later fragments carry
    /// its mark, and count as its would-hits, as they would follow its drop.
    pub shadow_slot: u32,
    pub shadow_id: u32,
    /// Whose sampling, rate limit and snap length the later fragments are recorded with,
    /// as their datagram's rule says (see `outcome::record_params`).
    pub record_slot: u32,
    pub extra_wanted: u32,
}

const _: () = {
    assert!(size_of::<FragmentKey>() == 40);
    assert!(size_of::<FirstFragment>() == 28);
};

#[inline(always)]
fn key(pkt: &Packet) -> FragmentKey {
    FragmentKey {
        src: pkt.src,
        dst: pkt.dst,
        id: pkt.fragment_id,
        family: pkt.family,
        protocol: pkt.protocol,
        _pad: 0,
    }
}

/// The outcome of `pkt`'s first fragment, if it was seen (and not yet forgotten).
#[inline(always)]
pub(crate) fn recall(pkt: &Packet) -> Option<FirstFragment> {
    // SAFETY: the value is copied out before anything else can touch the map entry.
    unsafe { FRAGMENT_VERDICTS.get(key(pkt)).copied() }
}

/// Remembers the outcome of `pkt`, a first fragment. A full map evicts the oldest datagram;
/// a failed insert leaves the later fragments to be judged as orphans, and counted so.
#[inline(always)]
pub(crate) fn remember(pkt: &Packet, first: FirstFragment) {
    let _ = FRAGMENT_VERDICTS.insert(key(pkt), first, 0);
}

/// Counts what the rare path saw; `found` says, for a later fragment, whether its first
/// fragment's outcome was recalled.
#[inline(always)]
pub(crate) fn count(counters: &mut Counters, pkt: &Packet, found: Option<bool>) {
    if pkt.special & special::UNCLASSIFIABLE != 0 {
        counters.unclassifiable += 1;
    }
    if pkt.special & special::TINY_FRAGMENT != 0 {
        counters.tiny_fragments += 1;
    }
    match found {
        Some(true) => counters.fragments_followed += 1,
        Some(false) => counters.fragment_orphans += 1,
        None => {}
    }
}
