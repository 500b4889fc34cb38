//! One read of a firewall's pinned state for `top` ([`TopSample`]): its counters per rule,
//! its losses, its per-source counts, and the set entries with a timeout (bans), at one
//! moment of `CLOCK_BOOTTIME`.
//!
//! A sample is raw counts, never rates: rates come from two samples
//! ([`super::model::TopModel::between`]), which is why a sample holds the clock it was read
//! at. The counters come through the reader `status` uses
//! ([`crate::observe::status::read_pinned`]); the description is read again at every
//! sample, so a reload's new rule names (and its new generation) show at the next tick.
//!
//! **Where the kernel's new counters plug in** (issue 18): a rule's `would_drop` (monitor
//! rules) and `over_limit` (limit rules) stay `None` until their maps are pinned; they are
//! filled in [`rules_of`] from the same slot as `hits`. The per-source counts
//! (`TOP_SOURCES`) go into [`TopSample::sources`], summed over CPUs, with
//! [`TopSample::sources_tracked`] set; a ban is a timed set entry ([`TimedEntry`], origin
//! `ban` once set entries carry their origin). A new loss counter gets its key in
//! [`KERNEL_LOSSES`] (or [`WRITER_LOSSES`]).

use std::{collections::BTreeMap, net::IpAddr};

use anyhow::Result;
use serde::{Deserialize, Serialize};
use xdpsieve_common::{
    family,
    sets::ENTRY_FREE,
    walk::{SourceKey, SourceStats},
};

use crate::{
    base::counters::{self, WriterStats},
    base::snapshot::{self, Snapshot},
    configure::rules::{Action, limit::Mode},
    configure::sets::kernel::entry_prefix,
    instance::description::Meta,
    instance::pins,
    instance::sets::{Generation, boottime_ns, edit::origin_name, text::show},
    observe::status::{Pinned, read_pinned},
};

/// The program's counters whose growth means records lost (each with its reason).
pub const KERNEL_LOSSES: &[&str] = &[
    "capture_lost",
    "event_lost",
    "no_reader",
    "capture_no_writer",
    "event_no_writer",
];

/// The recorder's counters whose growth means records lost.
pub const WRITER_LOSSES: &[&str] = &[
    "undecodable",
    "ring_corrupt",
    "capture_not_written",
    "log_not_written",
];

/// One read of a firewall's pinned state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TopSample {
    pub interface: String,
    /// `CLOCK_BOOTTIME` ns at the read: rates divide by the difference of two samples', and
    /// set entries expire on this clock.
    pub at_ns: u64,
    /// The rule generation whose rules [`TopSample::rules`] are (see `instance::reload`).
    pub generation: u32,
    /// A recorder is alive (else the firewall is in force without one).
    pub recorder: bool,
    /// The program's totals.
    pub traffic: Traffic,
    /// Slot order: the default verdict first (id 0), then the rules in evaluation order.
    pub rules: Vec<RuleSample>,
    /// Loss counters by catalogue key ([`KERNEL_LOSSES`], [`WRITER_LOSSES`]); a writer's
    /// are absent without a live recorder.
    pub losses: BTreeMap<String, u64>,
    /// The program keeps per-source counts (`TOP_SOURCES`); false: [`TopSample::sources`]
    /// is empty because nothing counts them, not because nothing was dropped.
    pub sources_tracked: bool,
    /// Per-source counts of dropped, would-drop and over-limit packets, summed over CPUs.
    pub sources: Vec<SourceSample>,
    /// Set entries with a timeout (runtime entries added with `--timeout`, and bans).
    pub timed: Vec<TimedEntry>,
}

/// The program's totals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Traffic {
    pub seen: u64,
    pub dropped: u64,
    pub passed: u64,
    pub bytes_seen: u64,
    pub bytes_dropped: u64,
    pub bytes_passed: u64,
}

/// One rule's counters (or the default verdict's, id 0).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSample {
    pub id: u32,
    pub name: String,
    /// As the description names it: `drop`, `pass`.
    pub action: String,
    /// Its hits are packets it dropped (a drop rule; a limit rule, whose hits are its
    /// over-limit drops).
    pub drops: bool,
    /// Packets it decided, and their bytes.
    pub hits: u64,
    pub bytes: u64,
    /// Packets a monitor rule would have dropped; `None` for a program without the
    /// counter, or a rule that is not a monitor rule.
    #[serde(default)]
    pub would_drop: Option<u64>,
    /// Packets over a limit rule's rate; `None` for a program without the counter, or a
    /// rule that is not a limit rule.
    #[serde(default)]
    pub over_limit: Option<u64>,
}

/// One source's counts (a `TOP_SOURCES` entry, summed over CPUs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceSample {
    pub addr: IpAddr,
    pub dropped: u64,
    pub dropped_bytes: u64,
    pub would: u64,
    pub would_bytes: u64,
    pub limited: u64,
    pub limited_bytes: u64,
}

/// A set entry with a timeout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimedEntry {
    /// The set's name.
    pub set: String,
    /// `198.51.100.7/32`.
    pub prefix: String,
    /// As `set list` says: `runtime` (`set add --timeout`); `ban` for an automatic ban.
    pub origin: String,
    /// `CLOCK_BOOTTIME` ns after which it is removed.
    pub expires_ns: u64,
}

