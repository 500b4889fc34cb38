//! Rule evaluation: a linear scan in order, first match wins.
//!
//! The rule count is a load-time constant, so the verifier walks exactly that many
//! iterations and the empty rule set costs nothing. Each rule is tested without branches
//! (see [`Rule`]): the verifier keeps one pending state per rule instead of one per field,
//! which is what lets it accept `MAX_RULES` rules.

use aya_ebpf::maps::{Array, PerCpuArray};
use xdpsieve_common::{MAX_RULES, Rule};

use crate::parse::Packet;

/// The rule that decided a packet.
pub struct Decision {
    /// Position in evaluation order.
    pub index: u32,
    pub id: u32,
    pub verdict: u8,
    pub log: bool,
    pub rate_interval_ns: u64,
    pub rate_tolerance_ns: u64,
}

/// Returns the first rule that matches `pkt`.
///
/// The index found leaves the loop through `matched` (a per-CPU map slot) rather than a
/// register: the verifier knows a register's exact value, so every rule that can match
/// would be a separate exit state and everything after the loop would be verified once per
/// rule, which exceeds the verifier's budget well before `MAX_RULES`. A value read back
/// from a map is unknown to it, so all exits merge into one.
#[inline(always)]
pub fn first_match(
    rules: &Array<Rule>,
    matched: &PerCpuArray<u32>,
    rule_count: u32,
    pkt: &Packet,
) -> Option<Decision> {
    let count = core::cmp::min(rule_count, MAX_RULES);
    let slot = matched.get_ptr_mut(0)?;
    // SAFETY: slot points to this CPU's value of a map we own.
    unsafe { *slot = u32::MAX };
    // Last to first, keeping the latest match: that is the first in order. No early exit,
    // so the loop has a single exit and the two sides of each match test rejoin at once;
    // the worst case (no rule matches) costs the same as with an early exit.
    for step in 0..MAX_RULES {
        if step >= count {
            break;
        }
        let index = count - 1 - step;
        let rule = rules.get(index)?;
        if mismatch(rule, pkt) == 0 {
            // SAFETY: as above.
            unsafe { *slot = index };
        }
    }
    // SAFETY: as above; volatile so the compiler reads the map, not its own copy.
    let index = unsafe { core::ptr::read_volatile(slot) };
    if index >= count {
        return None;
    }
    let rule = rules.get(index)?;
    Some(Decision {
        index,
        id: rule.id,
        verdict: rule.verdict,
        log: rule.log != 0,
        rate_interval_ns: rule.rate_interval_ns,
        rate_tolerance_ns: rule.rate_tolerance_ns,
    })
}

/// Nonzero when some condition of `rule` fails for `pkt`. Straight-line code: wildcards are
/// encoded so they contribute zero.
#[inline(always)]
fn mismatch(rule: &Rule, pkt: &Packet) -> u64 {
    let mut m = u64::from((rule.family ^ pkt.family) & rule.family_mask);
    m |= u64::from((rule.protocol ^ pkt.protocol) & rule.protocol_mask);
    for i in 0..4 {
        m |= u64::from((pkt.src[i] & rule.src_mask[i]) ^ rule.src_addr[i]);
        m |= u64::from((pkt.dst[i] & rule.dst_mask[i]) ^ rule.dst_addr[i]);
    }
    // A port rule never matches a packet whose ports were not read.
    m |= u64::from(rule.needs_ports & !pkt.has_ports);
    m |= outside(pkt.src_port, rule.src_port_min, rule.src_port_max);
    m |= outside(pkt.dst_port, rule.dst_port_min, rule.dst_port_max);
    m
}

/// 1 when `port` is outside `min..=max`, else 0: the sign bit of either difference.
#[inline(always)]
fn outside(port: u16, min: u16, max: u16) -> u64 {
    let port = i64::from(port);
    (((port - i64::from(min)) | (i64::from(max) - port)) as u64) >> 63
}
