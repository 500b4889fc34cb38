//! Rules that let evaluation go on (`xdpsieve_common::walk`): monitor rules and limit
//! rules, judged in the kernel.
//!
//! Monitor mode is checked against its definition on every frame of the verdict table:
//! with rule `i` in monitor mode the firewall gives every frame the verdict of the same
//! rules without rule `i`, and marks exactly the frames that rule `i`, enforced, drops.
//! Limits are checked by their counts: a burst passes, the rest is over the limit, keys
//! are what `per` says, within-budget packets go on to the next rule, and two CPUs
//! charging one bucket at once never pass more than its budget.

use std::os::fd::{AsFd as _, AsRawFd as _};

use xdpsieve::{
    configure::loader::{Firewall, Settings},
    configure::rules::{Action, RuleSet, limit::Mode},
    read::record::CaptureRecord,
};
use xdpsieve_common::{capture, verdict};
use xdpsieve_testkit::frame::Frame;
use xdpsieve_testkit::gate::root_or_skip;

use crate::support::*;
use crate::verdicts::{TABLE_RULES, corpus};

fn table(monitor: Option<usize>, without: Option<usize>) -> RuleSet {
    let rules: Vec<(Action, &str)> = TABLE_RULES
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != without)
        .map(|(_, r)| *r)
        .collect();
    let mut set = rule_set(&rules);
    if let Some(i) = monitor {
        set.rules[i].mode = Mode::Monitor;
    }
    set
}

fn firewall(rules: RuleSet) -> Firewall {
    load(&Settings {
        rules,
        unclassifiable: Some(Action::Pass),
        capture: capture::DROPPED,
        ..Settings::default()
    })
}

/// For each drop rule of the table in turn: monitor mode changes no verdict (the frames
/// get what the rules without it give), and the frames it marks (its would-hit count
/// moves, its capture record carries its id) are exactly those its enforcing twin drops.
#[test]
fn a_monitor_rule_marks_exactly_what_its_enforcing_twin_drops() {
    if !root_or_skip() {
        return;
    }
    let frames = corpus();
    let slots = TABLE_RULES.len();
    for (i, (action, expr)) in TABLE_RULES.iter().enumerate() {
        if *action != Action::Drop {
            continue;
        }
        let slot = i + 1;
        let id = slot as u32;
        let mut monitor = firewall(table(Some(i), None));
        let mut enforce = firewall(table(None, None));
        let mut without = firewall(table(None, Some(i)));
        let mut ring = monitor.take_capture_source().expect("capture source");
        let mut failures = Vec::new();
        for (name, frame) in &frames {
            let would_before = monitor
                .snapshot(slots, 0)
                .expect("counters")
                .rule_extra(slot);
            let hits_before = enforce.rule_hits(slots).expect("hits")[slot];
            let got = run(&mut monitor, frame);
            let twin = run(&mut enforce, frame);
            let reference = run(&mut without, frame);
            let marked = monitor
                .snapshot(slots, 0)
                .expect("counters")
                .rule_extra(slot)
                .would_hit
                != would_before.would_hit;
            let twin_dropped =
                enforce.rule_hits(slots).expect("hits")[slot] != hits_before && twin == DROP;
            let mut records = Vec::new();
            ring.drain(|bytes| {
                let r = CaptureRecord::decode(bytes).expect("a capture record");
                records.push((r.rule_id, r.shadow_rule_id, r.verdict.raw()));
            });
            let record_marked = records.iter().any(|&(_, shadow, _)| shadow == id);
            if got != reference || marked != twin_dropped || record_marked != twin_dropped {
                failures.push(format!(
                    "{name}: monitor {got}, without the rule {reference}; marked {marked}, \
                     recorded as marked {record_marked}, enforced twin dropped {twin_dropped}; \
                     records {records:?}"
                ));
            }
            if twin_dropped {
                // The mark's record: its own verdict, the rule that decided, the mark.
                let expected_rule = if got == DROP { None } else { Some(0) };
                if let Some(rule_id) = expected_rule {
                    assert!(
                        records.contains(&(rule_id, id, verdict::PASS)),
                        "{name}: {records:?}"
                    );
                }
            }
        }
        assert!(
            failures.is_empty(),
            "rule {id} `{expr}` in monitor mode:\n{}",
            failures.join("\n")
        );
    }
}

/// Rules from TOML (limit rules have no expression form of their own).
fn toml_rules(text: &str) -> RuleSet {
    RuleSet::from_toml(text, "test").unwrap_or_else(|e| panic!("rules: {e}"))
}

fn limit_firewall(text: &str) -> Firewall {
    load(&Settings {
        rules: toml_rules(text),
        capture: capture::DROPPED,
        ..Settings::default()
    })
}

