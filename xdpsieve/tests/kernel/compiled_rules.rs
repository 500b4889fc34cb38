//! The rule set compiled to eBPF (`xdpsieve::configure::matcher`) against the bitmaps: for
//! random rule sets over documentation addresses, ports and protocols, both programs
//! judge the same frames (every frame of the verdict table, hostile ones included, and
//! random TCP, UDP and ICMP frames near the rules' boundaries) in the same order. Each
//! frame must get the same verdict and move the same rule's counter in both. Short rule
//! sets are compiled in order; long ones on many ports, split on a port (a search first).

use std::net::Ipv6Addr;

use xdpsieve::configure::{
    loader::{Firewall, Settings},
    matcher::{Matching, RuleEngine},
    rules::{Action, RuleSet},
};
use xdpsieve_testkit::{frame::Frame, gate::root_or_skip, rng::Rng};

use crate::support::*;
use crate::verdicts;

const V4_PREFIXES: &[&str] = &[
    "198.51.100.0/24",
    "198.51.100.7/32",
    "192.0.2.0/25",
    "192.0.2.53/32",
    "203.0.113.0/26",
    "192.0.2.0/23",
];
const V6_PREFIXES: &[&str] = &[
    "2001:db8::/32",
    "2001:db8:bad::/48",
    "2001:db8::10/128",
    "2001:db8::/35",
    "2001:db8:0:ab80::/57",
    "2001:db8::66/127",
];
const PORTS: &[u16] = &[0, 53, 80, 443, 1000, 1234, 6000, 40000, 65535];

fn v4_addresses() -> Vec<[u8; 4]> {
    vec![
        [198, 51, 100, 7],
        [198, 51, 100, 200],
        [198, 51, 101, 7],
        [192, 0, 2, 53],
        [192, 0, 2, 200],
        [192, 0, 3, 1],
        [203, 0, 113, 9],
        [203, 0, 113, 70],
    ]
}

fn v6_addresses() -> Vec<[u8; 16]> {
    [
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10),
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x11),
        Ipv6Addr::new(0x2001, 0xdb8, 0xbad, 0, 0, 0, 0, 7),
        Ipv6Addr::new(0x2001, 0xdb8, 0xbad, 1, 0, 0, 0, 7),
        Ipv6Addr::new(0x2001, 0xdb8, 0x1fff, 0, 0, 0, 0, 1),
        Ipv6Addr::new(0x2001, 0xdb8, 0x2000, 0, 0, 0, 0, 1),
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0xabff, 0, 0, 0, 1),
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0xac00, 0, 0, 0, 1),
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x67),
    ]
    .iter()
    .map(Ipv6Addr::octets)
    .collect()
}

/// One random rule expression: a few of family, protocol, addresses and ports.
fn expression(rng: &mut Rng) -> String {
    let v6 = rng.below(2) == 1;
    let mut parts: Vec<String> = Vec::new();
    match rng.below(5) {
        0 => parts.push(if v6 { "ip6" } else { "ip" }.into()),
        1 => parts.push("tcp".into()),
        2 => parts.push("udp".into()),
        3 => parts.push(if v6 { "icmp6" } else { "icmp" }.into()),
        _ => {}
    }
    let prefixes = if v6 { V6_PREFIXES } else { V4_PREFIXES };
    for direction in ["src", "dst"] {
        if rng.below(3) == 0 {
            parts.push(format!("{direction} net {}", rng.pick(prefixes)));
        }
    }
    // Ports only where the protocol allows them.
    if !parts.iter().any(|p| p.starts_with("icmp")) {
        for direction in ["src", "dst", ""] {
            match rng.below(6) {
                0 => parts.push(
                    format!("{direction} port {}", rng.pick(PORTS))
                        .trim()
                        .into(),
                ),
                1 => {
                    let (a, b) = (*rng.pick(PORTS), *rng.pick(PORTS));
                    let (min, max) = (a.min(b), a.max(b));
                    parts.push(format!("{direction} portrange {min}-{max}").trim().into());
                }
                _ => {}
            }
        }
    }
    if parts.is_empty() {
        parts.push(if v6 { "ip6" } else { "ip" }.into());
    }
    parts.join(" and ")
}

