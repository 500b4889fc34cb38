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
use xdpsieve_common::Counters;

use crate::{
    base::counters::{self, WriterStats},
    base::snapshot::Snapshot,
    base::text::escape,
    configure::flags,
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

fn status_counters(snap: &Snapshot, meta: &Meta, writer: Option<WriterStats>) -> StatusCounters {
    let ids = std::iter::once(0).chain(meta.rules.iter().map(|r| r.id));
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
        rule_hits: ids.clone().zip(snap.rules.iter().map(|r| r.hits)).collect(),
        rule_suppressed: ids
            .clone()
            .zip(snap.rules.iter().map(|r| r.suppressed))
            .collect(),
        rule_sampled_out: ids.zip(snap.rules.iter().map(|r| r.sampled_out)).collect(),
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
        for (rule, (id, hits)) in s.meta.rules.iter().zip(c.rule_hits.iter().skip(1)) {
            let of =
                |per_rule: &[(u32, u64)]| per_rule.iter().find(|(i, _)| i == id).map_or(0, |p| p.1);
            let sampled = match of(&c.rule_sampled_out) {
                0 => String::new(),
                n => format!(" {n} sampled out"),
            };
            let _ = writeln!(
                out,
                "  rule {:>4} {:<24} {:<4} {:>12} hits {:>8} suppressed{sampled}  ({})",
                rule.id,
                escape(&rule.name),
                rule.action,
                hits,
                of(&c.rule_suppressed),
                escape(&rule.conditions)
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
