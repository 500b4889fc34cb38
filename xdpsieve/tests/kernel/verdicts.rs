//! The verdict table: one firewall loaded with [`TABLE_RULES`], every crafted frame run
//! through it one at a time, and its verdict, matching rule, `malformed` and
//! `unclassifiable` counts checked; then mangled and random frames that must never abort.
//!
//! The cases themselves live with their topic ([`crate::parsing`], [`crate::ipv6_chains`],
//! [`crate::fragments`], [`crate::malformed`]); [`verdict_cases`] puts them together in one
//! fixed order. This file holds what they share: the expectation type and frame shorthands.

use xdpsieve::{configure::loader::Settings, configure::rules::Action};
use xdpsieve_testkit::frame::{Ext, Frame};
use xdpsieve_testkit::gate::root_or_skip;
use xdpsieve_testkit::rng::Rng;

use crate::support::*;
use crate::{fragments, ipv6_chains, malformed, parsing};

/// The verdict-table rules. Ids are 1..=7 in this order, so a rule's id is also its slot in
/// `rule_hits`. The first rule shadows the second for one resolver, to show first match wins.
pub(crate) const TABLE_RULES: &[(Action, &str)] = &[
    (Action::Pass, "udp and src host 192.0.2.53 and src port 53"),
    (Action::Drop, "udp src port 53"),
    (Action::Drop, "tcp dst portrange 6000-6010"),
    (Action::Drop, "src net 198.51.100.0/24"),
    (Action::Drop, "src net 2001:db8:bad::/48"),
    (Action::Drop, "icmp and dst host 192.0.2.66"),
    (Action::Drop, "icmp6 and dst host 2001:db8::66"),
];

/// Which rule-hit slot a frame should move.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hit {
    /// Rule with this id (= slot).
    Rule(u32),
    /// No rule matched an IP packet: the default verdict (slot 0).
    Default,
    /// No IP header could be read: no slot moves, `non_ip` does.
    NotIp,
}

/// What one frame must do to the table firewall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Expect {
    verdict: u32,
    hit: Hit,
    malformed: bool,
    /// The program could not reach the L4 header the rules need.
    unclassifiable: bool,
}

impl Expect {
    pub(crate) const fn malformed(self) -> Expect {
        Expect {
            malformed: true,
            ..self
        }
    }

    pub(crate) const fn unclassifiable(self) -> Expect {
        Expect {
            unclassifiable: true,
            ..self
        }
    }
}

pub(crate) const fn dropped_by(rule: u32) -> Expect {
    Expect {
        verdict: DROP,
        hit: Hit::Rule(rule),
        malformed: false,
        unclassifiable: false,
    }
}

pub(crate) const fn passed_by(rule: u32) -> Expect {
    Expect {
        verdict: PASS,
        hit: Hit::Rule(rule),
        malformed: false,
        unclassifiable: false,
    }
}

/// No rule matched; the table's default verdict is pass.
pub(crate) const DEFAULT: Expect = Expect {
    verdict: PASS,
    hit: Hit::Default,
    malformed: false,
    unclassifiable: false,
};

/// Passed without looking at the rules.
pub(crate) const NOT_IP: Expect = Expect {
    verdict: PASS,
    hit: Hit::NotIp,
    malformed: false,
    unclassifiable: false,
};

pub(crate) struct Case {
    name: String,
    frame: Vec<u8>,
    expect: Expect,
}

pub(crate) fn case(name: impl Into<String>, frame: impl Into<Vec<u8>>, expect: Expect) -> Case {
    Case {
        name: name.into(),
        frame: frame.into(),
        expect,
    }
}

// Frame shorthands the case lists share.

pub(crate) fn v4() -> Frame {
    Frame::ipv4(PEER4, HOST4)
}

pub(crate) fn v6() -> Frame {
    Frame::ipv6(PEER6, HOST6)
}

pub(crate) fn hostile4() -> Frame {
    Frame::ipv4(HOSTILE4, HOST4)
}

pub(crate) fn hostile6() -> Frame {
    Frame::ipv6(HOSTILE6, HOST6)
}

