//! The set trie: every set of a rule generation in one multibit trie that the XDP program
//! walks one address byte per level (see `xdpsieve_common::sets` for the layout).
//!
//! Why this structure: the kernel's `BPF_MAP_TYPE_LPM_TRIE` walks one node per prefix bit
//! it branches on and gets slower as it grows (the issue quotes 37 ns at 1 prefix, 665 ns at
//! 1M). Sets only need membership, not longest-prefix next hops, so a fixed-stride trie in
//! the manner of DPDK's rte_lpm (DIR-24-8 and its IPv6 variant) fits: a lookup is one array
//! read per address byte *on the path to the longest prefix there*, at most 3 for IPv4 and
//! 15 for IPv6, whatever the set's size. A leaf is a *class*, the combination of sets that
//! cover the address, so any number of sets (up to 64) costs one walk, and overlapping
//! prefixes are free. A hash table per prefix length with binary search over the lengths
//! (Waldvogel) needs ~5 hash lookups for IPv4 and more for IPv6, each dearer than a read of
//! an array the verifier inlines.
//!
//! Changes are *paints* ([`change`]): adding a prefix to set `s` ORs bit `s` into the class
//! of every address it covers, removing one ANDs it out and repaints the set's remaining
//! prefixes inside. A change of a running generation is computed aside, in groups the
//! program cannot reach, and put in force with one atomic write per root entry (a /16 of
//! the address space): a packet's walk starts with one read of its root entry and then
//! follows only groups nobody writes, so it sees its address wholly before or wholly after
//! the change, never the middle of a removal. The groups a change unlinks are freed once
//! no walk can be in them any more. A group whose 256 entries end up equal is folded into
//! its parent's entry, so the trie holds no group it does not need.

pub mod change;

use std::net::IpAddr;

use xdpsieve_common::{
    SetGroup,
    sets::{FIRST_GROUP, POINTER, V4_ROOT, V6_ROOT},
};

use self::change::Change;

/// A prefix as the trie walks it: the address's bytes in network order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TriePrefix {
    pub v6: bool,
    pub bytes: [u8; 16],
    pub len: u8,
}

impl TriePrefix {
    /// The prefix of `len` bits of `addr`; host bits are cleared.
    pub fn new(addr: IpAddr, len: u8) -> TriePrefix {
        let (v6, mut bytes, max) = match addr {
            IpAddr::V4(a) => {
                let mut b = [0u8; 16];
                b[..4].copy_from_slice(&a.octets());
                (false, b, 32)
            }
            IpAddr::V6(a) => (true, a.octets(), 128),
        };
        let len = len.min(max);
        for (i, byte) in bytes.iter_mut().enumerate() {
            let bit = 8 * i as u32;
            if bit >= u32::from(len) {
                *byte = 0;
            } else if bit + 8 > u32::from(len) {
                *byte &= 0xffu8 << (bit + 8 - u32::from(len));
            }
        }
        TriePrefix { v6, bytes, len }
    }

    /// Every address of one family: `0.0.0.0/0` or `::/0`.
    pub fn everything(v6: bool) -> TriePrefix {
        TriePrefix {
            v6,
            bytes: [0; 16],
            len: 0,
        }
    }

    pub fn addr(&self) -> IpAddr {
        if self.v6 {
            IpAddr::from(self.bytes)
        } else {
            IpAddr::from([self.bytes[0], self.bytes[1], self.bytes[2], self.bytes[3]])
        }
    }

    /// Whether `self` covers every address of `other`.
    pub fn covers(&self, other: &TriePrefix) -> bool {
        self.v6 == other.v6
            && self.len <= other.len
            && TriePrefix::new(other.addr(), self.len).bytes == self.bytes
    }
}

/// Why a change cannot be made. The caller says which set and that nothing changed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TrieError {
    #[error(
        "the set trie is full: the change needs more of its {capacity} groups of 1 KiB than \
         are free. `xdpsieve reload` rebuilds the sets with room to grow"
    )]
    GroupsFull { capacity: u32 },
    #[error(
        "the sets would need more than {} distinct combinations of overlapping sets",
        xdpsieve_common::sets::MAX_CLASSES
    )]
    ClassesFull,
    #[error(
        "the set trie's list of free groups is damaged (group {group}); the next set command \
         rebuilds it"
    )]
    FreeListDamaged { group: u32 },
}

