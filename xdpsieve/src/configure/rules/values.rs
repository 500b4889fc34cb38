//! The values a rule condition holds, each with its parser and its printed form: the action,
//! the protocol, an address prefix, a port range, a record rate. Parsing refuses what
//! would silently mean something else (host bits set after a prefix, a backwards range).

use std::{fmt, net::IpAddr, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use xdpsieve_common::{family, verdict};

/// What happens to a packet a rule matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Drop,
    Pass,
}

impl Action {
    /// The action a rule file names (`drop` or `pass`, as on the command line).
    pub fn from_name(name: &str) -> Result<Action, String> {
        <Action as clap::ValueEnum>::from_str(name, false)
            .map_err(|_| format!("unknown action `{name}` (expected `drop` or `pass`)"))
    }

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

    pub(crate) fn has_ports(self) -> bool {
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
    pub(crate) fn family(&self) -> u8 {
        match self.addr {
            IpAddr::V4(_) => family::IPV4,
            IpAddr::V6(_) => family::IPV6,
        }
    }

    /// Prefix and mask as the kernel compares them: four words in network byte order.
    pub(crate) fn to_words(self) -> ([u32; 4], [u32; 4]) {
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
        // IPv4-mapped IPv6 is the IPv4 address; IPv4-compatible is refused (see there).
        let (addr, prefix_len) = match addr {
            IpAddr::V6(a) => match crate::configure::sets::embedded_ipv4(a, prefix_len)? {
                Some((v4, len)) => (IpAddr::V4(v4), len),
                None => (addr, prefix_len),
            },
            IpAddr::V4(_) => (addr, prefix_len),
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

/// In descriptions as it prints (`10/s`, `unlimited`), read back as it parses.
impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
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
