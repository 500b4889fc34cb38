//! Packets of the common path whose verdict is not recorded leave the program as soon as
//! the rules are done (`count_unrecorded`): they must be counted exactly as the path that
//! records them counts them. Two firewalls with the verdict table's rules, one recording
//! every verdict and one none, judge every frame of the table's corpus, hostile ones
//! included, under a default of pass and of drop: same verdicts, the same counters (all
//! but recording's), the same hits and bytes per rule, the default's slot included. A rule
//! that asks to be logged is logged even so.

use xdpsieve::configure::{
    loader::{Firewall, Settings},
    rules::Action,
};
use xdpsieve_common::{Counters, capture};
use xdpsieve_testkit::frame::Frame;
use xdpsieve_testkit::gate::root_or_skip;

use crate::support::*;
use crate::verdicts::{self, TABLE_RULES};

/// What judging and counting a packet moves, recording apart.
fn judged(c: &Counters) -> [u64; 12] {
    [
        c.seen(),
        c.passed,
        c.dropped,
        c.malformed,
        c.bytes_seen,
        c.bytes_passed,
        c.bytes_dropped,
        c.non_ip,
        c.unclassifiable,
        c.tiny_fragments,
        c.fragments_followed,
        c.fragment_orphans,
    ]
}

fn per_rule(fw: &Firewall) -> Vec<(u64, u64)> {
    fw.rule_counters(TABLE_RULES.len())
        .expect("rule counters")
        .iter()
        .map(|r| (r.hits, r.bytes))
        .collect()
}

#[test]
fn unrecorded_verdicts_are_counted_as_recorded_ones() {
    if !root_or_skip() {
        return;
    }
    for default in [Action::Pass, Action::Drop] {
        let mut rules = rule_set(TABLE_RULES);
        rules.default_action = default;
        let settings = |capture| Settings {
            rules: rules.clone(),
            capture,
            unclassifiable: Some(Action::Pass),
            ..Settings::default()
        };
        let mut early = load(&settings(0));
        let mut recorded = load(&settings(capture::PASSED | capture::DROPPED));
        let corpus = verdicts::corpus();
        for (name, frame) in &corpus {
            let (a, b) = (run(&mut early, frame), run(&mut recorded, frame));
            assert_eq!(a, b, "{default:?} default, {name}: verdicts differ");
        }
        // The corpus must really exercise the default and the rules.
        let hits = per_rule(&early);
        let by_rules: u64 = hits[1..].iter().map(|h| h.0).sum();
        assert!(
            hits[0].0 >= 10,
            "only {} frames took the default",
            hits[0].0
        );
        assert!(
            by_rules >= 10,
            "only {by_rules} frames were decided by a rule"
        );
        assert_eq!(
            judged(&counters(&early)),
            judged(&counters(&recorded)),
            "{default:?} default: counters differ"
        );
        assert_eq!(per_rule(&early), per_rule(&recorded), "{default:?} default");
        // The recording firewall really took the other path: it tried to record.
        let r = counters(&recorded);
        assert!(
            r.no_reader + r.captured + r.capture_lost > 0,
            "the recording firewall recorded nothing: {r:?}"
        );
        let e = counters(&early);
        assert_eq!(e.no_reader + e.captured + e.capture_lost, 0, "{e:?}");
    }
}

#[test]
fn a_rule_that_asks_to_be_logged_is_logged_when_nothing_else_is() {
    if !root_or_skip() {
        return;
    }
    let mut rules = rule_set(&[
        (Action::Drop, "udp src port 53"),
        (Action::Drop, "udp src port 54"),
    ]);
    rules.rules[0].log = true;
    let mut fw = load(&Settings {
        rules,
        capture: 0,
        log: 0,
        ..Settings::default()
    });
    let mut events = fw.take_event_source().expect("event source");
    let logged = Frame::ipv4(PEER4, HOST4).udp(53, 40000).build();
    let silent = Frame::ipv4(PEER4, HOST4).udp(54, 40000).build();
    assert_eq!(run_repeat(&mut fw, &logged, 7), DROP);
    assert_eq!(run_repeat(&mut fw, &silent, 5), DROP);
    let mut read = 0u64;
    events.drain(|_| read += 1);
    let c = counters(&fw);
    assert_eq!((read, c.events, c.dropped), (7, 7, 12), "{c:?}");
    assert_eq!(per_rule_of(&fw, 2), vec![0, 7, 5]);
}

fn per_rule_of(fw: &Firewall, rules: usize) -> Vec<u64> {
    fw.rule_hits(rules).expect("rule hits")
}
