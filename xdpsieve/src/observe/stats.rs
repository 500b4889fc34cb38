//! The reports of the counters: the exit summary (the way tcpdump reports its own at exit)
//! and the `--stats-interval` line, from a [`Snapshot`] of the program's counters and what
//! userspace did with the records ([`WriterStats`]), both catalogued in
//! [`crate::base::counters`].

use std::fmt::Write as _;

use xdpsieve_common::RuleCounters;

use crate::{
    base::counters::{self, WriterStats},
    base::snapshot::Snapshot,
    configure::rules::RuleSet,
};

/// The exit summary, printed to stderr.
pub fn summary(snap: &Snapshot, writer: &WriterStats, rules: &RuleSet) -> String {
    let mut out = String::new();
    let c = &snap.counters;
    let _ = writeln!(
        out,
        "{} packets seen by xdpsieve ({} dropped, {} passed, {} malformed, {} without IP header)",
        c.seen(),
        c.dropped,
        c.passed,
        c.malformed,
        c.non_ip
    );
    let _ = writeln!(
        out,
        "{} bytes seen ({} dropped, {} passed)",
        c.bytes_seen, c.bytes_dropped, c.bytes_passed
    );
    // Only when the evasion defences saw something: most runs see no fragment at all.
    if c.unclassifiable + c.fragments_followed + c.fragment_orphans > 0 {
        let _ = writeln!(
            out,
            "{} packets unclassifiable ({} tiny TCP fragments); {} later fragments took \
             their first fragment's verdict, {} came without it",
            c.unclassifiable, c.tiny_fragments, c.fragments_followed, c.fragment_orphans
        );
    }
    if c.captured + c.capture_lost > 0 || writer.written + writer.capture_not_written > 0 {
        let _ = writeln!(out, "{} packets captured", writer.written);
        let _ = writeln!(out, "{} packets lost: capture buffer full", c.capture_lost);
    }
    if c.events + c.event_lost > 0 || writer.logged + writer.log_not_written > 0 {
        let _ = writeln!(
            out,
            "{} events logged ({} sent by the program)",
            writer.logged, c.events
        );
        let _ = writeln!(out, "{} events lost: event buffer full", c.event_lost);
    }
    if snap.perf_lost > 0 {
        // The same samples the program counted above as lost, seen from the other side.
        let _ = writeln!(
            out,
            "  (the perf buffers reported {} lost samples: the ones counted above, not more)",
            snap.perf_lost
        );
    }
    // Every other count that means records went unrecorded or unwritten, from the catalogue.
    counters::summary_lines(counters::KERNEL, c, &mut out);
    counters::summary_lines(counters::WRITER, writer, &mut out);
    if !rules.rules.is_empty() {
        // One line per rule as written, its kernel rules' counts summed (see
        // `configure::rules::either`).
        for (rule, indexes) in rules.written() {
            let counts = snap.rules_summed(indexes);
            let _ = writeln!(
                out,
                "  rule {:>4} {:<24} {:<4} {:>12} hits{}  ({})",
                rule.id,
                crate::base::text::escape(&rule.name),
                rule.action,
                counts.hits,
                not_recorded(&counts),
                rule.written_conditions_with(&rules.sets)
            );
        }
        let _ = writeln!(
            out,
            "  default      {:<24} {:<4} {:>12} hits{}",
            "",
            rules.default_action,
            snap.rule(0).hits,
            not_recorded(&snap.rule(0))
        );
    }
    for (name, i) in &snap.interfaces {
        let _ = writeln!(
            out,
            "  interface {:<16} {:>12} packets {:>12} dropped {:>12} passed {:>14} bytes",
            crate::base::text::escape(name),
            i.packets,
            i.dropped,
            i.passed,
            i.bytes
        );
    }
    out
}

/// A rule's records left out: by its rate limit, and by sampling (not loss).
fn not_recorded(rule: &RuleCounters) -> String {
    let mut out = String::new();
    if rule.sampled_out != 0 {
        out.push_str(&format!(", {} sampled out", rule.sampled_out));
    }
    if rule.suppressed != 0 {
        out.push_str(&format!(", {} not recorded (rate limit)", rule.suppressed));
    }
    out
}

/// One status line for `--stats-interval`: rates since the previous snapshot.
pub fn interval_line(
    previous: &Snapshot,
    current: &Snapshot,
    writer: &WriterStats,
    seconds: f64,
) -> String {
    let (p, c) = (&previous.counters, &current.counters);
    let rate = |now: u64, before: u64| now.saturating_sub(before) as f64 / seconds.max(1e-9);
    let not_written = if writer.capture_not_written + writer.log_not_written > 0 {
        format!(
            "; not written (output failed) {} (capture) {} (events)",
            writer.capture_not_written, writer.log_not_written
        )
    } else {
        String::new()
    };
    format!(
        "xdpsieve: {:.0} pkt/s ({:.0} dropped/s, {:.0} passed/s), {:.1} Mbit/s; \
         captured {:.0}/s, events {:.0}/s; lost {} (capture) {} (events) {} (perf), \
         rate-limited {}, sampled out {}{not_written}",
        rate(c.seen(), p.seen()),
        rate(c.dropped, p.dropped),
        rate(c.passed, p.passed),
        rate(c.bytes_seen, p.bytes_seen) * 8.0 / 1e6,
        rate(c.captured, p.captured),
        rate(c.events, p.events),
        c.capture_lost,
        c.event_lost,
        current.perf_lost,
        c.rate_limited,
        c.sampled_out
    )
}

