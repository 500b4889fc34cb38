//! Address sets: named collections of IPv4 and IPv6 prefixes that rules refer to by name
//! (`src = "@blocklist"`, `src net @blocklist`), declared in the rule file with `[[set]]`.
//!
//! A set mixes both families; an address is in it when any of its prefixes covers it, so
//! overlaps and duplicates are kept as given (the trie resolves them). Its prefixes come
//! from a set file ([`file`]: FireHOL `.netset`, Spamhaus DROP and plain lists load as they
//! are) or inline from the rule file. Parsing only reads and validates; nothing here
//! prints: host-bits warnings are returned for the caller to show.
//!
//! The way on: [`SetSpec`]s sit in `RuleSet::sets`, rules name them by index
//! (`AddrMatch::Set`), `classify` turns the rules that use each set into bitmaps, and the
//! set trie ([`trie`]) turns the prefixes into the kernel's maps ([`kernel`]). A running
//! firewall's sets are changed live by `crate::instance::sets`.

mod file;
pub mod kernel;
#[cfg(test)]
mod tests;
pub mod trie;

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::PathBuf,
    str::FromStr,
};

pub use file::{MAX_WARNINGS_PER_FILE, ParsedSet, SetFileError, parse_set_text, read_set_file};
use xdpsieve_common::family;

/// Longest set name: names are printed in `check-rules`, `status` and `set list`.
pub const MAX_SET_NAME_CHARS: usize = 64;

/// Most sets a rule set declares: a trie class is a 64-bit mask of sets.
pub const MAX_SETS: usize = xdpsieve_common::sets::MAX_SETS as usize;

/// One prefix of a set, its address already masked to `prefix_len` bits (a bare address
/// is a /32 or /128).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SetPrefix {
    pub addr: IpAddr,
    pub prefix_len: u8,
}

impl SetPrefix {
    /// One of `xdpsieve_common::family`.
    pub fn family(&self) -> u8 {
        match self.addr {
            IpAddr::V4(_) => family::IPV4,
            IpAddr::V6(_) => family::IPV6,
        }
    }

    /// Whether `addr` lies under this prefix (never across families).
    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self.addr, addr) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                let mask = v4_mask(self.prefix_len);
                u32::from(net) == u32::from(a) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                let mask = v6_mask(self.prefix_len);
                u128::from(net) == u128::from(a) & mask
            }
            _ => false,
        }
    }

    /// Parses `ADDR` or `ADDR/LEN`, masking any host bits set after the prefix; the flag
    /// says whether there were some (set files have them; the caller warns).
    pub fn parse_masking(text: &str) -> Result<(SetPrefix, bool), String> {
        if let Some((addr, prefix_len)) = fast_v4(text.as_bytes()) {
            let masked = addr & v4_mask(prefix_len);
            let prefix = SetPrefix {
                addr: IpAddr::V4(Ipv4Addr::from(masked)),
                prefix_len,
            };
            return Ok((prefix, masked != addr));
        }
        if text.contains(char::is_whitespace) {
            return Err(format!("expected one prefix or address, found `{text}`"));
        }
        let (addr_text, len_text) = match text.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (text, None),
        };
        // Dispatch on the separator: each parser then says what it expected.
        let addr: IpAddr = if addr_text.contains(':') {
            addr_text.parse::<Ipv6Addr>().map(IpAddr::V6)
        } else {
            addr_text.parse::<Ipv4Addr>().map(IpAddr::V4)
        }
        .map_err(|_| format!("`{addr_text}` is not an IPv4 or IPv6 address"))?;
        let max: u8 = if addr.is_ipv4() { 32 } else { 128 };
        let prefix_len = match len_text {
            None => max,
            // Digits only: `u8`'s parser would take `+8` too.
            Some(l) => match l.parse::<u8>() {
                Ok(len) if len <= max && l.bytes().all(|b| b.is_ascii_digit()) => len,
                _ => {
                    let which = if addr.is_ipv4() { "IPv4" } else { "IPv6" };
                    return Err(format!(
                        "prefix length `/{l}` is out of range for {which} (0 to {max})"
                    ));
                }
            },
        };
        let (addr, prefix_len) = match addr {
            IpAddr::V6(a) => match embedded_ipv4(a, prefix_len)? {
                Some((v4, len)) => (IpAddr::V4(v4), len),
                None => (addr, prefix_len),
            },
            IpAddr::V4(_) => (addr, prefix_len),
        };
        let masked = match addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & v4_mask(prefix_len))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & v6_mask(prefix_len))),
        };
        Ok((
            SetPrefix {
                addr: masked,
                prefix_len,
            },
            masked != addr,
        ))
    }
}

/// IPv4 written as IPv6, in sets and rules alike. An IPv4-mapped address
/// (`::ffff:192.0.2.53`, RFC 4291 2.5.5.2) is what dual-stack software prints for an IPv4
/// peer and is not meant to be seen on the wire: it means the IPv4 address, so it is read
/// as IPv4 (`::ffff:192.0.2.0/120` is `192.0.2.0/24`) and matches IPv4 packets. An IPv4-compatible one (`::192.0.2.53`,
/// deprecated by RFC 4291 2.5.5.1) is refused: no packet carries it either, and reading
/// it as IPv4 would be a guess. `::` and `::1` are ordinary IPv6 addresses. Returns the
/// IPv4 prefix for a mapped one, `None` for any other IPv6 prefix.
pub fn embedded_ipv4(addr: Ipv6Addr, prefix_len: u8) -> Result<Option<(Ipv4Addr, u8)>, String> {
    let bits = u128::from(addr);
    if prefix_len < 96 {
        return Ok(None);
    }
    let v4 = Ipv4Addr::from(bits as u32);
    if bits >> 32 == 0xffff {
        return Ok(Some((v4, prefix_len - 96)));
    }
    if bits >> 32 == 0 && !(prefix_len == 128 && bits <= 1) {
        return Err(format!(
            "`{addr}/{prefix_len}` is an IPv4-compatible IPv6 address, a form deprecated by \
             RFC 4291 that no packet carries; write the IPv4 address ({v4}/{}) to match \
             IPv4 packets",
            prefix_len - 96
        ));
    }
    Ok(None)
}

