//! Counters: summing the program's per-CPU counters and reporting them the way tcpdump
//! reports its own at exit, plus what userspace did with the records it received.

use std::fmt::Write as _;

use xdpsieve_common::Counters;

use crate::rules::RuleSet;

/// Sums per-CPU counter slots.
pub fn sum_counters<'a>(per_cpu: impl IntoIterator<Item = &'a Counters>) -> Counters {
    per_cpu
        .into_iter()
        .fold(Counters::default(), |mut total, c| {
            total.seen += c.seen;
            total.passed += c.passed;
            total.dropped += c.dropped;
            total.malformed += c.malformed;
            total.captured += c.captured;
            total.capture_lost += c.capture_lost;
            total.bytes_seen += c.bytes_seen;
            total.bytes_dropped += c.bytes_dropped;
            total.non_ip += c.non_ip;
            total
        })
}

/// What userspace did with the records the program captured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Packets written to the capture file.
    pub written: u64,
    /// Records received after `-c COUNT` was reached (read, then deliberately not written).
    pub past_count: u64,
    /// Records that failed to decode (never expected; counted rather than dropped silently).
    pub undecodable: u64,
}

/// The exit summary, printed to stderr.
pub fn summary(
    counters: &Counters,
    writer: &WriterStats,
    rules: &RuleSet,
    rule_hits: &[u64],
    capturing: bool,
) -> String {
    let mut out = String::new();
    let c = counters;
    let _ = writeln!(
        out,
        "{} packets seen by xdpsieve ({} dropped, {} passed, {} malformed, {} without IP header)",
        c.seen, c.dropped, c.passed, c.malformed, c.non_ip
    );
    if capturing {
        let _ = writeln!(out, "{} packets captured", writer.written);
        let _ = writeln!(
            out,
            "{} packets lost by the ring buffer (full)",
            c.capture_lost
        );
        if writer.past_count > 0 {
            let _ = writeln!(
                out,
                "{} packets not written: past the -c count",
                writer.past_count
            );
        }
        if writer.undecodable > 0 {
            let _ = writeln!(out, "{} records could not be decoded", writer.undecodable);
        }
    }
    if !rules.rules.is_empty() {
        for (index, rule) in rules.rules.iter().enumerate() {
            let hits = rule_hits.get(index + 1).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "  rule {:>4} {:<24} {:<4} {:>12} hits  ({})",
                rule.id,
                rule.name,
                rule.action,
                hits,
                rule.conditions()
            );
        }
        let _ = writeln!(
            out,
            "  default      {:<24} {:<4} {:>12} hits",
            "",
            rules.default_action,
            rule_hits.first().copied().unwrap_or(0)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Action;

    #[test]
    fn sums_cpus() {
        let a = Counters {
            seen: 3,
            dropped: 1,
            passed: 2,
            captured: 1,
            ..Default::default()
        };
        let b = Counters {
            seen: 4,
            dropped: 4,
            capture_lost: 2,
            ..Default::default()
        };
        let total = sum_counters([&a, &b]);
        assert_eq!((total.seen, total.dropped, total.passed), (7, 5, 2));
        assert_eq!((total.captured, total.capture_lost), (1, 2));
    }

    #[test]
    fn summary_reports_losses_and_rules() {
        let mut rules = RuleSet::default();
        rules
            .push_expression(Action::Drop, "udp src port 53")
            .unwrap();
        let counters = Counters {
            seen: 10,
            dropped: 4,
            passed: 6,
            capture_lost: 1,
            ..Default::default()
        };
        let writer = WriterStats {
            written: 3,
            past_count: 0,
            undecodable: 0,
        };
        let text = summary(&counters, &writer, &rules, &[6, 4], true);
        assert!(text.contains(
            "10 packets seen by xdpsieve (4 dropped, 6 passed, 0 malformed, 0 without IP header)"
        ));
        assert!(text.contains("3 packets captured"));
        assert!(text.contains("1 packets lost by the ring buffer"));
        assert!(text.contains("drop udp src port 53"));
        assert!(text.contains("4 hits"));
    }
}
