//! The bitmaps against the rules' meaning, as the README's syntax states it, written from
//! the generated rules (and the [`RuleSpec`]s the parser made of them) and typed addresses
//! alone: it shares no code with `Cidr::to_words` or the scan in order (`tests.rs`), so a
//! wrong mask or byte order there cannot hide here. Rules written without a direction (`net
//! A`, `portrange P`) are matched by their tcpdump meaning, source or destination, not
//! through the kernel rules they become. Rules name random address sets (both families,
//! overlapping, maybe empty); membership is "some prefix of the set covers the address",
//! computed here from the prefixes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::{collection::vec, prelude::*};

use super::*;
use crate::{
    configure::rules::{Cidr, RuleSpec},
    configure::sets::SetPrefix,
};

/// Sets the model's rules may name: `@s0` to `@s2`, always declared (maybe empty).
const MODEL_SETS: usize = 3;

const BASES_V4: [Ipv4Addr; 4] = [
    Ipv4Addr::new(198, 51, 100, 7),
    Ipv4Addr::new(192, 0, 2, 129),
    Ipv4Addr::new(203, 0, 113, 1),
    Ipv4Addr::new(198, 51, 101, 0),
];
const BASES_V6: [Ipv6Addr; 4] = [
    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
    Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 5),
    Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 0),
    Ipv6Addr::new(0x2001, 0xdb9, 0, 0, 0, 0, 0, 1),
];
/// Port range ends near which rules and packets are drawn, to hit the boundaries.
const PORTS: [u16; 9] = [0, 1, 52, 53, 54, 1023, 1024, 65534, 65535];

/// A packet as the model sees it.
#[derive(Clone, Debug)]
struct Packet {
    src: IpAddr,
    dst: IpAddr,
    protocol: u8,
    ports: Option<(u16, u16)>,
}

impl Packet {
    fn fields(&self) -> PacketFields {
        let words = |a: &IpAddr| -> [u32; 4] {
            let mut w = [0u32; 4];
            match a {
                IpAddr::V4(v4) => w[0] = u32::from_ne_bytes(v4.octets()),
                IpAddr::V6(v6) => {
                    for (i, chunk) in v6.octets().chunks(4).enumerate() {
                        w[i] = u32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
                    }
                }
            }
            w
        };
        let (src_port, dst_port) = self.ports.unwrap_or((0, 0));
        PacketFields {
            family: if self.src.is_ipv6() {
                family::IPV6
            } else {
                family::IPV4
            },
            protocol: self.protocol,
            has_ports: u8::from(self.ports.is_some()),
            src: words(&self.src),
            dst: words(&self.dst),
            src_port,
            dst_port,
        }
    }
}

fn contains(cidr: &Cidr, addr: &IpAddr) -> bool {
    let len = u32::from(cidr.prefix_len);
    match (cidr.addr, addr) {
        (IpAddr::V4(net), IpAddr::V4(a)) => {
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            u32::from(net) & mask == u32::from(*a) & mask
        }
        (IpAddr::V6(net), IpAddr::V6(a)) => {
            let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
            u128::from(net) & mask == u128::from(*a) & mask
        }
        _ => false,
    }
}

/// Whether some prefix of the set covers `addr`, by the model's own arithmetic.
fn in_set(set: &SetSpec, addr: &IpAddr) -> bool {
    set.prefixes.iter().any(|p| {
        let cidr = Cidr {
            addr: p.addr,
            prefix_len: p.prefix_len,
        };
        contains(&cidr, addr)
    })
}

fn addr_holds(cond: Option<AddrMatch>, sets: &[SetSpec], addr: &IpAddr) -> bool {
    match cond {
        None => true,
        Some(AddrMatch::Prefix(c)) => contains(&c, addr),
        Some(AddrMatch::Set(s)) => in_set(&sets[s], addr),
    }
}

/// Every condition the rule states holds for the packet.
fn matches(rule: &RuleSpec, sets: &[SetSpec], p: &Packet) -> bool {
    let family_ok = match rule.family {
        Some(family::IPV4) => p.src.is_ipv4(),
        Some(family::IPV6) => p.src.is_ipv6(),
        _ => true,
    };
    let in_range = |range: Option<crate::configure::rules::PortRange>, port: u16| {
        range.is_none_or(|r| (r.min..=r.max).contains(&port))
    };
    let ports_ok = if rule.src_port.is_none() && rule.dst_port.is_none() {
        true
    } else {
        p.ports
            .is_some_and(|(s, d)| in_range(rule.src_port, s) && in_range(rule.dst_port, d))
    };
    family_ok
        && rule.protocol.is_none_or(|proto| proto.0 == p.protocol)
        && addr_holds(rule.src, sets, &p.src)
        && addr_holds(rule.dst, sets, &p.dst)
        && ports_ok
}

