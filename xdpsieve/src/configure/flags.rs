//! Value parsers for the command line's flags: every number range-checked, every name
//! checked before it reaches the kernel or a terminal, each error a sentence clap shows
//! after "invalid value 'X' for '--flag'".

use crate::base::text::{escape, is_unsafe};

/// `--stats-interval`: finite, at least 0.1 s (a status line is not a packet trace) and at
/// most a day (`Duration` would overflow far beyond, and `1e300` must not panic).
pub fn parse_stats_interval(text: &str) -> Result<f64, String> {
    seconds_in(text, 0.1..=86_400.0)
}

/// `top --interval`, `status --interval`: between two samples of the counters, 0.1 s to a
/// minute (a view refreshed less often shows the past).
pub fn parse_top_interval(text: &str) -> Result<f64, String> {
    seconds_in(text, 0.1..=60.0)
}

/// A finite number of seconds within `range`.
fn seconds_in(text: &str, range: std::ops::RangeInclusive<f64>) -> Result<f64, String> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| "not a number of seconds (e.g. 1 or 0.5)".to_string())?;
    if !range.contains(&secs) {
        return Err(format!(
            "must be between {} and {} seconds",
            range.start(),
            range.end()
        ));
    }
    Ok(secs)
}

/// An interface name as Linux accepts one: 1-15 bytes, no `/`, `:` or whitespace; and no
/// control characters, which no real interface needs and which would reach the terminal.
pub fn parse_interface_name(text: &str) -> Result<String, String> {
    const IFNAMSIZ: usize = 16;
    if text.is_empty() {
        return Err("empty interface name (check for a stray comma)".into());
    }
    if text.len() >= IFNAMSIZ {
        return Err(format!(
            "interface names are at most {} bytes",
            IFNAMSIZ - 1
        ));
    }
    if text == "." || text == ".." {
        return Err("not an interface name".into());
    }
    if let Some(c) = text
        .chars()
        .find(|&c| c == '/' || c == ':' || c.is_whitespace() || is_unsafe(c))
    {
        return Err(format!(
            "interface names cannot contain `{}`",
            escape(c.encode_utf8(&mut [0; 4]))
        ));
    }
    Ok(text.to_string())
}

/// `-c`: a whole number of packets, at least 1 (`-c 0` would stop before the first).
pub fn parse_count(text: &str) -> Result<u64, String> {
    match text.trim().parse::<u64>() {
        Ok(0) => Err("must be at least 1 (leave -c out to capture without a limit)".into()),
        Ok(count) => Ok(count),
        Err(_) => Err("not a whole number of packets".into()),
    }
}

/// A value-enum flag's name as the user types it (`ringbuf`, `dropped`), for messages.
pub fn value_name(value: impl clap::ValueEnum) -> String {
    value
        .to_possible_value()
        .map(|v| v.get_name().to_string())
        .unwrap_or_default()
}

/// `--ring-size`: a power of two from 4K to 2G, with an optional K, M or G suffix (KB, KiB
/// too), as the kernel sizes ring and perf buffers.
pub fn parse_size(text: &str) -> Result<u32, String> {
    let (digits, unit) = match text
        .trim()
        .char_indices()
        .find(|(_, c)| !c.is_ascii_digit())
    {
        Some((i, _)) => text.trim().split_at(i),
        None => (text.trim(), ""),
    };
    let value: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size"))?;
    let scale: u64 = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        other => return Err(format!("unknown size unit `{other}` (use K, M or G)")),
    };
    let bytes = value
        .checked_mul(scale)
        .filter(|&b| b <= 1 << 31)
        .ok_or_else(|| format!("`{text}` is too large (at most 2G)"))?;
    if !bytes.is_power_of_two() || bytes < 4096 {
        return Err(format!("`{text}` must be a power of two of at least 4K"));
    }
    Ok(bytes as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_powers_of_two_from_4k_to_2g() {
        assert_eq!(parse_size("8M"), Ok(8 << 20));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size(" 64kib "), Ok(64 << 10));
        assert_eq!(parse_size("2G"), Ok(1 << 31));
        for bad in [
            "3K",
            "2K",
            "4G",
            "0",
            "",
            "M",
            "8X",
            "99999999999999999999G",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn stats_interval_is_finite_and_bounded() {
        for bad in [
            "1e300", "nan", "NaN", "inf", "-1", "0", "0.01", "86401", "x", "",
        ] {
            assert!(parse_stats_interval(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_stats_interval("0.1"), Ok(0.1));
        assert_eq!(parse_stats_interval("86400"), Ok(86_400.0));
        assert!(parse_top_interval("61").is_err());
        assert!(parse_top_interval("nan").is_err());
        assert_eq!(parse_top_interval("0.5"), Ok(0.5));
    }

    #[test]
    fn count_is_at_least_one() {
        assert!(parse_count("0").unwrap_err().contains("at least 1"));
        assert!(parse_count("-1").is_err());
        assert_eq!(parse_count("18446744073709551615"), Ok(u64::MAX));
    }

    #[test]
    fn interface_names_are_what_linux_accepts() {
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a:b",
            "a b",
            "a\u{1b}b",
            "sixteen-bytes-xx",
        ] {
            assert!(parse_interface_name(bad).is_err(), "{bad:?}");
        }
        assert!(
            parse_interface_name("a\u{1b}b")
                .unwrap_err()
                .contains("\\x1b")
        );
        assert_eq!(
            parse_interface_name("veth-xs0.100").as_deref(),
            Ok("veth-xs0.100")
        );
        assert!(parse_interface_name("fifteen-bytes-x").is_ok());
    }

    #[test]
    fn value_names_are_what_the_user_types() {
        use crate::{configure::loader::AttachMode, configure::loader::Transport};
        assert_eq!(value_name(Transport::RingBuf), "ringbuf");
        assert_eq!(value_name(AttachMode::Skb), "skb");
    }
}
