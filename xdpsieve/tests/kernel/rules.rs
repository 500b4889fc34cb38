//! Rule sets: a default drop with pass rules (and what it must not let through), the same
//! rules from a TOML file and from expressions, and the full `MAX_RULES` table keeping
//! first-match order across every word of the rule bitmaps.

use xdpsieve::{
    configure::loader::Settings,
    configure::rules::{Action, RuleSet},
    read::record::Verdict,
};
use xdpsieve_common::capture;
use xdpsieve_testkit::frame::{self, Ext, Frame};
use xdpsieve_testkit::gate::root_or_skip;

use crate::support::*;

#[test]
fn default_drop_with_pass_rules() {
    if !root_or_skip() {
        return;
    }
    let mut rules = rule_set(&[(Action::Pass, "udp dst port 53"), (Action::Pass, "icmp")]);
    rules.default_action = Action::Drop;
    let settings = Settings {
        rules,
        capture: capture::DROPPED,
        ..Settings::default()
    };
    let mut fw = load(&settings);
    let mut ring = fw.take_capture_source().expect("capture source");
    let v4 = || Frame::ipv4(HOST4, PEER4);
    let v6 = || Frame::ipv6(HOST6, PEER6);
    let query = || v4().udp(40000, 53);

    let cases = [
        ("dns query", query().build(), PASS),
        (
            "dns query over 802.1Q",
            query().vlan(frame::ETH_P_8021Q).build(),
            PASS,
        ),
        ("udp to another port", v4().udp(40000, 54).build(), DROP),
        ("tcp to port 53", v4().tcp(40000, 53).build(), DROP),
        ("icmp", v4().icmp().build(), PASS),
        (
            "icmp6 (the pass rule is icmp only)",
            v6().icmp6().build(),
            DROP,
        ),
        ("ipv6 dns query", v6().udp(40000, 53).build(), PASS),
        ("arp", Frame::arp().build(), PASS),
        (
            "arp over 802.1ad",
            Frame::arp().vlan(frame::ETH_P_8021AD).build(),
            PASS,
        ),
        // A port pass rule must not open the door to fragments or cut headers.
        (
            "ipv4 non-first fragment, looks like a query",
            query().fragment(185, false).build(),
            DROP,
        ),
        (
            "ipv6 non-first fragment, looks like a query",
            v6().udp(40000, 53)
                .ext(Ext::Fragment {
                    offset: 185,
                    more: false,
                })
                .build(),
            DROP,
        ),
        (
            "query with udp header cut",
            query().truncate(14 + 20 + 4).build(),
            DROP,
        ),
        // Fail-open, as documented: no readable IP header means pass even under default drop.
        ("ipv4 IHL 4", query().ihl(4).build(), PASS),
        (
            "three VLAN tags",
            v4().tcp(40000, 22)
                .vlan(0x88a8)
                .vlan(0x8100)
                .vlan(0x8100)
                .build(),
            PASS,
        ),
    ];
    let mut default_drops = 0;
    for (name, frame, expected) in &cases {
        assert_eq!(run(&mut fw, frame), *expected, "{name}");
        if *expected == DROP {
            default_drops += 1;
        }
    }
    let hits = fw.rule_hits(2).expect("rule hits");
    assert_eq!(hits[1], 3, "udp dst port 53 passes: {hits:?}");
    assert_eq!(hits[2], 1, "icmp passes: {hits:?}");
    assert_eq!(
        hits[0], default_drops,
        "the rest fall to the default: {hits:?}"
    );
    let records = drain(&mut ring);
    assert_eq!(records.len() as u64, default_drops);
    assert!(
        records
            .iter()
            .all(|r| r.rule_id == 0 && r.verdict == Verdict::Drop),
        "{records:?}"
    );
}

const TOML_RULES: &str = r#"
default = "pass"

[[rule]]
id = 42
name = "dns-responses"
action = "drop"
protocol = "udp"
src_port = 53

[[rule]]
name = "hostile-net"
action = "drop"
src = "198.51.100.0/24"
"#;

/// The same rules from a TOML file and from command-line expressions give the same verdicts,
/// and captures carry the file's rule ids.
#[test]
fn toml_rules_match_cli_rules() {
    if !root_or_skip() {
        return;
    }
    let toml = RuleSet::from_toml(TOML_RULES, "kernel-test.toml").expect("TOML rules");
    let cli = rule_set(&[
        (Action::Drop, "udp src port 53"),
        (Action::Drop, "src net 198.51.100.0/24"),
    ]);
    let load_with = |rules: &RuleSet| {
        load(&Settings {
            rules: rules.clone(),
            capture: capture::DROPPED,
            ring_bytes: 1 << 16,
            ..Settings::default()
        })
    };
    let mut from_toml = load_with(&toml);
    let mut from_cli = load_with(&cli);
    let mut toml_ring = from_toml.take_capture_source().expect("capture source");

    let frames = [
        (
            Frame::ipv4(PEER4, HOST4).udp(53, 40000).build(),
            DROP,
            Some("dns-responses"),
        ),
        (
            Frame::ipv4(HOSTILE4, HOST4).tcp(40000, 80).build(),
            DROP,
            Some("hostile-net"),
        ),
        (
            Frame::ipv6(PEER6, HOST6).udp(53, 40000).build(),
            DROP,
            Some("dns-responses"),
        ),
        (Frame::ipv4(PEER4, HOST4).udp(40000, 53).build(), PASS, None),
        (
            Frame::ipv4(PEER4, HOST4)
                .udp(53, 40000)
                .fragment(185, false)
                .build(),
            PASS,
            None,
        ),
    ];
    for (frame, expected, _) in &frames {
        assert_eq!(run(&mut from_toml, frame), *expected);
        assert_eq!(run(&mut from_cli, frame), *expected);
    }
    assert_eq!(
        from_toml.rule_hits(2).expect("rule hits"),
        from_cli.rule_hits(2).expect("rule hits")
    );
    let names: Vec<_> = drain(&mut toml_ring)
        .iter()
        .map(|r| toml.name_of(r.rule_id).map(str::to_owned))
        .collect();
    let expected: Vec<_> = frames
        .iter()
        .filter_map(|(_, _, name)| name.map(|n| Some(n.to_owned())))
        .collect();
    assert_eq!(names, expected, "captured rule ids name the file's rules");
}