/// A base address with its last `host_bits` bits replaced by `noise`: it shares a
/// prefix of every length up to the rest with the base, so rules hit and miss.
fn near(v6: bool, base: usize, host_bits: u32, noise: u128) -> IpAddr {
    if v6 {
        let mask = u128::MAX.checked_shr(128 - host_bits).unwrap_or(0);
        let b = u128::from(BASES_V6[base]);
        IpAddr::V6(Ipv6Addr::from((b & !mask) | (noise & mask)))
    } else {
        // Spread the 0..=128 draw over IPv4's 0..=32 so short and long prefixes hit.
        let host_bits = host_bits % 33;
        let mask = u32::MAX.checked_shr(32 - host_bits).unwrap_or(0);
        let b = u32::from(BASES_V4[base]);
        IpAddr::V4(Ipv4Addr::from((b & !mask) | (noise as u32 & mask)))
    }
}

fn port() -> impl Strategy<Value = u16> {
    prop_oneof![3 => prop::sample::select(&PORTS[..]), 1 => any::<u16>()]
}

fn packet() -> impl Strategy<Value = Packet> {
    let addr = |v6: bool| {
        (0..4usize, 0..=128u32, any::<u128>()).prop_map(move |(b, h, n)| near(v6, b, h, n))
    };
    any::<bool>()
        .prop_flat_map(move |v6| {
            (
                addr(v6),
                addr(v6),
                prop::sample::select(&[6u8, 17, 1, 58, 47, 0, 255][..]),
                prop::option::weighted(0.8, (port(), port())),
            )
        })
        .prop_map(|(src, dst, protocol, ports)| {
            // Only TCP and UDP carry ports; a fragment of either may not.
            let ports = ports.filter(|_| protocol == 6 || protocol == 17);
            Packet {
                src,
                dst,
                protocol,
                ports,
            }
        })
}

/// A prefix near one of the bases, of any length.
fn prefix_near(v6: bool, base: usize, len: u8) -> String {
    let len = if v6 { len } else { len % 33 };
    let max = if v6 { 128 } else { 32 };
    let masked = near(v6, base, max - u32::from(len), 0);
    format!("{masked}/{len}")
}

/// One address set: a few prefixes of both families near the bases, overlapping.
fn address_set() -> impl Strategy<Value = Vec<SetPrefix>> {
    vec((any::<bool>(), 0..4usize, 0..=128u8), 0..=6).prop_map(|prefixes| {
        prefixes
            .into_iter()
            .map(|(v6, base, len)| prefix_near(v6, base, len).parse().expect("prefix"))
            .collect()
    })
}

/// A rule as generated: the model reads its meaning from these fields, not from what the
/// parser made of its text ([`Written::text`]). `either` and `either_port` are conditions
/// without a direction (source or destination, as in tcpdump).
#[derive(Clone, Debug)]
struct Written {
    action: Action,
    family: Option<bool>,
    proto: &'static str,
    src: Option<String>,
    dst: Option<String>,
    either: Option<String>,
    src_port: Option<(u16, u16)>,
    dst_port: Option<(u16, u16)>,
    either_port: Option<(u16, u16)>,
}

impl Written {
    /// The rule in the command-line syntax.
    fn text(&self) -> String {
        let mut words: Vec<String> = Vec::new();
        if let Some(v6) = self.family {
            words.push(if v6 { "ip6" } else { "ip" }.into());
        }
        if !self.proto.is_empty() {
            words.push(self.proto.into());
        }
        let r = |(a, b): &(u16, u16)| format!("{a}-{b}");
        words.extend(self.src.as_ref().map(|n| format!("src net {n}")));
        words.extend(self.dst.as_ref().map(|n| format!("dst net {n}")));
        words.extend(self.either.as_ref().map(|n| format!("net {n}")));
        words.extend(
            self.src_port
                .as_ref()
                .map(|p| format!("src portrange {}", r(p))),
        );
        words.extend(
            self.dst_port
                .as_ref()
                .map(|p| format!("dst portrange {}", r(p))),
        );
        words.extend(
            self.either_port
                .as_ref()
                .map(|p| format!("portrange {}", r(p))),
        );
        if words.is_empty() {
            words.push("any".into());
        }
        words.join(" and ")
    }

