//! `xdpsieve status --top N`: the firewalls in force sampled twice, an interval apart, and
//! the top list printed as text or JSON; and the number formats the full-screen view
//! shares with it, so both say the same thing the same way.

use std::{fmt::Write as _, time::Duration};

use anyhow::{Result, bail};

use super::{
    model::TopModel,
    sample::{self, TopSample},
};
use crate::{
    base::text::escape,
    configure::privileges::{self, Verb},
    instance::sets::text::show_left,
    observe::status::described,
};

/// A count per second, short: `0`, `4.5`, `950`, `12.3k`, `4.1M`.
pub fn per_second(x: f64) -> String {
    match x {
        x if x <= 0.0 => "0".into(),
        x if x < 10.0 => format!("{x:.1}"),
        x if x < 1e3 => format!("{x:.0}"),
        x if x < 1e6 => format!("{:.1}k", x / 1e3),
        x if x < 1e9 => format!("{:.1}M", x / 1e6),
        x => format!("{:.1}G", x / 1e9),
    }
}

/// Bytes per second as bits per second, short (`12.3M` for 12.3 Mbit/s): link speeds
/// are said in bits.
pub fn bits_per_second(bytes: f64) -> String {
    per_second(bytes * 8.0)
}

/// An optional rate: `-` when the program does not count it.
pub fn maybe(x: Option<f64>) -> String {
    x.map_or_else(|| "-".into(), per_second)
}

/// A loss counter's few words (the catalogue key for one this list does not know yet).
pub fn loss_label(key: &str) -> &str {
    match key {
        "capture_lost" => "capture buffer full",
        "event_lost" => "event buffer full",
        "no_reader" => "no reader",
        "capture_no_writer" => "no capture writer",
        "event_no_writer" => "no event log",
        "undecodable" => "undecodable",
        "ring_corrupt" => "corrupt ring length",
        "capture_not_written" => "capture output failed",
        "log_not_written" => "log output failed",
        other => other,
    }
}

/// A timed entry's time left: `9m58s`, or `due` when it is past (removed at the next
/// expiry).
pub fn time_left(ms: u64) -> String {
    if ms == 0 {
        "due".into()
    } else {
        show_left(ms * 1_000_000)
    }
}

/// The header line's words about the firewall: its generation and whether it records.
pub fn state_words(model: &TopModel) -> String {
    format!(
        "rule generation {}, {}",
        model.generation,
        if model.recorder {
            "recorder alive"
        } else {
            "no recorder (fail-static)"
        }
    )
}

/// The firewalls in force on `iface` (or every one in this network namespace), each
/// sampled twice `interval` apart, with their `n` busiest sources.
pub fn status_top(iface: Option<&str>, n: usize, interval: Duration) -> Result<Vec<TopModel>> {
    privileges::check(Verb::Status)?;
    let gone = |name: &str| {
        format!(
            "no xdpsieve firewall is in force on {} (in this network namespace); `xdpsieve \
             status` shows what is here",
            escape(name)
        )
    };
    let mut first: Vec<TopSample> = Vec::new();
    for name in described(iface) {
        match sample::read(&name)? {
            Some(s) => first.push(s),
            None if iface.is_some() => bail!(gone(&name)),
            None => {}
        }
    }
    if first.is_empty() {
        return Ok(Vec::new());
    }
    std::thread::sleep(interval);
    let mut models = Vec::new();
    for a in &first {
        match sample::read(&a.interface)? {
            Some(b) => models.push(TopModel::between(a, &b).with_top(n)),
            None if iface.is_some() => bail!(gone(&a.interface)),
            // Stopped meanwhile: nothing to show for it.
            None => {}
        }
    }
    Ok(models)
}

/// The top lists as text.
pub fn render(models: &[TopModel], n: usize) -> String {
    let mut out = String::new();
    if models.is_empty() {
        out.push_str("no xdpsieve firewall is in force (in this network namespace)\n");
    }
    for m in models {
        one(&mut out, m, n);
    }
    out
}

