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
mod tests {
    use super::*;
    use crate::rules::{Action, Rate, RuleSet};

    /// The fields of a packet that rules look at.
    #[derive(Clone, Copy, Debug)]
    struct PacketFields {
        pub family: u8,
        pub protocol: u8,
        pub has_ports: u8,
        pub src: [u32; 4],
        pub dst: [u32; 4],
        pub src_port: u16,
        pub dst_port: u16,
    }

    /// The first rule matching `pkt`, by a scan in order: the definition the bitmaps must agree
    /// with (the program scanned like this before it used them).
    fn first_match(rules: &[Rule], pkt: &PacketFields) -> Option<usize> {
        rules.iter().position(|r| {
            (r.family ^ pkt.family) & r.family_mask == 0
                && (r.protocol ^ pkt.protocol) & r.protocol_mask == 0
                && (0..4).all(|i| pkt.src[i] & r.src_mask[i] == r.src_addr[i])
                && (0..4).all(|i| pkt.dst[i] & r.dst_mask[i] == r.dst_addr[i])
                && r.needs_ports & !pkt.has_ports & 1 == 0
                && (r.src_port_min..=r.src_port_max).contains(&pkt.src_port)
                && (r.dst_port_min..=r.dst_port_max).contains(&pkt.dst_port)
        })
    }

    impl Tables {
        /// The first rule matching `pkt` through the tables, as the program computes it
        /// (longest-prefix lookups done by a scan of the entries).
        fn lookup(&self, pkt: &PacketFields) -> Option<usize> {
            let lpm = |entries: &[AddrEntry], addr: &[u32; 4]| -> RuleBits {
                let bits = if pkt.family == family::IPV6 { 128 } else { 32 };
                let key = [u32::from(pkt.family), addr[0], addr[1], addr[2], addr[3]];
                entries
                    .iter()
                    .filter(|e| e.prefix_len <= FAMILY_BITS + bits && prefix_covers(e, &key))
                    .max_by_key(|e| e.prefix_len)
                    .map_or(RuleBits::EMPTY, |e| e.rules)
            };
            let all =
                self.proto[classify::proto_index(pkt.family, pkt.has_ports, pkt.protocol) as usize];
            let mut sets = vec![all];
            if self.fields & classify::SRC_PORT != 0 {
                let class = self.src_ports.class_of[usize::from(pkt.src_port)];
                sets.push(self.src_ports.sets[usize::from(class)]);
            }
            if self.fields & classify::DST_PORT != 0 {
                let class = self.dst_ports.class_of[usize::from(pkt.dst_port)];
                sets.push(self.dst_ports.sets[usize::from(class)]);
            }
            if self.fields & classify::SRC_ADDR != 0 {
                sets.push(lpm(&self.src_addrs, &pkt.src));
            }
            if self.fields & classify::DST_ADDR != 0 {
                sets.push(lpm(&self.dst_addrs, &pkt.dst));
            }
            (0..self.rule_words as usize).find_map(|w| {
                let bits = sets.iter().fold(u64::MAX, |acc, s| acc & s.words[w]);
                (bits != 0).then(|| w * 64 + bits.trailing_zeros() as usize)
            })
        }
    }

    /// Whether the first `prefix_len` bits of `key` equal the entry's (bytes in memory order,
    /// as the kernel's trie compares them).
    fn prefix_covers(entry: &AddrEntry, key: &AddrKeyData) -> bool {
        let bytes =
            |d: &AddrKeyData| -> Vec<u8> { d.iter().flat_map(|w| w.to_ne_bytes()).collect() };
        let (a, b) = (bytes(&entry.data), bytes(key));
        let full = (entry.prefix_len / 8) as usize;
        let rest = entry.prefix_len % 8;
        a[..full] == b[..full] && (rest == 0 || (a[full] ^ b[full]) & (0xffu8 << (8 - rest)) == 0)
    }

