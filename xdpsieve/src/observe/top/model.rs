//! What `top` shows, computed from two samples ([`TopModel::between`]): rates per rule,
//! the busiest sources, the timed set entries (bans) by time left, the losses. Pure, so
//! that every figure the view and `status --top` print is tested without a kernel.
//!
//! Counters only grow while a firewall runs; one that went down between two samples is a
//! counter that started again (a source evicted from `TOP_SOURCES` and counted afresh, a
//! rule whose counters a reload did not carry): its rate is 0 for that interval, never a
//! huge number from a wrapped subtraction. A rule or source absent from the first sample
//! started from zero since then, so its count in the second is its growth.

use std::{collections::HashMap, net::IpAddr};

use serde::Serialize;

use super::sample::{RuleSample, SourceSample, TopSample, Traffic};

/// What `top` shows, over one interval.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TopModel {
    pub interface: String,
    /// The rule generation of the later sample.
    pub generation: u32,
    /// A recorder was alive at the later sample.
    pub recorder: bool,
    /// Seconds between the two samples (0 when they were not in order).
    pub interval_s: f64,
    pub traffic: TrafficRates,
    /// Every rule and the default verdict, the ones dropping most first (then the rest in
    /// evaluation order).
    pub rules: Vec<RuleRate>,
    /// The program counts per source (see [`TopSample::sources_tracked`]).
    pub sources_tracked: bool,
    /// Sources dropped, would-be-dropped or limited during the interval, most packets
    /// first (all of them: the caller shows as many as it has room for).
    pub sources: Vec<SourceRate>,
    /// Set entries with a timeout, soonest to expire first.
    pub bans: Vec<Ban>,
    /// Every loss counter: its total and how fast it grew.
    pub losses: Vec<LossRate>,
}

/// The program's totals per second.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct TrafficRates {
    pub seen_pps: f64,
    pub dropped_pps: f64,
    pub passed_pps: f64,
    pub seen_bytes_per_s: f64,
    pub dropped_bytes_per_s: f64,
    pub passed_bytes_per_s: f64,
}

/// One rule's rates (id 0: the default verdict).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RuleRate {
    pub id: u32,
    pub name: String,
    pub action: String,
    /// Packets per second it decided, and their bytes.
    pub hits_pps: f64,
    pub hits_bytes_per_s: f64,
    /// Packets per second it dropped (its hits, for a rule that drops; else 0).
    pub dropped_pps: f64,
    /// Per second, for programs and rules that count them (else absent).
    pub would_drop_pps: Option<f64>,
    pub over_limit_pps: Option<f64>,
    /// Packets it decided since its counters started.
    pub hits: u64,
}

impl RuleRate {
    /// Packets per second it dropped, would have dropped or found over its limit: what
    /// the rules are ordered by.
    pub fn activity(&self) -> f64 {
        self.dropped_pps + self.would_drop_pps.unwrap_or(0.0) + self.over_limit_pps.unwrap_or(0.0)
    }
}

/// One source's rates.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SourceRate {
    pub addr: IpAddr,
    /// Dropped, would-drop and over-limit together.
    pub pps: f64,
    pub bytes_per_s: f64,
    pub dropped_pps: f64,
    pub would_pps: f64,
    pub limited_pps: f64,
}

/// A set entry with a timeout, as the later sample found it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Ban {
    pub set: String,
    pub prefix: String,
    pub origin: String,
    /// Milliseconds until it is removed (0: due, removed at the next expiry).
    pub expires_in_ms: u64,
}

/// One loss counter.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LossRate {
    /// The catalogue key (`capture_lost`, ...).
    pub key: String,
    pub total: u64,
    pub per_s: f64,
}

impl TopModel {
    /// What happened between `a` and the later sample `b`.
    pub fn between(a: &TopSample, b: &TopSample) -> TopModel {
        let interval_s = b.at_ns.saturating_sub(a.at_ns) as f64 / 1e9;
        let per_s = |later: u64, earlier: u64| {
            if interval_s > 0.0 {
                later.saturating_sub(earlier) as f64 / interval_s
            } else {
                0.0
            }
        };
        let mut bans: Vec<Ban> = b
            .timed
            .iter()
            .map(|t| Ban {
                set: t.set.clone(),
                prefix: t.prefix.clone(),
                origin: t.origin.clone(),
                expires_in_ms: t.expires_ns.saturating_sub(b.at_ns) / 1_000_000,
            })
            .collect();
        bans.sort_by(|x, y| {
            (x.expires_in_ms, &x.set, &x.prefix).cmp(&(y.expires_in_ms, &y.set, &y.prefix))
        });
        let losses = b
            .losses
            .iter()
            .map(|(key, &total)| LossRate {
                key: key.clone(),
                total,
                per_s: per_s(total, a.losses.get(key).copied().unwrap_or(0)),
            })
            .collect();
        TopModel {
            interface: b.interface.clone(),
            generation: b.generation,
            recorder: b.recorder,
            interval_s,
            traffic: traffic_rates(&a.traffic, &b.traffic, &per_s),
            rules: rule_rates(&a.rules, &b.rules, &per_s),
            sources_tracked: b.sources_tracked,
            sources: source_rates(&a.sources, &b.sources, &per_s),
            bans,
            losses,
        }
    }

