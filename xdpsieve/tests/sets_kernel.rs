//! Kernel tests of address sets: the real program, loaded with sets of up to 100,000
//! prefixes, fed frames through `BPF_PROG_TEST_RUN`; every verdict must equal what a
//! model in userspace (membership by prefix length, independent of the trie) says.
//!
//! They need root; under `CI` they fail rather than skip when they cannot run.

use std::{
    collections::HashSet,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use aya::programs::{TestRun as _, TestRunOptions};
use xdpsieve::{
    configure::loader::{Firewall, Settings},
    configure::rules::{Action, RuleSet},
    configure::sets::{SetPrefix, SetSource, SetSpec},
};
use xdpsieve_common::verdict;
use xdpsieve_testkit::frame::Frame;
use xdpsieve_testkit::gate::root_or_skip;
use xdpsieve_testkit::rng::Rng;

const DROP: u32 = verdict::DROP as u32;
const PASS: u32 = verdict::PASS as u32;

/// Membership by prefix length: for each length some prefix has, is the address masked to
/// it one of the set's prefixes of that length?
struct Model {
    by_len: Vec<(bool, u8, HashSet<u128>)>,
}

fn bits(addr: IpAddr) -> (bool, u128) {
    match addr {
        IpAddr::V4(a) => (false, u128::from(u32::from(a))),
        IpAddr::V6(a) => (true, u128::from(a)),
    }
}

fn masked(v6: bool, value: u128, len: u8) -> u128 {
    let width = if v6 { 128 } else { 32 };
    if len == 0 {
        return 0;
    }
    let keep = u32::from(len);
    let mask = (u128::MAX >> (128 - width)) & !((1u128 << (width - keep)).wrapping_sub(1));
    let mask = if keep == 128 { u128::MAX } else { mask };
    value & mask
}

impl Model {
    fn new(prefixes: &[SetPrefix]) -> Model {
        let mut by_len: Vec<(bool, u8, HashSet<u128>)> = Vec::new();
        for p in prefixes {
            let (v6, value) = bits(p.addr);
            let len = p.prefix_len;
            let entry = match by_len
                .iter_mut()
                .position(|(f, l, _)| (*f, *l) == (v6, len))
            {
                Some(i) => &mut by_len[i].2,
                None => {
                    by_len.push((v6, len, HashSet::new()));
                    &mut by_len.last_mut().expect("just pushed").2
                }
            };
            entry.insert(masked(v6, value, p.prefix_len));
        }
        Model { by_len }
    }

    fn contains(&self, addr: IpAddr) -> bool {
        let (v6, value) = bits(addr);
        self.by_len
            .iter()
            .any(|(f, len, set)| *f == v6 && set.contains(&masked(v6, value, *len)))
    }
}

fn random_prefix(rng: &mut Rng) -> SetPrefix {
    // Clustered under a few blocks so that prefixes nest and overlap, but not so short
    // that one covers a whole cluster: IPv4 /18 to /32, IPv6 /40 to /128 (the edges test
    // has /0 and /16).
    let (addr, len) = if rng.index(4) == 0 {
        let hi = 0x2001_0db8_0000_0000_u128 | ((rng.index(8) as u128) << 32);
        let v =
            (hi << 64) | (u128::from(rng.next_u64()) << 48) | u128::from(rng.next_u64() & 0xffff);
        (IpAddr::V6(Ipv6Addr::from(v)), 40 + rng.index(89) as u8)
    } else {
        let v = (198u32 << 24) | ((rng.index(64) as u32) << 16) | (rng.next_u64() as u32 & 0xffff);
        (IpAddr::V4(Ipv4Addr::from(v)), 18 + rng.index(15) as u8)
    };
    let (v6, value) = bits(addr);
    let m = masked(v6, value, len);
    let addr = if v6 {
        IpAddr::V6(Ipv6Addr::from(m))
    } else {
        IpAddr::V4(Ipv4Addr::from(m as u32))
    };
    SetPrefix {
        addr,
        prefix_len: len,
    }
}

/// Addresses at the edges of prefixes (first, last, one outside each side) and random
/// ones inside the clusters.
fn probes(prefixes: &[SetPrefix], rng: &mut Rng, n: usize) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for _ in 0..n {
        let p = prefixes[rng.index(prefixes.len())];
        let (v6, base) = bits(p.addr);
        let width = if v6 { 128 } else { 32 };
        let span = if u32::from(p.prefix_len) == width {
            0
        } else {
            (u128::MAX >> (128 - width)) >> p.prefix_len
        };
        let all = u128::MAX >> (128 - width);
        let value = match rng.index(5) {
            0 => base,
            1 => base.wrapping_add(span) & all,
            2 => base.wrapping_sub(1) & all,
            3 => base.wrapping_add(span).wrapping_add(1) & all,
            _ => base | (u128::from(rng.next_u64()) & span),
        };
        out.push(if v6 {
            IpAddr::V6(Ipv6Addr::from(value))
        } else {
            IpAddr::V4(Ipv4Addr::from(value as u32))
        });
    }
    out
}

fn set(name: &str, prefixes: Vec<SetPrefix>) -> SetSpec {
    SetSpec {
        name: name.into(),
        prefixes,
        source: SetSource::Inline,
    }
}

