//! Rule evaluation: a linear scan in order, first match wins.
//!
//! The rule count is a load-time constant, so the verifier walks exactly that many
//! iterations and the empty rule set costs nothing.

use aya_ebpf::maps::Array;
use xdpsieve_common::{MAX_RULES, Rule, rule_match};

use crate::parse::Packet;

/// Returns the index and contents of the first rule that matches `pkt`.
#[inline(always)]
pub fn first_match(rules: &Array<Rule>, rule_count: u32, pkt: &Packet) -> Option<(u32, Rule)> {
    let count = core::cmp::min(rule_count, MAX_RULES);
    for index in 0..MAX_RULES {
        if index >= count {
            break;
        }
        let rule = rules.get(index)?;
        if matches(rule, pkt) {
            return Some((index, *rule));
        }
    }
    None
}

#[inline(always)]
fn matches(rule: &Rule, pkt: &Packet) -> bool {
    let flags = rule.flags;
    if flags & rule_match::FAMILY != 0 && rule.family != pkt.family {
        return false;
    }
    if flags & rule_match::PROTOCOL != 0 && rule.protocol != pkt.protocol {
        return false;
    }
    if flags & rule_match::SRC_ADDR != 0
        && !prefix_matches(&pkt.src, &rule.src_addr, &rule.src_mask)
    {
        return false;
    }
    if flags & rule_match::DST_ADDR != 0
        && !prefix_matches(&pkt.dst, &rule.dst_addr, &rule.dst_mask)
    {
        return false;
    }
    if flags & (rule_match::SRC_PORT | rule_match::DST_PORT) != 0 {
        // No ports read (non-first fragment, truncated or portless protocol): a port rule
        // cannot match.
        if !pkt.has_ports {
            return false;
        }
        if flags & rule_match::SRC_PORT != 0
            && (pkt.src_port < rule.src_port_min || pkt.src_port > rule.src_port_max)
        {
            return false;
        }
        if flags & rule_match::DST_PORT != 0
            && (pkt.dst_port < rule.dst_port_min || pkt.dst_port > rule.dst_port_max)
        {
            return false;
        }
    }
    true
}

#[inline(always)]
fn prefix_matches(addr: &[u32; 4], prefix: &[u32; 4], mask: &[u32; 4]) -> bool {
    (addr[0] & mask[0]) == prefix[0]
        && (addr[1] & mask[1]) == prefix[1]
        && (addr[2] & mask[2]) == prefix[2]
        && (addr[3] & mask[3]) == prefix[3]
}
