//! The bitmaps against references: a scan of the rules in order over their masks (the
//! program's old matching), and a model of the rules' meaning written from the rule syntax
//! alone (proptest: random rule sets with address sets and packets, shrunk to a minimal
//! case on failure). Set membership is computed naively from the sets' prefixes; the set
//! classes are combined as the program combines them.

use std::net::IpAddr;

use xdpsieve_testkit::rng::Rng;

use super::*;
use crate::{
    configure::rules::{Action, RuleSet},
    configure::sets::{SetSource, SetSpec},
};

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

impl PacketFields {
    fn addr(&self, words: &[u32; 4]) -> IpAddr {
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
        if self.family == family::IPV6 {
            IpAddr::from(<[u8; 16]>::try_from(bytes).expect("16 bytes"))
        } else {
            IpAddr::from([bytes[0], bytes[1], bytes[2], bytes[3]])
        }
    }
}

/// The first rule matching `pkt`, by a scan in order over masked words: the definition the
/// bitmaps must agree with (the program scanned like this before it used them). A set
/// condition holds when some prefix of the set covers the address.
fn first_match(set: &RuleSet, pkt: &PacketFields) -> Option<usize> {
    let addr_ok = |cond: Option<AddrMatch>, words: &[u32; 4]| match cond {
        None => true,
        Some(AddrMatch::Prefix(c)) => {
            let (addr, mask) = c.to_words();
            c.family() == pkt.family && (0..4).all(|i| words[i] & mask[i] == addr[i])
        }
        Some(AddrMatch::Set(s)) => set.sets[s].contains(pkt.addr(words)),
    };
    set.rules.iter().position(|r| {
        let (src_min, src_max) = src_port(r);
        let (dst_min, dst_max) = dst_port(r);
        r.address_family().is_none_or(|f| f == pkt.family)
            && r.protocol.is_none_or(|p| p.0 == pkt.protocol)
            && addr_ok(r.src, &pkt.src)
            && addr_ok(r.dst, &pkt.dst)
            && (pkt.has_ports == 1 || !r.needs_ports())
            && (src_min..=src_max).contains(&pkt.src_port)
            && (dst_min..=dst_max).contains(&pkt.dst_port)
    })
}

impl Tables {
    /// The first rule matching `pkt` through the tables, as the program computes it
    /// (longest-prefix lookups done by a scan of the entries; a set class from the sets
    /// covering the address, found by a scan of their prefixes).
    fn lookup(&self, address_sets: &[SetSpec], pkt: &PacketFields) -> Option<usize> {
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
        // The class of an address: the rules with no condition on it, and those of every
        // set that covers it.
        let class = |any: &RuleBits, per_set: &[RuleBits], words: &[u32; 4]| -> RuleBits {
            let mut bits = *any;
            for (s, set) in address_sets.iter().enumerate() {
                if set.contains(pkt.addr(words)) {
                    for w in 0..bits.words.len() {
                        bits.words[w] |= per_set[s].words[w];
                    }
                }
            }
            bits
        };
        // Source (destination) bits: the literal trie's, or the class's, or both together.
        let direction = |addr_field: u32,
                         set_field: u32,
                         entries: &[AddrEntry],
                         any: &RuleBits,
                         per_set: &[RuleBits],
                         words: &[u32; 4]|
         -> Option<RuleBits> {
            let literal = (self.fields & addr_field != 0).then(|| lpm(entries, words));
            let from_sets = (self.fields & set_field != 0).then(|| class(any, per_set, words));
            match (literal, from_sets) {
                (Some(mut a), Some(b)) => {
                    for w in 0..a.words.len() {
                        a.words[w] |= b.words[w];
                    }
                    Some(a)
                }
                (a, b) => a.or(b),
            }
        };
        sets.extend(direction(
            classify::SRC_ADDR,
            classify::SRC_SET,
            &self.src_addrs,
            &self.src_any,
            &self.src_set_rules,
            &pkt.src,
        ));
        sets.extend(direction(
            classify::DST_ADDR,
            classify::DST_SET,
            &self.dst_addrs,
            &self.dst_any,
            &self.dst_set_rules,
            &pkt.dst,
        ));
        (0..self.rule_words as usize).find_map(|w| {
            let bits = sets.iter().fold(u64::MAX, |acc, s| acc & s.words[w]);
            (bits != 0).then(|| w * 64 + bits.trailing_zeros() as usize)
        })
    }
}