/// Runs `frame` `n` times and returns how many passed.
fn passed(fw: &mut Firewall, frame: &[u8], n: usize) -> usize {
    (0..n).filter(|_| run(fw, frame) == PASS).count()
}

#[test]
fn a_limit_passes_its_burst_per_source_then_drops_and_marks_the_rest() {
    if !root_or_skip() {
        return;
    }
    let mut fw = limit_firewall(
        r#"
        [[rule]]
        name = "dns-flood"
        action = "limit"
        protocol = "udp"
        dst_port = 53
        rate = "1/h"
        burst = 5
        per = "src"
        "#,
    );
    let mut ring = fw.take_capture_source().expect("capture source");
    let from = |src: [u8; 4]| Frame::ipv4(src, HOST4).udp(40000, 53).build();
    assert_eq!(passed(&mut fw, &from(PEER4), 20), 5);
    assert_eq!(
        passed(&mut fw, &from(RESOLVER4), 8),
        5,
        "a second source has its own"
    );
    assert_eq!(
        passed(
            &mut fw,
            &Frame::ipv4(PEER4, HOST4).udp(40000, 54).build(),
            10
        ),
        10
    );
    let snap = fw.snapshot(1, 0).expect("counters");
    let extra = snap.rule_extra(1);
    assert_eq!(
        (extra.within_limit, extra.over_limit, extra.new_keys),
        (10, 18, 2)
    );
    assert_eq!(
        snap.rule(1).hits,
        18,
        "the rule decided (dropped) what was over"
    );
    assert_eq!(
        snap.rule(0).hits,
        20,
        "what was within went on to the default"
    );
    let mut over = 0;
    ring.drain(|bytes| {
        let r = CaptureRecord::decode(bytes).expect("a capture record");
        assert_eq!((r.rule_id, r.over_limit, r.shadow_rule_id), (1, true, 0));
        over += 1;
    });
    assert_eq!(over, 18, "every packet over the limit is captured, marked");
}

#[test]
fn packets_within_a_limit_are_judged_by_the_rules_after_it() {
    if !root_or_skip() {
        return;
    }
    let mut fw = limit_firewall(
        r#"
        [[rule]]
        action = "limit"
        protocol = "udp"
        rate = "1/h"
        burst = 3
        [[rule]]
        action = "drop"
        protocol = "udp"
        src = "192.0.2.66"
        "#,
    );
    let watched = Frame::ipv4(WATCHED4, HOST4).udp(40000, 53).build();
    assert_eq!(passed(&mut fw, &watched, 6), 0);
    let hits = fw.rule_hits(2).expect("hits");
    assert_eq!(
        hits,
        vec![0, 3, 3],
        "3 over the limit (rule 1), 3 dropped by rule 2"
    );
}

#[test]
fn limit_keys_follow_per() {
    if !root_or_skip() {
        return;
    }
    let rules = |per: &str| {
        format!(
            "[[rule]]\naction = \"limit\"\nprotocol = \"udp\"\nrate = \"1/h\"\nburst = 4\n\
             per = \"{per}\"\n"
        )
    };
    let a = Frame::ipv4([198, 51, 100, 1], HOST4).udp(1, 53).build();
    let b = Frame::ipv4([198, 51, 100, 2], HOST4).udp(1, 53).build();
    let c = Frame::ipv4([203, 0, 113, 2], HOST4).udp(1, 53).build();
    let v6a = Frame::ipv6(HOSTILE6, HOST6).udp(1, 53).build();
    let mut v6b_addr = HOSTILE6;
    v6b_addr[15] = 9;
    let v6b = Frame::ipv6(v6b_addr, HOST6).udp(1, 53).build();
    let run_all = |per: &str| -> Vec<usize> {
        let mut fw = limit_firewall(&rules(per));
        [&a, &b, &c, &v6a, &v6b]
            .iter()
            .map(|f| passed(&mut fw, f, 4))
            .collect()
    };
    assert_eq!(run_all("src"), vec![4, 4, 4, 4, 4]);
    assert_eq!(run_all("src/24"), vec![4, 0, 4, 4, 4]);
    assert_eq!(run_all("src/24,src/64"), vec![4, 0, 4, 4, 0]);
    assert_eq!(run_all("rule"), vec![4, 0, 0, 0, 0]);
}