#[cfg(test)]
mod tests {
    use xdpsieve_common::Counters;

    use super::*;
    use crate::configure::rules::Action;

    #[test]
    fn sums_cpus() {
        let a = Counters {
            seen: 3,
            dropped: 1,
            passed: 2,
            captured: 1,
            events: 2,
            ..Default::default()
        };
        let b = Counters {
            seen: 4,
            dropped: 4,
            capture_lost: 2,
            rate_limited: 5,
            ..Default::default()
        };
        let mut total = Counters::default();
        for cpu in [&a, &b] {
            counters::add(counters::KERNEL, &mut total, cpu);
        }
        assert_eq!((total.seen, total.dropped, total.passed), (7, 5, 2));
        assert_eq!((total.captured, total.capture_lost), (1, 2));
        assert_eq!((total.events, total.rate_limited), (2, 5));
    }

    #[test]
    fn summary_reports_losses_and_rules() {
        let mut rules = RuleSet::default();
        rules
            .push_expression(Action::Drop, "udp src port 53")
            .unwrap();
        let snap = Snapshot {
            rule_extra: Vec::new(),
            limit_keys: Vec::new(),
            counters: Counters {
                seen: 10,
                dropped: 4,
                passed: 6,
                captured: 2,
                capture_lost: 1,
                rate_limited: 1,
                ..Default::default()
            },
            rules: vec![
                RuleCounters {
                    hits: 6,
                    ..Default::default()
                },
                RuleCounters {
                    hits: 4,
                    suppressed: 1,
                    ..Default::default()
                },
            ],
            interfaces: Vec::new(),
            perf_lost: 0,
        };
        let writer = WriterStats {
            written: 2,
            capture_not_written: 3,
            ..Default::default()
        };
        let text = summary(&snap, &writer, &rules);
        assert!(text.contains(
            "10 packets seen by xdpsieve (4 dropped, 6 passed, 0 malformed, 0 without IP header)"
        ));
        assert!(text.contains("2 packets captured"));
        assert!(text.contains("1 packets lost: capture buffer full"));
        assert!(text.contains("1 packets not recorded: over their rule's rate limit"));
        assert!(text.contains("drop udp src port 53"));
        assert!(text.contains("4 hits, 1 not recorded (rate limit)"));
        assert!(!text.contains("events logged"));
        assert!(text.contains("3 packets not written: capture output failed"));
        // No -c, so nothing is blamed on it.
        assert!(!text.contains("past the -c count"));
        assert!(
            !text.contains("unclassifiable"),
            "no evasion line without evasion"
        );
    }

    /// `udp port 53` is two kernel rules: one summary line, their counts summed.
    #[test]
    fn summary_shows_a_rule_without_direction_once() {
        let mut rules = RuleSet::default();
        rules.push_expression(Action::Drop, "udp port 53").unwrap();
        let counts = |hits, suppressed| RuleCounters {
            hits,
            suppressed,
            ..Default::default()
        };
        let snap = Snapshot {
            rules: vec![counts(6, 0), counts(4, 1), counts(3, 2)],
            ..Default::default()
        };
        let text = summary(&snap, &WriterStats::default(), &rules);
        let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("  rule ")).collect();
        assert_eq!(lines.len(), 1, "{text}");
        assert!(
            lines[0].contains("drop udp port 53")
                && lines[0].ends_with("7 hits, 3 not recorded (rate limit)  (udp and port 53)"),
            "{text}"
        );
    }

    #[test]
    fn summary_reports_unclassifiable_and_fragments() {
        let snap = Snapshot {
            rule_extra: Vec::new(),
            limit_keys: Vec::new(),
            counters: Counters {
                seen: 10,
                dropped: 6,
                passed: 4,
                unclassifiable: 3,
                tiny_fragments: 2,
                fragments_followed: 4,
                fragment_orphans: 1,
                ..Default::default()
            },
            rules: vec![RuleCounters::default()],
            interfaces: Vec::new(),
            perf_lost: 0,
        };
        let text = summary(&snap, &WriterStats::default(), &RuleSet::default());
        assert!(
            text.contains(
                "3 packets unclassifiable (2 tiny TCP fragments); 4 later fragments took \
                 their first fragment's verdict, 1 came without it"
            ),
            "{text}"
        );
        // Per-CPU values add up like the others (through the catalogue).
        let mut total = snap.counters;
        counters::add(counters::KERNEL, &mut total, &snap.counters);
        assert_eq!(
            (total.unclassifiable, total.tiny_fragments),
            (6, 4),
            "{total:?}"
        );
        assert_eq!((total.fragments_followed, total.fragment_orphans), (8, 2));
    }
}
