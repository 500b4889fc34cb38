//! Firewall rules: parsed from tcpdump-style command-line expressions (`--drop 'udp src port
//! 53'`) and from TOML files, validated, and kept as typed [`RuleSpec`]s. From them
//! `classify` builds the bitmaps the program matches with, and [`RuleSpec::to_kernel`] the
//! little the program reads of a rule once it has matched (id, verdict, log, rate).
//!
//! Evaluation is first match wins; packets no rule matches get the default verdict. Errors
//! name the file, line and column, or the expression, and say what is wrong. Rule ids are
//! unique and never 0 (the default verdict's), however hostile the input.
//!
//! A rule written with a condition without a direction (`udp port 53`) is several kernel
//! rules sharing its id and name ([`either`]); [`RuleSet::rules`] holds the kernel rules,
//! [`RuleSet::written`] groups them back as written.
//!
//! [`values`] holds the condition values and their parsers, [`expr`] parses the command-line
//! syntax, [`file`] the TOML rule files and [`set_tables`] their `[[set]]`s; this module
//! the validated rule and rule set.

mod either;
#[cfg(test)]
mod either_tests;
mod expr;
mod file;
mod file_limit;
mod file_undirected;
pub mod limit;
mod listing;
mod set_tables;
#[cfg(test)]
mod set_tests;
#[cfg(test)]
mod tests;
mod values;

use either::check_kernel_rules;
pub use either::{Either, MAX_KERNEL_RULES_PER_RULE, runs_of_ids};
pub use expr::{parse_expression, parse_expression_with_sets};
pub use file::{MAX_NAME_CHARS, RULE_FILE_KEYS};
/// The TOML error helpers the configuration file's reader shares with the rule file's.
pub(crate) use file::{a as with_article, line_column};
pub use values::{Action, Cidr, PortRange, Protocol, Rate};
use xdpsieve_common::{Rule, family, walk::MAX_CONTINUING_RULES};

use crate::{
    base::text::escape,
    configure::input::ReadFileError,
    configure::sets::{MAX_SETS, SetSpec, check_set_name},
};

/// A rule's condition on one address (source or destination).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddrMatch {
    /// A literal prefix (`src net 198.51.100.0/24`): one address family.
    Prefix(Cidr),
    /// An address set (`src net @blocklist`): index into [`RuleSet::sets`]. Sets hold both
    /// families; `ip`/`ip6` on the rule restrict it to one.
    Set(usize),
}

impl AddrMatch {
    /// The family a literal prefix implies; a set implies none.
    pub fn family(&self) -> Option<u8> {
        match self {
            AddrMatch::Prefix(c) => Some(c.family()),
            AddrMatch::Set(_) => None,
        }
    }

    /// The literal prefix, if this is one.
    pub fn prefix(&self) -> Option<Cidr> {
        match self {
            AddrMatch::Prefix(c) => Some(*c),
            AddrMatch::Set(_) => None,
        }
    }

    /// The set index, if this is a set.
    pub fn set(&self) -> Option<usize> {
        match self {
            AddrMatch::Set(i) => Some(*i),
            AddrMatch::Prefix(_) => None,
        }
    }

    /// As the command-line syntax writes it after `src `/`dst `: `net 198.51.100.0/24`,
    /// `net @blocklist` (`@#N` if set `N` is not in `sets`).
    pub(super) fn shown(&self, sets: &[SetSpec]) -> String {
        match self {
            AddrMatch::Prefix(c) => format!("net {c}"),
            AddrMatch::Set(i) => match sets.get(*i) {
                Some(set) => format!("net @{}", set.name),
                None => format!("net @#{i}"),
            },
        }
    }
}

/// One validated rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleSpec {
    /// Reported in captures and counters; unique and never 0.
    pub id: u32,
    pub name: String,
    pub action: Action,
    pub protocol: Option<Protocol>,
    /// Restricts the rule to one family without naming addresses (`ip` / `ip6`).
    pub family: Option<u8>,
    pub src: Option<AddrMatch>,
    pub dst: Option<AddrMatch>,
    pub src_port: Option<PortRange>,
    pub dst_port: Option<PortRange>,
    /// Log every packet this rule decides, whatever `--log` says.
    pub log: bool,
    /// Limit on this rule's records (events and captures); `None` takes the global default.
    pub rate: Option<Rate>,
    /// Record one in this many of this rule's packets selected for recording (`sample`);
    /// `None` takes `--sample`.
    pub sample: Option<u32>,
    /// Bytes to capture of this rule's packets, 1..=`MAX_SNAPLEN` (`snaplen`); `None`
    /// takes `-s`.
    pub snaplen: Option<u32>,
    /// Monitor: the rule only marks what it would decide (see [`limit::Mode`]).
    pub mode: limit::Mode,
    /// `action = "limit"`: the rule's budget (its action is then [`Action::Drop`], for
    /// the packets over it).
    pub limit: Option<limit::LimitSpec>,
    /// Which of its conditions stand for one written without a direction: then this is
    /// one of the kernel rules of that written rule (see [`either`]).
    pub either: Either,
}