/// A rule set of up to `max` rules the compiler takes (it says so when it does not).
fn random_rule_set(rng: &mut Rng, max: u64) -> RuleSet {
    let mut set = RuleSet {
        default_action: if rng.below(2) == 0 {
            Action::Pass
        } else {
            Action::Drop
        },
        ..RuleSet::default()
    };
    let count = 1 + rng.below(max);
    while (set.rules.len() as u64) < count {
        let action = if rng.below(3) == 0 {
            Action::Pass
        } else {
            Action::Drop
        };
        let expr = expression(rng);
        let mut candidate = set.clone();
        // An expression the language refuses (a port range written backwards, a family
        // against a prefix) is simply not part of this set.
        if candidate.push_expression(action, &expr).is_ok() {
            set = candidate;
        }
    }
    set
}

fn frames(rng: &mut Rng, count: usize) -> Vec<(String, Vec<u8>)> {
    let (v4, v6) = (v4_addresses(), v6_addresses());
    let mut frames = verdicts::corpus();
    for i in 0..count {
        let frame = if rng.below(2) == 0 {
            Frame::ipv4(*rng.pick(&v4), *rng.pick(&v4))
        } else {
            Frame::ipv6(*rng.pick(&v6), *rng.pick(&v6))
        };
        let (sport, dport) = (*rng.pick(PORTS), *rng.pick(PORTS));
        // A port one off a rule's boundary as often as on it.
        let (sport, dport) = (
            sport.wrapping_add(rng.below(3) as u16).wrapping_sub(1),
            dport.wrapping_add(rng.below(3) as u16).wrapping_sub(1),
        );
        let frame = match rng.below(3) {
            0 => frame.tcp(sport, dport),
            1 => frame.udp(sport, dport),
            _ if frame.build()[12..14] == [0x86, 0xdd] => frame.icmp6(),
            _ => frame.icmp(),
        };
        frames.push((format!("random frame {i}"), frame.pad_to(96).build()));
    }
    frames
}

fn load_as(rules: &RuleSet, engine: RuleEngine) -> Firewall {
    load(&Settings {
        rules: rules.clone(),
        // The rules judge what the parser read of unclassifiable packets, as in the table.
        unclassifiable: Some(Action::Pass),
        rule_engine: engine,
        ..Settings::default()
    })
}

/// Runs `frames` through `rules` compiled and through the bitmaps: same verdicts, same
/// rule counters. Returns how the compiled firewall matched.
fn compare(rules: &RuleSet, frames: Vec<(String, Vec<u8>)>, round: u64) -> Matching {
    let slots = rules.rules.len();
    let mut compiled = load_as(rules, RuleEngine::Auto);
    let mut bitmaps = load_as(rules, RuleEngine::Bitmaps);
    let listing: Vec<String> = rules.rules.iter().map(|r| format!("{r:?}")).collect();
    for (name, frame) in frames {
        let hits = |fw: &Firewall| fw.rule_hits(slots).expect("rule hits");
        let (before_c, before_b) = (hits(&compiled), hits(&bitmaps));
        let verdict_c = run(&mut compiled, &frame);
        let verdict_b = run(&mut bitmaps, &frame);
        let moved = |before: Vec<u64>, fw: &Firewall| -> Vec<usize> {
            let after = hits(fw);
            (0..=slots).filter(|&s| after[s] != before[s]).collect()
        };
        let (moved_c, moved_b) = (moved(before_c, &compiled), moved(before_b, &bitmaps));
        assert_eq!(
            (verdict_c, &moved_c),
            (verdict_b, &moved_b),
            "round {round}, {name}: compiled ({}) against bitmaps; rules:\n{}\nframe {frame:02x?}",
            compiled.matching(),
            listing.join("\n"),
        );
    }
    compiled.matching().clone()
}

#[test]
fn compiled_rules_judge_every_frame_as_the_bitmaps_do() {
    if !root_or_skip() {
        return;
    }
    let mut rng = Rng::new(0x5eed_c0de);
    let mut compiled_sets = 0;
    for round in 0..24 {
        let rules = random_rule_set(&mut rng, if round % 3 == 0 { 12 } else { 5 });
        let frames = frames(&mut rng, 80);
        match compare(&rules, frames, round) {
            Matching::Compiled(_) => compiled_sets += 1,
            Matching::Bitmaps(why) => {
                eprintln!("round {round}: not compiled ({why}), compared all the same");
            }
        }
    }
    // Most sets must really have been compiled, or this compared the bitmaps with themselves.
    assert!(
        compiled_sets >= 16,
        "only {compiled_sets} of 24 rule sets compiled"
    );
}