pub(crate) fn dns4() -> Frame {
    v4().udp(53, 40000)
}

pub(crate) fn dns6() -> Frame {
    v6().udp(53, 40000)
}

pub(crate) fn hbh() -> Ext {
    Ext::HopByHop { units: 0 }
}

pub(crate) fn opts(units: u8) -> Ext {
    Ext::DestOpts { units }
}

pub(crate) fn frag(offset: u16, more: bool) -> Ext {
    Ext::Fragment { offset, more }
}

/// `n` empty destination-options headers in front of `f`'s upper-layer header.
pub(crate) fn chain(f: Frame, n: usize) -> Frame {
    (0..n).fold(f, |f, _| f.ext(opts(0)))
}

/// Every case is meaningful against [`TABLE_RULES`]: a frame that must not match a port
/// rule carries the port that rule looks for, in the bytes where a careless parser would
/// read it.
///
/// Keep the order: all cases run through one firewall (its counters and fragment table
/// carry over from case to case) and the failure report lists them in this order. It is
/// each topic's list, then the generated cases.
/// Every crafted frame of the table, by name, for tests that judge other rule sets.
pub(crate) fn corpus() -> Vec<(String, Vec<u8>)> {
    verdict_cases()
        .into_iter()
        .map(|c| (c.name, c.frame))
        .collect()
}

fn verdict_cases() -> Vec<Case> {
    let mut cases = parsing::cases();
    cases.extend(ipv6_chains::cases());
    cases.extend(fragments::cases());
    cases.extend(malformed::cases());
    cases.extend(parsing::ihl_cases());
    cases.extend(fragments::first_fragment_length_cases());
    cases.push(malformed::random_case());
    cases
}

fn verdict_name(verdict: u32) -> &'static str {
    match verdict {
        DROP => "DROP",
        PASS => "PASS",
        _ => "?",
    }
}