/// Whether the first `prefix_len` bits of `key` equal the entry's (bytes in memory order,
/// as the kernel's trie compares them).
fn prefix_covers(entry: &AddrEntry, key: &AddrKeyData) -> bool {
    let bytes = |d: &AddrKeyData| -> Vec<u8> { d.iter().flat_map(|w| w.to_ne_bytes()).collect() };
    let (a, b) = (bytes(&entry.data), bytes(key));
    let full = (entry.prefix_len / 8) as usize;
    let rest = entry.prefix_len % 8;
    a[..full] == b[..full] && (rest == 0 || (a[full] ^ b[full]) & (0xffu8 << (8 - rest)) == 0)
}

/// A set of the given prefixes, named `name`.
fn address_set(name: &str, prefixes: &[&str]) -> SetSpec {
    SetSpec {
        name: name.into(),
        prefixes: prefixes.iter().map(|p| p.parse().expect(p)).collect(),
        source: SetSource::Inline,
    }
}

fn random_rules(rng: &mut Rng, count: usize) -> RuleSet {
    let mut set = RuleSet::default();
    // Overlapping one another and the literal prefixes below, both families in each.
    set.sets.push(address_set(
        "a",
        &["198.51.100.0/24", "192.0.2.128/25", "2001:db8::/32"],
    ));
    set.sets.push(address_set(
        "b",
        &[
            "192.0.0.0/8",
            "198.51.100.7/32",
            "2001:db8:0:1::/64",
            "fe80::/10",
        ],
    ));
    set.sets.push(address_set("empty", &[]));
    for _ in 0..count {
        let mut parts = Vec::new();
        let addr = *rng.pick(&[
            "",
            "src net 198.51.100.0/24",
            "src host 198.51.100.7",
            "dst net 192.0.2.0/25",
            "dst net 192.0.0.0/8",
            "src net 2001:db8::/32",
            "dst net 2001:db8:0:1::/64",
            "dst host 2001:db8::1",
            "src net @a",
            "dst net @b",
            "src net @b",
            "ip6 and dst net @a",
            "ip and src net @a and dst net 192.0.2.0/25",
            "src net @b and dst net @a",
            "dst net @empty",
        ]);
        let proto = *rng.pick(&["", "tcp", "udp", "icmp", "proto 47"]);
        let port = if proto == "tcp" || proto == "udp" || proto.is_empty() {
            *rng.pick(&[
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
        let action = if rng.next_u64().is_multiple_of(2) {
            Action::Drop
        } else {
            Action::Pass
        };
        set.push_expression(action, &expr).expect(&expr);
    }
    set
}

fn random_packet(rng: &mut Rng) -> PacketFields {
    let v6 = rng.next_u64().is_multiple_of(2);
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
            let a = addrs6[(rng.next_u64() % 4) as usize];
            for (i, w) in words.iter_mut().enumerate() {
                *w = u32::from_ne_bytes([a[4 * i], a[4 * i + 1], a[4 * i + 2], a[4 * i + 3]]);
            }
        } else {
            words[0] = u32::from_ne_bytes(addrs4[(rng.next_u64() % 5) as usize]);
        }
        words
    };
    let protocol = [6u8, 17, 1, 58, 47][(rng.next_u64() % 5) as usize];
    let has_ports =
        u8::from((protocol == 6 || protocol == 17) && !rng.next_u64().is_multiple_of(4));
    let ports = [0u16, 53, 443, 999, 1000, 1500, 2000, 2001, 65535];
    let port = |rng: &mut Rng| {
        if has_ports == 1 {
            ports[(rng.next_u64() % 9) as usize]
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
    let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
    let (mut matched, mut unmatched) = (0, 0);
    for count in [1, 2, 5, 63, 64, 65, 200] {
        for _ in 0..5 {
            let rules = random_rules(&mut rng, count);
            let tables = build(&rules.rules, &rules.sets);
            for _ in 0..400 {
                let pkt = random_packet(&mut rng);
                let expected = first_match(&rules, &pkt);
                assert_eq!(
                    tables.lookup(&rules.sets, &pkt),
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
    let tables = build(&set.rules, &set.sets);
    assert_eq!(tables.fields, classify::DST_PORT);
    assert_eq!(tables.rule_words, 1);
    // Port 53 in a class of its own; every other port in class 0.
    assert_eq!(tables.dst_ports.sets.len(), 2);
    assert_eq!(tables.dst_ports.class_of[53], 1);
    assert_eq!(tables.dst_ports.class_of[52], 0);
}

#[test]
fn set_rules_are_in_no_literal_entry_and_in_their_sets_bits() {
    let mut set = RuleSet::default();
    set.sets.push(address_set("a", &["198.51.100.0/24"]));
    set.sets.push(address_set("b", &["2001:db8::/32"]));
    for (action, expr) in [
        (Action::Drop, "src net @a"),
        (Action::Drop, "src net 192.0.2.0/24 and dst net @b"),
        (Action::Pass, "tcp"),
        (Action::Drop, "dst net @a and src net @b"),
    ] {
        set.push_expression(action, expr).expect(expr);
    }
    let tables = build(&set.rules, &set.sets);
    assert_eq!(
        tables.fields,
        classify::SRC_ADDR | classify::SRC_SET | classify::DST_SET
    );
    let bits = |rules: &[usize]| {
        let mut b = RuleBits::EMPTY;
        rules.iter().for_each(|&r| b.set(r));
        b
    };
    assert_eq!(tables.src_set_rules, [bits(&[0]), bits(&[3])]);
    assert_eq!(tables.dst_set_rules, [bits(&[3]), bits(&[1])]);
    assert_eq!(tables.src_any, bits(&[2]));
    assert_eq!(tables.dst_any, bits(&[0, 2]));
    // Rules 0 and 3 (source sets) appear in no source entry, not even a family's /0.
    for entry in &tables.src_addrs {
        assert!(!entry.rules.contains(0) && !entry.rules.contains(3));
        assert!(entry.rules.contains(2));
    }
    assert_eq!(tables.src_addrs.len(), 3);
}

#[test]
fn set_rules_keep_their_family() {
    // A set holds both families; `ip6` restricts the rule, a literal v4 prefix beside a
    // set restricts it to IPv4.
    let mut set = RuleSet::default();
    set.sets.push(address_set("a", &["0.0.0.0/0", "::/0"]));
    set.push_expression(Action::Drop, "ip6 and src net @a")
        .expect("rule");
    set.push_expression(Action::Drop, "src net @a and dst net 192.0.2.0/24")
        .expect("rule");
    let tables = build(&set.rules, &set.sets);
    let proto = |fam| tables.proto[classify::proto_index(fam, 0, 6) as usize];
    assert!(proto(family::IPV6).contains(0) && !proto(family::IPV4).contains(0));
    assert!(proto(family::IPV4).contains(1) && !proto(family::IPV6).contains(1));
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
    let tables = build(&set.rules, &set.sets);
    assert!(tables.dst_ports.sets.len() <= classify::PORT_CLASSES as usize);
    assert!(tables.src_addrs.len() <= classify::ADDR_ENTRIES as usize);
}

/// The bitmaps against a model of the rules' meaning (proptest).
mod model;