impl RuleSpec {
    fn new(action: Action) -> Self {
        RuleSpec {
            id: 0,
            name: String::new(),
            action,
            protocol: None,
            family: None,
            src: None,
            dst: None,
            src_port: None,
            dst_port: None,
            log: false,
            rate: None,
            sample: None,
            snaplen: None,
            mode: limit::Mode::Enforce,
            limit: None,
            either: Either::default(),
        }
    }

    /// Whether evaluation goes on past this rule when it matches (monitor, limit).
    pub fn continues(&self) -> bool {
        self.mode == limit::Mode::Monitor || self.limit.is_some()
    }

    /// The action as the operator wrote it: `limit` for a limit rule.
    pub fn action_name(&self) -> &'static str {
        match (self.limit.is_some(), self.action) {
            (true, _) => "limit",
            (false, Action::Drop) => "drop",
            (false, Action::Pass) => "pass",
        }
    }

    /// Checks that the conditions can hold together. A set constrains no family (it holds
    /// both), so only literal prefixes and `ip`/`ip6` can disagree.
    fn validate(&self) -> Result<(), String> {
        let families: Vec<u8> = [
            self.src.and_then(|a| a.family()),
            self.dst.and_then(|a| a.family()),
            self.family,
        ]
        .into_iter()
        .flatten()
        .collect();
        if families.windows(2).any(|w| w[0] != w[1]) {
            return Err("mixes IPv4 and IPv6: one rule matches one address family".into());
        }
        if (self.src_port.is_some() || self.dst_port.is_some())
            && let Some(p) = self.protocol.filter(|p| !p.has_ports())
        {
            return Err(format!("ports only apply to tcp and udp, not {p}"));
        }
        Ok(())
    }

    /// The one family the rule matches, if its conditions imply one (`ip`/`ip6` or a
    /// literal prefix); `None` matches both.
    pub fn address_family(&self) -> Option<u8> {
        self.family
            .or(self.src.and_then(|a| a.family()))
            .or(self.dst.and_then(|a| a.family()))
    }

    /// Whether the rule only matches packets with ports (it has a port condition).
    pub fn needs_ports(&self) -> bool {
        self.src_port.is_some() || self.dst_port.is_some()
    }

    /// What the XDP program reads of the rule once the bitmaps have chosen it;
    /// `default_rate` applies when the rule has none.
    pub fn to_kernel(&self, default_rate: Rate) -> Rule {
        let rate = self.rate.unwrap_or(default_rate);
        Rule {
            rate_interval_ns: rate.interval_ns(),
            rate_tolerance_ns: rate.tolerance_ns(),
            id: self.id,
            verdict: self.action.verdict(),
            log: u8::from(self.log),
            kind: limit::kind(self.mode, self.limit.as_ref()),
            _pad: 0,
            // 0: the program takes `Config`'s (`-s`, `--sample`).
            snaplen: self.snaplen.unwrap_or(0),
            sample: self.sample.unwrap_or(0),
        }
    }

    /// The recording options `check-rules` shows after the conditions (`  [1 in 4,
    /// snaplen 96]`); empty when the rule takes the command line's.
    pub fn recording_options(&self) -> String {
        let mut parts = Vec::new();
        if let Some(n) = self.sample {
            parts.push(format!("sample 1 in {n}"));
        }
        if let Some(n) = self.snaplen {
            parts.push(format!("snaplen {n}"));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!("  [{}]", parts.join(", "))
        }
    }

    /// The match conditions in the command-line syntax (`udp src port 53`); a set shows
    /// as `@#N`: use [`RuleSpec::conditions_with`] where the sets are at hand.
    pub fn conditions(&self) -> String {
        self.conditions_with(&[])
    }

    /// This kernel rule's match conditions in the command-line syntax, sets by name (`src
    /// net @drop`), each with its direction: what tells the kernel rules of one written
    /// rule apart.
    pub fn conditions_with(&self, sets: &[SetSpec]) -> String {
        self.shown_conditions(sets, Either::default())
    }

    /// The match conditions as they were written: an undirected condition without its
    /// direction (`udp and port 53`), sets by name. The same for every kernel rule of one
    /// written rule.
    pub fn written_conditions_with(&self, sets: &[SetSpec]) -> String {
        self.shown_conditions(sets, self.either)
    }

    /// The conditions, those `undirected` says without their direction.
    fn shown_conditions(&self, sets: &[SetSpec], undirected: Either) -> String {
        let mut parts = Vec::new();
        match (self.family, self.protocol) {
            (Some(family::IPV4), _) => parts.push("ip".to_string()),
            (Some(family::IPV6), _) => parts.push("ip6".to_string()),
            _ => {}
        }
        if let Some(p) = self.protocol {
            parts.push(p.to_string());
        }
        let direction = |dir: &str, undirected: bool| {
            if undirected {
                String::new()
            } else {
                format!("{dir} ")
            }
        };
        if let Some(a) = self.src {
            parts.push(format!(
                "{}{}",
                direction("src", undirected.addr),
                a.shown(sets)
            ));
        }
        if let Some(a) = self.dst {
            parts.push(format!(
                "{}{}",
                direction("dst", undirected.addr),
                a.shown(sets)
            ));
        }
        if let Some(p) = self.src_port {
            parts.push(format!("{}port {p}", direction("src", undirected.port)));
        }
        if let Some(p) = self.dst_port {
            parts.push(format!("{}port {p}", direction("dst", undirected.port)));
        }
        if parts.is_empty() {
            "any".into()
        } else {
            parts.join(" and ")
        }
    }
}

