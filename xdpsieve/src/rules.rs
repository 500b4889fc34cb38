//! Firewall rules: parsed from tcpdump-style command-line expressions (`--drop 'udp src port
//! 53'`) and from TOML files, validated, and compiled into the kernel's [`Rule`] layout.
//!
//! Evaluation is first match wins; packets no rule matches get the default verdict. Errors
//! name the file, line and column, or the expression, and say what is wrong.

use std::{fmt, net::IpAddr, ops::Range, path::Path, str::FromStr};

use serde::Deserialize;
use toml::Spanned;
use xdpsieve_common::{MAX_RULES, Rule, family, rule_match, verdict};

/// What happens to a packet a rule matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
    #[error("cannot read rule file {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
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

    /// Appends rules given on the command line, in order, with ids after the existing ones.
    pub fn push_expression(&mut self, action: Action, expr: &str) -> Result<(), RuleError> {
        let mut rule = parse_expression(action, expr).map_err(|message| RuleError::Expression {
            expr: expr.to_string(),
            message,
        })?;
        rule.id = self.next_free_id();
        rule.name = format!("{action} {}", expr.trim());
        self.rules.push(rule);
        self.check_size()
    }

    fn next_free_id(&self) -> u32 {
        self.rules.iter().map(|r| r.id).max().unwrap_or(0) + 1
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

    /// Reads a TOML rule file.
    pub fn from_file(path: &Path) -> Result<RuleSet, RuleError> {
        let text = std::fs::read_to_string(path).map_err(|source| RuleError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Parses a TOML rule file's text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<RuleSet, RuleError> {
        let at = |span: Range<usize>, message: String| {
            let (line, column) = line_column(text, span.start);
            RuleError::File {
                path: origin.to_string(),
                line,
                column,
                message,
            }
        };
        let file: RuleFile = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            at(span, e.message().to_string())
        })?;
        let default_action = match &file.default {
            Some(d) => d.get_ref().parse().map_err(|m| at(d.span(), m))?,
            None => Action::Pass,
        };
        let mut set = RuleSet {
            default_action,
            rules: Vec::new(),
        };
        let mut used_ids = std::collections::HashSet::new();
        for entry in &file.rule {
            if let Some(id) = &entry.id {
                if *id.get_ref() == 0 {
                    return Err(at(
                        id.span(),
                        "rule id 0 is reserved for the default verdict".into(),
                    ));
                }
                if !used_ids.insert(*id.get_ref()) {
                    return Err(at(id.span(), format!("duplicate rule id {}", id.get_ref())));
                }
            }
        }
        let mut next_id = 1;
        for entry in file.rule {
            let mut rule = RuleSpec::new(
                entry
                    .action
                    .get_ref()
                    .parse()
                    .map_err(|m| at(entry.action.span(), m))?,
            );
            rule.id = match &entry.id {
                Some(id) => *id.get_ref(),
                None => {
                    while used_ids.contains(&next_id) {
                        next_id += 1;
                    }
                    used_ids.insert(next_id);
                    next_id
                }
            };
            rule.name = match &entry.name {
                Some(n) if n.get_ref().trim().is_empty() => {
                    return Err(at(n.span(), "rule name is empty".into()));
                }
                Some(n) => n.get_ref().clone(),
                None => format!("rule-{}", rule.id),
            };
            if let Some(p) = &entry.protocol {
                rule.protocol = Some(p.get_ref().as_text().parse().map_err(|m| at(p.span(), m))?);
            }
            if let Some(f) = &entry.family {
                rule.family = Some(match f.get_ref().as_str() {
                    "ipv4" | "ip" | "inet" => family::IPV4,
                    "ipv6" | "ip6" | "inet6" => family::IPV6,
                    other => {
                        return Err(at(
                            f.span(),
                            format!("unknown family `{other}` (expected ipv4 or ipv6)"),
                        ));
                    }
                });
            }
            if let Some(c) = &entry.src {
                rule.src = Some(c.get_ref().parse().map_err(|m| at(c.span(), m))?);
            }
            if let Some(c) = &entry.dst {
                rule.dst = Some(c.get_ref().parse().map_err(|m| at(c.span(), m))?);
            }
            if let Some(p) = &entry.src_port {
                rule.src_port = Some(p.get_ref().as_text().parse().map_err(|m| at(p.span(), m))?);
            }
            if let Some(p) = &entry.dst_port {
                rule.dst_port = Some(p.get_ref().as_text().parse().map_err(|m| at(p.span(), m))?);
            }
            if let Some(l) = &entry.log {
                rule.log = *l.get_ref();
            }
            if let Some(r) = &entry.log_rate {
                rule.rate = Some(r.get_ref().as_text().parse().map_err(|m| at(r.span(), m))?);
            }
            rule.validate()
                .map_err(|m| at(entry.action.span(), format!("rule `{}` {m}", rule.name)))?;
            set.rules.push(rule);
        }
        set.check_size()?;
        Ok(set)
    }

    /// Kernel rules in evaluation order.
    pub fn to_kernel(&self, default_rate: Rate) -> Vec<Rule> {
        self.rules
            .iter()
            .map(|r| r.to_kernel(default_rate))
            .collect()
    }
}