/// Read access to a trie's groups, wherever they are.
pub trait Groups {
    fn group(&self, id: u32) -> &SetGroup;
}

impl Groups for [SetGroup] {
    fn group(&self, id: u32) -> &SetGroup {
        &self[id as usize]
    }
}

/// The first root group of a family.
pub fn root(v6: bool) -> u32 {
    if v6 { V6_ROOT } else { V4_ROOT }
}

/// The class of `addr` in the trie `groups` (as the XDP program walks it).
pub fn lookup_class(groups: &(impl Groups + ?Sized), addr: IpAddr) -> u32 {
    let p = TriePrefix::new(addr, 128);
    let mut entry =
        groups.group(root(p.v6) + u32::from(p.bytes[0])).entries[usize::from(p.bytes[1])];
    let levels = if p.v6 { 16 } else { 4 };
    let mut level = 2;
    while entry & POINTER != 0 && level < levels {
        entry = groups.group(entry & !POINTER).entries[usize::from(p.bytes[level])];
        level += 1;
    }
    if entry & POINTER != 0 { 0 } else { entry }
}

/// The mask of the sets holding `addr`, given the class masks.
pub fn lookup(groups: &(impl Groups + ?Sized), masks: &[u64], addr: IpAddr) -> u64 {
    masks
        .get(lookup_class(groups, addr) as usize)
        .copied()
        .unwrap_or(0)
}

/// A trie built in memory for a new generation: its groups as `SET_NODES` is to hold
/// them, the class masks, and the groups left free among them.
pub struct Trie {
    groups: Vec<SetGroup>,
    masks: Vec<u64>,
    /// Groups below `groups.len()` that no entry refers to (folded while building).
    free: Vec<u32>,
}

impl Trie {
    /// The trie of `entries` (set index, prefix). Shorter prefixes go first, so a longer
    /// one inside a shorter one of the same set needs no group.
    pub fn build(entries: &[(u32, TriePrefix)]) -> Result<Trie, TrieError> {
        Trie::build_with(entries, &[0])
    }

    /// As [`Trie::build`], with the classes numbered as in `masks` first (a repair of a
    /// running generation keeps the class numbers the program already reads).
    pub fn build_with(entries: &[(u32, TriePrefix)], masks: &[u64]) -> Result<Trie, TrieError> {
        let mut order: Vec<&(u32, TriePrefix)> = entries.iter().collect();
        order.sort_unstable_by_key(|(set, p)| (p.len, *set));
        let mut change = Change::building(masks);
        for (set, prefix) in order {
            change.add(*set, prefix)?;
        }
        Ok(change.into_trie())
    }

    pub(crate) fn from_parts(groups: Vec<SetGroup>, masks: Vec<u64>, free: Vec<u32>) -> Trie {
        Trie {
            groups,
            masks,
            free,
        }
    }

    /// Groups in use, roots included (1 KiB each).
    pub fn groups_used(&self) -> u32 {
        (self.groups.len() - self.free.len()) as u32
    }

    /// The groups as `SET_NODES` holds them from group 0 (free ones included).
    pub fn groups(&self) -> &[SetGroup] {
        &self.groups
    }

    /// The groups below `groups().len()` that are free (the loader links them).
    pub fn free_groups(&self) -> &[u32] {
        &self.free
    }

    /// Class id to set mask.
    pub fn class_masks(&self) -> &[u64] {
        &self.masks
    }

    /// The mask of the sets holding `addr`.
    pub fn lookup(&self, addr: IpAddr) -> u64 {
        lookup(self.groups.as_slice(), &self.masks, addr)
    }
}

impl Default for Trie {
    fn default() -> Self {
        Trie {
            groups: vec![
                SetGroup {
                    entries: [0; xdpsieve_common::sets::GROUP_ENTRIES]
                };
                FIRST_GROUP as usize
            ],
            masks: vec![0],
            free: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests;
