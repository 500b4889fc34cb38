//! Looking into a firewall from another shell: `xdpsieve status`.
//!
//! A firewall's pins and description ([`crate::instance::description`]) live where
//! [`crate::instance::pins`] puts them. `xdpsieve status` reads both without touching the
//! program: a firewall whose recorder is alive is "running"; one whose recorder died while
//! its pinned link keeps filtering is "running without a recorder" (fail-static), with the
//! records it could not hand to anyone counted as `no_reader`; one with neither link nor
//! live recorder is stale. The recorder is recognised by its PID together with the PID's
//! start time, so a reused PID does not fool it.

use std::{
    collections::BTreeMap,
    fs,
    time::{SystemTime, UNIX_EPOCH},
};

use anyhow::{Result, bail};
use serde::Serialize;
use xdpsieve_common::{Counters, RuleCounters, walk::RuleExtraCounters};

use crate::{
    base::counters::{self, WriterStats},
    base::snapshot::Snapshot,
    base::text::escape,
    configure::flags,
    configure::rules::{Action, limit::Mode},
    instance::description::{self, Meta},
    instance::pins::{self, meta_path, pin_dir},
};

/// `  rules: generation N, loaded ...; last reload ...` (nothing for a description written
/// before reloads existed).
fn rules_line(out: &mut String, reload: &crate::instance::recipe::ReloadState) {
    use std::fmt::Write as _;
    if reload.generation == 0 {
        return;
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let _ = write!(
        out,
        "  rules: generation {}, loaded {}s ago",
        reload.generation,
        now.saturating_sub(reload.loaded_unix)
    );
    if let Some(matching) = &reload.matching {
        let _ = write!(out, ", {}", escape(matching));
    }
    match &reload.last {
        None => out.push_str("; not reloaded\n"),
        Some(last) => {
            let _ = writeln!(
                out,
                "; last reload ({}, {}s ago): {}: {}",
                last.by,
                now.saturating_sub(last.started_unix_ns / 1_000_000_000),
                if last.ok { "ok" } else { "FAILED" },
                escape(&last.message)
            );
        }
    }
}

/// What `xdpsieve status` reports for one interface.
#[derive(Debug, Serialize)]
pub struct Status {
    pub interface: String,
    /// Where its pins are (see [`crate::instance::pins`]).
    pub pins: std::path::PathBuf,
    /// The recorder (the `xdpsieve run` process) is alive.
    pub live: bool,
    /// The firewall is in force: its link is pinned, so the program filters on the
    /// interface whether or not a recorder is alive.
    pub in_force: bool,
    pub uptime_seconds: u64,
    #[serde(flatten)]
    pub meta: Meta,
    pub counters: Option<StatusCounters>,
    /// For a firewall whose recorder died: records its program sent that are still in its
    /// rings, which nothing will read (see `takeover::unread_in_rings`).
    pub unread_in_rings: Option<u64>,
    /// Whether the interface still runs the program, per the running instance's watcher.
    pub health: Option<crate::observe::watch::InterfaceHealth>,
    /// The sets in the kernel: memory and entries per set (absent when there are none).
    pub sets: Option<crate::instance::sets::status::SetsStatus>,
}

/// Counters of one instance: every catalogued counter by its key (see
/// [`crate::base::counters`]), then per rule and per interface.
#[derive(Debug, Serialize)]
pub struct StatusCounters {
    #[serde(skip)]
    pub kernel: Counters,
    /// What the capture and the event log wrote and did not write (absent when the
    /// instance published none).
    #[serde(skip)]
    pub writer: Option<WriterStats>,
    #[serde(flatten)]
    pub totals: BTreeMap<&'static str, u64>,
    /// Hits per rule id (0 = default verdict).
    pub rule_hits: Vec<(u32, u64)>,
    pub rule_suppressed: Vec<(u32, u64)>,
    /// Packets per rule id whose records sampling left out (not loss).
    pub rule_sampled_out: Vec<(u32, u64)>,
    /// Per rule id: packets a monitor rule marked (it would have decided them), and
    /// packets over a limit rule's budget.
    pub rule_would_decide: Vec<(u32, u64)>,
    pub rule_over_limit: Vec<(u32, u64)>,
    /// Per limit rule id: the keys it tracks now, and those it forgot to make room (the
    /// keys it started tracking minus those it still does).
    pub rule_keys_tracked: Vec<(u32, u64)>,
    pub rule_keys_forgotten: Vec<(u32, u64)>,
    /// Packets per interface of this instance.
    pub interface_packets: Vec<(String, u64)>,
}

/// The interfaces described in this network namespace: `iface` alone, or every one that
/// has a description, sorted.
pub fn described(iface: Option<&str>) -> Vec<String> {
    if let Some(name) = iface {
        return vec![name.to_string()];
    }
    let mut names: Vec<String> = fs::read_dir(pins::meta_dir())
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    e.file_name()
                        .to_str()?
                        .strip_suffix(".json")
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// One firewall as its description and pins show it, read once: what `status` and `top`
/// start from.
#[derive(Debug)]
pub struct Pinned {
    pub interface: String,
    pub meta: Meta,
    /// Its recorder is alive.
    pub live: bool,
    /// Its link is pinned and attached: it filters, recorder or not.
    pub in_force: bool,
    /// Its counters (absent for a stale one, which has none left to read).
    pub snapshot: Option<Snapshot>,
    /// What its recorder wrote and did not write (absent without a live recorder, or when
    /// it published nothing yet).
    pub writer: Option<WriterStats>,
}

/// The firewall described for `name`; `None` when there is no readable description. The
/// caller has checked the privileges.
pub fn read_pinned(name: &str) -> Result<Option<Pinned>> {
    let Some(meta) = description::read(&meta_path(name)) else {
        return Ok(None);
    };
    pins::check_existing(name)?;
    let live = meta.is_live();
    let in_force = pins::link_in_force(name);
    let snapshot = if live || in_force {
        Some(pins::snapshot(name, &meta)?)
    } else {
        None
    };
    let writer = if live {
        crate::observe::writer_state::read(name, &meta)
    } else {
        None
    };
    Ok(Some(Pinned {
        interface: name.to_string(),
        meta,
        live,
        in_force,
        snapshot,
        writer,
    }))
}

/// Status of the instances on `iface`, or of every instance in this network namespace.
/// Needs root (or CAP_BPF): it opens pinned maps.
pub fn read_status(iface: Option<&str>) -> Result<Vec<Status>> {
    crate::configure::privileges::check(crate::configure::privileges::Verb::Status)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let mut out = Vec::new();
    for name in described(iface) {
        let Some(pinned) = read_pinned(&name)? else {
            if iface.is_some() {
                bail!("no xdpsieve is running on {name} (in this network namespace)");
            }
            continue;
        };
        let Pinned {
            meta,
            live,
            in_force,
            snapshot,
            writer,
            ..
        } = pinned;
        let counters = snapshot.map(|snap| status_counters(&snap, &meta, writer));
        let unread_in_rings = if in_force && !live {
            crate::instance::takeover::unread_in_rings(&pin_dir(&name)).ok()
        } else {
            None
        };
        let health = if live {
            crate::observe::watch::health::read(&pins::health_path(&name))
        } else {
            None
        };
        let sets = if live || in_force {
            crate::instance::sets::status::status_of(&name, &meta)
        } else {
            None
        };
        out.push(Status {
            pins: pin_dir(&name),
            interface: name,
            live,
            in_force,
            uptime_seconds: now.saturating_sub(meta.started_unix),
            meta,
            counters,
            unread_in_rings,
            health,
            sets,
        });
    }
    Ok(out)
}

/// The counters `status` shows: per rule as written, its kernel rules' counts summed (a
/// condition without a direction makes one kernel rule per direction, all with its id).
fn status_counters(snap: &Snapshot, meta: &Meta, writer: Option<WriterStats>) -> StatusCounters {
    let per_rule: Vec<(u32, RuleCounters)> = std::iter::once((0, snap.rule(0)))
        .chain(
            description::written_rules(&meta.rules)
                .into_iter()
                .map(|(rule, indexes)| (rule.id, snap.rules_summed(indexes))),
        )
        .collect();
    let column = |f: fn(&RuleCounters) -> u64| per_rule.iter().map(|(id, c)| (*id, f(c))).collect();
    let extra: Vec<(u32, RuleExtraCounters)> = description::written_rules(&meta.rules)
        .into_iter()
        .map(|(rule, indexes)| (rule.id, snap.rule_extra_summed(indexes)))
        .collect();
    let keys: Vec<(u32, u64, u64)> = description::written_rules(&meta.rules)
        .into_iter()
        .filter(|(rule, _)| rule.limit.is_some())
        .map(|(rule, indexes)| {
            let tracked = snap.limit_keys_summed(indexes.clone());
            let new = snap.rule_extra_summed(indexes).new_keys;
            (rule.id, tracked, new.saturating_sub(tracked))
        })
        .collect();
    let extra_column = |f: fn(&RuleExtraCounters) -> u64| -> Vec<(u32, u64)> {
        extra.iter().map(|(id, c)| (*id, f(c))).collect()
    };
    let mut totals: BTreeMap<&'static str, u64> =
        counters::entries(counters::KERNEL, &snap.counters)
            .into_iter()
            .collect();
    if let Some(writer) = &writer {
        totals.extend(counters::entries(counters::WRITER, writer));
    }
    StatusCounters {
        kernel: snap.counters,
        writer,
        totals,
        rule_hits: column(|c| c.hits),
        rule_suppressed: column(|c| c.suppressed),
        rule_sampled_out: column(|c| c.sampled_out),
        rule_would_decide: extra_column(|c| c.would_hit),
        rule_over_limit: extra_column(|c| c.over_limit),
        rule_keys_tracked: keys.iter().map(|&(id, t, _)| (id, t)).collect(),
        rule_keys_forgotten: keys.iter().map(|&(id, _, f)| (id, f)).collect(),
        interface_packets: snap
            .interfaces
            .iter()
            .map(|(n, c)| (n.clone(), c.packets))
            .collect(),
    }
}

/// "  a, b, c, d, e" lines of five counters each.
fn counter_lines(out: &mut String, described: &str) {
    let parts: Vec<&str> = described.split(", ").collect();
    for chunk in parts.chunks(5) {
        out.push_str("  ");
        out.push_str(&chunk.join(", "));
        out.push('\n');
    }
}

/// Human-readable status.
pub fn render(statuses: &[Status]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    if statuses.is_empty() {
        out.push_str("no xdpsieve is running (in this network namespace)\n");
    }
    for s in statuses {
        // Everything below came from files others could have written: escaped.
        let iface = escape(&s.interface);
        let modes: Vec<String> = s
            .meta
            .interfaces
            .iter()
            .map(|i| format!("{} ({})", escape(&i.name), i.mode))
            .collect();
        if !s.live && !s.in_force {
            let _ = writeln!(
                out,
                "{}: stale: pid {} is gone; the next xdpsieve run cleans up",
                iface, s.meta.pid
            );
            continue;
        }
        if s.live {
            let _ = writeln!(
                out,
                "{}: xdpsieve {} pid {}, up {}s, on {}, transport {}",
                iface,
                escape(&s.meta.version),
                s.meta.pid,
                s.uptime_seconds,
                modes.join(", "),
                flags::value_name(s.meta.transport)
            );
        } else {
            let _ = writeln!(
                out,
                "{}: firewall in force, running without a recorder (pid {} died); started {}s \
                 ago, on {}. Its rules still apply; nothing records what they drop. Take it \
                 over with `xdpsieve run -i {}` or remove it with `xdpsieve stop -i {}`",
                iface,
                s.meta.pid,
                s.uptime_seconds,
                modes.join(", "),
                iface,
                iface
            );
        }
        if let Some(h) = &s.health {
            let _ = writeln!(
                out,
                "  health: {} (ifindex {})",
                escape(&h.summary),
                h.ifindex
            );
        }
        rules_line(&mut out, &s.meta.reload);
        if let Some(unread) = s.unread_in_rings.filter(|&n| n > 0) {
            let _ = writeln!(
                out,
                "  {unread} records left unread in its rings (sent before the recorder died)"
            );
        }
        if let Some(sets) = &s.sets {
            crate::instance::sets::status::render_status(&mut out, sets, s.live);
        }
        let Some(c) = &s.counters else { continue };
        counter_lines(&mut out, &counters::describe(counters::KERNEL, &c.kernel));
        if let Some(writer) = &c.writer {
            counter_lines(&mut out, &counters::describe(counters::WRITER, writer));
        }
        let written = description::written_rules(&s.meta.rules);
        for ((rule, _), (id, hits)) in written.iter().zip(c.rule_hits.iter().skip(1)) {
            let of =
                |per_rule: &[(u32, u64)]| per_rule.iter().find(|(i, _)| i == id).map_or(0, |p| p.1);
            let mut sampled = match of(&c.rule_sampled_out) {
                0 => String::new(),
                n => format!(" {n} sampled out"),
            };
            if rule.mode == Mode::Monitor {
                let would = if rule.action == Action::Pass {
                    "pass"
                } else {
                    "drop"
                };
                let _ = write!(sampled, " {} would {would}", of(&c.rule_would_decide));
            }
            if let Some(limit) = &rule.limit {
                let _ = write!(
                    sampled,
                    " {} over limit [{}]",
                    of(&c.rule_over_limit),
                    escape(limit)
                );
                if !limit.ends_with("per rule") {
                    let _ = write!(
                        sampled,
                        " {} keys tracked, {} forgotten",
                        of(&c.rule_keys_tracked),
                        of(&c.rule_keys_forgotten)
                    );
                }
            }
            let _ = writeln!(
                out,
                "  rule {:>4} {:<24} {:<4} {:>12} hits {:>8} suppressed{sampled}  ({})",
                rule.id,
                escape(&rule.name),
                rule.shown_action(),
                hits,
                of(&c.rule_suppressed),
                escape(rule.shown_conditions())
            );
        }
        let default_hits = c.rule_hits.first().map_or(0, |p| p.1);
        let default_sampled = match c.rule_sampled_out.first().map_or(0, |p| p.1) {
            0 => String::new(),
            n => format!(" {n} sampled out"),
        };
        let _ = writeln!(
            out,
            "  default      {:<24} {:<4} {:>12} hits{default_sampled}",
            "", s.meta.default_action, default_hits
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::configure::{
        loader::Transport,
        rules::{Action, Rate, RuleSet},
    };

    /// `udp port 53` is two kernel rules sharing id 1: `status` shows one rule with their
    /// counts summed, in text and in JSON, under its conditions as written.
    #[test]
    fn a_rule_without_direction_shows_as_one_rule_with_its_counts_summed() {
        let mut rules = RuleSet::default();
        rules.push_expression(Action::Drop, "udp port 53").unwrap();
        rules
            .push_expression(Action::Pass, "tcp dst port 22")
            .unwrap();
        let meta = Meta {
            pid: std::process::id(),
            pid_start: 0,
            started_unix: 0,
            version: "test".into(),
            interfaces: Vec::new(),
            transport: Transport::RingBuf,
            default_action: Action::Pass,
            rules: description::rules_of(&rules, Rate::UNLIMITED),
            sets: Vec::new(),
            reload: Default::default(),
        };
        assert_eq!(meta.rules.len(), 3);
        assert_eq!(meta.rules[0].conditions, "udp and src port 53");
        assert_eq!(meta.rules[1].conditions, "udp and dst port 53");
        assert_eq!(meta.rules[1].written.as_deref(), Some("udp and port 53"));
        assert_eq!(meta.rules[2].written, None);
        let counts = |hits, suppressed| RuleCounters {
            hits,
            suppressed,
            ..Default::default()
        };
        let snap = Snapshot {
            rules: vec![counts(1, 0), counts(2, 1), counts(3, 2), counts(7, 0)],
            ..Default::default()
        };
        let c = status_counters(&snap, &meta, None);
        assert_eq!(c.rule_hits, vec![(0, 1), (1, 5), (2, 7)]);
        assert_eq!(c.rule_suppressed, vec![(0, 0), (1, 3), (2, 0)]);
        let status = Status {
            interface: "fw0".into(),
            pins: "/nonexistent".into(),
            live: true,
            in_force: true,
            uptime_seconds: 1,
            meta,
            counters: Some(c),
            unread_in_rings: None,
            health: None,
            sets: None,
        };
        let text = render(std::slice::from_ref(&status));
        let rule_lines: Vec<&str> = text.lines().filter(|l| l.starts_with("  rule ")).collect();
        assert_eq!(rule_lines.len(), 2, "{text}");
        assert!(rule_lines[0].contains("drop udp port 53"), "{text}");
        let words: Vec<&str> = rule_lines[0].split_whitespace().collect();
        assert!(
            words
                .windows(4)
                .any(|w| w == ["5", "hits", "3", "suppressed"]),
            "{text}"
        );
        assert!(rule_lines[0].ends_with("(udp and port 53)"), "{text}");
        assert!(rule_lines[1].contains(" 7 hits"), "{text}");
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(
            json["counters"]["rule_hits"],
            serde_json::json!([[0, 1], [1, 5], [2, 7]])
        );
        // The description keeps each kernel rule and the written form for older readers.
        assert_eq!(json["rules"].as_array().map(Vec::len), Some(3));
        assert_eq!(json["rules"][0]["written"], "udp and port 53");
        assert!(json["rules"][2].get("written").is_none());
    }
}