#[test]
fn rules_split_on_a_port_judge_every_frame_as_the_bitmaps_do() {
    if !root_or_skip() {
        return;
    }
    let mut rng = Rng::new(0x5b11_7000);
    for round in 0..6 {
        // Hundreds of rules, each on its own port or range of ports of one direction, a
        // few on the other port or none, some with an address: the compiler splits on the
        // port of that direction (a rule without a condition on it is tested in every
        // range, so there can only be a few).
        let mut rules = RuleSet::default();
        let mut ports: Vec<u16> = PORTS.to_vec();
        let (main, other) = if round % 2 == 0 {
            ("dst", "src")
        } else {
            ("src", "dst")
        };
        let count = 100 + rng.below(400);
        while (rules.rules.len() as u64) < count {
            let port = rng.below(65536) as u16;
            ports.push(port);
            let mut expr = match rng.below(100) {
                0 => format!("udp {other} port {port}"),
                1 => "icmp".into(),
                2..20 => format!("{main} portrange {port}-{}", port.saturating_add(9)),
                _ => format!("{} {main} port {port}", rng.pick(&["tcp", "udp"])),
            };
            if rng.below(5) == 0 && expr != "icmp" {
                expr.push_str(&format!(" and src net {}", rng.pick(V4_PREFIXES)));
            }
            let action = if rng.below(3) == 0 {
                Action::Pass
            } else {
                Action::Drop
            };
            rules.push_expression(action, &expr).expect("rule");
        }
        let mut frames = frames(&mut rng, 40);
        let v4 = v4_addresses();
        for i in 0..160 {
            let near = |rng: &mut Rng| {
                rng.pick(&ports)
                    .wrapping_add(rng.below(3) as u16)
                    .wrapping_sub(1)
            };
            let (sport, dport) = (near(&mut rng), near(&mut rng));
            let frame = Frame::ipv4(*rng.pick(&v4), *rng.pick(&v4));
            let frame = if rng.below(2) == 0 {
                frame.tcp(sport, dport)
            } else {
                frame.udp(sport, dport)
            };
            frames.push((
                format!("frame near a rule's port {i}"),
                frame.pad_to(96).build(),
            ));
        }
        let matching = compare(&rules, frames, round);
        assert!(
            matches!(matching, Matching::Compiled(_)),
            "round {round}: the rules should have been split: {matching}"
        );
    }
}

#[test]
fn the_verdict_table_rules_are_compiled() {
    if !root_or_skip() {
        return;
    }
    let fw = load(&Settings {
        rules: rule_set(verdicts::TABLE_RULES),
        ..Settings::default()
    });
    assert!(
        matches!(fw.matching(), Matching::Compiled(_)),
        "the verdict table should exercise the compiled rules: {}",
        fw.matching()
    );
}

/// The verifier follows split code once per value the result register holds where paths
/// meet (see `matcher::split`): a thousand port rules behind a dozen rules without a port
/// condition, with drops captured (the heaviest program), must still load compiled, and
/// judge as the bitmaps do.
#[test]
fn a_split_behind_rules_without_the_port_still_verifies() {
    if !root_or_skip() {
        return;
    }
    let mut rng = Rng::new(0x0bad_5eed);
    let mut rules = RuleSet::default();
    let mut ports: Vec<u16> = PORTS.to_vec();
    for i in 0..1012 {
        // Every 84th rule has no condition on the destination port.
        let expr = if i % 84 == 0 {
            format!("udp src port {}", 100 + i)
        } else {
            let port = rng.below(65536) as u16;
            ports.push(port);
            format!("{} dst port {port}", rng.pick(&["tcp", "udp"]))
        };
        rules.push_expression(Action::Drop, &expr).expect("rule");
    }
    let v4 = v4_addresses();
    let mut frames = Vec::new();
    for i in 0..200 {
        let sport = 100 + 84 * rng.below(13) as u16;
        let dport = rng
            .pick(&ports)
            .wrapping_add(rng.below(3) as u16)
            .wrapping_sub(1);
        let frame = Frame::ipv4(*rng.pick(&v4), *rng.pick(&v4));
        let frame = if rng.below(2) == 0 {
            frame.tcp(sport, dport)
        } else {
            frame.udp(sport, dport)
        };
        frames.push((format!("frame {i}"), frame.pad_to(96).build()));
    }
    let matching = compare(&rules, frames, 0);
    assert!(
        matches!(matching, Matching::Compiled(_)),
        "should load compiled: {matching}"
    );
}