/// The firewall on `iface` now; `None` when no firewall is in force there (no
/// description, or a stale one). Errors are the pins' (unreadable, not ours).
pub fn read(iface: &str) -> Result<Option<TopSample>> {
    let Some(pinned) = read_pinned(iface)? else {
        return Ok(None);
    };
    let Some(snapshot) = &pinned.snapshot else {
        return Ok(None);
    };
    // The clock next to the counters: what a rate divides by is when they were read.
    let at_ns = boottime_ns();
    // The sets are read without their lock: a change in progress may show one entry
    // twice or not at all for one tick, which a view can afford.
    let timed = if pinned.meta.sets.is_empty() {
        Vec::new()
    } else {
        Generation::open(iface)
            .map(|g| timed_entries(&g, &pinned.meta))
            .unwrap_or_default()
    };
    let sources = snapshot::read_top_sources(&pins::pin_dir(iface));
    Ok(Some(assemble(&pinned, snapshot, at_ns, timed, sources)))
}

/// A sample from what was read.
fn assemble(
    pinned: &Pinned,
    snapshot: &Snapshot,
    at_ns: u64,
    timed: Vec<TimedEntry>,
    sources: Option<Vec<(SourceKey, SourceStats)>>,
) -> TopSample {
    let c = &snapshot.counters;
    TopSample {
        interface: pinned.interface.clone(),
        at_ns,
        generation: pinned.meta.reload.generation,
        recorder: pinned.live,
        traffic: Traffic {
            seen: c.seen(),
            dropped: c.dropped,
            passed: c.passed,
            bytes_seen: c.bytes_seen,
            bytes_dropped: c.bytes_dropped,
            bytes_passed: c.bytes_passed,
        },
        rules: rules_of(&pinned.meta, snapshot),
        losses: losses_of(snapshot, pinned.writer.as_ref()),
        sources_tracked: sources.is_some(),
        sources: sources
            .unwrap_or_default()
            .into_iter()
            .map(|(key, s)| SourceSample {
                addr: source_addr(&key),
                dropped: s.dropped,
                dropped_bytes: s.dropped_bytes,
                would: s.would,
                would_bytes: s.would_bytes,
                limited: s.limited,
                limited_bytes: s.limited_bytes,
            })
            .collect(),
        timed,
    }
}

/// The address of a `TOP_SOURCES` key.
fn source_addr(key: &SourceKey) -> IpAddr {
    if key.family == family::IPV6 {
        let mut octets = [0u8; 16];
        for (chunk, word) in octets.chunks_mut(4).zip(key.addr) {
            chunk.copy_from_slice(&word.to_ne_bytes());
        }
        IpAddr::from(octets)
    } else {
        IpAddr::from(key.addr[0].to_ne_bytes())
    }
}

/// The default verdict and every rule, with their counters.
pub fn rules_of(meta: &Meta, snapshot: &Snapshot) -> Vec<RuleSample> {
    let default = RuleSample {
        id: 0,
        name: "default".into(),
        action: meta.default_action.to_string(),
        drops: meta.default_action == Action::Drop,
        ..RuleSample::default()
    };
    let rules = meta.rules.iter().enumerate().map(|(index, r)| {
        let extra = snapshot.rule_extra(index + 1);
        RuleSample {
            id: r.id,
            name: r.name.clone(),
            action: r.shown_action(),
            // A limit rule's hits are the packets it dropped, over its budget.
            drops: r.action == Action::Drop,
            would_drop: (r.mode == Mode::Monitor).then_some(extra.would_hit),
            over_limit: r.limit.is_some().then_some(extra.over_limit),
            ..RuleSample::default()
        }
    });
    std::iter::once(default)
        .chain(rules)
        .enumerate()
        .map(|(slot, mut rule)| {
            let counters = snapshot.rule(slot);
            rule.hits = counters.hits;
            rule.bytes = counters.bytes;
            rule
        })
        .collect()
}

/// The loss counters, by key.
fn losses_of(snapshot: &Snapshot, writer: Option<&WriterStats>) -> BTreeMap<String, u64> {
    let kernel = counters::entries(counters::KERNEL, &snapshot.counters);
    let writer = writer.map_or_else(Vec::new, |w| counters::entries(counters::WRITER, w));
    kernel
        .into_iter()
        .filter(|(key, _)| KERNEL_LOSSES.contains(key))
        .chain(
            writer
                .into_iter()
                .filter(|(key, _)| WRITER_LOSSES.contains(key)),
        )
        .map(|(key, value)| (key.to_string(), value))
        .collect()
}

/// The entries of `generation` that have a timeout, with their set's name.
fn timed_entries(generation: &Generation, meta: &Meta) -> Vec<TimedEntry> {
    generation
        .used_entries()
        .iter()
        .filter(|e| e.state != ENTRY_FREE && e.expires_ns != 0)
        .map(|e| TimedEntry {
            set: meta
                .sets
                .get(usize::from(e.set))
                .map_or_else(|| format!("set {}", e.set), |s| s.name.clone()),
            prefix: show(&entry_prefix(e)),
            origin: origin_name(e).into(),
            expires_ns: e.expires_ns,
        })
        .collect()
}
