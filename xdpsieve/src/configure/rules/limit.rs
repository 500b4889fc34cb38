//! What makes a rule continue instead of deciding (see `xdpsieve_common::walk`): monitor
//! mode, and the budget of a limit rule (`action = "limit"`), with the parsers of their
//! values and the kernel's form of each.
//!
//! A limit is a token bucket per key: `rate` refills it (packets or bytes per second,
//! minute or hour), `burst` is its depth (packets or bytes that may pass at once), `per`
//! picks the key (each source address, each source prefix, or one bucket for the rule),
//! `max_tracked` bounds the keys the kernel tracks at once.

use std::fmt;

use serde::{Deserialize, Serialize};
use xdpsieve_common::{
    family,
    walk::{LimitParams, rule_kind},
};

/// Whether a rule acts on what it matches or only marks it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The rule decides (drops, passes, limits).
    #[default]
    Enforce,
    /// The rule decides nothing: the packets it would decide are counted as "would drop"
    /// (or "would pass"), recorded with that mark, and evaluation goes on.
    Monitor,
}

impl Mode {
    pub fn from_name(name: &str) -> Result<Mode, String> {
        match name {
            "enforce" => Ok(Mode::Enforce),
            "monitor" => Ok(Mode::Monitor),
            _ => Err(format!(
                "unknown mode `{name}` (expected \"monitor\" or \"enforce\")"
            )),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Enforce => "enforce",
            Mode::Monitor => "monitor",
        })
    }
}

/// Keys a limit rule tracks at once unless it says (`max_tracked`): a flood from this
/// many distinct sources is tracked source by source; beyond it the least recently seen
/// are forgotten (and counted). About 120 bytes of kernel memory each (see
/// [`BYTES_PER_TRACKED_KEY`]): 7.5 MiB.
pub const DEFAULT_MAX_TRACKED: u32 = 65_536;

/// Most keys one limit rule may track.
pub const MAX_TRACKED: u32 = 16_777_216;

/// Kernel memory per tracked key: the LRU hash element (a 48-byte header, the 24-byte key,
/// the 32-byte bucket) and its share of the hash buckets (16 bytes per power-of-two slot).
pub const BYTES_PER_TRACKED_KEY: u64 = 48 + 24 + 32 + 16;

/// What refills a bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitRate {
    /// `count` packets per `per_ns`.
    Packets { count: u64, per_ns: u64 },
    /// Bytes per second (whole frames).
    Bytes { per_second: u64 },
}

/// Which packets share a bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Per {
    /// Each source prefix of these lengths (32 and 128: each address).
    Source { v4: u8, v6: u8 },
    /// One bucket for every packet the rule matches: the answer to spoofed floods, where
    /// no source repeats.
    Rule,
}

/// A limit rule's budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimitSpec {
    pub rate: LimitRate,
    /// Packets (or bytes, for a byte rate) that may pass at once.
    pub burst: u64,
    pub per: Per,
    /// Keys tracked at once (`per` sources only).
    pub max_tracked: u32,
    /// Keys over the budget are banned (`ban`, `ban_set`): added to a set for a time.
    pub ban: Option<BanSpec>,
}

/// Bans a limit rule adds (see `instance::bans`): a key over the budget goes into the set
/// `set` (index among the rule file's sets) for `time_ns`, so the drop rule that names the
/// set (placed before the limit rule) drops it from then on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BanSpec {
    /// How long a ban lasts (`ban = "10m"`); a key still over when it ends is banned again.
    pub time_ns: u64,
    /// The set bans go into (`ban_set`).
    pub set: usize,
    /// Keys overlapping this set are never banned (`allow_set`).
    pub allow_set: Option<usize>,
    /// Most new bans per second (`ban_rate`); the others wait for the key's next notice.
    pub rate: u32,
    /// Most bans of this rule in force at once (`ban_max`).
    pub max: u32,
}

/// Bans per second a rule adds at most unless it says (`ban_rate`).
pub const DEFAULT_BAN_RATE: u32 = 100;
/// Bans of one rule in force at once unless it says (`ban_max`).
pub const DEFAULT_BAN_MAX: u32 = 10_000;
/// Most bans all rules may hold at once: the room the set table keeps for run-time
/// entries (`configure::sets::kernel`'s spare entries), so bans never fill it.
pub const MAX_BANS: u32 = 32_768;

