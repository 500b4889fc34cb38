//! The index of one change: the entries of a set that overlap the prefixes the change
//! touches, by prefix in address order, with how many prefixes of each length it holds.
//! Built in one pass over the entry table ([`build_index`]); [`overlapping`] answers what
//! `Trie::remove` needs (the set's prefixes covering or inside a removed one) with at most
//! one lookup per length the set holds and one range query.

use std::collections::{BTreeMap, HashSet};

use xdpsieve_common::{SetEntry, family, sets::ENTRY_FREE};

use crate::configure::sets::{kernel::entry_prefix, trie::TriePrefix};

/// A set's entries by prefix (the slots holding each: a file may list a prefix twice),
/// and how many prefixes of each length it holds, so looking for the prefixes covering
/// one tries only the lengths present (usually one or two, not up to 128).
pub(super) struct Index {
    by_prefix: BTreeMap<TriePrefix, Vec<u32>>,
    lengths: [[u32; 129]; 2],
}

impl Default for Index {
    fn default() -> Self {
        Index {
            by_prefix: BTreeMap::new(),
            lengths: [[0; 129]; 2],
        }
    }
}

impl Index {
    pub(super) fn get(&self, p: &TriePrefix) -> Option<&Vec<u32>> {
        self.by_prefix.get(p)
    }

    pub(super) fn contains(&self, p: &TriePrefix) -> bool {
        self.by_prefix.contains_key(p)
    }

    pub(super) fn add_slot(&mut self, p: TriePrefix, slot: u32) {
        let slots = self.by_prefix.entry(p).or_default();
        if slots.is_empty() {
            self.lengths[usize::from(p.v6)][usize::from(p.len)] += 1;
        }
        slots.push(slot);
    }

    /// Takes `slot` off `p`; true when no entry holds `p` any more.
    pub(super) fn remove_slot(&mut self, p: &TriePrefix, slot: u32) -> bool {
        let Some(slots) = self.by_prefix.get_mut(p) else {
            return true;
        };
        slots.retain(|&s| s != slot);
        if !slots.is_empty() {
            return false;
        }
        self.by_prefix.remove(p);
        self.lengths[usize::from(p.v6)][usize::from(p.len)] -= 1;
        true
    }

    /// Whether the set holds prefixes of `len` bits in `p`'s family.
    pub(super) fn has_length(&self, p: &TriePrefix, len: u8) -> bool {
        self.lengths[usize::from(p.v6)][usize::from(len)] > 0
    }
}

/// The set's prefixes that overlap `prefix`: those covering it and those inside it.
pub(super) fn overlapping(index: &Index, prefix: &TriePrefix) -> Vec<TriePrefix> {
    let mut out: Vec<TriePrefix> = (0..prefix.len)
        .filter(|&len| index.has_length(prefix, len))
        .map(|len| TriePrefix::new(prefix.addr(), len))
        .filter(|p| index.contains(p))
        .collect();
    // Inside: a longer prefix whose (masked) address lies between the first and the last
    // address of `prefix`; bytes compare in address order.
    let mut last = *prefix;
    let bits = if prefix.v6 { 128 } else { 32 };
    for bit in u32::from(prefix.len)..bits {
        last.bytes[(bit / 8) as usize] |= 0x80 >> (bit % 8);
    }
    last.len = u8::MAX;
    let first = TriePrefix {
        len: prefix.len.saturating_add(1),
        ..*prefix
    };
    if prefix.len < bits as u8 {
        out.extend(
            index
                .by_prefix
                .range(first..=last)
                .map(|(p, _)| *p)
                .filter(|p| prefix.covers(p)),
        );
    }
    out
}