/// 1-based line and column of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    default: Option<Spanned<String>>,
    #[serde(default)]
    rule: Vec<RuleEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleEntry {
    id: Option<Spanned<u32>>,
    name: Option<Spanned<String>>,
    action: Spanned<String>,
    protocol: Option<Spanned<NumberOrText>>,
    family: Option<Spanned<String>>,
    src: Option<Spanned<String>>,
    dst: Option<Spanned<String>>,
    src_port: Option<Spanned<NumberOrText>>,
    dst_port: Option<Spanned<NumberOrText>>,
    log: Option<Spanned<bool>>,
    log_rate: Option<Spanned<NumberOrText>>,
}

/// `53` and `"53"` (or `"1000-2000"`, `"udp"`) are both accepted where it makes sense.
#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrText {
    Number(i64),
    Text(String),
}

impl NumberOrText {
    fn as_text(&self) -> String {
        match self {
            NumberOrText::Number(n) => n.to_string(),
            NumberOrText::Text(t) => t.clone(),
        }
    }
}

/// Parses a tcpdump-style conjunction: `[ip|ip6] [tcp|udp|icmp|icmp6|proto N]
/// [src|dst] (host ADDR | net CIDR | port P | portrange A-B)`, joined by `and`.
pub fn parse_expression(action: Action, expr: &str) -> Result<RuleSpec, String> {
    let mut rule = RuleSpec::new(action);
    let tokens: Vec<&str> = expr.split_whitespace().collect();
    if tokens.is_empty() {
        return Err("empty expression (say `any` to match every IP packet)".into());
    }
    let mut i = 0;
    let next = |i: &mut usize, what: &str| -> Result<&str, String> {
        *i += 1;
        tokens
            .get(*i - 1)
            .copied()
            .ok_or_else(|| format!("expected {what} at the end"))
    };
    while i < tokens.len() {
        let word = next(&mut i, "a condition")?;
        match word {
            "and" | "&&" => {}
            "any" => {}
            "ip" => set_once(&mut rule.family, family::IPV4, "address family")?,
            "ip6" => set_once(&mut rule.family, family::IPV6, "address family")?,
            "tcp" | "udp" | "icmp" | "icmp6" => {
                set_once(&mut rule.protocol, word.parse()?, "protocol")?
            }
            "proto" => {
                let p = next(&mut i, "a protocol after `proto`")?;
                set_once(&mut rule.protocol, p.parse()?, "protocol")?
            }
            "src" | "dst" => {
                let kind = next(&mut i, "`host`, `net`, `port` or `portrange`")?;
                let value = next(&mut i, &format!("a value after `{word} {kind}`"))?;
                let src = word == "src";
                match kind {
                    "host" | "net" => {
                        let cidr: Cidr = value.parse()?;
                        if kind == "host" && value.contains('/') {
                            return Err(format!(
                                "`host` takes an address, not `{value}`: use `net`"
                            ));
                        }
                        let slot = if src { &mut rule.src } else { &mut rule.dst };
                        set_once(slot, cidr, &format!("{word} address"))?;
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
            "host" | "net" | "port" | "portrange" => {
                return Err(format!(
                    "`{word}` needs a direction: say `src {word} ...` or `dst {word} ...`"
                ));
            }
            "or" | "not" | "||" | "!" => {
                return Err(format!(
                    "`{word}` is not supported: a rule is a conjunction; give several rules instead"
                ));
            }
            other => return Err(format!("unknown word `{other}`")),
        }
    }
    rule.validate()?;
    Ok(rule)
}

fn set_once<T>(slot: &mut Option<T>, value: T, what: &str) -> Result<(), String> {
    if slot.is_some() {
        return Err(format!("{what} given twice"));
    }
    *slot = Some(value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expression_dns_responses() {
        let r = parse_expression(Action::Drop, "udp src port 53").unwrap();
        assert_eq!(r.protocol, Some(Protocol::UDP));
        assert_eq!(r.src_port, Some(PortRange { min: 53, max: 53 }));
        let k = r.to_kernel(Rate::UNLIMITED);
        assert_eq!(k.flags, rule_match::PROTOCOL | rule_match::SRC_PORT);
        assert_eq!(k.verdict, verdict::DROP);
    }

    #[test]
    fn expression_full() {
        let r = parse_expression(
            Action::Pass,
            "tcp and src net 198.51.100.0/24 and dst host 192.0.2.2 and dst portrange 1000-2000",
        )
        .unwrap();
        assert_eq!(r.src.unwrap().to_string(), "198.51.100.0/24");
        assert_eq!(r.dst.unwrap().prefix_len, 32);
        assert_eq!(
            r.dst_port,
            Some(PortRange {
                min: 1000,
                max: 2000
            })
        );
        let k = r.to_kernel(Rate::UNLIMITED);
        assert_eq!(k.family, family::IPV4);
        assert_eq!(k.src_addr[0], u32::from_ne_bytes([198, 51, 100, 0]));
        assert_eq!(k.src_mask[0], u32::from_ne_bytes([255, 255, 255, 0]));
        assert_eq!(k.dst_mask[0], u32::MAX);
    }

    #[test]
    fn expression_ipv6_prefix_words() {
        let r = parse_expression(Action::Drop, "src net 2001:db8:ab00::/40").unwrap();
        let k = r.to_kernel(Rate::UNLIMITED);
        assert_eq!(k.family, family::IPV6);
        assert_eq!(k.src_addr[0], u32::from_ne_bytes([0x20, 0x01, 0x0d, 0xb8]));
        assert_eq!(k.src_mask[0], u32::MAX);
        assert_eq!(k.src_mask[1], u32::from_ne_bytes([0xff, 0, 0, 0]));
        assert_eq!(k.src_addr[1], u32::from_ne_bytes([0xab, 0, 0, 0]));
        assert_eq!(k.src_mask[2], 0);
    }

    #[test]
    fn expression_errors_say_why() {
        let err = |e: &str| parse_expression(Action::Drop, e).unwrap_err();
        assert!(err("port 53").contains("needs a direction"));
        assert!(err("udp src port 70000").contains("not a port number"));
        assert!(err("icmp dst port 1").contains("only apply to tcp and udp"));
        assert!(err("src net 198.51.100.5/24").contains("did you mean `198.51.100.0/24`"));
        assert!(
            err("src net 192.0.2.0/24 and dst net 2001:db8::/32").contains("mixes IPv4 and IPv6")
        );
        assert!(err("udp or tcp").contains("not supported"));
        assert!(err("udp udp").contains("protocol given twice"));
        assert!(err("src port").contains("at the end"));
        assert!(err("dst port 20-10").contains("backwards"));
        assert!(err("frobnicate").contains("unknown word"));
        assert!(err("").contains("empty"));
    }

    const GOOD: &str = r#"
# Drop DNS responses from the documentation range, pass everything else.
default = "pass"

[[rule]]
name = "block-dns"
action = "drop"
protocol = "udp"
src = "198.51.100.0/24"
src_port = 53

[[rule]]
id = 7
name = "v6-web"
action = "pass"
protocol = "tcp"
dst = "2001:db8::/32"
dst_port = "80-443"

[[rule]]
action = "drop"
protocol = 132
"#;

    #[test]
    fn file_good() {
        let set = RuleSet::from_toml(GOOD, "good.toml").unwrap();
        assert_eq!(set.default_action, Action::Pass);
        assert_eq!(set.rules.len(), 3);
        assert_eq!(
            (set.rules[0].id, set.rules[0].name.as_str()),
            (1, "block-dns")
        );
        assert_eq!(set.rules[1].id, 7);
        assert_eq!(set.rules[1].dst_port, Some(PortRange { min: 80, max: 443 }));
        assert_eq!((set.rules[2].id, set.rules[2].name.as_str()), (2, "rule-2"));
        assert_eq!(set.rules[2].protocol, Some(Protocol(132)));
        assert_eq!(set.name_of(7), Some("v6-web"));
        assert_eq!(set.name_of(0), Some("default"));
    }

    fn file_error(text: &str) -> String {
        RuleSet::from_toml(text, "bad.toml")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn file_errors_name_line_and_problem() {
        let e = file_error("[[rule]]\naction = \"drop\"\nsrc = \"198.51.100.0/33\"\n");
        assert!(e.starts_with("bad.toml:3:7: "), "{e}");
        assert!(e.contains("prefix length"), "{e}");

        let e = file_error("[[rule]]\naction = \"dorp\"\n");
        assert!(e.starts_with("bad.toml:2:"), "{e}");
        assert!(e.contains("unknown action `dorp`"), "{e}");

        let e = file_error("[[rule]]\naction = \"drop\"\nsrc_prot = 53\n");
        assert!(e.starts_with("bad.toml:3:"), "{e}");
        assert!(e.contains("src_prot"), "{e}");

        let e = file_error("[[rule]]\nname = \"x\"\n");
        assert!(e.contains("action"), "{e}");

        let e = file_error("[[rule]]\naction = \"drop\"\nprotocol = \"icmp\"\ndst_port = 5\n");
        assert!(e.contains("only apply to tcp and udp"), "{e}");

        let e = file_error(
            "[[rule]]\nid = 3\naction = \"drop\"\n[[rule]]\nid = 3\naction = \"pass\"\n",
        );
        assert!(e.starts_with("bad.toml:5:"), "{e}");
        assert!(e.contains("duplicate rule id 3"), "{e}");

        let e = file_error("default = \"maybe\"\n");
        assert!(e.starts_with("bad.toml:1:"), "{e}");

        let e = file_error("[[rule]\n");
        assert!(e.starts_with("bad.toml:1:"), "{e}");

        let e = file_error("[[rule]]\naction = \"drop\"\ndst_port = \"http\"\n");
        assert!(e.contains("not a port number"), "{e}");
    }

    #[test]
    fn log_and_rates() {
        let set = RuleSet::from_toml(
            "[[rule]]\naction = \"drop\"\nlog = true\nlog_rate = \"100/s\"\n[[rule]]\naction = \"pass\"\n",
            "r.toml",
        )
        .unwrap();
        assert!(set.rules[0].log);
        let k = set.rules[0].to_kernel(Rate::UNLIMITED);
        assert_eq!(
            (k.log, k.rate_interval_ns, k.rate_tolerance_ns),
            (1, 10_000_000, 990_000_000)
        );
        let default = "10/m".parse::<Rate>().unwrap();
        let k = set.rules[1].to_kernel(default);
        assert_eq!(k.rate_interval_ns, 6_000_000_000);
        assert_eq!("0".parse::<Rate>().unwrap().interval_ns(), 0);
        assert!("fast".parse::<Rate>().is_err());
        assert!("10/fortnight".parse::<Rate>().is_err());
        let e = RuleSet::from_toml("[[rule]]\naction = \"drop\"\nlog_rate = \"x\"\n", "r.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("r.toml:3:") && e.contains("not a rate"),
            "{e}"
        );
    }

    #[test]
    fn cli_rules_follow_file_ids() {
        let mut set = RuleSet::from_toml(GOOD, "good.toml").unwrap();
        set.push_expression(Action::Drop, "udp src port 53")
            .unwrap();
        assert_eq!(set.rules.last().unwrap().id, 8);
        assert_eq!(set.rules.last().unwrap().name, "drop udp src port 53");
    }

    #[test]
    fn too_many_rules() {
        let mut set = RuleSet::default();
        for _ in 0..MAX_RULES {
            set.push_expression(Action::Drop, "udp").unwrap();
        }
        assert!(set.push_expression(Action::Drop, "udp").is_err());
    }

    #[test]
    fn l4_conditions_are_protocols_and_ports() {
        let with = |expr: &str| {
            let mut set = RuleSet::default();
            set.push_expression(Action::Drop, expr).unwrap();
            set.has_l4_condition()
        };
        assert!(with("udp"));
        assert!(with("proto 47"));
        assert!(with("dst port 53"));
        assert!(with("tcp and src portrange 1000-2000"));
        assert!(!with("src net 198.51.100.0/24"));
        assert!(!with("ip6 and dst host 2001:db8::1"));
        assert!(!RuleSet::default().has_l4_condition());
    }
}
