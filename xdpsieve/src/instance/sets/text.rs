//! What the operator types for `xdpsieve set`: prefixes, `--timeout`, `--from-file`.
//!
//! A prefix typed on the command line must be exact: host bits set after the prefix are an
//! error (a typo would otherwise block a different network than meant). A `--from-file`
//! list is read as a set file is (`sets::read_set_file`: one prefix or address per line,
//! `#` and `;` comments) and, like set files, accepts host bits with a warning.

use std::path::Path;

use anyhow::Result;

use crate::configure::sets::{SetPrefix, read_set_file, trie::TriePrefix};

/// A prefix as the operator reads it: `198.51.100.0/24`, `2001:db8::/32`.
pub fn show(p: &TriePrefix) -> String {
    format!("{}/{}", p.addr(), p.len)
}

fn trie_prefix(p: SetPrefix) -> TriePrefix {
    TriePrefix::new(p.addr, p.prefix_len)
}

/// Parses `ADDR` or `ADDR/LEN`; the flag says whether host bits were set (and masked).
pub fn parse_masking(text: &str) -> Result<(TriePrefix, bool), String> {
    SetPrefix::parse_masking(text).map(|(p, host_bits)| (trie_prefix(p), host_bits))
}

/// Parses a prefix typed on the command line: host bits must be clear.
pub fn parse_exact(text: &str) -> Result<TriePrefix, String> {
    text.parse::<SetPrefix>().map(trie_prefix)
}

/// Reads a `--from-file` list: the set-file format and reader (`sets::read_set_file`).
/// Returns the prefixes in order and the warnings to show (host bits masked).
pub fn read_list(path: &Path) -> Result<(Vec<TriePrefix>, Vec<String>)> {
    let parsed = read_set_file(path)?;
    Ok((
        parsed.prefixes.into_iter().map(trie_prefix).collect(),
        parsed.warnings,
    ))
}

pub use crate::base::text::parse_timeout;

/// A time left, as `9m58s`, `1h0m`, `2.4s`.
pub fn show_left(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    if secs < 10 {
        return format!("{:.1}s", ns as f64 / 1e9);
    }
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m{s:02}s"),
        (0, _, _) => format!("{h}h{m:02}m"),
        _ => format!("{d}d{h:02}h"),
    }
}

#[cfg(test)]
mod tests {
    use std::{fs, time::Duration};

    use super::*;

    #[test]
    fn prefixes_parse_strictly_on_the_command_line_and_masked_in_files() {
        assert_eq!(
            show(&parse_exact("198.51.100.7").unwrap()),
            "198.51.100.7/32"
        );
        assert_eq!(
            show(&parse_exact("2001:db8::/32").unwrap()),
            "2001:db8::/32"
        );
        let err = parse_exact("198.51.100.7/24").unwrap_err();
        assert!(err.contains("did you mean `198.51.100.0/24`"), "{err}");
        assert!(parse_exact("198.51.100.0/33").is_err());
        assert!(parse_exact("example.com").is_err());
        let dir = xdpsieve_testkit::tempdir::TempDir::new("list");
        let file = dir.file("bans.txt");
        fs::write(
            &file,
            "# header\n198.51.100.0/24 ; SBL1\n\n  2001:db8::1  \r\n203.0.113.9/24\n",
        )
        .unwrap();
        let (list, warnings) = read_list(&file).unwrap();
        let shown: Vec<String> = list.iter().map(show).collect();
        assert_eq!(
            shown,
            ["198.51.100.0/24", "2001:db8::1/128", "203.0.113.0/24"]
        );
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        fs::write(&file, "192.0.2.1\nnonsense\n").unwrap();
        let err = format!("{:#}", read_list(&file).unwrap_err());
        assert!(err.contains(":2: "), "{err}");
    }

    #[test]
    fn timeouts_take_units_and_sums() {
        assert_eq!(parse_timeout("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_timeout("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_timeout("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_timeout("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_timeout("7d"), Ok(Duration::from_secs(7 * 86400)));
        for bad in ["", "0", "m", "10x", "-1s", "400d", "1.5s", "99999999999s"] {
            assert!(parse_timeout(bad).is_err(), "{bad}");
        }
        assert_eq!(show_left(2_400_000_000), "2.4s");
        assert_eq!(show_left(598_000_000_000), "9m58s");
        assert_eq!(show_left(3_600_000_000_000), "1h00m");
        assert_eq!(show_left(90_000_000_000_000), "1d01h");
    }
}