/// The entries of `set` a change to the prefixes of `interest` needs: those equal to one,
/// covering one or inside one (what [`overlapping`] looks for), indexed. One pass over the
/// table with a few hash lookups per entry, so a change to a handful of prefixes of a
/// million-entry set does not index the whole set.
pub(super) fn build_index(entries: &[SetEntry], set: u16, interest: &[TriePrefix]) -> Index {
    let of_set = || {
        entries
            .iter()
            .enumerate()
            .filter(move |(_, e)| e.state != ENTRY_FREE && e.set == set)
    };
    // The lengths the set holds, per family: only those can cover a prefix of interest.
    let mut present = [[false; 129]; 2];
    for (_, e) in of_set() {
        present[usize::from(e.family == family::IPV6)][usize::from(e.prefix_len.min(128))] = true;
    }
    let wanted: HashSet<TriePrefix> = interest.iter().copied().collect();
    let mut ancestors: HashSet<TriePrefix> = HashSet::new();
    let mut interest_lengths: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    for p in interest {
        for len in 0..p.len {
            if present[usize::from(p.v6)][usize::from(len)] {
                ancestors.insert(TriePrefix::new(p.addr(), len));
            }
        }
        let lengths = &mut interest_lengths[usize::from(p.v6)];
        if !lengths.contains(&p.len) {
            lengths.push(p.len);
        }
    }
    let mut index = Index::default();
    for (slot, e) in of_set() {
        let q = entry_prefix(e);
        let related = wanted.contains(&q)
            || ancestors.contains(&q)
            || interest_lengths[usize::from(q.v6)]
                .iter()
                .any(|&len| len < q.len && wanted.contains(&TriePrefix::new(q.addr(), len)));
        if related {
            index.add_slot(q, slot as u32);
        }
    }
    index
}

#[cfg(test)]
mod tests {
    use xdpsieve_common::sets::ENTRY_FILE;

    use super::*;

    fn p(text: &str) -> TriePrefix {
        let (addr, len) = text.split_once('/').unwrap();
        TriePrefix::new(addr.parse().unwrap(), len.parse().unwrap())
    }

    #[test]
    fn the_index_of_a_change_holds_what_overlaps_its_prefixes_and_nothing_else() {
        use crate::configure::sets::kernel::new_entry;
        let table: Vec<SetEntry> = [
            (0, "10.0.0.0/8"),
            (0, "10.1.0.0/16"),
            (0, "10.1.2.0/24"),
            (0, "10.1.2.0/24"), // twice in its file
            (0, "10.2.0.0/16"),
            (1, "10.1.0.0/16"), // another set
            (0, "2001:db8::/32"),
            (0, "192.0.2.1/32"),
        ]
        .iter()
        .map(|(set, text)| new_entry(*set, &p(text), ENTRY_FILE, 0))
        .collect();
        let index = build_index(&table, 0, &[p("10.1.0.0/16"), p("2001:db8:1::/48")]);
        let mut got: Vec<(TriePrefix, Vec<u32>)> = index
            .by_prefix
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        got.sort();
        let mut want = vec![
            (p("10.0.0.0/8"), vec![0]),
            (p("10.1.0.0/16"), vec![1]),
            (p("10.1.2.0/24"), vec![2, 3]),
            (p("2001:db8::/32"), vec![6]),
        ];
        want.sort();
        assert_eq!(got, want);
        // A million entries, one prefix of interest: one pass, not a million inserts.
        let big: Vec<SetEntry> = (0..1_000_000u32)
            .map(|i| {
                let addr = std::net::Ipv4Addr::from(0x0a00_0000 | i);
                new_entry(0, &TriePrefix::new(addr.into(), 32), ENTRY_FILE, 0)
            })
            .collect();
        let started = std::time::Instant::now();
        let index = build_index(&big, 0, &[p("10.0.0.7/32")]);
        eprintln!(
            "indexing 1,000,000 entries for one prefix: {:?}",
            started.elapsed()
        );
        assert_eq!(index.by_prefix.len(), 1);
    }

    #[test]
    fn overlapping_finds_covering_and_inner_prefixes_only() {
        let mut index = Index::default();
        for (slot, text) in [
            "10.0.0.0/8",
            "10.1.0.0/16",
            "10.1.2.0/24",
            "10.1.255.255/32",
            "10.2.0.0/16",
            "11.0.0.0/8",
            "2001:db8::/32",
            "0.0.0.0/0",
        ]
        .iter()
        .enumerate()
        {
            index.add_slot(p(text), slot as u32);
        }
        let mut got = overlapping(&index, &p("10.1.0.0/16"));
        got.sort();
        let mut want = vec![
            p("0.0.0.0/0"),
            p("10.0.0.0/8"),
            p("10.1.2.0/24"),
            p("10.1.255.255/32"),
        ];
        want.sort();
        assert_eq!(got, want);
        let got = overlapping(&index, &p("2001:db8:1::/48"));
        assert_eq!(got, vec![p("2001:db8::/32")]);
        let got = overlapping(&index, &p("10.1.255.255/32"));
        assert_eq!(got.len(), 3); // /0, /8 and /16 cover it; nothing is inside a /32
        let mut got = overlapping(&index, &p("0.0.0.0/0"));
        got.sort();
        assert_eq!(got.len(), 6); // every IPv4 prefix but itself
    }
}