    /// xorshift: reproducible without a dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[(self.next() % items.len() as u64) as usize]
        }
    }

    fn random_rules(rng: &mut Rng, count: usize) -> Vec<Rule> {
        let mut set = RuleSet::default();
        for _ in 0..count {
            let mut parts = Vec::new();
            let addr = rng.pick(&[
                "",
                "src net 198.51.100.0/24",
                "src host 198.51.100.7",
                "dst net 192.0.2.0/25",
                "dst net 192.0.0.0/8",
                "src net 2001:db8::/32",
                "dst net 2001:db8:0:1::/64",
                "dst host 2001:db8::1",
            ]);
            let proto = rng.pick(&["", "tcp", "udp", "icmp", "proto 47"]);
            let port = if proto == "tcp" || proto == "udp" || proto.is_empty() {
                rng.pick(&[
                    "",
                    "src port 53",
                    "dst port 53",
                    "dst port 443",
                    "dst portrange 1000-2000",
                    "src portrange 0-1023",
                    "dst portrange 1500-65535",
                ])
            } else {
                ""
            };
            for p in [proto, addr, port] {
                if !p.is_empty() {
                    parts.push(p);
                }
            }
            let expr = if parts.is_empty() {
                "ip".to_string()
            } else {
                parts.join(" and ")
            };
            let action = if rng.next().is_multiple_of(2) {
                Action::Drop
            } else {
                Action::Pass
            };
            set.push_expression(action, &expr).expect(&expr);
        }
        set.to_kernel(Rate::UNLIMITED)
    }

    fn random_packet(rng: &mut Rng) -> PacketFields {
        let v6 = rng.next().is_multiple_of(2);
        let addrs4 = [
            [198, 51, 100, 7],
            [198, 51, 100, 200],
            [192, 0, 2, 1],
            [192, 0, 2, 129],
            [192, 9, 9, 9],
        ];
        let addrs6: [[u8; 16]; 4] = [
            [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 5],
            [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            [0x20, 0x01, 0x0d, 0xb9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        ];
        let addr = |rng: &mut Rng| -> [u32; 4] {
            let mut words = [0u32; 4];
            if v6 {
                let a = addrs6[(rng.next() % 4) as usize];
                for (i, w) in words.iter_mut().enumerate() {
                    *w = u32::from_ne_bytes([a[4 * i], a[4 * i + 1], a[4 * i + 2], a[4 * i + 3]]);
                }
            } else {
                words[0] = u32::from_ne_bytes(addrs4[(rng.next() % 5) as usize]);
            }
            words
        };
        let protocol = [6u8, 17, 1, 58, 47][(rng.next() % 5) as usize];
        let has_ports =
            u8::from((protocol == 6 || protocol == 17) && !rng.next().is_multiple_of(4));
        let ports = [0u16, 53, 443, 999, 1000, 1500, 2000, 2001, 65535];
        let port = |rng: &mut Rng| {
            if has_ports == 1 {
                ports[(rng.next() % 9) as usize]
            } else {
                0
            }
        };
        PacketFields {
            family: if v6 { family::IPV6 } else { family::IPV4 },
            protocol,
            has_ports,
            src: addr(rng),
            dst: addr(rng),
            src_port: port(rng),
            dst_port: port(rng),
        }
    }

    #[test]
    fn bitmaps_agree_with_a_scan_in_order() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let (mut matched, mut unmatched) = (0, 0);
        for count in [1, 2, 5, 63, 64, 65, 200] {
            for _ in 0..5 {
                let rules = random_rules(&mut rng, count);
                let tables = build(&rules);
                for _ in 0..400 {
                    let pkt = random_packet(&mut rng);
                    let expected = first_match(&rules, &pkt);
                    assert_eq!(
                        tables.lookup(&pkt),
                        expected,
                        "{count} rules, packet {pkt:?}"
                    );
                    if expected.is_some_and(|i| i > 0) {
                        matched += 1;
                    } else if expected.is_none() {
                        unmatched += 1;
                    }
                }
            }
        }
        // The cases must exercise both outcomes, and matches past the first rule.
        assert!(
            matched > 1000 && unmatched > 1000,
            "{matched} matched, {unmatched} not"
        );
    }

    #[test]
    fn unused_fields_are_not_looked_up() {
        let mut set = RuleSet::default();
        set.push_expression(Action::Drop, "udp dst port 53")
            .expect("rule");
        let tables = build(&set.to_kernel(Rate::UNLIMITED));
        assert_eq!(tables.fields, classify::DST_PORT);
        assert_eq!(tables.rule_words, 1);
        // Port 53 in a class of its own; every other port in class 0.
        assert_eq!(tables.dst_ports.sets.len(), 2);
        assert_eq!(tables.dst_ports.class_of[53], 1);
        assert_eq!(tables.dst_ports.class_of[52], 0);
    }

    #[test]
    fn port_classes_stay_within_the_map() {
        let mut set = RuleSet::default();
        for i in 0..xdpsieve_common::MAX_RULES as u16 {
            set.push_expression(
                Action::Drop,
                &format!("tcp dst portrange {}-{}", i * 3, i * 3 + 1),
            )
            .expect("rule");
        }
        let tables = build(&set.to_kernel(Rate::UNLIMITED));
        assert!(tables.dst_ports.sets.len() <= classify::PORT_CLASSES as usize);
        assert!(tables.src_addrs.len() <= classify::ADDR_ENTRIES as usize);
    }
}
