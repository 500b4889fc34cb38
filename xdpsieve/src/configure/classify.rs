//! The bitmaps the XDP program matches rules with (see `xdpsieve_common::classify`),
//! computed from the rule table when it is loaded.
//!
//! For each field, the packet's value selects a set of rules whose condition on that field
//! holds: the family/protocol/ports-present set by direct index, a port through its
//! equivalence class (ports that no rule boundary separates share one), an address through
//! the longest prefix that some rule names. The first rule in every set is the match, the
//! same rule a scan in order would find (the tests check that against a scan).

use std::collections::HashMap;

use xdpsieve_common::{
    Rule, RuleBits,
    classify::{self, AddrKeyData, FAMILY_BITS, PORTS},
    family,
};

/// Everything the program's matching maps hold.
pub struct Tables {
    /// Bits of `classify`: the fields some rule has a condition on.
    pub fields: u32,
    pub rule_words: u32,
    /// Indexed by [`classify::proto_index`].
    pub proto: Vec<RuleBits>,
    pub src_ports: PortTable,
    pub dst_ports: PortTable,
    pub src_addrs: Vec<AddrEntry>,
    pub dst_addrs: Vec<AddrEntry>,
}

/// Port to class, class to rule set. Class 0 is the one covering the most ports, so the
/// port map (zero-filled by the kernel) needs writing only for the others.
pub struct PortTable {
    pub class_of: Vec<u16>,
    pub sets: Vec<RuleBits>,
}

/// One prefix of an address trie and the rules it allows.
pub struct AddrEntry {
    pub prefix_len: u32,
    pub data: AddrKeyData,
    pub rules: RuleBits,
}

const FULL_PORTS: (u16, u16) = (0, u16::MAX);

pub fn build(rules: &[Rule]) -> Tables {
    let src_port = |r: &Rule| (r.src_port_min, r.src_port_max);
    let dst_port = |r: &Rule| (r.dst_port_min, r.dst_port_max);
    let mut fields = 0;
    if rules.iter().any(|r| src_port(r) != FULL_PORTS) {
        fields |= classify::SRC_PORT;
    }
    if rules.iter().any(|r| dst_port(r) != FULL_PORTS) {
        fields |= classify::DST_PORT;
    }
    if rules.iter().any(|r| r.src_mask != [0; 4]) {
        fields |= classify::SRC_ADDR;
    }
    if rules.iter().any(|r| r.dst_mask != [0; 4]) {
        fields |= classify::DST_ADDR;
    }
    Tables {
        fields,
        rule_words: rules.len().div_ceil(64) as u32,
        proto: proto_sets(rules),
        src_ports: port_table(rules, src_port),
        dst_ports: port_table(rules, dst_port),
        src_addrs: addr_entries(rules, |r| (r.src_addr, r.src_mask)),
        dst_addrs: addr_entries(rules, |r| (r.dst_addr, r.dst_mask)),
    }
}

fn proto_sets(rules: &[Rule]) -> Vec<RuleBits> {
    let mut sets = vec![RuleBits::EMPTY; classify::PROTO_ENTRIES as usize];
    for fam in [family::IPV4, family::IPV6] {
        for has_ports in [0u8, 1] {
            for protocol in 0..=u8::MAX {
                let set = &mut sets[classify::proto_index(fam, has_ports, protocol) as usize];
                for (i, r) in rules.iter().enumerate() {
                    if (r.family ^ fam) & r.family_mask == 0
                        && (r.protocol ^ protocol) & r.protocol_mask == 0
                        && r.needs_ports & !has_ports & 1 == 0
                    {
                        set.set(i);
                    }
                }
            }
        }
    }
    sets
}

fn port_table(rules: &[Rule], range: impl Fn(&Rule) -> (u16, u16)) -> PortTable {
    // Intervals between the boundaries of every range hold the same rules throughout.
    let mut starts: Vec<u32> = vec![0];
    for r in rules {
        let (min, max) = range(r);
        starts.push(u32::from(min));
        starts.push(u32::from(max) + 1);
    }
    starts.retain(|&s| s < PORTS);
    starts.sort_unstable();
    starts.dedup();
    let mut interned: HashMap<[u64; xdpsieve_common::RULE_WORDS], (usize, u32)> = HashMap::new();
    let mut interval_class = Vec::with_capacity(starts.len());
    for (k, &start) in starts.iter().enumerate() {
        let end = starts.get(k + 1).copied().unwrap_or(PORTS);
        let mut set = RuleBits::EMPTY;
        for (i, r) in rules.iter().enumerate() {
            let (min, max) = range(r);
            if (u32::from(min)..=u32::from(max)).contains(&start) {
                set.set(i);
            }
        }
        let next = interned.len();
        let entry = interned.entry(set.words).or_insert((next, 0));
        entry.1 += end - start;
        interval_class.push(entry.0);
    }
    // Renumber: the class covering the most ports becomes 0.
    let mut order: Vec<(usize, u32, [u64; xdpsieve_common::RULE_WORDS])> = interned
        .into_iter()
        .map(|(words, (class, ports))| (class, ports, words))
        .collect();
    order.sort_by_key(|&(class, ports, _)| (std::cmp::Reverse(ports), class));
    let mut renumber = vec![0u16; order.len()];
    let mut sets = Vec::with_capacity(order.len());
    for (new, (old, _, words)) in order.into_iter().enumerate() {
        renumber[old] = new as u16;
        sets.push(RuleBits { words });
    }
    let mut class_of = vec![0u16; PORTS as usize];
    for (k, &start) in starts.iter().enumerate() {
        let end = starts.get(k + 1).copied().unwrap_or(PORTS);
        class_of[start as usize..end as usize].fill(renumber[interval_class[k]]);
    }
    PortTable { class_of, sets }
}

/// Bits of a contiguous mask of four network-order words.
fn prefix_bits(mask: &[u32; 4]) -> u32 {
    mask.iter().map(|w| w.count_ones()).sum()
}

fn addr_entries(rules: &[Rule], cond: impl Fn(&Rule) -> ([u32; 4], [u32; 4])) -> Vec<AddrEntry> {
    // The families a rule's address condition applies to (a condition without a family
    // would compare the same words in either).
    let families = |r: &Rule| -> Vec<u8> {
        if r.family_mask != 0 {
            vec![r.family]
        } else {
            vec![family::IPV4, family::IPV6]
        }
    };
    let mut prefixes: Vec<(u8, u32, [u32; 4])> =
        vec![(family::IPV4, 0, [0; 4]), (family::IPV6, 0, [0; 4])];
    for r in rules {
        let (addr, mask) = cond(r);
        if mask != [0; 4] {
            for fam in families(r) {
                prefixes.push((fam, prefix_bits(&mask), addr));
            }
        }
    }
    prefixes.sort_unstable();
    prefixes.dedup();
    prefixes
        .into_iter()
        .map(|(fam, bits, addr)| {
            let mut set = RuleBits::EMPTY;
            for (i, r) in rules.iter().enumerate() {
                let (raddr, rmask) = cond(r);
                // Every address under this prefix satisfies the rule: the rule's prefix is
                // no longer and agrees with it.
                let allowed = rmask == [0; 4]
                    || (families(r).contains(&fam)
                        && prefix_bits(&rmask) <= bits
                        && (0..4).all(|w| addr[w] & rmask[w] == raddr[w]));
                if allowed {
                    set.set(i);
                }
            }
            AddrEntry {
                prefix_len: FAMILY_BITS + bits,
                data: [u32::from(fam), addr[0], addr[1], addr[2], addr[3]],
                rules: set,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
