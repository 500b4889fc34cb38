//! [`TopModel::between`] on hand-made pairs of samples: every rate, order and clamp.

use std::collections::BTreeMap;

use super::*;
use crate::observe::top::sample::TimedEntry;

const SECOND: u64 = 1_000_000_000;

fn rule(id: u32, name: &str, drops: bool, hits: u64, bytes: u64) -> RuleSample {
    RuleSample {
        id,
        name: name.into(),
        action: if drops { "drop" } else { "pass" }.into(),
        drops,
        hits,
        bytes,
        would_drop: None,
        over_limit: None,
    }
}

fn source(addr: &str, dropped: u64, dropped_bytes: u64) -> SourceSample {
    SourceSample {
        addr: addr.parse().unwrap(),
        dropped,
        dropped_bytes,
        would: 0,
        would_bytes: 0,
        limited: 0,
        limited_bytes: 0,
    }
}

fn sample(at_s: u64, rules: Vec<RuleSample>) -> TopSample {
    TopSample {
        interface: "fw0".into(),
        at_ns: 100 * SECOND + at_s * SECOND,
        generation: 1,
        recorder: true,
        rules,
        ..TopSample::default()
    }
}

fn names(model: &TopModel) -> Vec<&str> {
    model.rules.iter().map(|r| r.name.as_str()).collect()
}

#[test]
fn rules_get_rates_per_second_and_the_ones_dropping_most_come_first() {
    let a = sample(
        0,
        vec![
            rule(0, "default", false, 100, 10_000),
            rule(1, "drop dns", true, 1_000, 100_000),
            rule(2, "drop ntp", true, 50, 5_000),
            rule(3, "pass ssh", false, 10, 1_000),
        ],
    );
    let b = sample(
        2,
        vec![
            rule(0, "default", false, 2_100, 210_000),
            rule(1, "drop dns", true, 1_200, 120_000),
            rule(2, "drop ntp", true, 2_050, 205_000),
            rule(3, "pass ssh", false, 10, 1_000),
        ],
    );
    let m = TopModel::between(&a, &b);
    assert_eq!(m.interval_s, 2.0);
    assert_eq!(
        names(&m),
        ["drop ntp", "drop dns", "default", "pass ssh"],
        "droppers by drop rate, then the rest by hits, then in evaluation order"
    );
    let ntp = &m.rules[0];
    assert_eq!(
        (ntp.hits_pps, ntp.hits_bytes_per_s, ntp.dropped_pps),
        (1000.0, 100_000.0, 1000.0)
    );
    assert_eq!(ntp.hits, 2_050);
    let default = &m.rules[2];
    assert_eq!((default.hits_pps, default.dropped_pps), (1000.0, 0.0));
    assert_eq!(default.action, "pass");
    assert_eq!(m.rules[3].hits_pps, 0.0);
    assert_eq!((ntp.would_drop_pps, ntp.over_limit_pps), (None, None));
}

#[test]
fn totals_are_rates_too() {
    let mut a = sample(0, vec![]);
    let mut b = sample(4, vec![]);
    a.traffic = Traffic {
        seen: 100,
        dropped: 60,
        passed: 40,
        bytes_seen: 1_000,
        bytes_dropped: 600,
        bytes_passed: 400,
    };
    b.traffic = Traffic {
        seen: 500,
        dropped: 360,
        passed: 140,
        bytes_seen: 9_000,
        bytes_dropped: 6_600,
        bytes_passed: 2_400,
    };
    let t = TopModel::between(&a, &b).traffic;
    assert_eq!(
        (t.seen_pps, t.dropped_pps, t.passed_pps),
        (100.0, 75.0, 25.0)
    );
    assert_eq!(
        (
            t.seen_bytes_per_s,
            t.dropped_bytes_per_s,
            t.passed_bytes_per_s
        ),
        (2000.0, 1500.0, 500.0)
    );
}

#[test]
fn samples_out_of_order_or_at_one_instant_give_zero_rates_not_a_panic() {
    let a = sample(5, vec![rule(1, "drop dns", true, 10, 100)]);
    let b = sample(5, vec![rule(1, "drop dns", true, 20, 200)]);
    let m = TopModel::between(&a, &b);
    assert_eq!((m.interval_s, m.rules[0].hits_pps), (0.0, 0.0));
    let m = TopModel::between(&b, &a);
    assert_eq!((m.interval_s, m.rules[0].hits_pps), (0.0, 0.0));
    let m = TopModel::between(&sample(6, vec![]), &sample(1, vec![]));
    assert_eq!(m.interval_s, 0.0);
}

