//! The bitmaps the XDP program matches rules with (see `xdpsieve_common::classify`),
//! computed from the typed rules ([`RuleSpec`]) when they are loaded.
//!
//! For each field, the packet's value selects a set of rules whose condition on that field
//! holds: the family/protocol/ports-present set by direct index, a port through its
//! equivalence class (ports that no rule boundary separates share one), an address through
//! the longest literal prefix that some rule names and, where rules name address sets,
//! through the address's set class: the rules of every set covering it plus those with no
//! condition on that address (built from [`Tables::src_set_rules`] and
//! [`Tables::src_any`] by the set trie). The first rule in every set is the match, the
//! same rule a scan in order would find (the tests check that against a scan).

use std::collections::HashMap;

use xdpsieve_common::{
    RuleBits, SetClass,
    classify::{self, AddrKeyData, FAMILY_BITS, PORTS},
    family,
    sets::{ANY_SLOT, MAX_SETS},
};

use crate::{
    configure::rules::{AddrMatch, Cidr, RuleSpec},
    configure::sets::SetSpec,
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
    /// The literal-prefix tries. A rule with a set condition in that direction is in no
    /// entry (not even the family's /0): it gets its bit from the set classes.
    pub src_addrs: Vec<AddrEntry>,
    pub dst_addrs: Vec<AddrEntry>,
    /// Per set (index into `RuleSet::sets`): the rules whose source is that set.
    pub src_set_rules: Vec<RuleBits>,
    /// Per set: the rules whose destination is that set.
    pub dst_set_rules: Vec<RuleBits>,
    /// The rules with no source condition: every set class allows them (a class's `src`
    /// is this plus `src_set_rules` of each set in the class).
    pub src_any: RuleBits,
    /// The rules with no destination condition.
    pub dst_any: RuleBits,
}

