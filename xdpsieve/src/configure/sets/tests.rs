//! Set-file parsing: the published formats as they are (fixtures), every kind of bad line
//! with its file and line number, host bits masked with a warning, names.

use std::net::IpAddr;

use super::*;

const SPAMHAUS_DROP: &str = include_str!("../../../tests/fixtures/sets/spamhaus-drop.txt");
const FIREHOL_NETSET: &str = include_str!("../../../tests/fixtures/sets/firehol_level1.netset");

fn prefix(text: &str) -> SetPrefix {
    text.parse().expect(text)
}

fn parse(text: &str) -> ParsedSet {
    parse_set_text(text, "test.netset").expect("set file")
}

fn line_error(text: &str) -> String {
    parse_set_text(text, "bad.netset")
        .expect_err("an error")
        .to_string()
}

#[test]
fn spamhaus_drop_loads_as_published() {
    let set = parse(SPAMHAUS_DROP);
    assert_eq!(set.warnings, Vec::<String>::new());
    let shown: Vec<String> = set.prefixes.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "1.10.16.0/20",
            "1.19.0.0/16",
            "2.56.192.0/22",
            "198.51.100.0/24",
            "203.0.113.128/25"
        ]
    );
}

#[test]
fn firehol_netset_loads_as_published() {
    let set = parse(FIREHOL_NETSET);
    assert_eq!(set.warnings, Vec::<String>::new());
    assert_eq!(set.prefixes.len(), 9);
    assert_eq!(set.prefixes[0], prefix("0.0.0.0/8"));
    assert_eq!(set.prefixes[3], prefix("192.0.2.7/32"));
    // Overlaps (a /32 inside a /24 before and after it) are kept as given.
    assert_eq!(set.prefixes[2], prefix("192.0.2.0/24"));
    assert_eq!(set.prefixes[8], prefix("224.0.0.0/3"));
}

#[test]
fn comments_blank_lines_crlf_and_spaces() {
    let text = "# header\r\n\r\n  198.51.100.0/24  \r\n\t203.0.113.9\t# trailing\n;semi\n\
                2001:db8::/32;trailing\n   \n# 192.0.2.0/24 commented out\n2001:db8::1";
    let set = parse(text);
    assert_eq!(
        set.prefixes,
        [
            prefix("198.51.100.0/24"),
            prefix("203.0.113.9/32"),
            prefix("2001:db8::/32"),
            prefix("2001:db8::1/128"),
        ]
    );
}

#[test]
fn families_mixed_duplicates_and_overlaps_are_kept() {
    let text = "198.51.100.0/24\n2001:db8::/32\n198.51.100.0/24\n198.51.100.128/25\n\
                2001:db8:1::/48\n0.0.0.0/0\n::/0\n";
    let set = parse(text);
    assert_eq!(set.prefixes.len(), 7);
    assert_eq!(set.prefixes[0], set.prefixes[2]);
    let spec = SetSpec {
        name: "mixed".into(),
        prefixes: set.prefixes,
        source: SetSource::Inline,
    };
    assert_eq!(spec.family_counts(), (4, 3));
    assert!(spec.contains("192.0.2.1".parse().unwrap()));
    assert!(spec.contains("fe80::1".parse().unwrap()));
}

#[test]
fn empty_and_comment_only_files_are_empty_sets() {
    assert_eq!(parse(""), ParsedSet::default());
    assert_eq!(
        parse("# nothing yet\n\n; still nothing\r\n"),
        ParsedSet::default()
    );
}

#[test]
fn host_bits_are_masked_with_a_warning_naming_the_line() {
    let set = parse("# list\n198.51.100.77/24\n2001:db8::1/32\n192.0.2.0/24\n");
    assert_eq!(
        set.prefixes,
        [
            prefix("198.51.100.0/24"),
            prefix("2001:db8::/32"),
            prefix("192.0.2.0/24")
        ]
    );
    assert_eq!(set.warnings.len(), 2);
    assert!(
        set.warnings[0].starts_with("test.netset:2: `198.51.100.77/24` has host bits set")
            && set.warnings[0].ends_with("read as 198.51.100.0/24"),
        "{}",
        set.warnings[0]
    );
    assert!(set.warnings[1].starts_with("test.netset:3:"));
}

