//! The command-line rule syntax: tcpdump-style conjunctions such as `udp src port 53`,
//! `src net @blocklist` or, without a direction, `udp port 53` (see [`super::either`]).

use xdpsieve_common::family;

use super::{
    Action, AddrMatch, Cidr, PortRange, RuleSpec,
    either::{self, Undirected},
};
use crate::configure::sets::SetSpec;

/// Parses a tcpdump-style conjunction with no sets to refer to (see
/// [`parse_expression_with_sets`]).
pub fn parse_expression(action: Action, expr: &str) -> Result<Vec<RuleSpec>, String> {
    parse_expression_with_sets(action, expr, &[])
}

/// Parses a tcpdump-style conjunction: `[ip|ip6] [tcp|udp|icmp|icmp6|proto N]
/// [src|dst] (host ADDR | net CIDR | net @SET | port P | portrange A-B)`, joined by `and`;
/// `any` alone matches every IP packet. `@SET` names one of `sets` (those the rule file
/// declares); the rule then holds its index.
///
/// Returns the kernel rules of the written rule, in order: one, or one per pairing of
/// directions when an address or a port has none (`host A`, `port 53`: source or
/// destination; at most [`either::MAX_KERNEL_RULES_PER_RULE`]).
///
/// An expression without a condition (empty, or only `and`) is refused rather than read
/// as "match everything": a typo must not turn a narrow rule into a blanket one.
pub fn parse_expression_with_sets(
    action: Action,
    expr: &str,
    sets: &[SetSpec],
) -> Result<Vec<RuleSpec>, String> {
    let mut rule = RuleSpec::new(action);
    let mut undirected = Undirected::default();
    let tokens: Vec<&str> = expr.split_whitespace().collect();
    if tokens.iter().all(|t| matches!(*t, "and" | "&&")) {
        return Err(format!(
            "a rule needs at least one condition; to {action} everything use --default {action} \
             (or say `any` to match every IP packet)"
        ));
    }
    let mut i = 0;
    let next = |i: &mut usize, what: &str| -> Result<&str, String> {
        *i += 1;
        tokens
            .get(*i - 1)
            .copied()
            .ok_or_else(|| format!("expected {what} at the end"))
    };
    // Whether the last word ended a condition, so an `and` may follow.
    let mut after_condition = false;
    while i < tokens.len() {
        let word = next(&mut i, "a condition")?;
        if matches!(word, "and" | "&&") {
            if !after_condition || i == tokens.len() {
                return Err(format!("`{word}` must stand between two conditions"));
            }
            after_condition = false;
            continue;
        }
        match word {
            "any" => {}
            "ip" => set_once(&mut rule.family, family::IPV4, "address family")?,
            "ip6" => set_once(&mut rule.family, family::IPV6, "address family")?,
            "tcp" | "udp" | "icmp" | "icmp6" => {
                set_once(&mut rule.protocol, word.parse()?, "protocol")?;
            }
            "proto" => {
                let p = next(&mut i, "a protocol after `proto`")?;
                set_once(&mut rule.protocol, p.parse()?, "protocol")?;
            }
            "src" | "dst" => {
                let kind = next(&mut i, "`host`, `net`, `port` or `portrange`")?;
                let value = next(&mut i, &format!("a value after `{word} {kind}`"))?;
                let src = word == "src";
                match kind {
                    "host" | "net" => {
                        let addr = address(kind, value, &format!("{word} "), sets)?;
                        let slot = if src { &mut rule.src } else { &mut rule.dst };
                        set_once(slot, addr, &format!("{word} address"))?;
                    }
                    "port" | "portrange" => {
                        let range: PortRange = value.parse()?;
                        let slot = if src {
                            &mut rule.src_port
                        } else {
                            &mut rule.dst_port
                        };
                        set_once(slot, range, &format!("{word} port"))?;
                    }
                    other => {
                        return Err(format!(
                            "expected `host`, `net`, `port` or `portrange` after `{word}`, found `{other}`"
                        ));
                    }
                }
            }
            // Without a direction: source or destination, as in tcpdump.
            "host" | "net" => {
                let value = next(&mut i, &format!("a value after `{word}`"))?;
                let addr = address(word, value, "", sets)?;
                set_once(
                    &mut undirected.addr,
                    addr,
                    "address without a direction (`host`/`net`)",
                )?;
            }
            "port" | "portrange" => {
                let value = next(&mut i, &format!("a value after `{word}`"))?;
                set_once(
                    &mut undirected.port,
                    value.parse()?,
                    "port without a direction (`port`/`portrange`)",
                )?;
            }
            "or" | "not" | "||" | "!" => {
                return Err(format!(
                    "`{word}` is not supported: a rule is a conjunction; give several rules instead"
                ));
            }
            other => return Err(format!("unknown word `{other}`")),
        }
        after_condition = true;
    }
    if let Some(message) = either::conflict(&rule, &undirected) {
        return Err(message);
    }
    either::expand(rule, undirected)
}

/// The address of `kind` (`host` or `net`) `value`: a literal (one address for `host`) or,
/// for `net`, a set `@NAME` of `sets`. `direction` (`src `, `dst ` or empty) is for the
/// error's advice.
fn address(
    kind: &str,
    value: &str,
    direction: &str,
    sets: &[SetSpec],
) -> Result<AddrMatch, String> {
    if let Some(name) = value.strip_prefix('@') {
        if kind == "host" {
            return Err(format!(
                "`host` takes one address; a set is matched with `net`: say `{direction}net \
                 {value}`"
            ));
        }
        return Ok(AddrMatch::Set(set_index(name, sets)?));
    }
    let cidr: Cidr = value.parse()?;
    if kind == "host" && value.contains('/') {
        return Err(format!("`host` takes an address, not `{value}`: use `net`"));
    }
    Ok(AddrMatch::Prefix(cidr))
}

/// The index of set `name` in `sets`, or an error naming the sets there are.
pub(super) fn set_index(name: &str, sets: &[SetSpec]) -> Result<usize, String> {
    if let Some(i) = sets.iter().position(|s| s.name == name) {
        return Ok(i);
    }
    if sets.is_empty() {
        return Err(format!(
            "no set named `{name}`: no sets are declared; declare one with [[set]] in a rule \
             file"
        ));
    }
    let known: Vec<String> = sets.iter().map(|s| format!("@{}", s.name)).collect();
    Err(format!(
        "no set named `{name}` (the rule file declares {})",
        known.join(", ")
    ))
}

/// The expression with its words separated by single spaces: the rule's name. Tabs and
/// newlines between words do not reach names, logs or captures.
pub(super) fn normalized(expr: &str) -> String {
    expr.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn set_once<T>(slot: &mut Option<T>, value: T, what: &str) -> Result<(), String> {
    if slot.is_some() {
        return Err(format!("{what} given twice"));
    }
    *slot = Some(value);
    Ok(())
}
