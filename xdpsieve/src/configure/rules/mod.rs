//! Firewall rules: parsed from tcpdump-style command-line expressions (`--drop 'udp src port
//! 53'`) and from TOML files, validated, and compiled into the kernel's [`Rule`] layout.
//!
//! Evaluation is first match wins; packets no rule matches get the default verdict. Errors
//! name the file, line and column, or the expression, and say what is wrong. Rule ids are
//! unique and never 0 (the default verdict's), however hostile the input.
//!
//! [`values`] holds the condition values and their parsers, [`expr`] parses the command-line
//! syntax, [`file`] the TOML rule files; this module the validated rule and rule set.

mod expr;
mod file;
#[cfg(test)]
mod tests;
mod values;

pub use expr::parse_expression;
pub use file::MAX_NAME_CHARS;
pub use values::{Action, Cidr, PortRange, Protocol, Rate};
use xdpsieve_common::{MAX_RULES, Rule, family, rule_match};

use crate::{input::ReadFileError, text::escape};

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
    pub src: Option<Cidr>,
    pub dst: Option<Cidr>,
    pub src_port: Option<PortRange>,
    pub dst_port: Option<PortRange>,
    /// Log every packet this rule decides, whatever `--log` says.
    pub log: bool,
    /// Limit on this rule's records (events and captures); `None` takes the global default.
    pub rate: Option<Rate>,
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
        }
    }

    /// Checks that the conditions can hold together.
    fn validate(&self) -> Result<(), String> {
        let families: Vec<u8> = [
            self.src.map(|c| c.family()),
            self.dst.map(|c| c.family()),
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

    fn address_family(&self) -> Option<u8> {
        self.family
            .or(self.src.map(|c| c.family()))
            .or(self.dst.map(|c| c.family()))
    }

    /// The rule as the XDP program stores it; `default_rate` applies when it has none.
    pub fn to_kernel(&self, default_rate: Rate) -> Rule {
        let mut rule = Rule::ANY;
        rule.id = self.id;
        rule.verdict = self.action.verdict();
        rule.log = u8::from(self.log);
        let rate = self.rate.unwrap_or(default_rate);
        rule.rate_interval_ns = rate.interval_ns();
        rule.rate_tolerance_ns = rate.tolerance_ns();
        if let Some(f) = self.address_family() {
            rule.flags |= rule_match::FAMILY;
            rule.family = f;
            rule.family_mask = 0xff;
        }
        if let Some(p) = self.protocol {
            rule.flags |= rule_match::PROTOCOL;
            rule.protocol = p.0;
            rule.protocol_mask = 0xff;
        }
        rule.needs_ports = u8::from(self.src_port.is_some() || self.dst_port.is_some());
        if let Some(c) = self.src {
            rule.flags |= rule_match::SRC_ADDR;
            (rule.src_addr, rule.src_mask) = c.to_words();
        }
        if let Some(c) = self.dst {
            rule.flags |= rule_match::DST_ADDR;
            (rule.dst_addr, rule.dst_mask) = c.to_words();
        }
        if let Some(p) = self.src_port {
            rule.flags |= rule_match::SRC_PORT;
            (rule.src_port_min, rule.src_port_max) = (p.min, p.max);
        }
        if let Some(p) = self.dst_port {
            rule.flags |= rule_match::DST_PORT;
            (rule.dst_port_min, rule.dst_port_max) = (p.min, p.max);
        }
        rule
    }

    /// The match conditions in the command-line syntax (`udp src port 53`).
    pub fn conditions(&self) -> String {
        let mut parts = Vec::new();
        match (self.family, self.protocol) {
            (Some(family::IPV4), _) => parts.push("ip".to_string()),
            (Some(family::IPV6), _) => parts.push("ip6".to_string()),
            _ => {}
        }
        if let Some(p) = self.protocol {
            parts.push(p.to_string());
        }
        if let Some(c) = self.src {
            parts.push(format!("src net {c}"));
        }
        if let Some(c) = self.dst {
            parts.push(format!("dst net {c}"));
        }
        if let Some(p) = self.src_port {
            parts.push(format!("src port {p}"));
        }
        if let Some(p) = self.dst_port {
            parts.push(format!("dst port {p}"));
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
    #[error("{0}")]
    Set(String),
}

/// Rules in evaluation order plus the default verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleSet {
    pub default_action: Action,
    pub rules: Vec<RuleSpec>,
}

impl Default for RuleSet {
    fn default() -> Self {
        RuleSet {
            default_action: Action::Pass,
            rules: Vec::new(),
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
    /// (or, when the file took the highest id, the lowest free one).
    pub fn push_expression(&mut self, action: Action, expr: &str) -> Result<(), RuleError> {
        let error = |message: String| RuleError::Expression {
            expr: escape(expr).into_owned(),
            message: escape(&message).into_owned(),
        };
        let mut rule = parse_expression(action, expr).map_err(error)?;
        let highest = self.rules.iter().map(|r| r.id).max().unwrap_or(0);
        let used: std::collections::HashSet<u32> = self.rules.iter().map(|r| r.id).collect();
        rule.id = next_id_after(highest, |id| used.contains(&id))
            .ok_or_else(|| error("no rule id is left".into()))?;
        rule.name = format!("{action} {}", expr::normalized(expr));
        self.rules.push(rule);
        self.check_size()
    }

    fn check_size(&self) -> Result<(), RuleError> {
        if self.rules.len() > MAX_RULES as usize {
            return Err(RuleError::Set(format!(
                "{} rules given; the program evaluates at most {MAX_RULES}",
                self.rules.len()
            )));
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