impl LimitSpec {
    /// The kernel's form.
    pub fn to_kernel(&self) -> LimitParams {
        let (packet_cost_ns, bytes_per_second, burst_ns) = match self.rate {
            LimitRate::Packets { count, per_ns } => {
                let cost = (per_ns / count.max(1)).max(1);
                (cost, 0, cost.saturating_mul(self.burst))
            }
            LimitRate::Bytes { per_second } => {
                let ns = u128::from(self.burst) * 1_000_000_000 / u128::from(per_second.max(1));
                (0, per_second, u64::try_from(ns).unwrap_or(u64::MAX))
            }
        };
        let (v4_prefix, v6_prefix, per_rule) = match self.per {
            Per::Source { v4, v6 } => (v4, v6, 0),
            Per::Rule => (0, 0, 1),
        };
        LimitParams {
            packet_cost_ns,
            bytes_per_second,
            burst_ns,
            v4_prefix,
            v6_prefix,
            per_rule,
            ban: u8::from(self.ban.is_some()),
            _pad: [0; 4],
            masks: [masks(v4_prefix), masks(v6_prefix)],
        }
    }

    /// Keys of the shared table this rule may take.
    pub fn tracked(&self) -> u32 {
        match self.per {
            Per::Source { .. } => self.max_tracked,
            Per::Rule => 0,
        }
    }

    /// The default burst: one unit's worth of the rate (a second's, a minute's...).
    pub fn default_burst(rate: LimitRate) -> u64 {
        match rate {
            LimitRate::Packets { count, .. } => count,
            LimitRate::Bytes { per_second } => per_second,
        }
    }
}

impl fmt::Display for LimitSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rate {} burst {} per {}",
            self.rate, self.burst, self.per
        )?;
        if let Some(ban) = &self.ban {
            write!(f, " ban {}s", ban.time_ns / 1_000_000_000)?;
        }
        Ok(())
    }
}

impl fmt::Display for LimitRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            LimitRate::Packets { count, per_ns } => {
                let unit = match per_ns {
                    1_000_000_000 => "s",
                    60_000_000_000 => "m",
                    _ => "h",
                };
                write!(f, "{count}/{unit}")
            }
            LimitRate::Bytes { per_second } => write!(f, "{per_second}B/s"),
        }
    }
}

impl fmt::Display for Per {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Per::Rule => f.write_str("rule"),
            Per::Source { v4: 32, v6: 128 } => f.write_str("src"),
            Per::Source { v4, v6: 128 } => write!(f, "src/{v4}"),
            Per::Source { v4: 32, v6 } => write!(f, "src/{v6}"),
            Per::Source { v4, v6 } => write!(f, "src/{v4},src/{v6}"),
        }
    }
}

/// The masks of an address's four words (as the program reads them: network byte order)
/// that keep its first `bits` bits.
fn masks(bits: u8) -> [u32; 4] {
    let mut out = [0u32; 4];
    for (i, word) in out.iter_mut().enumerate() {
        let kept = u32::from(bits).saturating_sub(i as u32 * 32).min(32);
        let host = if kept == 0 {
            0
        } else {
            u32::MAX << (32 - kept)
        };
        *word = u32::from_ne_bytes(host.to_be_bytes());
    }
    out
}

/// `1000/s`, `60/m`, `10MB/s`, `512KiB/s`: packets, or bytes with a unit (B, kB, MB, GB
/// in powers of 1000; KiB, MiB, GiB in powers of 1024).
pub fn parse_rate(text: &str) -> Result<LimitRate, String> {
    let bad = || {
        format!(
            "`{text}` is not a limit rate (expected packets such as \"1000/s\", or bytes such \
             as \"10MB/s\"; per s, m or h)"
        )
    };
    let (amount, unit) = text.trim().split_once('/').ok_or_else(bad)?;
    let per_ns: u64 = match unit.trim() {
        "s" | "sec" | "second" => 1_000_000_000,
        "m" | "min" | "minute" => 60_000_000_000,
        "h" | "hour" => 3_600_000_000_000,
        _ => return Err(bad()),
    };
    let amount = amount.trim();
    let split = amount
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(amount.len());
    let (digits, suffix) = amount.split_at(split);
    let count: u64 = digits.parse().map_err(|_| bad())?;
    if count == 0 {
        return Err(format!(
            "`{text}`: a limit of 0 drops everything; use a drop rule for that"
        ));
    }
    let scale: u64 = match suffix.trim() {
        "" => {
            if count > 1_000_000_000 {
                return Err(format!(
                    "`{text}` is too high a rate (at most 1000000000 packets per unit)"
                ));
            }
            return Ok(LimitRate::Packets { count, per_ns });
        }
        "B" => 1,
        "kB" | "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return Err(bad()),
    };
    let bytes = u128::from(count) * u128::from(scale) * 1_000_000_000 / u128::from(per_ns);
    match u64::try_from(bytes) {
        Ok(per_second) if per_second > 0 => Ok(LimitRate::Bytes { per_second }),
        _ => Err(format!(
            "`{text}` is not a usable byte rate (it must come to between 1 byte and 2^64 \
             bytes per second)"
        )),
    }
}