#[test]
fn counters_that_went_backwards_count_as_nothing() {
    let a = sample(0, vec![rule(1, "drop dns", true, 1_000, 50_000)]);
    let b = sample(1, vec![rule(1, "drop dns", true, 10, 500)]);
    let m = TopModel::between(&a, &b);
    assert_eq!(
        (m.rules[0].hits_pps, m.rules[0].hits_bytes_per_s),
        (0.0, 0.0)
    );
}

#[test]
fn rules_are_matched_by_name_through_a_reload() {
    // The reload put a rule before "drop dns" (its id changed), dropped "drop ntp" and
    // added one: counters follow names, so "drop dns" keeps its baseline; the new rule
    // started from zero during the interval.
    let a = sample(
        0,
        vec![
            rule(0, "default", false, 0, 0),
            rule(1, "drop dns", true, 1_000, 0),
            rule(2, "drop ntp", true, 500, 0),
        ],
    );
    let mut b = sample(
        1,
        vec![
            rule(0, "default", false, 0, 0),
            rule(1, "drop snmp", true, 30, 0),
            rule(2, "drop dns", true, 1_100, 0),
        ],
    );
    b.generation = 2;
    let m = TopModel::between(&a, &b);
    assert_eq!(m.generation, 2);
    assert_eq!(names(&m), ["drop dns", "drop snmp", "default"]);
    assert_eq!((m.rules[0].id, m.rules[0].hits_pps), (2, 100.0));
    assert_eq!(m.rules[1].hits_pps, 30.0);
}

#[test]
fn rules_of_one_name_are_told_apart_by_their_order_and_the_default_by_its_id() {
    let a = sample(
        0,
        vec![
            rule(0, "default", true, 10, 0),
            rule(1, "default", true, 1_000, 0),
            rule(2, "drop dns", true, 100, 0),
            rule(3, "drop dns", true, 200, 0),
        ],
    );
    let b = sample(
        1,
        vec![
            rule(0, "default", true, 15, 0),
            rule(1, "default", true, 1_001, 0),
            rule(2, "drop dns", true, 140, 0),
            rule(3, "drop dns", true, 220, 0),
        ],
    );
    let m = TopModel::between(&a, &b);
    let by_id: BTreeMap<u32, f64> = m.rules.iter().map(|r| (r.id, r.hits_pps)).collect();
    assert_eq!(
        by_id,
        BTreeMap::from([(0, 5.0), (1, 1.0), (2, 40.0), (3, 20.0)])
    );
}

#[test]
fn would_drop_and_over_limit_rates_count_in_the_order_when_a_program_has_them() {
    let mut monitor = rule(1, "monitor dns", false, 0, 0);
    let mut limit = rule(2, "limit syn", true, 0, 0);
    monitor.would_drop = Some(100);
    limit.over_limit = Some(1_000);
    let a = sample(
        0,
        vec![
            monitor.clone(),
            limit.clone(),
            rule(3, "drop x", true, 0, 0),
        ],
    );
    monitor.would_drop = Some(400);
    limit.over_limit = Some(1_200);
    limit.hits = 200;
    // A rule whose counter appeared only now (a reload made it a monitor rule).
    let mut late = rule(3, "drop x", true, 10, 0);
    late.would_drop = Some(50);
    let b = sample(1, vec![monitor, limit, late]);
    let m = TopModel::between(&a, &b);
    assert_eq!(names(&m), ["limit syn", "monitor dns", "drop x"]);
    assert_eq!(m.rules[0].over_limit_pps, Some(200.0));
    assert_eq!(m.rules[0].activity(), 400.0);
    assert_eq!(m.rules[1].would_drop_pps, Some(300.0));
    assert_eq!(m.rules[1].dropped_pps, 0.0);
    assert_eq!(m.rules[2].would_drop_pps, Some(50.0));
    assert_eq!(m.rules[2].over_limit_pps, None);
}

