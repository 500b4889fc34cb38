//! Rules written without a direction (`udp port 53`, `host A and port 53`): the kernel
//! rules they become decide frames in either direction with the written rule's verdict,
//! each frame moving exactly one slot, and every record and every summed count carries the
//! one rule id.

use xdpsieve::{configure::loader::Settings, configure::rules::Action, read::record::Verdict};
use xdpsieve_common::capture;
use xdpsieve_testkit::{frame::Frame, gate::root_or_skip};

use crate::support::*;

#[test]
fn a_port_without_direction_drops_both_ways_under_one_rule_id() {
    if !root_or_skip() {
        return;
    }
    let rules = rule_set(&[(Action::Drop, "udp port 53"), (Action::Pass, "udp")]);
    let kernel_rules = rules.rules.len();
    assert_eq!(
        kernel_rules, 3,
        "two kernel rules for `udp port 53`, one for `udp`"
    );
    let settings = Settings {
        rules: rules.clone(),
        capture: capture::DROPPED,
        ..Settings::default()
    };
    let mut fw = load(&settings);
    let mut ring = fw.take_capture_source().expect("capture source");
    let v4 = || Frame::ipv4(HOST4, RESOLVER4);
    let v6 = || Frame::ipv6(HOST6, PEER6);
    let cases = [
        ("answer from port 53", v4().udp(53, 40000), plain(DROP, 1)),
        ("query to port 53", v4().udp(40000, 53), plain(DROP, 2)),
        (
            "53 to 53 (the source form comes first)",
            v4().udp(53, 53),
            plain(DROP, 1),
        ),
        ("ipv6 answer", v6().udp(53, 40000), plain(DROP, 1)),
        ("ipv6 query", v6().udp(40000, 53), plain(DROP, 2)),
        ("udp elsewhere", v4().udp(40000, 54), plain(PASS, 3)),
        (
            "tcp to 53 (the rule is udp)",
            v4().tcp(40000, 53),
            plain(PASS, 0),
        ),
    ];
    for (what, frame, expected) in &cases {
        assert_eq!(&step(&mut fw, kernel_rules, frame), expected, "{what}");
    }
    // Both directions are one rule: the captures name id 1 alone, and its kernel rules'
    // counts sum to every frame it dropped.
    let records = drain(&mut ring);
    assert_eq!(records.len(), 5, "{records:?}");
    assert!(
        records
            .iter()
            .all(|r| r.rule_id == 1 && r.verdict == Verdict::Drop)
    );
    let snapshot = fw.snapshot(kernel_rules, 0).expect("snapshot");
    let written = rules.written();
    assert_eq!(written.len(), 2);
    assert_eq!((written[0].0.id, written[0].1.clone()), (1, 0..2));
    assert_eq!(snapshot.rules_summed(written[0].1.clone()).hits, 5);
    assert_eq!(snapshot.rules_summed(written[1].1.clone()).hits, 1);
}

#[test]
fn an_address_and_a_port_without_direction_match_every_pairing() {
    if !root_or_skip() {
        return;
    }
    let rules = rule_set(&[(Action::Drop, "udp and host 198.51.100.7 and port 53")]);
    assert_eq!(rules.rules.len(), 4);
    let mut fw = load(&Settings {
        rules: rules.clone(),
        ..Settings::default()
    });
    let cases = [
        (
            "from the host, from port 53",
            Frame::ipv4(HOSTILE4, HOST4).udp(53, 40000),
            plain(DROP, 1),
        ),
        (
            "from the host, to port 53",
            Frame::ipv4(HOSTILE4, HOST4).udp(40000, 53),
            plain(DROP, 2),
        ),
        (
            "to the host, from port 53",
            Frame::ipv4(HOST4, HOSTILE4).udp(53, 40000),
            plain(DROP, 3),
        ),
        (
            "to the host, to port 53",
            Frame::ipv4(HOST4, HOSTILE4).udp(40000, 53),
            plain(DROP, 4),
        ),
        (
            "the host, not port 53",
            Frame::ipv4(HOSTILE4, HOST4).udp(40000, 54),
            plain(PASS, 0),
        ),
        (
            "port 53, not the host",
            Frame::ipv4(HOST4, PEER4).udp(40000, 53),
            plain(PASS, 0),
        ),
    ];
    for (what, frame, expected) in &cases {
        assert_eq!(&step(&mut fw, 4, frame), expected, "{what}");
    }
    let snapshot = fw.snapshot(4, 0).expect("snapshot");
    assert_eq!(snapshot.rules_summed(0..4).hits, 4);
    assert!(rules.rules.iter().all(|r| r.id == 1));
}
