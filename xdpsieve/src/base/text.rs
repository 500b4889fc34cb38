//! Escaping of untrusted text for terminals and text files.
//!
//! Rule names, set names, interface names and file paths come from files, the command line
//! and the kernel. Printed raw, a name holding `ESC [ 2 J` clears the operator's terminal, a
//! newline forges a line in the event log, and a right-to-left override makes `exe.txt` read
//! as `txt.exe`. Every text output passes such strings through [`escape`]; JSON output is
//! escaped by serde and does not need it.

use std::{borrow::Cow, fmt::Write as _, path::Path, time::Duration};

/// Whether `c` must not reach a terminal raw: control characters (C0, DEL, C1) and the
/// invisible Unicode formatting characters that reorder or hide text.
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200b}'..='\u{200f}'   // zero-width spaces and marks, LRM/RLM
            | '\u{2028}'..='\u{202e}' // line/paragraph separators, bidi embeddings/overrides
            | '\u{2060}'..='\u{2069}' // word joiner, invisible operators, bidi isolates
            | '\u{feff}'              // zero-width no-break space (BOM)
        )
}

/// `text` with every [unsafe](is_unsafe) character written as an escape: `\n`, `\r`, `\t`,
/// `\x1b` for other ASCII controls, `\u{202e}` beyond ASCII. Borrows when nothing needs it.
/// A backslash is left as it is, so ordinary names and Windows-style text read unchanged.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_unsafe(c) && c.is_ascii() => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if is_unsafe(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A path for a message: lossy UTF-8, [escaped](escape).
pub fn escape_path(path: &Path) -> String {
    escape(&path.to_string_lossy()).into_owned()
}

/// Parses a timeout (`xdpsieve set add --timeout`, a limit rule's `ban`): a number with a unit (`ms`, `s`, `m`, `h`, `d`), or several
/// (`1h30m`); a bare number is seconds. Between 1 ms and 366 days.
pub fn parse_timeout(text: &str) -> Result<Duration, String> {
    let bad = || format!("`{text}` is not a timeout (examples: 90s, 10m, 1h30m, 7d)");
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad());
        }
        let value: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(1),
            "" | "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            "d" => Duration::from_secs(86400),
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        let part = u32::try_from(value)
            .ok()
            .and_then(|v| unit.checked_mul(v))
            .ok_or_else(bad)?;
        total = total.checked_add(part).ok_or_else(bad)?;
    }
    if total.is_zero() || total > Duration::from_secs(366 * 86400) {
        return Err(format!(
            "timeout `{text}` is out of range (1ms to 366d; leave --timeout out for no expiry)"
        ));
    }
    Ok(total)
}

#[cfg(test)]
mod messages;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed() {
        assert!(matches!(escape("block-dns 53/udp ü"), Cow::Borrowed(_)));
        assert_eq!(escape("C:\\rules"), "C:\\rules");
    }

    #[test]
    fn controls_and_invisible_formatting_are_escaped() {
        assert_eq!(escape("a\x1b[31mb\n"), "a\\x1b[31mb\\n");
        assert_eq!(escape("\t\r\0\x7f"), "\\t\\r\\x00\\x7f");
        assert_eq!(escape("\u{85}"), "\\u{85}");
        assert_eq!(escape("exe\u{202e}txt"), "exe\\u{202e}txt");
        assert_eq!(escape("a\u{200b}b\u{feff}"), "a\\u{200b}b\\u{feff}");
        // Padding applies to the escaped text, so columns still line up.
        assert_eq!(format!("{:<6}|", escape("\x01")), "\\x01  |");
    }

    #[test]
    fn escaped_text_has_nothing_unsafe_left() {
        let all: String = (0u32..0x3000).filter_map(char::from_u32).collect();
        assert!(!escape(&all).chars().any(is_unsafe));
    }
}