    /// Whether the rule, as the README's syntax means it, matches `p`.
    fn matches(&self, sets: &[SetSpec], p: &Packet) -> bool {
        let cond = |text: &Option<String>| {
            text.as_ref().map(|t| match t.strip_prefix("@s") {
                Some(i) => AddrMatch::Set(i.parse().expect("set number")),
                None => AddrMatch::Prefix(t.parse().expect("prefix")),
            })
        };
        let family_ok = self.family.is_none_or(|v6| p.src.is_ipv6() == v6);
        let proto_ok = match self.proto {
            "" => true,
            "tcp" => p.protocol == 6,
            "udp" => p.protocol == 17,
            "icmp" => p.protocol == 1,
            "icmp6" => p.protocol == 58,
            "proto 47" => p.protocol == 47,
            other => panic!("unknown protocol {other}"),
        };
        let either = cond(&self.either);
        let addrs_ok = addr_holds(cond(&self.src), sets, &p.src)
            && addr_holds(cond(&self.dst), sets, &p.dst)
            && (either.is_none()
                || addr_holds(either, sets, &p.src)
                || addr_holds(either, sets, &p.dst));
        let in_range = |range: Option<(u16, u16)>, port: u16| {
            range.is_none_or(|(min, max)| (min..=max).contains(&port))
        };
        let any_port = self.src_port.or(self.dst_port).or(self.either_port);
        let ports_ok = any_port.is_none()
            || p.ports.is_some_and(|(s, d)| {
                in_range(self.src_port, s)
                    && in_range(self.dst_port, d)
                    && (self.either_port.is_none()
                        || in_range(self.either_port, s)
                        || in_range(self.either_port, d))
            });
        family_ok && proto_ok && addrs_ok && ports_ok
    }
}

/// One rule, always valid: an address and a port condition each given with directions
/// (`src`, `dst`, both or neither) or without (`net`, `portrange`: either direction).
fn rule() -> impl Strategy<Value = Written> {
    let net = |v6: bool| {
        prop_oneof![
            3 => prop::option::of((0..4usize, 0..=128u8))
                .prop_map(move |n| n.map(|(base, len)| prefix_near(v6, base, len))),
            1 => (0..MODEL_SETS).prop_map(|s| Some(format!("@s{s}"))),
        ]
    };
    let range = || prop::option::of((port(), port()).prop_map(|(a, b)| (a.min(b), a.max(b))));
    (any::<bool>(), any::<bool>())
        .prop_flat_map(move |(v6, drop)| {
            (
                Just(v6),
                Just(drop),
                any::<bool>(),
                prop::sample::select(&["", "tcp", "udp", "icmp", "icmp6", "proto 47"][..]),
                (net(v6), net(v6), any::<bool>()),
                (range(), range(), any::<bool>()),
            )
        })
        .prop_map(
            |(v6, drop, family_word, proto, (src, dst, undirected_addr), ports)| {
                let (sport, dport, undirected_port) = ports;
                // An undirected condition stands alone for its kind (the parser refuses it
                // beside a directed one): it takes the source's draw.
                let (src, dst, either) = if undirected_addr {
                    (None, None, src)
                } else {
                    (src, dst, None)
                };
                let with_ports = matches!(proto, "" | "tcp" | "udp");
                let (sport, dport, eport) = match (with_ports, undirected_port) {
                    (false, _) => (None, None, None),
                    (true, true) => (None, None, sport),
                    (true, false) => (sport, dport, None),
                };
                Written {
                    action: if drop { Action::Drop } else { Action::Pass },
                    family: family_word.then_some(v6),
                    proto,
                    src,
                    dst,
                    either,
                    src_port: sport,
                    dst_port: dport,
                    either_port: eport,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 96,
        // Minimal failing cases are printed; nothing is written into the source tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn bitmaps_agree_with_a_model_of_the_rules(
        rules in vec(rule(), 1..=140),
        sets in vec(address_set(), MODEL_SETS),
        packets in vec(packet(), 1..=64),
    ) {
        let mut set = RuleSet::default();
        for (i, prefixes) in sets.into_iter().enumerate() {
            set.sets.push(SetSpec {
                name: format!("s{i}"),
                prefixes,
                source: SetSource::Inline,
            });
        }
        for rule in &rules {
            let expr = rule.text();
            set.push_expression(rule.action, &expr)
                .map_err(|e| TestCaseError::fail(format!("{expr}: {e}")))?;
        }
        // Written rules get ids 1, 2, ... in order: the model's deciding rule by its id.
        prop_assert_eq!(set.written().len(), rules.len());
        let tables = build(&set.rules, &set.sets);
        for p in &packets {
            let found = tables.lookup(&set.sets, &p.fields());
            // The kernel rules one by one, as the parser made them...
            let expected = set.rules.iter().position(|r| matches(r, &set.sets, p));
            prop_assert_eq!(
                found,
                expected,
                "packet {:?}; expected rule {:?}; sets {:?}",
                p,
                expected.map(|i| set.rules[i].conditions_with(&set.sets)),
                set.sets
            );
            // ...and the written rules by their meaning: a condition without a direction
            // holds for the source or the destination.
            let written = rules.iter().position(|r| r.matches(&set.sets, p));
            prop_assert_eq!(
                found.map(|i| set.rules[i].id),
                written.map(|i| i as u32 + 1),
                "packet {:?}; expected written rule {:?}; sets {:?}",
                p,
                written.map(|i| rules[i].text()),
                set.sets
            );
        }
    }
}