/// Errors from reading or validating rules.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error(transparent)]
    Read(#[from] ReadFileError),
    #[error("{path}:{line}:{column}: {message}")]
    File {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("rule `{expr}`: {message}")]
    Expression { expr: String, message: String },
    /// Beyond a limit of the program (rules, sets).
    #[error("{0}")]
    Limit(String),
}

/// Rules in evaluation order, the sets they name, and the default verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleSet {
    pub default_action: Action,
    pub rules: Vec<RuleSpec>,
    /// Declared in the rule file, in order; [`AddrMatch::Set`] indexes here, and the index
    /// is the set's number in the kernel's maps.
    pub sets: Vec<SetSpec>,
    /// What reading the rules and sets accepted with a change (host bits masked in a set
    /// file), for the caller to print to stderr. Not part of the rules' meaning.
    pub warnings: Vec<String>,
}

impl Default for RuleSet {
    fn default() -> Self {
        RuleSet {
            default_action: Action::Pass,
            rules: Vec::new(),
            sets: Vec::new(),
            warnings: Vec::new(),
        }
    }
}

impl RuleSet {
    /// Whether some rule has a condition an unclassifiable packet could evade: a port (its
    /// header was not reached) or a protocol (behind an IPv6 extension chain the program
    /// could not walk, the protocol is unknown too). Then unclassifiable packets are dropped
    /// by default (`--unclassifiable`).
    pub fn has_l4_condition(&self) -> bool {
        self.rules
            .iter()
            .any(|r| r.protocol.is_some() || r.src_port.is_some() || r.dst_port.is_some())
    }

    /// The name of rule `id`, `default` for 0.
    pub fn name_of(&self, id: u32) -> Option<&str> {
        if id == 0 {
            return Some("default");
        }
        self.rules
            .iter()
            .find(|r| r.id == id)
            .map(|r| r.name.as_str())
    }

