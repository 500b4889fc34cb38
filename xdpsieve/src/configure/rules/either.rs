//! Conditions written without a direction, as tcpdump users write them: `port 53`,
//! `portrange 1000-2000`, `host 198.51.100.7`, `net 198.51.100.0/24` (TOML `port`, `host`,
//! `net`), each meaning "source or destination".
//!
//! The program matches a rule by ANDing one bitmap per field, so "source or destination"
//! cannot be one kernel rule. A rule with such a condition becomes several kernel rules,
//! one per direction, side by side in evaluation order, with the rule's id and name: the
//! first that matches decides, with the rule's verdict, so together they are the written
//! rule at its place. With an address and a port both undirected, tcpdump's meaning
//! (`host A and port 53` = (src A or dst A) and (src port 53 or dst port 53)) takes all
//! four pairings. Each kernel rule knows which of its conditions stand for an undirected
//! one ([`Either`]), so that it can be shown as written; the counters of the kernel rules
//! of one written rule are summed wherever rules are shown.

use std::ops::Range;

use xdpsieve_common::MAX_RULES;

use super::{AddrMatch, PortRange, RuleSet, RuleSpec};

/// The most kernel rules one written rule becomes (an undirected address and an
/// undirected port: four pairings).
pub const MAX_KERNEL_RULES_PER_RULE: usize = 4;

/// Which conditions of a kernel rule stand for a condition written without a direction
/// (then the rule is one of the 2 or 4 kernel rules sharing its id).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Either {
    /// Its `src` or `dst` (whichever is set) is an undirected `host`/`net`.
    pub addr: bool,
    /// Its `src_port` or `dst_port` is an undirected `port`/`portrange`.
    pub port: bool,
}

impl Either {
    /// Whether some condition was written without a direction.
    pub fn any(self) -> bool {
        self.addr || self.port
    }
}

/// The conditions of one written rule that have no direction.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Undirected {
    pub(super) addr: Option<AddrMatch>,
    pub(super) port: Option<PortRange>,
}

/// Why an undirected condition cannot join the rule's directed ones, or `None` when it
/// can. tcpdump would accept `host A and src host B` (only the pairing src B, dst A can
/// hold), but a reader of the rule would hardly guess that: the rule must say it.
pub(super) fn conflict(rule: &RuleSpec, undirected: &Undirected) -> Option<String> {
    if undirected.addr.is_some() && (rule.src.is_some() || rule.dst.is_some()) {
        return Some(
            "an address without a direction (`host`/`net`) cannot go with a `src` or `dst` \
             address in one rule: write both directions out (`src ... and dst ...`) or give \
             two rules"
                .into(),
        );
    }
    if undirected.port.is_some() && (rule.src_port.is_some() || rule.dst_port.is_some()) {
        return Some(
            "a port without a direction (`port`/`portrange`) cannot go with a `src` or `dst` \
             port in one rule: write both directions out (`src port ... and dst port ...`) \
             or give two rules"
                .into(),
        );
    }
    None
}

/// The kernel rules of `rule` with its `undirected` conditions: the rule itself when there
/// are none, else one per pairing of directions (source forms first, address-major), each
/// validated. The caller has checked [`conflict`].
pub(super) fn expand(rule: RuleSpec, undirected: Undirected) -> Result<Vec<RuleSpec>, String> {
    let addrs = match undirected.addr {
        Some(a) => vec![(Some(a), None), (None, Some(a))],
        None => vec![(rule.src, rule.dst)],
    };
    let ports = match undirected.port {
        Some(p) => vec![(Some(p), None), (None, Some(p))],
        None => vec![(rule.src_port, rule.dst_port)],
    };
    let either = Either {
        addr: undirected.addr.is_some(),
        port: undirected.port.is_some(),
    };
    let mut out = Vec::with_capacity(addrs.len() * ports.len());
    for &(src, dst) in &addrs {
        for &(src_port, dst_port) in &ports {
            let half = RuleSpec {
                src,
                dst,
                src_port,
                dst_port,
                either,
                ..rule.clone()
            };
            half.validate()?;
            out.push(half);
        }
    }
    debug_assert!(out.len() <= MAX_KERNEL_RULES_PER_RULE);
    Ok(out)
}

/// Index ranges of the runs of consecutive equal `ids`: the kernel rules of each written
/// rule (a rule without an undirected condition is a run of one).
pub fn runs_of_ids(ids: impl IntoIterator<Item = u32>) -> Vec<Range<usize>> {
    let mut runs: Vec<Range<usize>> = Vec::new();
    let mut last = None;
    for (i, id) in ids.into_iter().enumerate() {
        match runs.last_mut() {
            Some(run) if last == Some(id) => run.end = i + 1,
            _ => runs.push(i..i + 1),
        }
        last = Some(id);
    }
    runs
}

impl RuleSet {
    /// The rules as written: for each, its first kernel rule and the range of its kernel
    /// rules (indexes into [`RuleSet::rules`]; slot = index + 1), in evaluation order.
    pub fn written(&self) -> Vec<(&RuleSpec, Range<usize>)> {
        runs_of_ids(self.rules.iter().map(|r| r.id))
            .into_iter()
            .map(|run| (&self.rules[run.start], run))
            .collect()
    }
}

/// Refuses more than [`MAX_RULES`] kernel rules (`kernel`, from `written` rules as
/// written), saying why there are more kernel rules than written ones.
pub(super) fn check_kernel_rules(kernel: usize, written: usize) -> Result<(), String> {
    if kernel <= MAX_RULES as usize {
        return Ok(());
    }
    if kernel == written {
        return Err(format!(
            "{kernel} rules given; the program evaluates at most {MAX_RULES}"
        ));
    }
    Err(format!(
        "{written} rules given make {kernel} kernel rules (a `host`, `net` or `port` without \
         `src`/`dst` makes one per direction); the program evaluates at most {MAX_RULES}"
    ))
}
