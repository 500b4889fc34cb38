//! Prometheus metrics: `--metrics ADDR:PORT` serves `/metrics` (OpenMetrics text, via the
//! prometheus-client crate) from a hardened HTTP server on its own thread (`metrics/http.rs`).
//! Each scrape reads the instance's pinned counter maps and its writer state file, the same
//! ones `xdpsieve status` reads, so it never touches the capture path. The families are those
//! of the counter catalogue ([`crate::base::counters`]): a new counter shows here without a change
//! to this file.

mod http;

use std::net::SocketAddr;

use anyhow::Result;
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric as _},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
    registry::Registry,
};

pub use http::{Limits, MetricsServer, NICENESS};
use xdpsieve_common::{InterfaceCounters, RuleCounters, walk::RuleExtraCounters};

use crate::{
    base::counters::{self, Counter},
    base::snapshot::Snapshot,
    configure::rules::limit::Mode,
    instance::description::{self, Meta, MetaRule},
    instance::pins,
    observe::writer_state,
};

/// Serves the counters of the instance described by `meta` on `addr`, with the default
/// [`Limits`].
pub fn serve(addr: SocketAddr, meta: Meta) -> Result<MetricsServer> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(FirewallCollector { meta }));
    http::start(
        addr,
        Limits::default(),
        Box::new(move || {
            let mut body = String::new();
            prometheus_client::encoding::text::encode(&mut body, &registry).ok()?;
            Some(body)
        }),
    )
}

#[derive(Debug)]
struct FirewallCollector {
    meta: Meta,
}

/// Label pairs of one row (a rule, an interface; none for the totals).
type Labels = Vec<(String, String)>;

/// Writes every family of `catalogue`, once each, with a member per entry and row: the
/// row's labels, then the entry's own.
fn encode_catalogue<T>(
    encoder: &mut DescriptorEncoder<'_>,
    catalogue: &[Counter<T>],
    rows: &[(Labels, &T)],
) -> Result<(), std::fmt::Error> {
    let mut done: Vec<&str> = Vec::new();
    for first in catalogue {
        if done.contains(&first.metric) {
            continue;
        }
        done.push(first.metric);
        let mut members: Vec<(Labels, u64)> = Vec::new();
        for entry in catalogue.iter().filter(|c| c.metric == first.metric) {
            for (row_labels, values) in rows {
                let mut labels = row_labels.clone();
                labels.extend(
                    entry
                        .labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string())),
                );
                members.push((labels, (entry.get)(values)));
            }
        }
        let mut metric =
            encoder.encode_descriptor(first.metric, first.help, None, MetricType::Counter)?;
        match members.as_slice() {
            // One value without labels: the plain `name_total N`.
            [(labels, value)] if labels.is_empty() => ConstCounter::new(*value).encode(metric)?,
            _ => {
                for (labels, value) in &members {
                    ConstCounter::new(*value).encode(metric.encode_family(labels)?)?;
                }
            }
        }
    }
    Ok(())
}

/// The label pairs of a rule (`None`: the default verdict) of `meta`'s rules.
fn rule_labels(meta: &Meta, rule: Option<&MetaRule>) -> Labels {
    let pairs = match rule {
        Some(r) => [
            ("rule_id", r.id.to_string()),
            ("rule", r.name.clone()),
            ("action", r.shown_action()),
        ],
        None => [
            ("rule_id", "0".into()),
            ("rule", "default".into()),
            ("action", meta.default_action.to_string()),
        ],
    };
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// The per-rule rows: the default verdict, then one per rule as written. The kernel rules
/// of one written rule (a condition without a direction makes one per direction) share its
/// labels, so their counts are summed: two series with the same labels would be invalid
/// exposition.
fn rule_rows(meta: &Meta, snap: &Snapshot) -> Vec<(Labels, RuleCounters)> {
    let mut rows = vec![(rule_labels(meta, None), snap.rule(0))];
    rows.extend(
        description::written_rules(&meta.rules)
            .into_iter()
            .map(|(rule, indexes)| (rule_labels(meta, Some(rule)), snap.rules_summed(indexes))),
    );
    rows
}

impl Collector for FirewallCollector {
    /// Every catalogued counter (see [`crate::base::counters`]): totals, the userspace writers'
    /// counts, per rule, per interface.
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let Some(interface) = self.meta.interfaces.first() else {
            return Ok(());
        };
        // The description as it is now: a reload changes the rules and the generation.
        let meta = description::read(&pins::meta_path(&interface.name))
            .filter(|m| (m.pid, m.pid_start) == (self.meta.pid, self.meta.pid_start))
            .unwrap_or_else(|| self.meta.clone());
        // A scrape that cannot read the pins shows no firewall metrics rather than failing.
        let Ok(snap) = pins::snapshot(&interface.name, &meta) else {
            return Ok(());
        };
        let e = &mut encoder;
        encode_catalogue(e, counters::KERNEL, &[(Vec::new(), &snap.counters)])?;
        if let Some(writer) = writer_state::read(&interface.name, &self.meta) {
            encode_catalogue(e, counters::WRITER, &[(Vec::new(), &writer)])?;
        }
        let per_rule = rule_rows(&meta, &snap);
        let rules: Vec<(Labels, &RuleCounters)> = per_rule
            .iter()
            .map(|(labels, c)| (labels.clone(), c))
            .collect();
        encode_catalogue(e, counters::RULE, &rules)?;
        // Only monitor and limit rules count these: no series of zeros for the others.
        let extra: Vec<(Labels, RuleExtraCounters)> = description::written_rules(&meta.rules)
            .into_iter()
            .filter(|(rule, _)| rule.mode == Mode::Monitor || rule.limit.is_some())
            .map(|(rule, indexes)| {
                (
                    rule_labels(&meta, Some(rule)),
                    snap.rule_extra_summed(indexes),
                )
            })
            .collect();
        if !extra.is_empty() {
            let rows: Vec<(Labels, &RuleExtraCounters)> =
                extra.iter().map(|(l, c)| (l.clone(), c)).collect();
            encode_catalogue(e, counters::RULE_EXTRA, &rows)?;
        }
        let interfaces: Vec<(Labels, &InterfaceCounters)> = snap
            .interfaces
            .iter()
            .map(|(name, i)| (vec![("interface".to_string(), name.clone())], i))
            .collect();
        encode_catalogue(e, counters::INTERFACE, &interfaces)?;
        let gauge = counters::RULE_GENERATION;
        let metric = e.encode_descriptor(gauge.metric, gauge.help, None, MetricType::Gauge)?;
        ConstGauge::new(i64::from(meta.reload.generation)).encode(metric)?;
        interface_health(e, &meta)
    }
}

