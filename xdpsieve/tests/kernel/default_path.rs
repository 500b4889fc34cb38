//! Packets no rule matches leave the program early when their verdict is not recorded
//! (the common path's `count_default`): they must be counted exactly as the path that
//! records them counts them. Two firewalls with the verdict table's rules, one recording
//! the default verdict and one not, judge every frame of the table's corpus, hostile ones
//! included, under a default of pass and of drop: same verdicts, the same counters (all
//! but recording's), the same hits and bytes per rule, the default's slot included.

use xdpsieve::configure::{
    loader::{Firewall, Settings},
    rules::Action,
};
use xdpsieve_common::{Counters, capture};
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
fn the_unrecorded_default_is_counted_as_the_recorded_one() {
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
        let mut defaults = 0;
        for (name, frame) in &corpus {
            let hits_before = per_rule(&early)[0].0;
            let (a, b) = (run(&mut early, frame), run(&mut recorded, frame));
            assert_eq!(a, b, "{default:?} default, {name}: verdicts differ");
            defaults += per_rule(&early)[0].0 - hits_before;
        }
        // The corpus must really exercise the default (no rule matched) on both sides.
        assert!(defaults >= 10, "only {defaults} frames took the default");
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