/// Strict: host bits set after the prefix are an error (for prefixes the operator types).
impl FromStr for SetPrefix {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (prefix, host_bits) = SetPrefix::parse_masking(s)?;
        if host_bits {
            return Err(format!(
                "`{s}` has host bits set after the prefix (did you mean `{prefix}`?)"
            ));
        }
        Ok(prefix)
    }
}

impl fmt::Display for SetPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

/// `a.b.c.d` or `a.b.c.d/n` in the one spelling `Ipv4Addr`'s parser accepts too (decimal
/// octets without leading zeros, `n` at most 32), read byte by byte: set files are mostly
/// IPv4 and a million lines should cost milliseconds. `None` for anything else, which the
/// general parser then reads or explains.
fn fast_v4(text: &[u8]) -> Option<(u32, u8)> {
    /// A decimal number of 1 to 3 digits without a leading zero, at most `max`, and the
    /// bytes after it.
    fn number(text: &[u8], max: u32) -> Option<(u32, &[u8])> {
        let digits = text
            .iter()
            .take(3)
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits == 0 || (digits > 1 && text[0] == b'0') {
            return None;
        }
        let value = text[..digits]
            .iter()
            .fold(0u32, |n, b| n * 10 + u32::from(b - b'0'));
        let rest = &text[digits..];
        (value <= max && !rest.first().is_some_and(u8::is_ascii_digit)).then_some((value, rest))
    }
    let mut addr = 0u32;
    let mut rest = text;
    for octet in 0..4 {
        let (value, after) = number(rest, 255)?;
        addr = addr << 8 | value;
        rest = after;
        if octet < 3 {
            rest = rest.strip_prefix(b".")?;
        }
    }
    match rest {
        [] => Some((addr, 32)),
        [b'/', len @ ..] => match number(len, 32)? {
            (n, []) => Some((addr, n as u8)),
            _ => None,
        },
        _ => None,
    }
}

fn v4_mask(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
}

fn v6_mask(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
}

/// Where a set's prefixes were read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SetSource {
    /// A set file; the path as resolved (relative paths against the rule file's folder).
    File(PathBuf),
    /// `prefixes = [...]` in the rule file.
    Inline,
}

/// One declared set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetSpec {
    /// [A-Za-z0-9_.-], 1 to [`MAX_SET_NAME_CHARS`] characters, unique in the rule set.
    pub name: String,
    /// As given: duplicates and overlapping prefixes kept, in file order.
    pub prefixes: Vec<SetPrefix>,
    pub source: SetSource,
}

impl SetSpec {
    /// How many prefixes are IPv4 and how many IPv6.
    pub fn family_counts(&self) -> (usize, usize) {
        let v4 = self.prefixes.iter().filter(|p| p.addr.is_ipv4()).count();
        (v4, self.prefixes.len() - v4)
    }

    /// Whether some prefix covers `addr` (a scan: for tests and models, not the data path).
    pub fn contains(&self, addr: IpAddr) -> bool {
        self.prefixes.iter().any(|p| p.contains(addr))
    }
}

/// Checks a set name: what the problem is, in words, if it is not a valid one.
pub fn check_set_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("set name is empty".into());
    }
    if name.chars().count() > MAX_SET_NAME_CHARS {
        return Err(format!(
            "set name is longer than {MAX_SET_NAME_CHARS} characters"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(format!(
            "set name `{}` contains `{}`; use letters, digits, `_`, `.` and `-` only",
            crate::base::text::escape(name),
            crate::base::text::escape(&c.to_string())
        ));
    }
    Ok(())
}

/// The kernel memory `sets` will take, in words for `check-rules`: the set trie is built
/// as the loader would build it, so the figure is exact for the groups in use, plus the
/// room left for live changes.
pub fn memory_estimate(sets: &[SetSpec]) -> String {
    if sets.is_empty() {
        return "none (no sets)".to_string();
    }
    let entries: Vec<xdpsieve_common::SetEntry> = sets
        .iter()
        .enumerate()
        .flat_map(|(index, set)| {
            set.prefixes.iter().map(move |p| {
                kernel::new_entry(
                    index as u16,
                    &trie::TriePrefix::new(p.addr, p.prefix_len),
                    xdpsieve_common::sets::ENTRY_FILE,
                    0,
                )
            })
        })
        .collect();
    match kernel::Built::new(entries, Vec::new()) {
        Ok(built) => format!(
            "{} ({} trie groups of 1 KiB in use, room for {}; {} entries, room for {})",
            human_bytes(built.memory_bytes()),
            built.trie.groups_used(),
            built.node_capacity(),
            built.entries.len(),
            built.entry_capacity()
        ),
        Err(e) => format!("does not fit: {e}"),
    }
}

/// `n` bytes as KiB, MiB or GiB with one decimal.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["bytes", "KiB", "MiB", "GiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
