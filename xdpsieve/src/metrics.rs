//! Prometheus metrics: `--metrics ADDR:PORT` serves `/metrics` (OpenMetrics text, via the
//! prometheus-client crate) from a hardened HTTP server on its own thread (`metrics/http.rs`).
//! Each scrape reads the instance's pinned counter maps, the same ones `xdpsieve status`
//! reads, so it never touches the capture path.

mod http;

use std::net::SocketAddr;

use anyhow::Result;
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
    registry::Registry,
};

pub use http::{Limits, MetricsServer, NICENESS};

use crate::status::{Meta, pinned_snapshot};

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

/// Writes one counter family with its labelled values.
fn family(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    values: &[(Vec<(&str, String)>, u64)],
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in values {
        if labels.is_empty() {
            ConstCounter::new(*value).encode(metric)?;
            return Ok(());
        }
        let labels: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        ConstCounter::new(*value).encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for FirewallCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(interface) = self.meta.interfaces.first() else {
            return Ok(());
        };
        // A scrape that cannot read the pins shows no firewall metrics rather than failing.
        let Ok(snap) = pinned_snapshot(&interface.name, &self.meta) else {
            return Ok(());
        };
        let c = &snap.counters;
        let e = &mut encoder;
        let verdict = |v: &str| vec![("verdict", v.to_string())];
        family(
            e,
            "xdpsieve_packets",
            "Packets seen, by verdict.",
            &[(verdict("drop"), c.dropped), (verdict("pass"), c.passed)],
        )?;
        family(
            e,
            "xdpsieve_bytes",
            "Bytes seen, by verdict.",
            &[
                (verdict("drop"), c.bytes_dropped),
                (verdict("pass"), c.bytes_passed),
            ],
        )?;
        family(
            e,
            "xdpsieve_malformed_packets",
            "Frames the parser found malformed.",
            &[(vec![], c.malformed)],
        )?;
        family(
            e,
            "xdpsieve_non_ip_packets",
            "Frames without a readable IP header (always passed).",
            &[(vec![], c.non_ip)],
        )?;
        family(
            e,
            "xdpsieve_captured_packets",
            "Capture records sent to userspace.",
            &[(vec![], c.captured)],
        )?;
        family(
            e,
            "xdpsieve_events",
            "Events sent to userspace.",
            &[(vec![], c.events)],
        )?;
        family(
            e,
            "xdpsieve_records_lost",
            "Records that did not fit in the ring or perf buffer.",
            &[
                (vec![("stream", "capture".into())], c.capture_lost),
                (vec![("stream", "event".into())], c.event_lost),
            ],
        )?;
        family(
            e,
            "xdpsieve_rate_limited_packets",
            "Packets whose records a rate limit suppressed.",
            &[(vec![], c.rate_limited)],
        )?;

        let rule_labels = |slot: usize| -> Vec<(&str, String)> {
            match slot.checked_sub(1).and_then(|i| self.meta.rules.get(i)) {
                Some(r) => vec![
                    ("rule_id", r.id.to_string()),
                    ("rule", r.name.clone()),
                    ("action", r.action.clone()),
                ],
                None => vec![
                    ("rule_id", "0".into()),
                    ("rule", "default".into()),
                    ("action", self.meta.default_action.clone()),
                ],
            }
        };
        let per_rule =
            |f: fn(&xdpsieve_common::RuleCounters) -> u64| -> Vec<(Vec<(&str, String)>, u64)> {
                snap.rules
                    .iter()
                    .enumerate()
                    .map(|(slot, r)| (rule_labels(slot), f(r)))
                    .collect()
            };
        family(
            e,
            "xdpsieve_rule_hits",
            "Packets each rule decided (rule_id 0: the default verdict).",
            &per_rule(|r| r.hits),
        )?;
        family(
            e,
            "xdpsieve_rule_bytes",
            "Bytes of the packets each rule decided.",
            &per_rule(|r| r.bytes),
        )?;
        family(
            e,
            "xdpsieve_rule_rate_limited_packets",
            "Packets whose records each rule's rate limit suppressed.",
            &per_rule(|r| r.suppressed),
        )?;

        let per_interface: Vec<(Vec<(&str, String)>, u64)> = snap
            .interfaces
            .iter()
            .flat_map(|(name, i)| {
                [
                    (
                        vec![("interface", name.clone()), ("verdict", "drop".into())],
                        i.dropped,
                    ),
                    (
                        vec![("interface", name.clone()), ("verdict", "pass".into())],
                        i.passed,
                    ),
                ]
            })
            .collect();
        family(
            e,
            "xdpsieve_interface_packets",
            "Packets seen per interface, by verdict.",
            &per_interface,
        )?;
        let bytes: Vec<(Vec<(&str, String)>, u64)> = snap
            .interfaces
            .iter()
            .map(|(name, i)| (vec![("interface", name.clone())], i.bytes))
            .collect();
        family(
            e,
            "xdpsieve_interface_bytes",
            "Bytes seen per interface.",
            &bytes,
        )?;
        interface_health(e, &self.meta)?;
        Ok(())
    }
}

/// `xdpsieve_interface_filtering{interface, state}`: 1 while the interface runs the program
/// on every packet as far as the watcher can tell, 0 otherwise (`state` says why).
fn interface_health(encoder: &mut DescriptorEncoder, meta: &Meta) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(
        "xdpsieve_interface_filtering",
        "1 while xdpsieve's program filters the interface, 0 when it was deleted, detached from \
         outside, has queues without the program or receives packets the program does not see.",
        None,
        MetricType::Gauge,
    )?;
    for interface in &meta.interfaces {
        let path = crate::pins::health_path(&interface.name);
        let Some(health) = crate::watch::health::read(&path) else {
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
