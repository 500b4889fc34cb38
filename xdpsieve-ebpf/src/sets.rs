//! Address-set lookup: the class of an address in the set trie (see
//! `xdpsieve_common::sets`): one group read per address byte down to the longest prefix
//! on the address's path. IPv4 takes at most 3 reads, IPv6 at most 15; the size of the
//! sets does not enter.

use aya_ebpf::maps::Array;
use xdpsieve_common::{
    SetGroup,
    sets::{POINTER, V4_LEVELS, V4_ROOT, V6_LEVELS, V6_ROOT},
};

/// Byte `i` (0..16) of an address held as four network-order words.
#[inline(always)]
fn byte(addr: &[u32; 4], i: usize) -> usize {
    let word = u32::from_be(addr[(i / 4) & 3]);
    ((word >> (24 - 8 * (i % 4))) & 0xff) as usize
}

/// The class of `addr` (`v6` selects the family); `None` only if a map read fails, which
/// the caller treats like any other failed lookup (no rule matches on this field).
#[inline(always)]
pub(crate) fn class_of(nodes: &Array<SetGroup>, v6: bool, addr: &[u32; 4]) -> Option<u32> {
    let (root, levels) = if v6 {
        (V6_ROOT, V6_LEVELS)
    } else {
        (V4_ROOT, V4_LEVELS)
    };
    let mut entry = nodes.get(root + byte(addr, 0) as u32)?.entries[byte(addr, 1)];
    // Bounded by the longest family; IPv4 stops after its two bytes.
    for level in 0..V6_LEVELS {
        if entry & POINTER == 0 || level >= levels {
            break;
        }
        entry = nodes.get(entry & !POINTER)?.entries[byte(addr, 2 + level)];
    }
    if entry & POINTER != 0 {
        return None;
    }
    Some(entry)
}