/// `src` (each address), `src/24` or `src/64` (each prefix; a length up to 32 is for
/// IPv4 unless the rule is IPv6-only), `src/24,src/64` (both), `rule` (one bucket).
/// `rule_family` is the family the rule's conditions imply, if one.
pub fn parse_per(text: &str, rule_family: Option<u8>) -> Result<Per, String> {
    let text = text.trim();
    if text == "rule" {
        return Ok(Per::Rule);
    }
    let bad = || {
        format!(
            "`{text}` is not a limit key (expected \"src\", \"src/24\", \"src/64\", \
             \"src/24,src/64\" or \"rule\")"
        )
    };
    let (mut v4, mut v6) = (32u8, 128u8);
    for part in text.split(',') {
        let part = part.trim();
        let Some(rest) = part.strip_prefix("src") else {
            return Err(bad());
        };
        if rest.is_empty() {
            continue;
        }
        let len: u8 = rest
            .strip_prefix('/')
            .and_then(|n| n.parse().ok())
            .ok_or_else(bad)?;
        let v6_len = rule_family == Some(family::IPV6) || len > 32;
        if v6_len {
            if len == 0 || len > 128 {
                return Err(format!("`{part}`: an IPv6 prefix length is 1 to 128"));
            }
            v6 = len;
        } else {
            if len == 0 {
                return Err(format!(
                    "`{part}`: a prefix length of 0 is one bucket for all; write per = \"rule\""
                ));
            }
            if rule_family == Some(family::IPV6) {
                v6 = len;
            } else {
                v4 = len;
            }
        }
    }
    Ok(Per::Source { v4, v6 })
}

/// What a command-line expression may say after its conditions: `monitor`, and for a
/// drop rule `limit RATE [burst N] [per KEY] [max-tracked N]` (in either order).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Trailing {
    pub mode: Mode,
    pub limit: Option<LimitSpec>,
}

/// Splits `expr` into its conditions and what follows them (the words from the first
/// `monitor` or `limit` on, which no condition uses), read into a [`Trailing`].
/// `rule_family` is the family the conditions imply, for `per`.
pub fn split_trailing(
    expr: &str,
    rule_family: impl Fn(&str) -> Option<u8>,
) -> Result<(&str, Trailing), String> {
    let start = expr
        .match_indices(|c: char| c.is_whitespace())
        .map(|(i, _)| i)
        .chain(std::iter::once(0))
        .filter_map(|i| {
            let rest = expr[i..].trim_start();
            ["monitor", "limit"]
                .iter()
                .any(|w| rest == *w || rest.starts_with(&format!("{w} ")))
                .then_some(expr.len() - rest.len())
        })
        .min();
    let Some(start) = start else {
        return Ok((expr, Trailing::default()));
    };
    let conditions = &expr[..start];
    let family = rule_family(conditions);
    let mut trailing = Trailing::default();
    let mut words = expr[start..].split_whitespace().peekable();
    let mut rate = None;
    let (mut burst, mut per, mut max_tracked) = (None, None, None);
    let value = |words: &mut std::iter::Peekable<std::str::SplitWhitespace<'_>>, key: &str| {
        words
            .next()
            .ok_or_else(|| format!("`{key}` needs a value"))
            .map(str::to_string)
    };
    while let Some(word) = words.next() {
        match word {
            "monitor" => trailing.mode = Mode::Monitor,
            "limit" => rate = Some(parse_rate(&value(&mut words, "limit")?)?),
            "burst" if rate.is_some() => {
                let text = value(&mut words, "burst")?;
                burst = Some(
                    text.parse::<u64>()
                        .ok()
                        .filter(|&n| n >= 1)
                        .ok_or_else(|| format!("`burst {text}`: a whole number >= 1"))?,
                );
            }
            "per" if rate.is_some() => per = Some(parse_per(&value(&mut words, "per")?, family)?),
            "max-tracked" if rate.is_some() => {
                let text = value(&mut words, "max-tracked")?;
                max_tracked = Some(
                    text.parse::<u32>()
                        .ok()
                        .filter(|n| (1..=MAX_TRACKED).contains(n))
                        .ok_or_else(|| {
                            format!("`max-tracked {text}`: a whole number from 1 to {MAX_TRACKED}")
                        })?,
                );
            }
            other => {
                return Err(format!(
                    "`{other}` after the conditions: expected `monitor`, or `limit RATE` with \
                     `burst N`, `per src|src/24|src/64|rule`, `max-tracked N`"
                ));
            }
        }
    }
    if let Some(rate) = rate {
        trailing.limit = Some(LimitSpec {
            rate,
            burst: burst.unwrap_or_else(|| LimitSpec::default_burst(rate)),
            per: per.unwrap_or(Per::Source { v4: 32, v6: 128 }),
            max_tracked: max_tracked.unwrap_or(DEFAULT_MAX_TRACKED),
            // Bans name sets: a rule file's (see `ban`, `ban_set`).
            ban: None,
        });
    }
    Ok((conditions, trailing))
}

