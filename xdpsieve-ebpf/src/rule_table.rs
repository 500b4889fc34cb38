//! The per-rule tables the rule loop, the walk past continuing rules and the limits all
//! read: the rules themselves, and what only monitor and limit rules count. Apart from
//! those modules so that each imports them without importing the others.

use aya_ebpf::{
    macros::map,
    maps::{Array, PerCpuArray},
};
use xdpsieve_common::{MAX_RULES, RULE_SLOTS, Rule, walk::RuleExtraCounters};

/// The rules, in evaluation order. Read only once a rule has matched.
#[map]
pub(crate) static RULES: Array<Rule> = Array::with_max_entries(MAX_RULES, 0);

/// Per rule slot: would-hits of monitor rules, and what limit rules counted.
#[map]
pub(crate) static RULE_EXTRA: PerCpuArray<RuleExtraCounters> =
    PerCpuArray::with_max_entries(RULE_SLOTS, 0);
