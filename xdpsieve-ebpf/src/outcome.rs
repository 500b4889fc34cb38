//! What decided a packet: the rules' outcome, and the rare path's decisions that need no
//! rules (an unclassifiable packet under a drop policy, a later fragment whose first
//! fragment's outcome is remembered). The filter evaluates the rules in one place only: a
//! second copy of the rule loop would make LLVM stop unrolling it.
//!
//! How a packet is recorded (sampling, rate limit, snap length) is not part of the
//! outcome: it is its record slot's ([`record_params`]), read only for the packets that
//! are to be recorded, so the common path neither loads nor carries it.

use xdpsieve_common::{Config, record_flags, verdict};

use crate::{
    fragments::{self, FirstFragment},
    parse::{Packet, special},
    rule_table::RULES,
    rules::Matched,
    walk::{self, WalkOutcome},
};

/// What the rules (or the rare path) decided for one packet.
pub(crate) struct Outcome {
    pub verdict: u8,
    pub rule_id: u32,
    /// Index into the per-rule maps; `None` for frames no rule looked at.
    pub slot: Option<u32>,
    pub log: bool,
    /// Bits of `record_flags` the walk past continuing rules set (`MONITOR`,
    /// `OVER_LIMIT`); 0 on the common path.
    pub marks: u8,
    /// Bits of `capture` the packet is wanted under besides its verdict's: the monitor
    /// rule's verdict, when one marked it.
    pub extra_wanted: u32,
    /// With `MONITOR`: the monitor rule's id and slot (0: none).
    pub shadow_id: u32,
    pub shadow_slot: u32,
    /// The slot whose sampling, rate limit and record counters apply: `slot`, or the
    /// monitor rule's when the packet is recorded as the rule would have decided it.
    pub record_slot: u32,
}

/// How the packets of a record slot are recorded.
pub(crate) struct RecordParams {
    pub rate_interval_ns: u64,
    pub rate_tolerance_ns: u64,
    /// Records one in this many of the packets selected for recording (1: all).
    pub sample: u32,
    /// Bytes to capture, 1..=MAX_SNAPLEN.
    pub snaplen: u32,
}

/// The recording of `slot`'s packets: slot `k > 0` is rule `k - 1`'s (its rate limit is
/// resolved by userspace; its sampling and snap length take `cfg`'s where it has none, 0),
/// slot 0 (no rule decided) the defaults.
#[inline(always)]
pub(crate) fn record_params(cfg: &Config, slot: u32) -> RecordParams {
    let rule = if slot == 0 { None } else { RULES.get(slot - 1) };
    match rule {
        Some(rule) => RecordParams {
            rate_interval_ns: rule.rate_interval_ns,
            rate_tolerance_ns: rule.rate_tolerance_ns,
            sample: if rule.sample == 0 {
                cfg.sample
            } else {
                rule.sample
            },
            snaplen: if rule.snaplen == 0 {
                cfg.snaplen
            } else {
                rule.snaplen
            },
        },
        None => RecordParams {
            rate_interval_ns: cfg.default_rate_interval_ns,
            rate_tolerance_ns: cfg.default_rate_tolerance_ns,
            sample: cfg.sample,
            snaplen: cfg.snaplen,
        },
    }
}

/// An outcome no rule decided: slot 0, rule id 0 (recorded with the defaults).
#[inline(always)]
pub(crate) fn default_outcome(verdict: u8) -> Outcome {
    Outcome {
        verdict,
        rule_id: 0,
        slot: Some(0),
        log: false,
        marks: 0,
        extra_wanted: 0,
        shadow_id: 0,
        shadow_slot: 0,
        record_slot: 0,
    }
}

/// What decides a packet the rules judged.
#[inline(always)]
pub(crate) fn of_rules(cfg: &Config, matched: Matched) -> Outcome {
    match matched {
        Matched::Rule(rule) => Outcome {
            verdict: rule.verdict,
            rule_id: rule.id,
            slot: Some(rule.index + 1),
            log: rule.log,
            marks: 0,
            extra_wanted: 0,
            shadow_id: 0,
            shadow_slot: 0,
            record_slot: rule.index + 1,
        },
        Matched::Default => default_outcome(cfg.default_verdict as u8),
        Matched::Walked(walked) => walked_outcome(walked),
    }
}

/// The outcome of a walk past continuing rules (already resolved).
#[inline(always)]
pub(crate) fn walked_outcome(o: &WalkOutcome) -> Outcome {
    Outcome {
        verdict: o.verdict,
        rule_id: o.rule_id,
        slot: Some(o.slot),
        log: o.log != 0,
        marks: o.marks,
        extra_wanted: o.extra_wanted,
        shadow_id: o.shadow_id,
        shadow_slot: o.shadow_slot,
        record_slot: o.record_slot,
    }
}

/// Frames that are not IP, fragments and unclassifiable packets (the rare path), before
/// the rules: the outcome when it does not come from them (a frame that is not IP, an
/// unclassifiable packet under a drop policy, a later fragment whose first fragment's
/// outcome is known), else `None`. For a later fragment,
/// `found` says whether its first fragment's outcome was recalled.
#[inline(always)]
pub(crate) fn decide_special(
    cfg: &Config,
    pkt: &Packet,
    frame_len: u32,
    found: &mut Option<bool>,
) -> Option<Outcome> {
    if pkt.special & special::NOT_IP != 0 {
        // Non-IP frames (ARP, LLDP, ...) and unreadable IP headers always pass: dropping
        // ARP under a default-drop policy would cut the host off. No rule slot counts them.
        return Some(Outcome {
            slot: None,
            ..default_outcome(verdict::PASS)
        });
    }
    if pkt.special & special::UNCLASSIFIABLE != 0 && cfg.unclassifiable == u32::from(verdict::DROP)
    {
        return Some(default_outcome(verdict::DROP));
    }
    if pkt.special & special::LATER_FRAGMENT == 0 {
        return None;
    }
    let first = fragments::recall(pkt);
    *found = Some(first.is_some());
    // An orphan (`None`) is judged by the rules that need no ports: it has none.
    first.map(|first| {
        // Branch-free: `would` is 1 when a monitor rule marked the first fragment.
        walk::count_would_hit(first.shadow_slot, first.would, frame_len);
        Outcome {
            verdict: first.verdict,
            rule_id: first.rule_id,
            slot: Some(first.slot),
            log: first.log != 0,
            marks: first.marks,
            extra_wanted: first.extra_wanted,
            shadow_id: first.shadow_id,
            shadow_slot: first.shadow_slot,
            record_slot: first.record_slot,
        }
    })
}

#[inline(always)]
pub(crate) fn remember_first_fragment(pkt: &Packet, outcome: &Outcome) {
    fragments::remember(
        pkt,
        FirstFragment {
            verdict: outcome.verdict,
            log: u8::from(outcome.log),
            marks: outcome.marks,
            would: u8::from(outcome.marks & record_flags::MONITOR != 0),
            rule_id: outcome.rule_id,
            slot: outcome.slot.unwrap_or(0),
            shadow_slot: outcome.shadow_slot,
            shadow_id: outcome.shadow_id,
            record_slot: outcome.record_slot,
            extra_wanted: outcome.extra_wanted,
        },
    );
}
