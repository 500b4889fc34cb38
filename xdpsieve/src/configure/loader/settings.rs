//! What a generation of the firewall is loaded with: rules and sets, capture and log
//! settings, and what a reload or takeover carries into it.

use std::path::PathBuf;

use xdpsieve_common::{
    Config, MAX_INTERFACES, MAX_RULES, MAX_SNAPLEN, Rule,
    walk::{LimitParams, features},
};

use super::LoaderError;
use crate::{
    configure::capture_filter::{CompiledFilter, FilterEngine},
    configure::classify::Tables,
    configure::matcher::RuleEngine,
    configure::rules::{Action, Rate, RuleSet},
    configure::sets::kernel::RuntimeEntry,
};

/// Which transport the program uses for its records.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    #[default]
    #[value(name = "ringbuf")]
    RingBuf,
    Perf,
}

impl Transport {
    pub fn kernel_value(self) -> u32 {
        match self {
            Transport::RingBuf => xdpsieve_common::transport::RINGBUF,
            Transport::Perf => xdpsieve_common::transport::PERF,
        }
    }
}

/// What to load: rules, capture and log settings.
#[derive(Clone, Debug)]
pub struct Settings {
    pub rules: RuleSet,
    /// Bits of `xdpsieve_common::capture`: which verdicts are captured.
    pub capture: u32,
    /// Bits of `xdpsieve_common::capture`: which verdicts are logged.
    pub log: u32,
    /// Bytes captured of each packet a rule without its own `snaplen` decides.
    pub snaplen: u32,
    /// Records one in this many of the packets selected for recording, for rules without
    /// their own `sample` and the default verdict (`--sample`); 1 records all.
    pub sample: u32,
    /// Ring buffer size in bytes (a power of two, at least one page); with perf, the
    /// total over all CPUs' buffers.
    pub ring_bytes: u32,
    pub transport: Transport,
    /// Rate limit for rules that set none, and for the default verdict.
    pub default_rate: Rate,
    /// Interfaces that get their own counters, in order.
    pub ifindexes: Vec<u32>,
    /// Verdict for packets whose L4 header the program cannot reach; `None`: drop when a
    /// rule has a protocol or port condition ([`RuleSet::has_l4_condition`]), else pass.
    pub unclassifiable: Option<Action>,
    /// Set entries added at run time by an earlier generation, kept by a reload or takeover.
    pub set_runtime: Vec<RuntimeEntry>,
    /// The rule generation (1 at start, one more per reload), stamped into every record.
    pub generation: u32,
    /// A reload: the directory where the running program's [`SHARED_MAPS`] are pinned; the
    /// new program uses those maps instead of making its own (see `instance::reload`).
    pub share_maps_from: Option<PathBuf>,
    /// The capture filter (`--filter`): only the packets it selects are captured.
    pub capture_filter: Option<CompiledFilter>,
    /// The event log's filter: the capture filter's copy unless `--log-filter` gave another
    /// (the program then runs the capture filter once for both).
    pub log_filter: Option<CompiledFilter>,
    /// How the filters run in the kernel (`--filter-engine`).
    pub filter_engine: FilterEngine,
    /// How the program finds the first matching rule (the tests compare both ways).
    pub rule_engine: RuleEngine,
}

impl Settings {
    /// Whether the program sends events: a log mask, or a rule with `log = true`.
    pub fn logs_events(&self) -> bool {
        self.log != 0 || self.rules.rules.iter().any(|r| r.log)
    }

    /// Bytes of the capture ring and of the event ring: `ring_bytes` for each stream the
    /// program sends through a ring buffer, `page` (the least the kernel makes) for the
    /// others. The rings exist either way (the program names them); a ring nothing is sent
    /// to must not hold `--ring-size` of locked kernel memory: 2 GiB for an event ring of a
    /// capture-only run. A reload's program shares the run's pinned rings whatever these
    /// say, so a reload that turns logging on finds one page (see `instance::reload`).
    pub fn ring_sizes(&self, page: u32) -> (u32, u32) {
        let size = |used: bool| {
            if used && self.transport == Transport::RingBuf {
                self.ring_bytes.max(page)
            } else {
                page
            }
        };
        (size(self.capture != 0), size(self.logs_events()))
    }

