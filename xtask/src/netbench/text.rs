//! Text for the reports and from the tools: numbers with thousands separators, dotted
//! addresses, rates, commands as copy-and-paste shell lines, and numbers read out of a
//! tool's summary.

use std::process::Command;

pub(crate) fn dotted(a: [u8; 4]) -> String {
    format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3])
}

/// The number just before `words` in `text`, e.g. 42 in "42 events logged".
pub(crate) fn number_before(text: &str, words: &str) -> Option<u64> {
    let at = text.find(words)?;
    text[..at].split_whitespace().last()?.parse().ok()
}

/// A command as a shell line, quoting what needs it (for the report: copy and paste).
pub(crate) fn shell_line(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|arg| {
            let arg = arg.to_string_lossy();
            let plain = !arg.is_empty()
                && arg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@+%".contains(c));
            if plain {
                arg.into_owned()
            } else {
                format!("'{}'", arg.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub(crate) fn rate_label(target: Option<u64>) -> String {
    target.map_or("max".to_string(), |r| format!("{} pps", thousands(r)))
}