#[test]
fn host_bit_warnings_are_capped_and_the_rest_counted() {
    let text: String = (0..25)
        .map(|i| format!("198.51.100.{}/24\n", i + 1))
        .collect();
    let set = parse(&text);
    assert_eq!(set.prefixes.len(), 25);
    assert_eq!(set.warnings.len(), MAX_WARNINGS_PER_FILE + 1);
    assert!(
        set.warnings[MAX_WARNINGS_PER_FILE].contains("15 more lines with host bits set"),
        "{:?}",
        set.warnings
    );
}

#[test]
fn bad_lines_name_file_line_and_problem() {
    let cases = [
        (
            "198.51.100.0/24\n1.2.3\n",
            2,
            "`1.2.3` is not an IPv4 or IPv6 address",
        ),
        (
            "\r\n\r\n198.51.100.0/33\r\n",
            3,
            "`/33` is out of range for IPv4 (0 to 32)",
        ),
        (
            "2001:db8::/129",
            1,
            "`/129` is out of range for IPv6 (0 to 128)",
        ),
        ("198.51.100.0/", 1, "prefix length `/` is out of range"),
        ("198.51.100.0/-1", 1, "prefix length `/-1`"),
        ("198.51.100.0/+8", 1, "prefix length `/+8`"),
        (
            "# c\n198.51.100.0/24 203.0.113.0/24\n",
            2,
            "expected one prefix or address",
        ),
        (
            "example.com\n",
            1,
            "`example.com` is not an IPv4 or IPv6 address",
        ),
        ("2001:db8:::1\n", 1, "`2001:db8:::1` is not"),
        (
            "198.51.100.0-198.51.100.255\n",
            1,
            "is not an IPv4 or IPv6 address",
        ),
        ("01.2.3.4\n", 1, "`01.2.3.4` is not"),
    ];
    for (text, line, what) in cases {
        let e = line_error(text);
        assert!(
            e.starts_with(&format!("bad.netset:{line}: ")) && e.contains(what),
            "{text:?}: {e}"
        );
    }
}

#[test]
fn control_characters_in_a_bad_line_are_escaped() {
    let e = line_error("198.51.100.\x1b[2J0/24\n");
    assert!(e.contains("\\x1b[2J") && !e.contains('\x1b'), "{e}");
}

#[test]
fn set_files_are_read_through_the_regular_file_check() {
    let e = read_set_file(std::path::Path::new("/dev/zero"))
        .expect_err("a device")
        .to_string();
    assert!(
        e.contains("set file /dev/zero is a character device"),
        "{e}"
    );
    let e = read_set_file(std::path::Path::new("/nonexistent/drop.netset"))
        .expect_err("missing")
        .to_string();
    assert!(e.contains("/nonexistent/drop.netset"), "{e}");
}

#[test]
fn prefixes_parse_strictly_or_masking() {
    assert_eq!(
        SetPrefix::parse_masking("198.51.100.5/24"),
        Ok((prefix("198.51.100.0/24"), true))
    );
    assert_eq!(
        SetPrefix::parse_masking("203.0.113.0/24"),
        Ok((prefix("203.0.113.0/24"), false))
    );
    let e = "198.51.100.5/24".parse::<SetPrefix>().unwrap_err();
    assert!(e.contains("did you mean `198.51.100.0/24`"), "{e}");
    let any: SetPrefix = "::/0".parse().unwrap();
    assert!(any.contains("2001:db8::1".parse().unwrap()));
    assert!(!any.contains("192.0.2.1".parse().unwrap()));
    let p = prefix("198.51.100.0/24");
    let addr = |s: &str| s.parse::<IpAddr>().unwrap();
    assert!(p.contains(addr("198.51.100.0")) && p.contains(addr("198.51.100.255")));
    assert!(!p.contains(addr("198.51.101.0")) && !p.contains(addr("198.51.99.255")));
}