    /// The rules as the program reads them, once the settings are checked against what the
    /// program can hold (snap length, sampling, ring size, rules, interfaces).
    pub(super) fn kernel_rules(&self) -> Result<Vec<Rule>, LoaderError> {
        if self.snaplen == 0 || self.snaplen > MAX_SNAPLEN {
            return Err(LoaderError::Snaplen(self.snaplen));
        }
        if self.sample == 0 {
            return Err(LoaderError::Sample(self.sample));
        }
        if !self.ring_bytes.is_power_of_two() || self.ring_bytes < 4096 {
            return Err(LoaderError::RingSize(self.ring_bytes));
        }
        let rules: Vec<Rule> = self.rules.to_kernel(self.default_rate);
        if rules.len() > MAX_RULES as usize {
            return Err(LoaderError::TooManyRules(rules.len()));
        }
        if self.ifindexes.len() > MAX_INTERFACES {
            return Err(LoaderError::TooManyInterfaces(self.ifindexes.len()));
        }
        Ok(rules)
    }

    /// The program's read-only configuration (`CONFIG`) for `rule_count` rules matched
    /// with `tables`; the filters' fields are set by `filters::plan`.
    pub(super) fn config(&self, rule_count: usize, tables: &Tables) -> Config {
        let mut ifindexes = [0u32; MAX_INTERFACES];
        ifindexes[..self.ifindexes.len()].copy_from_slice(&self.ifindexes);
        Config {
            default_verdict: u32::from(self.rules.default_action.verdict()),
            capture: self.capture,
            snaplen: self.snaplen,
            rule_count: rule_count as u32,
            rule_words: tables.rule_words,
            classify: tables.fields,
            log: self.log,
            transport: self.transport.kernel_value(),
            default_rate_interval_ns: self.default_rate.interval_ns(),
            default_rate_tolerance_ns: self.default_rate.tolerance_ns(),
            ifindexes,
            unclassifiable: u32::from(self.unclassifiable_action().verdict()),
            generation: self.generation,
            sample: self.sample,
            capture_filter: 0,
            log_filter: 0,
            filter_translated: 0,
            // Read-only data: without a continuing rule the verifier removes the walk.
            features: features::TOP_SOURCES
                | if self.rules.has_continuing() {
                    features::CONTINUE
                } else {
                    0
                },
            // Set by the load when the rules are compiled (`configure::matcher`).
            rules_compiled: 0,
        }
    }

    /// The limit rules' parameters, by rule index, and the keys their shared table holds
    /// (at least 1: a map cannot be empty).
    pub(super) fn limits(&self) -> (Vec<(u32, LimitParams)>, u32) {
        let mut tracked = 0u32;
        let mut params = Vec::new();
        for (index, rule) in self.rules.rules.iter().enumerate() {
            if let Some(limit) = &rule.limit {
                params.push((index as u32, limit.to_kernel()));
                tracked = tracked.saturating_add(limit.tracked());
            }
        }
        (params, tracked.max(1))
    }

    /// The unclassifiable verdict in force: the one asked for, else the default.
    pub fn unclassifiable_action(&self) -> Action {
        self.unclassifiable
            .unwrap_or(if self.rules.has_l4_condition() {
                Action::Drop
            } else {
                Action::Pass
            })
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            rules: RuleSet::default(),
            capture: xdpsieve_common::capture::DROPPED,
            log: 0,
            snaplen: MAX_SNAPLEN,
            sample: 1,
            ring_bytes: 8 * 1024 * 1024,
            transport: Transport::RingBuf,
            default_rate: Rate::UNLIMITED,
            ifindexes: Vec::new(),
            unclassifiable: None,
            set_runtime: Vec::new(),
            generation: 1,
            share_maps_from: None,
            capture_filter: None,
            log_filter: None,
            filter_engine: FilterEngine::Auto,
            rule_engine: RuleEngine::Auto,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::configure::rules::Action;

    #[test]
    fn only_the_rings_of_streams_sent_get_the_ring_size() {
        const PAGE: u32 = 4096;
        const RING: u32 = 1 << 30;
        let capture_only = Settings {
            ring_bytes: RING,
            ..Settings::default()
        };
        assert_eq!(capture_only.ring_sizes(PAGE), (RING, PAGE));
        let mut log_only = Settings {
            capture: 0,
            log: xdpsieve_common::capture::DROPPED,
            ..capture_only
        };
        assert_eq!(log_only.ring_sizes(PAGE), (PAGE, RING));
        // A rule's `log = true` sends events too.
        log_only.log = 0;
        assert_eq!(log_only.ring_sizes(PAGE), (PAGE, PAGE));
        log_only
            .rules
            .push_expression(Action::Drop, "udp")
            .expect("a rule");
        log_only.rules.rules[0].log = true;
        assert_eq!(log_only.ring_sizes(PAGE), (PAGE, RING));
        // Perf sends through perf buffers: both rings stay a page.
        let perf = Settings {
            transport: Transport::Perf,
            ..log_only
        };
        assert_eq!(perf.ring_sizes(PAGE), (PAGE, PAGE));
    }
}