fn one(out: &mut String, m: &TopModel, n: usize) {
    let t = &m.traffic;
    let _ = writeln!(
        out,
        "{}: over {:.1} s, {}",
        escape(&m.interface),
        m.interval_s,
        state_words(m)
    );
    let _ = writeln!(
        out,
        "  seen {} pkt/s ({} bit/s), dropped {} pkt/s ({} bit/s), passed {} pkt/s",
        per_second(t.seen_pps),
        bits_per_second(t.seen_bytes_per_s),
        per_second(t.dropped_pps),
        bits_per_second(t.dropped_bytes_per_s),
        per_second(t.passed_pps)
    );
    // The columns of counters the program does not have stay out of the text.
    let would = m.rules.iter().any(|r| r.would_drop_pps.is_some());
    let over = m.rules.iter().any(|r| r.over_limit_pps.is_some());
    let _ = write!(
        out,
        "  {:>5} {:<32} {:<6} {:>8} {:>8} {:>8}",
        "id", "rule", "action", "drop/s", "pkt/s", "bit/s"
    );
    if would {
        let _ = write!(out, " {:>8}", "would/s");
    }
    if over {
        let _ = write!(out, " {:>8}", "over/s");
    }
    out.push('\n');
    for r in &m.rules {
        let _ = write!(
            out,
            "  {:>5} {:<32} {:<6} {:>8} {:>8} {:>8}",
            r.id,
            escape(&r.name),
            escape(&r.action),
            per_second(r.dropped_pps),
            per_second(r.hits_pps),
            bits_per_second(r.hits_bytes_per_s)
        );
        if would {
            let _ = write!(out, " {:>8}", maybe(r.would_drop_pps));
        }
        if over {
            let _ = write!(out, " {:>8}", maybe(r.over_limit_pps));
        }
        out.push('\n');
    }
    if !m.sources_tracked {
        out.push_str("  sources: this firewall's program does not count per source\n");
    } else if m.sources.is_empty() {
        out.push_str("  sources: none dropped or limited during the interval\n");
    } else {
        let _ = writeln!(
            out,
            "  top {n} sources (dropped, would-drop, over a limit):\n    {:<39} {:>8} {:>8} \
             {:>8} {:>8} {:>8}",
            "source", "pkt/s", "bit/s", "drop/s", "would/s", "limit/s"
        );
        for s in &m.sources {
            let _ = writeln!(
                out,
                "    {:<39} {:>8} {:>8} {:>8} {:>8} {:>8}",
                s.addr,
                per_second(s.pps),
                bits_per_second(s.bytes_per_s),
                per_second(s.dropped_pps),
                per_second(s.would_pps),
                per_second(s.limited_pps)
            );
        }
    }
    if m.bans.is_empty() {
        out.push_str("  timed set entries: none\n");
    } else {
        let _ = writeln!(out, "  timed set entries ({}):", m.bans.len());
        for b in &m.bans {
            let _ = writeln!(
                out,
                "    {:<43} {:<16} {:<8} {}",
                escape(&b.prefix),
                escape(&b.set),
                escape(&b.origin),
                time_left(b.expires_in_ms)
            );
        }
    }
    // Only the losses that ever counted: a list of zeros hides the one that did not.
    let losses: Vec<String> = m
        .losses
        .iter()
        .filter(|l| l.total > 0)
        .map(|l| {
            format!(
                "{} {}/s ({} total)",
                escape(loss_label(&l.key)),
                per_second(l.per_s),
                l.total
            )
        })
        .collect();
    if losses.is_empty() {
        out.push_str("  losses: none\n");
    } else {
        let _ = writeln!(out, "  losses: {}", losses.join(", "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_short_and_say_what_is_not_counted() {
        let got: Vec<String> = [0.0, -1.0, 0.25, 9.96, 12.4, 999.0, 1_234.0, 4.1e6, 7.0e9]
            .into_iter()
            .map(per_second)
            .collect();
        assert_eq!(
            got,
            ["0", "0", "0.2", "10.0", "12", "999", "1.2k", "4.1M", "7.0G"]
        );
        assert_eq!(bits_per_second(1_500_000.0), "12.0M");
        assert_eq!((maybe(None), maybe(Some(3.0))), ("-".into(), "3.0".into()));
        assert_eq!(
            (time_left(0), time_left(61_000)),
            ("due".into(), "1m01s".into())
        );
        assert_eq!(loss_label("no_reader"), "no reader");
        assert_eq!(loss_label("a_new_loss"), "a_new_loss");
    }

    #[test]
    fn the_text_lists_rules_sources_bans_and_only_the_losses_that_counted() {
        use crate::observe::top::sample::{SourceSample, TimedEntry, TopSample};
        let mut a = TopSample {
            interface: "fw0".into(),
            at_ns: 1_000_000_000,
            generation: 2,
            recorder: false,
            sources_tracked: true,
            ..TopSample::default()
        };
        a.losses.insert("capture_lost".into(), 0);
        a.losses.insert("no_reader".into(), 10);
        let mut b = a.clone();
        b.at_ns += 2_000_000_000;
        b.losses.insert("no_reader".into(), 30);
        b.sources = vec![SourceSample {
            addr: "198.51.100.7".parse().unwrap(),
            dropped: 2_000,
            dropped_bytes: 200_000,
            would: 0,
            would_bytes: 0,
            limited: 0,
            limited_bytes: 0,
        }];
        b.timed = vec![TimedEntry {
            set: "banned".into(),
            prefix: "198.51.100.7/32".into(),
            origin: "runtime".into(),
            expires_ns: b.at_ns + 600_000_000_000,
        }];
        let text = render(&[TopModel::between(&a, &b)], 5);
        assert!(
            text.starts_with("fw0: over 2.0 s, rule generation 2, no recorder (fail-static)\n"),
            "{text}"
        );
        assert!(
            text.contains("    198.51.100.7                                1.0k   800.0k     1.0k        0        0\n"),
            "{text}"
        );
        assert!(text.contains("    198.51.100.7/32"), "{text}");
        assert!(text.contains("runtime  10m00s\n"), "{text}");
        assert!(
            text.ends_with("  losses: no reader 10/s (30 total)\n"),
            "{text}"
        );
        assert_eq!(
            render(&[], 5),
            "no xdpsieve firewall is in force (in this network namespace)\n"
        );
    }
}