/// The full rule table loads and keeps first-match order at both ends, across every word
/// of the rule bitmaps.
#[test]
fn full_rule_table_loads_and_first_match_wins() {
    if !root_or_skip() {
        return;
    }
    use xdpsieve_common::MAX_RULES;
    let mut rules = RuleSet::default();
    for i in 0..MAX_RULES - 1 {
        // Distinct ports: only the frame's own port matches.
        rules
            .push_expression(Action::Drop, &format!("tcp dst port {}", 10_000 + i))
            .expect("rule");
    }
    rules
        .push_expression(Action::Pass, "tcp")
        .expect("last rule");
    let settings = Settings {
        rules,
        capture: capture::DROPPED | capture::PASSED,
        log: capture::DROPPED | capture::PASSED,
        ..Settings::default()
    };
    let mut fw = load(&settings);
    let first = Frame::ipv4(PEER4, HOST4).tcp(40000, 10_000).build();
    let middle = Frame::ipv4(PEER4, HOST4)
        .tcp(40000, 10_000 + (MAX_RULES / 2) as u16)
        .build();
    let last_drop = Frame::ipv4(PEER4, HOST4)
        .tcp(40000, 10_000 + (MAX_RULES - 2) as u16)
        .build();
    let none = Frame::ipv4(PEER4, HOST4).tcp(40000, 9_999).build();
    assert_eq!(run(&mut fw, &first), DROP);
    assert_eq!(run(&mut fw, &middle), DROP);
    assert_eq!(run(&mut fw, &last_drop), DROP);
    // Matches only the catch-all `pass tcp` rule, the last of MAX_RULES.
    assert_eq!(run(&mut fw, &none), PASS);
    let hits = fw.rule_hits(MAX_RULES as usize).expect("rule hits");
    assert_eq!(hits[1], 1, "first rule");
    assert_eq!(hits[1 + (MAX_RULES / 2) as usize], 1, "middle rule");
    assert_eq!(hits[(MAX_RULES - 1) as usize], 1, "last drop rule");
    assert_eq!(hits[MAX_RULES as usize], 1, "catch-all");
}

/// With many rules the scan reads only the words every field's summary claims: a word
/// both fields have rules in, but no rule in common, is passed over, and the first rule
/// in all of them still wins. Rule `64 w + b` is `tcp src port S and dst port D` with
/// S = 7 in the low half of each word and 8 in the high half, and D = 10000 only in the
/// high halves of words 3 and 9 and at rule 970 (word 15, bit 10).
#[test]
fn the_summaries_pass_over_words_whose_rules_the_fields_do_not_share() {
    if !root_or_skip() {
        return;
    }
    use xdpsieve_common::MAX_RULES;
    let mut rules = RuleSet::default();
    for i in 0..MAX_RULES {
        let (w, b) = (i / 64, i % 64);
        let src = if b < 32 { 7 } else { 8 };
        let dst = if (b >= 32 && (w == 3 || w == 9)) || i == 970 {
            10_000
        } else {
            10_001 + i
        };
        rules
            .push_expression(
                Action::Drop,
                &format!("tcp src port {src} and dst port {dst}"),
            )
            .expect("rule");
    }
    let mut fw = load(&Settings {
        rules,
        ..Settings::default()
    });
    // Words 3 and 9 hold rules of both fields, none in common: rule 970 decides.
    let low = Frame::ipv4(PEER4, HOST4).tcp(7, 10_000).build();
    // The high half of word 3 comes first.
    let high = Frame::ipv4(PEER4, HOST4).tcp(8, 10_000).build();
    // A destination port no rule names: no word left.
    let none = Frame::ipv4(PEER4, HOST4).tcp(7, 9_999).build();
    // A rule of its own in word 12 (bit 5).
    let own = Frame::ipv4(PEER4, HOST4).tcp(7, 10_001 + 773).build();
    assert_eq!(run(&mut fw, &low), DROP);
    assert_eq!(run(&mut fw, &high), DROP);
    assert_eq!(run(&mut fw, &none), PASS);
    assert_eq!(run(&mut fw, &own), DROP);
    let hits = fw.rule_hits(MAX_RULES as usize).expect("rule hits");
    let hit: Vec<usize> = (1..=MAX_RULES as usize).filter(|&s| hits[s] > 0).collect();
    // Slots are rule index + 1.
    assert_eq!(
        hit,
        [3 * 64 + 32 + 1, 773 + 1, 970 + 1],
        "the rules that decided"
    );
    assert_eq!(hits[0], 1, "the default took the frame no rule matched");
}
