//! Firewall rules: parsed from tcpdump-style command-line expressions (`--drop 'udp src port
//! 53'`) and from TOML files, validated, and compiled into the kernel's [`Rule`] layout.
//!
//! Evaluation is first match wins; packets no rule matches get the default verdict. Errors
//! name the file, line and column, or the expression, and say what is wrong. Rule ids are
//! unique and never 0 (the default verdict's), however hostile the input.
//!
//! [`expr`] parses the command-line syntax, [`file`] the TOML rule files.

mod expr;
mod file;
#[cfg(test)]
mod tests;

use std::{fmt, net::IpAddr, str::FromStr};

pub use expr::parse_expression;
pub use file::MAX_NAME_CHARS;
use xdpsieve_common::{MAX_RULES, Rule, family, rule_match, verdict};

use crate::{input::ReadFileError, text::escape};

/// What happens to a packet a rule matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Action {
    Drop,
    Pass,
}

impl Action {
    pub fn verdict(self) -> u8 {
        match self {
            Action::Drop => verdict::DROP,
            Action::Pass => verdict::PASS,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Drop => "drop",
            Action::Pass => "pass",
        })
    }
}

impl FromStr for Action {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "drop" => Ok(Action::Drop),
            "pass" => Ok(Action::Pass),
            other => Err(format!(
                "unknown action `{other}` (expected `drop` or `pass`)"
            )),
        }
    }
}

/// An IP protocol, by its number; named for the common ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Protocol(pub u8);

impl Protocol {
    pub const ICMP: Protocol = Protocol(1);
    pub const TCP: Protocol = Protocol(6);
    pub const UDP: Protocol = Protocol(17);
    pub const ICMPV6: Protocol = Protocol(58);

    pub fn name(self) -> Option<&'static str> {
        match self {
            Protocol::ICMP => Some("icmp"),
            Protocol::TCP => Some("tcp"),
            Protocol::UDP => Some("udp"),
            Protocol::ICMPV6 => Some("icmp6"),
            _ => None,
        }
    }

    fn has_ports(self) -> bool {
        self == Protocol::TCP || self == Protocol::UDP
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "proto {}", self.0),
        }
    }
}

impl FromStr for Protocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "icmp" => Ok(Protocol::ICMP),
            "tcp" => Ok(Protocol::TCP),
            "udp" => Ok(Protocol::UDP),
            "icmp6" | "icmpv6" => Ok(Protocol::ICMPV6),
            other => other.parse::<u8>().map(Protocol).map_err(|_| {
                format!(
                    "unknown protocol `{other}` (expected tcp, udp, icmp, icmp6 or a number 0-255)"
                )
            }),
        }
    }
}

/// An address prefix such as `198.51.100.0/24` or `2001:db8::/32`; a bare address is a
/// host prefix (/32 or /128).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix_len: u8,
}

impl Cidr {
    fn family(&self) -> u8 {
        match self.addr {
            IpAddr::V4(_) => family::IPV4,
            IpAddr::V6(_) => family::IPV6,
        }
    }

    /// Prefix and mask as the kernel compares them: four words in network byte order.
    fn to_words(self) -> ([u32; 4], [u32; 4]) {
        let mut addr = [0u32; 4];
        let mut mask = [0u32; 4];
        match self.addr {
            IpAddr::V4(v4) => {
                let m = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix_len))
                    .unwrap_or(0);
                addr[0] = u32::from_ne_bytes((u32::from(v4) & m).to_be_bytes());
                mask[0] = u32::from_ne_bytes(m.to_be_bytes());
            }
            IpAddr::V6(v6) => {
                let m = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix_len))
                    .unwrap_or(0);
                let a = (u128::from(v6) & m).to_be_bytes();
                let m = m.to_be_bytes();
                for i in 0..4 {
                    let word = |b: &[u8; 16]| {
                        u32::from_ne_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]])
                    };
                    addr[i] = word(&a);
                    mask[i] = word(&m);
                }
            }
        }
        (addr, mask)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (addr_text, prefix_text) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr_text
            .parse()
            .map_err(|_| format!("`{addr_text}` is not an IPv4 or IPv6 address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix_len = match prefix_text {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= max)
                .ok_or_else(|| format!("prefix length `/{p}` is not in 0..={max}"))?,
        };
        let cidr = Cidr { addr, prefix_len };
        let (words, _) = cidr.to_words();
        let masked = Cidr {
            addr: words_to_addr(&words, addr.is_ipv4()),
            prefix_len,
        };
        if masked.addr != addr {
            return Err(format!(
                "`{s}` has host bits set after the prefix (did you mean `{masked}`?)"
            ));
        }
        Ok(cidr)
    }
}