#[test]
fn a_byte_rate_charges_each_frame_by_its_length() {
    if !root_or_skip() {
        return;
    }
    // 1000 bytes of burst: frames of 200 bytes pass 5 times, of 60 bytes more often.
    let mut fw = limit_firewall(
        "[[rule]]\naction = \"limit\"\nprotocol = \"udp\"\nrate = \"1B/s\"\nburst = 1000\n",
    );
    let big = Frame::ipv4(PEER4, HOST4).udp(1, 53).pad_to(200).build();
    assert_eq!(big.len(), 200);
    assert_eq!(passed(&mut fw, &big, 10), 5);
    let mut fw = limit_firewall(
        "[[rule]]\naction = \"limit\"\nprotocol = \"udp\"\nrate = \"1B/s\"\nburst = 1000\n",
    );
    let small = Frame::ipv4(PEER4, HOST4).udp(1, 53).pad_to(100).build();
    assert_eq!(passed(&mut fw, &small, 20), 10);
}

#[test]
fn a_limit_in_monitor_mode_marks_what_its_twin_drops() {
    if !root_or_skip() {
        return;
    }
    let text = |mode: &str| {
        format!(
            "[[rule]]\naction = \"limit\"\nmode = \"{mode}\"\nprotocol = \"udp\"\n\
             rate = \"1/h\"\nburst = 7\n"
        )
    };
    let mut monitor = limit_firewall(&text("monitor"));
    let mut enforce = limit_firewall(&text("enforce"));
    let frame = Frame::ipv4(HOSTILE4, HOST4).udp(1, 53).build();
    let mut marks = Vec::new();
    let mut ring = monitor.take_capture_source().expect("capture source");
    for n in 0..20 {
        assert_eq!(run(&mut monitor, &frame), PASS);
        let twin = run(&mut enforce, &frame);
        let mut marked = false;
        ring.drain(|bytes| {
            let r = CaptureRecord::decode(bytes).expect("a capture record");
            marked = r.shadow_rule_id == 1 && r.over_limit;
        });
        marks.push((n, marked, twin == DROP));
    }
    assert!(marks.iter().all(|(_, m, d)| m == d), "{marks:?}");
    let extra = monitor.snapshot(1, 0).expect("counters").rule_extra(1);
    assert_eq!(
        (extra.within_limit, extra.over_limit, extra.would_hit),
        (7, 13, 13)
    );
}

/// Two CPUs charge one bucket at once, each running the same frame 200,000 times: the
/// bucket's budget (1,000 packets, no refill) passes exactly, never more, apart from the
/// charges counted as lost to contention. The time both CPUs were charging at once is
/// measured and printed: on a machine of one CPU there is no race to judge.
#[test]
fn two_cpus_charging_one_bucket_never_pass_more_than_its_budget() {
    if !root_or_skip() {
        return;
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut fw = limit_firewall(
        "[[rule]]\naction = \"limit\"\nprotocol = \"udp\"\nrate = \"1/h\"\nburst = 1000\n\
         per = \"rule\"\n",
    );
    let _ring = fw.take_capture_source().expect("capture source");
    let frame = Frame::ipv4(HOSTILE4, HOST4).udp(1, 53).build();
    let fd = fw
        .program()
        .expect("program")
        .fd()
        .expect("program fd")
        .as_fd()
        .as_raw_fd();
    let per_thread = 200_000;
    let spans: Vec<(std::time::Instant, std::time::Instant)> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..cpus.min(2))
            .map(|cpu| {
                let frame = &frame;
                scope.spawn(move || {
                    pin_to(cpu);
                    let start = std::time::Instant::now();
                    xdpsieve_testkit::bpf::test_run(fd, frame, per_thread).expect("test run");
                    (start, std::time::Instant::now())
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().expect("a test-run thread"))
            .collect()
    });
    // How long both CPUs were charging at once: what makes the test a race at all.
    let overlap = spans
        .iter()
        .map(|s| s.1)
        .min()
        .zip(spans.iter().map(|s| s.0).max())
        .map_or(std::time::Duration::ZERO, |(end, start)| {
            end.saturating_duration_since(start)
        });
    let snap = fw.snapshot(1, 0).expect("counters");
    let extra = snap.rule_extra(1);
    let runs = u64::from(per_thread) * cpus.min(2) as u64;
    assert_eq!(extra.within_limit + extra.over_limit, runs);
    println!(
        "cpus: {}, charging together for {overlap:?}; within {} (+{} lost to contention), \
         over {}",
        cpus.min(2),
        extra.within_limit,
        extra.cas_exhausted,
        extra.over_limit,
    );
    assert_eq!(
        extra.within_limit - extra.cas_exhausted,
        1000,
        "the budget held exactly, apart from counted contention"
    );
    assert!(
        extra.cas_exhausted <= 4,
        "{} charges lost to contention",
        extra.cas_exhausted
    );
}

pub(crate) fn pin_to(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET writes inside it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set);
    }
}