#[test]
fn sources_by_packets_then_bytes_then_address_quiet_and_evicted_ones_left_out() {
    let mut a = sample(0, vec![]);
    let mut b = sample(2, vec![]);
    a.sources_tracked = true;
    b.sources_tracked = true;
    a.sources = vec![
        source("198.51.100.1", 100, 10_000),
        source("198.51.100.2", 100, 10_000),
        // Evicted and counted again since: smaller than before.
        source("198.51.100.3", 5_000, 500_000),
        source("203.0.113.9", 7, 700),
    ];
    let mut limited = source("2001:db8::1", 0, 0);
    limited.limited = 400;
    limited.limited_bytes = 24_000;
    limited.would = 100;
    limited.would_bytes = 6_000;
    b.sources = vec![
        source("198.51.100.1", 300, 20_000),
        source("198.51.100.2", 300, 50_000),
        source("198.51.100.3", 40, 4_000),
        // Quiet during the interval.
        source("203.0.113.9", 7, 700),
        // New: counted from zero.
        source("192.0.2.200", 200, 100_000),
        // As fast as .1 in packets and bytes: the lower address first.
        source("198.51.100.0", 200, 10_000),
        limited,
    ];
    let m = TopModel::between(&a, &b);
    assert!(m.sources_tracked);
    let order: Vec<String> = m.sources.iter().map(|s| s.addr.to_string()).collect();
    assert_eq!(
        order,
        [
            "2001:db8::1",
            "192.0.2.200",
            "198.51.100.2",
            "198.51.100.0",
            "198.51.100.1"
        ]
    );
    let v6 = &m.sources[0];
    assert_eq!(
        (
            v6.pps,
            v6.bytes_per_s,
            v6.dropped_pps,
            v6.would_pps,
            v6.limited_pps
        ),
        (250.0, 15_000.0, 0.0, 50.0, 200.0)
    );
    assert_eq!(
        (m.sources[1].pps, m.sources[1].bytes_per_s),
        (100.0, 50_000.0)
    );
    assert_eq!(
        (m.sources[2].pps, m.sources[2].bytes_per_s),
        (100.0, 20_000.0)
    );
    assert_eq!(
        (m.sources[4].pps, m.sources[4].bytes_per_s),
        (100.0, 5_000.0)
    );
    let top2 = m.with_top(2);
    assert_eq!(top2.sources.len(), 2);
    assert_eq!(top2.sources[1].addr.to_string(), "192.0.2.200");
}

#[test]
fn a_program_without_per_source_counts_says_so() {
    let m = TopModel::between(&sample(0, vec![]), &sample(1, vec![]));
    assert!(!m.sources_tracked);
    assert!(m.sources.is_empty());
}

#[test]
fn bans_come_soonest_first_with_their_time_left_from_the_later_sample() {
    let a = sample(0, vec![]);
    let mut b = sample(10, vec![]);
    let timed = |prefix: &str, expires_ns: u64| TimedEntry {
        set: "banned".into(),
        prefix: prefix.into(),
        origin: "runtime".into(),
        expires_ns,
    };
    b.timed = vec![
        timed("198.51.100.7/32", b.at_ns + 600 * SECOND),
        timed("203.0.113.0/24", b.at_ns + 1_500_000_000),
        // Overdue: no recorder has expired it yet.
        timed("2001:db8::/32", b.at_ns - SECOND),
        timed("192.0.2.1/32", b.at_ns + 1_500_000_000),
    ];
    let m = TopModel::between(&a, &b);
    let got: Vec<(&str, u64)> = m
        .bans
        .iter()
        .map(|x| (x.prefix.as_str(), x.expires_in_ms))
        .collect();
    assert_eq!(
        got,
        [
            ("2001:db8::/32", 0),
            ("192.0.2.1/32", 1_500),
            ("203.0.113.0/24", 1_500),
            ("198.51.100.7/32", 600_000)
        ]
    );
    assert_eq!(m.bans[0].origin, "runtime");
}

#[test]
fn losses_keep_their_totals_and_grow_at_their_rate() {
    let mut a = sample(0, vec![]);
    let mut b = sample(2, vec![]);
    a.losses = BTreeMap::from([("capture_lost".into(), 10), ("no_reader".into(), 0)]);
    b.losses = BTreeMap::from([
        ("capture_lost".into(), 110),
        ("no_reader".into(), 0),
        // A recorder that published its counts only now.
        ("capture_not_written".into(), 4),
    ]);
    let m = TopModel::between(&a, &b);
    let got: Vec<(&str, u64, f64)> = m
        .losses
        .iter()
        .map(|l| (l.key.as_str(), l.total, l.per_s))
        .collect();
    assert_eq!(
        got,
        [
            ("capture_lost", 110, 50.0),
            ("capture_not_written", 4, 2.0),
            ("no_reader", 0, 0.0)
        ]
    );
}