fn load(rules: RuleSet) -> Firewall {
    Firewall::load(&Settings {
        rules,
        ..Settings::default()
    })
    .unwrap_or_else(|e| panic!("loading the XDP program: {e}"))
}

fn run(fw: &mut Firewall, frame: &[u8]) -> u32 {
    fw.program()
        .expect("program")
        .test_run(TestRunOptions {
            data_in: Some(frame),
            repeat: 1,
            ..TestRunOptions::new()
        })
        .unwrap_or_else(|e| panic!("test run: {e}"))
        .return_value
}

fn udp(src: IpAddr, dst: IpAddr, dport: u16) -> Vec<u8> {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => Frame::ipv4(s.octets(), d.octets())
            .udp(40000, dport)
            .build(),
        (IpAddr::V6(s), IpAddr::V6(d)) => Frame::ipv6(s.octets(), d.octets())
            .udp(40000, dport)
            .build(),
        _ => panic!("mixed families"),
    }
}

fn other_end(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 1)),
    }
}

#[test]
fn membership_equals_the_model_on_100k_prefixes() {
    if !root_or_skip() {
        return;
    }
    let mut rng = Rng::new(0x5e75_0009);
    let source: Vec<SetPrefix> = (0..100_000).map(|_| random_prefix(&mut rng)).collect();
    let dest: Vec<SetPrefix> = (0..20_000).map(|_| random_prefix(&mut rng)).collect();
    let mut rules = RuleSet {
        sets: vec![set("bad", source.clone()), set("victims", dest.clone())],
        ..RuleSet::default()
    };
    rules
        .push_expression(Action::Drop, "src net @bad")
        .expect("rule");
    rules
        .push_expression(Action::Drop, "udp dst net @victims and dst port 53")
        .expect("rule");
    let mut fw = load(rules);
    let (bad, victims) = (Model::new(&source), Model::new(&dest));

    let mut failures = Vec::new();
    let mut drops = 0;
    for src in probes(&source, &mut rng, 3000) {
        let dst = other_end(src);
        let expect = if bad.contains(src) { DROP } else { PASS };
        drops += usize::from(expect == DROP);
        let got = run(&mut fw, &udp(src, dst, 53));
        if got != expect {
            failures.push(format!("src {src}: expected {expect}, got {got}"));
        }
    }
    for dst in probes(&dest, &mut rng, 2000) {
        let src = other_end(dst);
        for port in [53, 54] {
            let expect = if victims.contains(dst) && port == 53 {
                DROP
            } else {
                PASS
            };
            let got = run(&mut fw, &udp(src, dst, port));
            if got != expect {
                failures.push(format!(
                    "dst {dst} port {port}: expected {expect}, got {got}"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} verdicts differ from the model:\n{}",
        failures.len(),
        failures[..failures.len().min(20)].join("\n")
    );
    // The probes exercise both answers.
    assert!(
        drops > 300 && drops < 2990,
        "{drops} of 3000 probes dropped"
    );
}

#[test]
fn edges_zero_host_and_nested_prefixes_and_literals_beside_sets() {
    if !root_or_skip() {
        return;
    }
    let p = |s: &str| s.parse::<SetPrefix>().expect("prefix");
    let mut rules = RuleSet {
        sets: vec![
            set("everything6", vec![p("::/0")]),
            set("hosts", vec![p("203.0.113.7/32"), p("2001:db8::7/128")]),
            set(
                "nested",
                vec![
                    p("198.51.0.0/16"),
                    p("198.51.100.128/25"),
                    p("198.51.100.200/32"),
                ],
            ),
            set("empty", vec![]),
        ],
        ..RuleSet::default()
    };
    for (action, expr) in [
        (Action::Pass, "src net 198.51.100.128/25"),
        (Action::Drop, "src net @nested"),
        (Action::Drop, "src net @hosts"),
        (Action::Drop, "src net @empty"),
        (
            Action::Drop,
            "ip6 and dst net @everything6 and udp dst port 9",
        ),
    ] {
        rules.push_expression(action, expr).expect("rule");
    }
    let mut fw = load(rules);
    let v4 = |s: &str| IpAddr::V4(s.parse().expect("v4"));
    let v6 = |s: &str| IpAddr::V6(s.parse().expect("v6"));
    let cases = [
        // A literal pass rule before the set rule: the set's /25 inside it passes.
        (v4("198.51.100.129"), 53, PASS),
        (v4("198.51.100.200"), 53, PASS),
        (v4("198.51.100.127"), 53, DROP),
        (v4("198.51.0.0"), 53, DROP),
        (v4("198.51.255.255"), 53, DROP),
        (v4("198.52.0.0"), 53, PASS),
        (v4("198.50.255.255"), 53, PASS),
        (v4("203.0.113.7"), 53, DROP),
        (v4("203.0.113.6"), 53, PASS),
        (v4("203.0.113.8"), 53, PASS),
        (v6("2001:db8::7"), 53, DROP),
        (v6("2001:db8::6"), 53, PASS),
        (v6("2001:db8::8"), 53, PASS),
        // ::/0 as a destination set, IPv6 only: any IPv6 packet to port 9.
        (v6("2001:db8::1"), 9, DROP),
        (v4("192.0.2.1"), 9, PASS),
    ];
    for (src, port, expect) in cases {
        let got = run(&mut fw, &udp(src, other_end(src), port));
        assert_eq!(got, expect, "src {src} dst port {port}");
    }
}