/// `xdpsieve_interface_filtering{interface, state}`: 1 while the interface runs the program
/// on every packet as far as the watcher can tell, 0 otherwise (`state` says why).
fn interface_health(
    encoder: &mut DescriptorEncoder<'_>,
    meta: &Meta,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(
        "xdpsieve_interface_filtering",
        "1 while xdpsieve's program filters the interface, 0 when it was deleted, detached from \
         outside, has queues without the program or receives packets the program does not see.",
        None,
        MetricType::Gauge,
    )?;
    for interface in &meta.interfaces {
        let path = pins::health_path(&interface.name);
        let Some(health) = crate::observe::watch::health::read(&path) else {
            continue;
        };
        let state = serde_json::to_value(&health.health)
            .ok()
            .and_then(|v| v.get("state")?.as_str().map(str::to_string))
            .unwrap_or_default();
        let labels = [
            ("interface".to_string(), interface.name.clone()),
            ("state".to_string(), state),
        ];
        ConstGauge::new(i64::from(health.health.is_filtering()))
            .encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use prometheus_client::registry::Registry;
    use xdpsieve_common::Counters;

    use super::*;

    /// Encodes one catalogue with fixed values, as the firewall collector does.
    #[derive(Debug)]
    struct Fixed(Counters, RuleCounters);

    impl Collector for Fixed {
        fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
            encode_catalogue(&mut encoder, counters::KERNEL, &[(Vec::new(), &self.0)])?;
            let labels = vec![("rule_id".to_string(), "7".to_string())];
            encode_catalogue(&mut encoder, counters::RULE, &[(labels, &self.1)])
        }
    }

    #[test]
    fn catalogue_families_are_encoded_once_with_their_members() {
        let kernel = Counters {
            seen: 10,
            dropped: 4,
            passed: 6,
            capture_lost: 2,
            ..Default::default()
        };
        let rule = RuleCounters {
            hits: 4,
            ..Default::default()
        };
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Fixed(kernel, rule)));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("xdpsieve_seen_packets_total 10\n"), "{text}");
        assert!(
            text.contains("xdpsieve_packets_total{verdict=\"drop\"} 4\n"),
            "{text}"
        );
        assert!(
            text.contains("xdpsieve_packets_total{verdict=\"pass\"} 6\n"),
            "{text}"
        );
        assert!(
            text.contains("xdpsieve_records_lost_total{stream=\"capture\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("xdpsieve_rule_hits_total{rule_id=\"7\"} 4\n"),
            "{text}"
        );
        assert_eq!(
            text.matches("# TYPE xdpsieve_packets counter").count(),
            1,
            "{text}"
        );
    }

    /// `udp port 53` is two kernel rules with one id: one series, their counts summed.
    #[test]
    fn a_rule_without_direction_is_one_series_with_its_kernel_rules_summed() {
        let mut rules = crate::configure::rules::RuleSet::default();
        for (action, expr) in [("drop", "udp port 53"), ("pass", "tcp dst port 22")] {
            let action = crate::configure::rules::Action::from_name(action).unwrap();
            rules.push_expression(action, expr).unwrap();
        }
        let meta = Meta {
            pid: 1,
            pid_start: 1,
            started_unix: 0,
            version: "test".into(),
            interfaces: Vec::new(),
            transport: crate::configure::loader::Transport::RingBuf,
            default_action: crate::configure::rules::Action::Pass,
            rules: description::rules_of(&rules, crate::configure::rules::Rate::UNLIMITED),
            sets: Vec::new(),
            reload: Default::default(),
        };
        let hits = |hits, bytes| RuleCounters {
            hits,
            bytes,
            ..Default::default()
        };
        let snap = Snapshot {
            rules: vec![hits(1, 60), hits(2, 100), hits(3, 300), hits(5, 500)],
            ..Default::default()
        };
        let rows = rule_rows(&meta, &snap);
        let shown: Vec<(String, u64, u64)> = rows
            .iter()
            .map(|(labels, c)| (labels[0].1.clone(), c.hits, c.bytes))
            .collect();
        assert_eq!(
            shown,
            vec![
                ("0".into(), 1, 60),
                ("1".into(), 5, 400),
                ("2".into(), 5, 500)
            ]
        );
        assert_eq!(rows[1].0[1], ("rule".into(), "drop udp port 53".into()));
    }
}