    /// The same, keeping only the `n` busiest sources.
    pub fn with_top(mut self, n: usize) -> TopModel {
        self.sources.truncate(n);
        self
    }
}

fn traffic_rates(a: &Traffic, b: &Traffic, per_s: &impl Fn(u64, u64) -> f64) -> TrafficRates {
    TrafficRates {
        seen_pps: per_s(b.seen, a.seen),
        dropped_pps: per_s(b.dropped, a.dropped),
        passed_pps: per_s(b.passed, a.passed),
        seen_bytes_per_s: per_s(b.bytes_seen, a.bytes_seen),
        dropped_bytes_per_s: per_s(b.bytes_dropped, a.bytes_dropped),
        passed_bytes_per_s: per_s(b.bytes_passed, a.bytes_passed),
    }
}

/// A rule's identity across two samples: its name and which of the rules of that name it
/// is (counters follow a rule's name through a reload, not its id or place); the default
/// verdict apart, whatever a rule is called.
fn rule_keys(rules: &[RuleSample]) -> Vec<(bool, &str, usize)> {
    let mut seen: HashMap<(bool, &str), usize> = HashMap::new();
    rules
        .iter()
        .map(|r| {
            let key = (r.id == 0, r.name.as_str());
            let n = seen.entry(key).or_insert(0);
            *n += 1;
            (key.0, key.1, *n)
        })
        .collect()
}

fn rule_rates(
    a: &[RuleSample],
    b: &[RuleSample],
    per_s: &impl Fn(u64, u64) -> f64,
) -> Vec<RuleRate> {
    let earlier: HashMap<_, &RuleSample> = rule_keys(a).into_iter().zip(a).collect();
    let mut rates: Vec<(usize, RuleRate)> = rule_keys(b)
        .into_iter()
        .zip(b)
        .enumerate()
        .map(|(slot, (key, r))| {
            let before = earlier.get(&key);
            let base = |get: fn(&RuleSample) -> Option<u64>| before.and_then(|p| get(p));
            let hits_pps = per_s(r.hits, base(|p| Some(p.hits)).unwrap_or(0));
            let rate = RuleRate {
                id: r.id,
                name: r.name.clone(),
                action: r.action.clone(),
                hits_pps,
                hits_bytes_per_s: per_s(r.bytes, base(|p| Some(p.bytes)).unwrap_or(0)),
                dropped_pps: if r.drops { hits_pps } else { 0.0 },
                would_drop_pps: r
                    .would_drop
                    .map(|n| per_s(n, base(|p| p.would_drop).unwrap_or(0))),
                over_limit_pps: r
                    .over_limit
                    .map(|n| per_s(n, base(|p| p.over_limit).unwrap_or(0))),
                hits: r.hits,
            };
            (slot, rate)
        })
        .collect();
    rates.sort_by(|(slot_x, x), (slot_y, y)| {
        y.activity()
            .total_cmp(&x.activity())
            .then(y.hits_pps.total_cmp(&x.hits_pps))
            .then(slot_x.cmp(slot_y))
    });
    rates.into_iter().map(|(_, r)| r).collect()
}

fn source_rates(
    a: &[SourceSample],
    b: &[SourceSample],
    per_s: &impl Fn(u64, u64) -> f64,
) -> Vec<SourceRate> {
    let earlier: HashMap<IpAddr, &SourceSample> = a.iter().map(|s| (s.addr, s)).collect();
    let zero = SourceSample {
        addr: IpAddr::from([0, 0, 0, 0]),
        dropped: 0,
        dropped_bytes: 0,
        would: 0,
        would_bytes: 0,
        limited: 0,
        limited_bytes: 0,
    };
    let mut rates: Vec<SourceRate> = b
        .iter()
        .map(|s| {
            let p = earlier.get(&s.addr).copied().unwrap_or(&zero);
            let (dropped_pps, would_pps, limited_pps) = (
                per_s(s.dropped, p.dropped),
                per_s(s.would, p.would),
                per_s(s.limited, p.limited),
            );
            SourceRate {
                addr: s.addr,
                pps: dropped_pps + would_pps + limited_pps,
                bytes_per_s: per_s(s.dropped_bytes, p.dropped_bytes)
                    + per_s(s.would_bytes, p.would_bytes)
                    + per_s(s.limited_bytes, p.limited_bytes),
                dropped_pps,
                would_pps,
                limited_pps,
            }
        })
        // A source quiet during the interval is not among the top ones now.
        .filter(|s| s.pps > 0.0 || s.bytes_per_s > 0.0)
        .collect();
    rates.sort_by(|x, y| {
        y.pps
            .total_cmp(&x.pps)
            .then(y.bytes_per_s.total_cmp(&x.bytes_per_s))
            .then(x.addr.cmp(&y.addr))
    });
    rates
}

#[cfg(test)]
mod tests;