    /// Appends rules given on the command line, in order, with ids after the existing ones
    /// (or, when the file took the highest id, the lowest free one). A rule with a
    /// condition without a direction appends its kernel rules, all with its id and name.
    pub fn push_expression(&mut self, action: Action, expr: &str) -> Result<(), RuleError> {
        let error = |message: String| RuleError::Expression {
            expr: escape(expr).into_owned(),
            message: escape(&message).into_owned(),
        };
        let family_of = |conditions: &str| {
            parse_expression_with_sets(action, conditions, &self.sets)
                .ok()
                .and_then(|rules| rules.first().and_then(RuleSpec::address_family))
        };
        let (conditions, trailing) = limit::split_trailing(expr, family_of).map_err(error)?;
        if trailing.limit.is_some() && action != Action::Drop {
            return Err(error(
                "`limit` makes a drop rule (it drops what is over the budget): give it with \
                 --drop"
                    .into(),
            ));
        }
        let mut kernel_rules =
            parse_expression_with_sets(action, conditions, &self.sets).map_err(error)?;
        for rule in &mut kernel_rules {
            rule.mode = trailing.mode;
            rule.limit = trailing.limit;
        }
        let highest = self.rules.iter().map(|r| r.id).max().unwrap_or(0);
        let used: std::collections::HashSet<u32> = self.rules.iter().map(|r| r.id).collect();
        let id = next_id_after(highest, |id| used.contains(&id))
            .ok_or_else(|| error("no rule id is left".into()))?;
        let name = format!("{action} {}", expr::normalized(expr));
        for mut rule in kernel_rules {
            rule.id = id;
            rule.name.clone_from(&name);
            self.rules.push(rule);
        }
        self.check_size()
    }

    /// At most [`xdpsieve_common::MAX_RULES`] kernel rules: what the program's bitmaps hold.
    fn check_size(&self) -> Result<(), RuleError> {
        check_kernel_rules(self.rules.len(), self.written().len()).map_err(RuleError::Limit)?;
        let continuing = self.rules.iter().filter(|r| r.continues()).count();
        if continuing > MAX_CONTINUING_RULES as usize {
            return Err(RuleError::Limit(format!(
                "{continuing} rules are monitor or limit rules; at most \
                 {MAX_CONTINUING_RULES} may be (a packet passes through each of them), so \
                 enforce or merge some"
            )));
        }
        Ok(())
    }

    /// Whether some rule continues (monitor or limit): the program needs its walk.
    pub fn has_continuing(&self) -> bool {
        self.rules.iter().any(RuleSpec::continues)
    }

    /// The index of the set called `name`.
    pub fn set_index(&self, name: &str) -> Option<usize> {
        self.sets.iter().position(|s| s.name == name)
    }

    /// The rules whose source or destination is set `index`, in order.
    pub fn rules_using_set(&self, index: usize) -> impl Iterator<Item = &RuleSpec> {
        let uses = move |a: Option<AddrMatch>| a.and_then(|a| a.set()) == Some(index);
        self.rules
            .iter()
            .filter(move |r| uses(r.src) || uses(r.dst))
    }

    /// Checks what the parsers guarantee for a rule set built some other way (by code, or
    /// changed after parsing): at most [`MAX_SETS`] sets, valid unique names, and every
    /// rule's set index pointing at a set.
    pub fn check_sets(&self) -> Result<(), RuleError> {
        if self.sets.len() > MAX_SETS {
            return Err(RuleError::Limit(format!(
                "{} sets declared; a rule set holds at most {MAX_SETS}",
                self.sets.len()
            )));
        }
        let mut names = std::collections::HashSet::new();
        for set in &self.sets {
            check_set_name(&set.name).map_err(RuleError::Limit)?;
            if !names.insert(set.name.as_str()) {
                return Err(RuleError::Limit(format!(
                    "duplicate set name `{}`",
                    set.name
                )));
            }
        }
        for rule in &self.rules {
            for index in [rule.src, rule.dst]
                .into_iter()
                .flatten()
                .filter_map(|a| a.set())
            {
                if index >= self.sets.len() {
                    return Err(RuleError::Limit(format!(
                        "rule `{}` names set #{index}, but there are {} sets",
                        escape(&rule.name),
                        self.sets.len()
                    )));
                }
            }
        }
        Ok(())
    }

    /// Kernel rules in evaluation order.
    pub fn to_kernel(&self, default_rate: Rate) -> Vec<Rule> {
        self.rules
            .iter()
            .map(|r| r.to_kernel(default_rate))
            .collect()
    }
}

/// The first id after `after` that `taken` does not claim, wrapping round to 1 (never 0,
/// never past `u32::MAX`); `None` when every id is taken. Cheap: it looks at no more ids
/// than are taken.
fn next_id_after(after: u32, taken: impl Fn(u32) -> bool) -> Option<u32> {
    let upward = after
        .checked_add(1)
        .into_iter()
        .flat_map(|start| start..=u32::MAX);
    upward.chain(1..=after).find(|&id| !taken(id))
}