fn words_to_addr(words: &[u32; 4], v4: bool) -> IpAddr {
    if v4 {
        IpAddr::from(words[0].to_ne_bytes())
    } else {
        let mut bytes = [0u8; 16];
        for (i, w) in words.iter().enumerate() {
            bytes[4 * i..4 * i + 4].copy_from_slice(&w.to_ne_bytes());
        }
        IpAddr::from(bytes)
    }
}

/// An inclusive port range; a single port is a range of one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    pub min: u16,
    pub max: u16,
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.min == self.max {
            write!(f, "{}", self.min)
        } else {
            write!(f, "{}-{}", self.min, self.max)
        }
    }
}

impl FromStr for PortRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let port = |p: &str| {
            p.trim()
                .parse::<u16>()
                .map_err(|_| format!("`{p}` is not a port number (0-65535)"))
        };
        let range = match s.split_once('-') {
            Some((lo, hi)) => PortRange {
                min: port(lo)?,
                max: port(hi)?,
            },
            None => {
                let p = port(s)?;
                PortRange { min: p, max: p }
            }
        };
        if range.min > range.max {
            return Err(format!("port range `{s}` is backwards (low-high)"));
        }
        Ok(range)
    }
}

/// A rate limit on a rule's records: `count` per `per_ns`, in bursts of up to `count`.
/// `0` means unlimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub count: u64,
    pub per_ns: u64,
}

impl Rate {
    pub const UNLIMITED: Rate = Rate {
        count: 0,
        per_ns: 1_000_000_000,
    };

    /// Nanoseconds between records, 0 when unlimited.
    pub fn interval_ns(self) -> u64 {
        self.per_ns
            .checked_div(self.count)
            .map_or(0, |ns| ns.max(1))
    }

    /// How far ahead of schedule a full burst may run.
    pub fn tolerance_ns(self) -> u64 {
        self.interval_ns()
            .saturating_mul(self.count.saturating_sub(1))
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.count == 0 {
            return f.write_str("unlimited");
        }
        let unit = match self.per_ns {
            1_000_000_000 => "s",
            60_000_000_000 => "m",
            _ => "h",
        };
        write!(f, "{}/{unit}", self.count)
    }
}

impl FromStr for Rate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let text = s.trim();
        if text == "0" || text == "unlimited" {
            return Ok(Rate::UNLIMITED);
        }
        let bad = || format!("`{s}` is not a rate (expected N/s, N/m, N/h, or 0 for unlimited)");
        let (count, unit) = text.split_once('/').ok_or_else(bad)?;
        let count: u64 = count.trim().parse().map_err(|_| bad())?;
        let per_ns = match unit.trim() {
            "s" | "sec" | "second" => 1_000_000_000,
            "m" | "min" | "minute" => 60_000_000_000,
            "h" | "hour" => 3_600_000_000_000,
            _ => return Err(bad()),
        };
        if count > 100_000_000 {
            return Err(format!(
                "`{s}` is too high a rate (at most 100000000 per unit)"
            ));
        }
        Ok(Rate { count, per_ns })
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
