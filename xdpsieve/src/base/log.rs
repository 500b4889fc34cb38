//! The one way out to standard error: every line xdpsieve prints for the operator (the
//! start-up line, warnings, the status line, the summary, the error it ends with) goes
//! through [`write`] with its [`Priority`].
//!
//! Under systemd, standard error is usually a stream to the journal, which stores each line
//! with the priority its `<N>` prefix gives (sd-daemon(3)), so that `journalctl -p warning`
//! shows the warnings and errors alone. systemd says a stream is the journal's in
//! `JOURNAL_STREAM` (`DEVICE:INODE` of the stream): the prefix is written when standard
//! error is that very file, and never otherwise (a terminal, a file, a pipe, or a child of
//! the service whose standard error was redirected), where it would only be noise.
//!
//! Only standard error: standard output carries the capture (`-w -`) or the event log,
//! whose bytes are data, never prefixed.

use std::{
    fmt,
    io::Write as _,
    os::{fd::AsFd as _, unix::fs::MetadataExt as _},
    sync::OnceLock,
};

/// How much a line matters, as syslog numbers it (what the journal's `<N>` carries).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Priority {
    /// The run, or the command, failed (`xdpsieve: error: ...`).
    Error = 3,
    /// Something the operator should look at: filtering or recording is not as asked.
    Warning = 4,
    /// The start-up line, the status line, the summary and what the run did.
    Info = 6,
}

/// Writes `text` (one line, or several) to standard error, each line prefixed with its
/// priority when standard error is the journal. The lines go out in one write, so lines of
/// other threads do not cut into them.
pub fn write(priority: Priority, text: impl fmt::Display) {
    let out = prefixed(priority, &text.to_string(), to_journal());
    let _ = std::io::stderr().lock().write_all(out.as_bytes());
}

/// [`write`] at [`Priority::Error`].
pub fn error(text: impl fmt::Display) {
    write(Priority::Error, text);
}

/// [`write`] at [`Priority::Warning`].
pub fn warning(text: impl fmt::Display) {
    write(Priority::Warning, text);
}

/// [`write`] at [`Priority::Info`].
pub fn info(text: impl fmt::Display) {
    write(Priority::Info, text);
}

/// Whether standard error is the journal (decided once: a process's standard error does
/// not change under it).
pub fn to_journal() -> bool {
    static JOURNAL: OnceLock<bool> = OnceLock::new();
    *JOURNAL.get_or_init(|| {
        let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
            return false;
        };
        let Ok(meta) = std::io::stderr()
            .as_fd()
            .try_clone_to_owned()
            .map(std::fs::File::from)
            .and_then(|f| f.metadata())
        else {
            return false;
        };
        names_stream(&stream.to_string_lossy(), meta.dev(), meta.ino())
    })
}

/// Whether `JOURNAL_STREAM`'s value `var` (`DEVICE:INODE`, decimal) names the file with
/// device `dev` and inode `ino`.
fn names_stream(var: &str, dev: u64, ino: u64) -> bool {
    let Some((d, i)) = var.split_once(':') else {
        return false;
    };
    d.parse::<u64>() == Ok(dev) && i.parse::<u64>() == Ok(ino)
}

/// `text` as it goes out: each line ended with a newline (one that ends `text` ends its
/// last line, and makes no empty line), prefixed with `<N>` for the journal.
fn prefixed(priority: Priority, text: &str, journal: bool) -> String {
    let body = text.strip_suffix('\n').unwrap_or(text);
    let mut out = String::with_capacity(body.len() + 8);
    for line in body.split('\n') {
        if journal {
            out.push('<');
            out.push(char::from(b'0' + priority as u8));
            out.push('>');
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_line_carries_its_priority_only_for_the_journal() {
        let summary = "xdpsieve: 3 packets seen\n  dropped 2\n";
        assert_eq!(
            prefixed(Priority::Info, summary, true),
            "<6>xdpsieve: 3 packets seen\n<6>  dropped 2\n"
        );
        assert_eq!(prefixed(Priority::Info, summary, false), summary);
        assert_eq!(
            prefixed(Priority::Warning, "xdpsieve: warning: w", true),
            "<4>xdpsieve: warning: w\n"
        );
        assert_eq!(
            prefixed(Priority::Error, "xdpsieve: error: e\n", true),
            "<3>xdpsieve: error: e\n"
        );
        // An empty line inside the text stays a line of its own.
        assert_eq!(
            prefixed(Priority::Info, "a\n\nb", true),
            "<6>a\n<6>\n<6>b\n"
        );
    }

    #[test]
    fn journal_stream_must_name_the_very_file() {
        assert!(names_stream("8:12345", 8, 12345));
        assert!(!names_stream("8:12345", 8, 12346));
        assert!(!names_stream("9:12345", 8, 12345));
        assert!(!names_stream("8-12345", 8, 12345));
        assert!(!names_stream("", 8, 12345));
        assert!(!names_stream("8:12345:1", 8, 12345));
    }
}