/// The `Rule::kind` bits of a rule with this mode and limit.
pub fn kind(mode: Mode, limit: Option<&LimitSpec>) -> u8 {
    let mut kind = 0;
    if mode == Mode::Monitor {
        kind |= rule_kind::MONITOR;
    }
    if limit.is_some() {
        kind |= rule_kind::LIMIT;
    }
    kind
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_as_packets_or_bytes() {
        assert_eq!(
            parse_rate("1000/s"),
            Ok(LimitRate::Packets {
                count: 1000,
                per_ns: 1_000_000_000
            })
        );
        assert_eq!(
            parse_rate("10MB/s"),
            Ok(LimitRate::Bytes {
                per_second: 10_000_000
            })
        );
        assert_eq!(
            parse_rate("60KiB/m"),
            Ok(LimitRate::Bytes { per_second: 1024 })
        );
        for bad in ["", "10", "x/s", "10/d", "10Mb/s", "0/s", "1B/h"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_parse_per_family() {
        assert_eq!(parse_per("src", None), Ok(Per::Source { v4: 32, v6: 128 }));
        assert_eq!(
            parse_per("src/24", None),
            Ok(Per::Source { v4: 24, v6: 128 })
        );
        assert_eq!(
            parse_per("src/64", None),
            Ok(Per::Source { v4: 32, v6: 64 })
        );
        assert_eq!(
            parse_per("src/24,src/64", None),
            Ok(Per::Source { v4: 24, v6: 64 })
        );
        assert_eq!(
            parse_per("src/24", Some(family::IPV6)),
            Ok(Per::Source { v4: 32, v6: 24 })
        );
        assert_eq!(parse_per("rule", None), Ok(Per::Rule));
        for bad in ["dst", "src/", "src/0", "src/129", "source"] {
            assert!(parse_per(bad, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn trailing_words_make_monitor_and_limit_rules() {
        let none = |_: &str| None;
        let (cond, t) = split_trailing("udp dst port 53 monitor", none).unwrap();
        assert_eq!(
            (cond.trim(), t.mode, t.limit),
            ("udp dst port 53", Mode::Monitor, None)
        );
        let (cond, t) =
            split_trailing("udp dst port 53 limit 100/s burst 20 per src/24", none).unwrap();
        assert_eq!(cond.trim(), "udp dst port 53");
        let limit = t.limit.unwrap();
        assert_eq!(
            (limit.burst, limit.per),
            (20, Per::Source { v4: 24, v6: 128 })
        );
        let (_, t) = split_trailing("limit 5/s monitor", none).unwrap();
        assert_eq!((t.mode, t.limit.unwrap().burst), (Mode::Monitor, 5));
        assert_eq!(
            split_trailing("udp port 53", none).unwrap().1,
            Trailing::default()
        );
        for bad in [
            "udp monitor x",
            "udp limit",
            "udp limit 1/s burst 0",
            "udp limit 0/s",
        ] {
            assert!(split_trailing(bad, none).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_kernel_form_holds_the_burst_in_time() {
        let spec = LimitSpec {
            rate: parse_rate("100/s").unwrap(),
            burst: 100,
            per: Per::Rule,
            max_tracked: 1,
            ban: None,
        };
        let k = spec.to_kernel();
        assert_eq!(k.packet_cost_ns, 10_000_000);
        assert_eq!(k.burst_ns, 1_000_000_000);
        assert_eq!(k.per_rule, 1);
        let bytes = LimitSpec {
            rate: parse_rate("1MB/s").unwrap(),
            burst: 3000,
            per: Per::Source { v4: 24, v6: 64 },
            max_tracked: 1,
            ban: None,
        };
        let k = bytes.to_kernel();
        assert_eq!((k.bytes_per_second, k.burst_ns), (1_000_000, 3_000_000));
        assert_eq!((k.v4_prefix, k.v6_prefix, k.per_rule), (24, 64, 0));
    }
}