impl Tables {
    /// `SET_RULES`, what the set trie's classes are made of: per set, the rules whose source
    /// (and destination) is that set, then at [`ANY_SLOT`] the rules without a condition
    /// there.
    pub fn set_rules(&self) -> Vec<SetClass> {
        let mut rules = vec![
            SetClass {
                src: RuleBits::EMPTY,
                dst: RuleBits::EMPTY,
            };
            MAX_SETS as usize + 1
        ];
        for (index, slot) in rules.iter_mut().enumerate().take(MAX_SETS as usize) {
            slot.src = self
                .src_set_rules
                .get(index)
                .copied()
                .unwrap_or(RuleBits::EMPTY);
            slot.dst = self
                .dst_set_rules
                .get(index)
                .copied()
                .unwrap_or(RuleBits::EMPTY);
        }
        rules[ANY_SLOT as usize] = SetClass {
            src: self.src_any,
            dst: self.dst_any,
        };
        rules
    }
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

fn src_port(r: &RuleSpec) -> (u16, u16) {
    r.src_port.map_or(FULL_PORTS, |p| (p.min, p.max))
}

fn dst_port(r: &RuleSpec) -> (u16, u16) {
    r.dst_port.map_or(FULL_PORTS, |p| (p.min, p.max))
}

/// The tables for `rules` (in evaluation order) over `sets` (the rule set's, which the
/// rules' [`AddrMatch::Set`] indexes point into).
pub fn build(rules: &[RuleSpec], sets: &[SetSpec]) -> Tables {
    let src = |r: &RuleSpec| r.src;
    let dst = |r: &RuleSpec| r.dst;
    let mut fields = 0;
    if rules.iter().any(|r| src_port(r) != FULL_PORTS) {
        fields |= classify::SRC_PORT;
    }
    if rules.iter().any(|r| dst_port(r) != FULL_PORTS) {
        fields |= classify::DST_PORT;
    }
    let uses = |cond: &dyn Fn(&RuleSpec) -> Option<AddrMatch>, set: bool| {
        rules
            .iter()
            .any(|r| cond(r).is_some_and(|a| a.set().is_some() == set))
    };
    if uses(&src, false) {
        fields |= classify::SRC_ADDR;
    }
    if uses(&dst, false) {
        fields |= classify::DST_ADDR;
    }
    if uses(&src, true) {
        fields |= classify::SRC_SET;
    }
    if uses(&dst, true) {
        fields |= classify::DST_SET;
    }
    Tables {
        fields,
        rule_words: rules.len().div_ceil(64) as u32,
        proto: proto_sets(rules),
        src_ports: port_table(rules, src_port),
        dst_ports: port_table(rules, dst_port),
        src_addrs: addr_entries(rules, src),
        dst_addrs: addr_entries(rules, dst),
        src_set_rules: set_rules(rules, sets.len(), src),
        dst_set_rules: set_rules(rules, sets.len(), dst),
        src_any: rules_where(rules, |r| r.src.is_none()),
        dst_any: rules_where(rules, |r| r.dst.is_none()),
    }
}

fn rules_where(rules: &[RuleSpec], keep: impl Fn(&RuleSpec) -> bool) -> RuleBits {
    let mut bits = RuleBits::EMPTY;
    for (i, r) in rules.iter().enumerate() {
        if keep(r) {
            bits.set(i);
        }
    }
    bits
}

fn set_rules(
    rules: &[RuleSpec],
    set_count: usize,
    cond: impl Fn(&RuleSpec) -> Option<AddrMatch>,
) -> Vec<RuleBits> {
    (0..set_count)
        .map(|s| rules_where(rules, |r| cond(r).and_then(|a| a.set()) == Some(s)))
        .collect()
}

fn proto_sets(rules: &[RuleSpec]) -> Vec<RuleBits> {
    let mut sets = vec![RuleBits::EMPTY; classify::PROTO_ENTRIES as usize];
    for fam in [family::IPV4, family::IPV6] {
        for has_ports in [0u8, 1] {
            for protocol in 0..=u8::MAX {
                let set = &mut sets[classify::proto_index(fam, has_ports, protocol) as usize];
                for (i, r) in rules.iter().enumerate() {
                    if r.address_family().is_none_or(|f| f == fam)
                        && r.protocol.is_none_or(|p| p.0 == protocol)
                        && (has_ports == 1 || !r.needs_ports())
                    {
                        set.set(i);
                    }
                }
            }
        }
    }
    sets
}

fn port_table(rules: &[RuleSpec], range: impl Fn(&RuleSpec) -> (u16, u16)) -> PortTable {
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

/// The literal prefixes' trie entries: one per distinct prefix, plus each family's /0
/// (so every address finds an entry). An entry allows the rules whose condition holds for
/// every address under it: no condition, or a literal prefix no longer than the entry's
/// that agrees with it. Never a rule with a set condition: its bit comes from the set
/// classes, so a literal entry must not grant it.
fn addr_entries(
    rules: &[RuleSpec],
    cond: impl Fn(&RuleSpec) -> Option<AddrMatch>,
) -> Vec<AddrEntry> {
    let words = |c: &Cidr| (c.family(), u32::from(c.prefix_len), c.to_words().0);
    let mut prefixes: Vec<(u8, u32, [u32; 4])> =
        vec![(family::IPV4, 0, [0; 4]), (family::IPV6, 0, [0; 4])];
    prefixes.extend(
        rules
            .iter()
            .filter_map(|r| cond(r).and_then(|a| a.prefix()))
            .map(|c| words(&c)),
    );
    prefixes.sort_unstable();
    prefixes.dedup();
    prefixes
        .into_iter()
        .map(|(fam, bits, addr)| {
            let rules = rules_where(rules, |r| match cond(r) {
                None => true,
                Some(AddrMatch::Set(_)) => false,
                Some(AddrMatch::Prefix(c)) => {
                    let (rule_addr, mask) = c.to_words();
                    c.family() == fam
                        && u32::from(c.prefix_len) <= bits
                        && (0..4).all(|w| addr[w] & mask[w] == rule_addr[w])
                }
            });
            AddrEntry {
                prefix_len: FAMILY_BITS + bits,
                data: [u32::from(fam), addr[0], addr[1], addr[2], addr[3]],
                rules,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