#[test]
fn ipv4_mapped_ipv6_is_read_as_ipv4_and_ipv4_compatible_is_refused() {
    assert_eq!(
        "::ffff:192.0.2.53".parse::<SetPrefix>(),
        Ok(prefix("192.0.2.53/32"))
    );
    assert_eq!(
        "::ffff:192.0.2.0/120".parse::<SetPrefix>(),
        Ok(prefix("192.0.2.0/24"))
    );
    assert_eq!(
        "::ffff:0:0/96".parse::<SetPrefix>(),
        Ok(prefix("0.0.0.0/0"))
    );
    assert_eq!(
        SetPrefix::parse_masking("::ffff:192.0.2.53/120"),
        Ok((prefix("192.0.2.0/24"), true))
    );
    let e = "::ffff:192.0.2.53/120".parse::<SetPrefix>().unwrap_err();
    assert!(e.contains("did you mean `192.0.2.0/24`"), "{e}");
    for compatible in ["::192.0.2.53", "::192.0.2.0/120", "::/96"] {
        let e = compatible.parse::<SetPrefix>().unwrap_err();
        assert!(e.contains("IPv4-compatible"), "{compatible}: {e}");
        assert!(e.contains("write the IPv4 address"), "{compatible}: {e}");
    }
    // Ordinary IPv6, mapped or not by their length.
    for v6 in [
        "::1",
        "::",
        "::/0",
        "::fffe:0:0/95",
        "2001:db8::/32",
        "64:ff9b::192.0.2.1",
    ] {
        let p: SetPrefix = v6.parse().unwrap();
        assert!(p.addr.is_ipv6(), "{v6}");
    }
    // The same in a set file.
    let parsed = parse("::ffff:198.51.100.7\n");
    assert_eq!(parsed.prefixes, vec![prefix("198.51.100.7/32")]);
    assert!(line_error("::198.51.100.7\n").contains("IPv4-compatible"));
}

#[test]
fn set_names() {
    for good in ["blocklist", "a", "drop_v4.2026-11", &"x".repeat(64)] {
        assert_eq!(check_set_name(good), Ok(()), "{good}");
    }
    let bad = |name: &str| check_set_name(name).unwrap_err();
    assert!(bad("").contains("empty"));
    assert!(bad(&"x".repeat(65)).contains("longer than 64"));
    assert!(bad("my set").contains("contains ` `"));
    assert!(bad("@set").contains("contains `@`"));
    assert!(bad("bl\u{202e}ock").contains("\\u{202e}"));
}

/// The byte-by-byte IPv4 reader accepts exactly what the standard parser accepts (with a
/// prefix length of 0 to 32 written without a leading zero), and reads the same value:
/// on random strings over the characters that matter and on the edges.
#[test]
fn fast_ipv4_path_agrees_with_the_standard_parser() {
    fn reference(text: &str) -> Option<(u32, u8)> {
        let (addr, len) = match text.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (text, None),
        };
        let addr: Ipv4Addr = addr.parse().ok()?;
        let len = match len {
            None => 32,
            Some(l) if l.len() > 1 && l.starts_with('0') => return None,
            Some(l) if !l.bytes().all(|b| b.is_ascii_digit()) => return None,
            Some(l) => l.parse::<u8>().ok().filter(|&n| n <= 32)?,
        };
        Some((u32::from(addr), len))
    }
    let edges = [
        "0.0.0.0",
        "255.255.255.255/32",
        "256.0.0.0",
        "1.2.3.4/0",
        "1.2.3.4/33",
        "1.2.3.4/",
        "1.2.3",
        "1.2.3.4.5",
        "01.2.3.4",
        "1.2.3.04",
        "1.2.3.0/08",
        "1.2.3.4/100",
        "1..3.4",
        ".1.2.3",
        "1.2.3.4 ",
        "1.2.3.4/3a",
        "1000.2.3.4",
        "1.2.3.4/+8",
        "+1.2.3.4",
        "",
    ];
    for text in edges {
        assert_eq!(fast_v4(text.as_bytes()), reference(text), "{text:?}");
    }
    let alphabet = b"0123456789..//";
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..200_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (x % 19) as usize;
        let text: String = (0..len)
            .map(|i| char::from(alphabet[((x >> (3 * i)) % alphabet.len() as u64) as usize]))
            .collect();
        // Bias towards well-formed ones too: four numbers and a length.
        let shaped = format!(
            "{}.{}.{}.{}/{}",
            x % 300,
            (x >> 9) % 260,
            (x >> 18) % 256,
            (x >> 27) % 1000,
            (x >> 37) % 40
        );
        for t in [text.as_str(), shaped.as_str()] {
            assert_eq!(fast_v4(t.as_bytes()), reference(t), "{t:?}");
        }
    }
}
