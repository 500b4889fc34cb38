//! The banner on real kernel set maps (the fixtures of `instance::sets::tests`): caps,
//! the allow-set both ways (a /24 key holding an allowed address), renewal, and the
//! operator's own entries left alone. Needs root (skipped otherwise).

use std::time::{Duration, Instant};

use xdpsieve_common::{
    family,
    sets::{ENTRY_FREE, ORIGIN_BAN},
    walk::LimitNotice,
};

use super::*;
use crate::instance::sets::tests::{generation_of, root};

const SEC: u64 = 1_000_000_000;

fn rules(extra: &str) -> RuleSet {
    let text = format!(
        "[[set]]\nname = \"banned\"\nprefixes = []\n[[set]]\nname = \"friends\"\n\
         prefixes = [\"192.0.2.0/25\", \"203.0.113.9\"]\n\
         [[rule]]\naction = \"drop\"\nsrc = \"@banned\"\n\
         [[rule]]\nname = \"flood\"\naction = \"limit\"\nrate = \"10/s\"\nper = \"src\"\n\
         ban = \"60s\"\nban_set = \"banned\"\nallow_set = \"friends\"\n{extra}\n"
    );
    RuleSet::from_toml(&text, "test").expect("rules")
}

fn notice(addr: [u8; 4], len: u8) -> LimitNotice {
    LimitNotice {
        timestamp_ns: 3 * SEC,
        seen: 3000,
        first_ns: SEC,
        rule_id: 2,
        generation: 1,
        family: family::IPV4,
        prefix_len: len,
        _pad: [0; 6],
        addr: [u32::from_ne_bytes(addr), 0, 0, 0],
    }
}

/// The friends set as the rule file has it (index 1), and an operator's ban (index 0).
fn generation() -> Generation {
    generation_of(
        &[
            (1, "192.0.2.0/25"),
            (1, "203.0.113.9"),
            (0, "198.51.100.99"),
        ],
        4096,
        256,
    )
}

fn bans(generation: &Generation) -> Vec<(String, u64)> {
    generation
        .used_entries()
        .iter()
        .filter(|e| e.state != ENTRY_FREE && e.origin == ORIGIN_BAN)
        .map(|e| (show(&entry_prefix(e)), e.expires_ns))
        .collect()
}

#[test]
fn a_ban_is_made_logged_and_renewed_with_its_origin() {
    if !root() {
        return;
    }
    let mut generation = generation();
    let mut banner = Banner::new(&rules(""), 1);
    let t = Instant::now();
    banner.push(notice([198, 51, 100, 7], 32));
    let events = banner.apply(&mut generation, 100 * SEC, t);
    assert_eq!(
        events,
        vec![BanEvent {
            rule: "flood".into(),
            rule_id: 2,
            set: "banned".into(),
            key: "198.51.100.7/32".into(),
            rate_seen_pps: 1500.0,
            expires_ns: 160 * SEC,
            expires_in_ms: 60_000,
            renewed: false,
        }]
    );
    assert_eq!(
        bans(&generation),
        vec![("198.51.100.7/32".into(), 160 * SEC)]
    );
    // Told again later: the same entry, a later end.
    banner.push(notice([198, 51, 100, 7], 32));
    let events = banner.apply(&mut generation, 130 * SEC, t);
    assert!(events[0].renewed);
    assert_eq!(
        bans(&generation),
        vec![("198.51.100.7/32".into(), 190 * SEC)]
    );
    // The operator's entry in the ban set is theirs: not renewed, not made a ban.
    banner.push(notice([198, 51, 100, 99], 32));
    assert!(banner.apply(&mut generation, 130 * SEC, t).is_empty());
    // A notice of rules a reload replaced bans nothing.
    let mut old = notice([198, 51, 100, 8], 32);
    old.generation = 0;
    banner.push(old);
    assert!(banner.apply(&mut generation, 130 * SEC, t).is_empty());
    let s = banner.stats();
    assert_eq!(
        (
            s.bans_added,
            s.bans_renewed,
            s.bans_already_listed,
            s.bans_stale
        ),
        (1, 1, 1, 1)
    );
    assert_eq!(bans(&generation).len(), 1);
}

#[test]
fn keys_overlapping_the_allow_set_either_way_are_never_banned() {
    if !root() {
        return;
    }
    let mut generation = generation();
    let mut banner = Banner::new(&rules(""), 1);
    let t = Instant::now();
    // Inside an allowed prefix; a /24 holding an allowed /25; a /24 holding an allowed
    // address; then one that touches nothing allowed.
    for (addr, len) in [
        ([192, 0, 2, 7], 32),
        ([192, 0, 2, 0], 24),
        ([203, 0, 113, 0], 24),
        ([198, 51, 100, 0], 24),
    ] {
        banner.push(notice(addr, len));
    }
    let events = banner.apply(&mut generation, SEC, t);
    assert_eq!(
        events.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(),
        ["198.51.100.0/24"]
    );
    assert_eq!(banner.stats().bans_allow_skipped, 3);
    assert_eq!(bans(&generation).len(), 1);
}

#[test]
fn ban_rate_and_ban_max_bound_the_bans_and_are_counted() {
    if !root() {
        return;
    }
    let mut generation = generation();
    let mut banner = Banner::new(&rules("ban_rate = 2\nban_max = 3"), 1);
    let t = Instant::now();
    for i in 1..=4 {
        banner.push(notice([198, 51, 100, i], 32));
    }
    banner.apply(&mut generation, SEC, t);
    let s = banner.stats();
    assert_eq!((s.bans_added, s.bans_rate_capped), (2, 2), "2 per second");
    // A second later: one more fits the total of 3, the next does not.
    for i in 3..=4 {
        banner.push(notice([198, 51, 100, i], 32));
    }
    banner.apply(&mut generation, 2 * SEC, t + Duration::from_secs(1));
    let s = banner.stats();
    assert_eq!((s.bans_added, s.bans_total_capped), (3, 1));
    assert_eq!(bans(&generation).len(), 3);
    // A renewal is never capped.
    banner.push(notice([198, 51, 100, 1], 32));
    banner.apply(&mut generation, 3 * SEC, t + Duration::from_secs(1));
    assert_eq!(banner.stats().bans_renewed, 1);
    // Expired bans stop counting toward ban_max.
    banner.push(notice([198, 51, 100, 9], 32));
    banner.apply(&mut generation, 1000 * SEC, t + Duration::from_secs(5));
    assert_eq!(banner.stats().bans_added, 4);
}