#[test]
fn verdict_table() {
    if !root_or_skip() {
        return;
    }
    // Unclassifiable packets go to the rules here, so the table shows what the parser read
    // of them; `unclassifiable_policy` checks the default, which drops them.
    let settings = Settings {
        rules: rule_set(TABLE_RULES),
        unclassifiable: Some(Action::Pass),
        ..Settings::default()
    };
    let mut fw = load(&settings);
    let slots = TABLE_RULES.len();
    let cases = verdict_cases();

    let mut failures = Vec::new();
    let mut bytes_seen = 0u64;
    let mut bytes_dropped = 0u64;
    for c in &cases {
        assert!(c.frame.len() >= 14, "{}: test run needs 14 bytes", c.name);
        let before = counters(&fw);
        let hits_before = fw.rule_hits(slots).expect("rule hits");
        let verdict = run(&mut fw, &c.frame);
        let after = counters(&fw);
        let hits_after = fw.rule_hits(slots).expect("rule hits");

        bytes_seen += c.frame.len() as u64;
        if verdict == DROP {
            bytes_dropped += c.frame.len() as u64;
        }
        let moved: Vec<usize> = (0..=slots)
            .filter(|&s| hits_after[s] != hits_before[s])
            .collect();
        let hit = match (moved.as_slice(), after.non_ip - before.non_ip) {
            ([], 1) => Some(Hit::NotIp),
            ([0], 0) => Some(Hit::Default),
            ([slot], 0) => Some(Hit::Rule(*slot as u32)),
            _ => None,
        };
        let malformed = after.malformed - before.malformed;
        let expected_malformed = u64::from(c.expect.malformed);
        let unclassifiable = after.unclassifiable - before.unclassifiable;
        let expected_unclassifiable = u64::from(c.expect.unclassifiable);
        if verdict != c.expect.verdict
            || hit != Some(c.expect.hit)
            || malformed != expected_malformed
            || unclassifiable != expected_unclassifiable
        {
            failures.push(format!(
                "{}:\n    expected {} by {:?}, malformed +{expected_malformed}, \
                 unclassifiable +{expected_unclassifiable}\n    \
                 got      {} by {hit:?} (slots moved {moved:?}), malformed +{malformed}, \
                 unclassifiable +{unclassifiable}\n    \
                 frame {:02x?}",
                c.name,
                verdict_name(c.expect.verdict),
                c.expect.hit,
                verdict_name(verdict),
                c.frame
            ));
        }
        assert_eq!(after.seen, before.seen + 1, "{}: seen", c.name);
    }

    let total = counters(&fw);
    let runs = cases.len() as u64;
    assert_eq!(total.seen, runs, "every run is seen once");
    assert_eq!(total.seen, total.passed + total.dropped, "{total:?}");
    assert_eq!(total.bytes_seen, bytes_seen, "{total:?}");
    assert_eq!(total.bytes_dropped, bytes_dropped, "{total:?}");
    let hits: u64 = fw.rule_hits(slots).expect("rule hits").iter().sum();
    assert_eq!(
        hits + total.non_ip,
        total.seen,
        "each frame moves one slot or non_ip"
    );
    // Default settings capture every drop into an 8 MiB ring: nothing can be lost.
    assert_eq!(total.captured, total.dropped, "{total:?}");
    assert_eq!(total.capture_lost, 0, "{total:?}");

    // `repeat` runs the program that many times: the counters must see each one.
    let frame = Frame::ipv4(PEER4, HOST4).udp(53, 40000).build();
    assert_eq!(run_repeat(&mut fw, &frame, 1000), DROP);
    let after = counters(&fw);
    assert_eq!(after.seen, runs + 1000, "{after:?}");
    assert_eq!(after.dropped, total.dropped + 1000, "{after:?}");
    assert_eq!(after.seen, after.passed + after.dropped, "{after:?}");

    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// Mangled versions of every table frame, plus random frames behind IP and VLAN ethertypes:
/// whatever arrives, the program returns DROP or PASS and its counters add up.
#[test]
fn hostile_frames_never_abort() {
    if !root_or_skip() {
        return;
    }
    let settings = Settings {
        rules: rule_set(TABLE_RULES),
        capture: 0,
        ..Settings::default()
    };
    let mut fw = load(&settings);
    let mut rng = Rng::new(0x0bad_f00d);
    let mut runs = 0u64;
    let bases: Vec<Vec<u8>> = verdict_cases().into_iter().map(|c| c.frame).collect();
    for base in &bases {
        for _ in 0..30 {
            let mut f = base.clone();
            match rng.index(3) {
                0 => {
                    for _ in 0..1 + rng.index(4) {
                        let i = rng.index(f.len());
                        f[i] = rng.next_u64() as u8;
                    }
                }
                1 => f.truncate(14 + rng.index(f.len() - 13)),
                _ => {
                    let extra = 1 + rng.index(64);
                    f.extend(rng.bytes(extra));
                }
            }
            run(&mut fw, &f);
            runs += 1;
        }
    }
    let ethertypes = [0x0800, 0x86dd, 0x8100, 0x88a8];
    for _ in 0..2000 {
        let len = 14 + rng.index(200);
        let mut f = rng.bytes(len);
        let ethertype: u16 = ethertypes[rng.index(ethertypes.len())];
        f[12..14].copy_from_slice(&ethertype.to_be_bytes());
        // Usually a plausible version nibble, so the parser gets past the first check.
        if f.len() > 14 && rng.index(4) != 0 {
            f[14] = if ethertype == 0x86dd {
                0x60
            } else {
                0x40 | (rng.next_u64() as u8 & 0x0f)
            };
        }
        run(&mut fw, &f);
        runs += 1;
    }
    let c = counters(&fw);
    assert_eq!(c.seen, runs, "{c:?}");
    assert_eq!(c.seen, c.passed + c.dropped, "{c:?}");
    let hits: u64 = fw
        .rule_hits(TABLE_RULES.len())
        .expect("rule hits")
        .iter()
        .sum();
    assert_eq!(hits + c.non_ip, c.seen, "{c:?}");
    assert_eq!(
        (c.captured, c.capture_lost),
        (0, 0),
        "capture is off: {c:?}"
    );
}
