//! Set files: one prefix or bare address per line, as blocklists publish them.
//!
//! Accepted as they are: `#` and `;` comments, whole-line or after the prefix (FireHOL
//! `.netset` headers, Spamhaus DROP's `1.10.16.0/20 ; SBL256894`), blank lines, CRLF line
//! ends, spaces and tabs around the prefix, IPv4 and IPv6 mixed. A prefix with host bits
//! set is masked and reported as a warning (lists have them; refusing the whole list for
//! one would leave the firewall on the old one). Anything else on a line is an error that
//! names the file, the line and what is wrong.
//!
//! The parser makes one pass over the text with no allocation per line beyond the prefix
//! it keeps: a million lines take tens of milliseconds in a release build.

use std::path::Path;

use super::SetPrefix;
use crate::{
    base::text::{escape, escape_path},
    configure::input::{ReadFileError, SET_FILE_CAP, read_regular_file},
};

/// Host-bits warnings listed one by one per file; the rest are counted in one more line.
pub const MAX_WARNINGS_PER_FILE: usize = 10;

/// A set file's prefixes, in file order, and what the operator should hear about it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParsedSet {
    pub prefixes: Vec<SetPrefix>,
    /// Lines accepted with a change (host bits masked), at most
    /// [`MAX_WARNINGS_PER_FILE`] + 1 entries. For the caller to print; nothing here prints.
    pub warnings: Vec<String>,
}

/// Why a set file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SetFileError {
    #[error(transparent)]
    Read(#[from] ReadFileError),
    #[error("{path}:{line}: {message}")]
    Line {
        path: String,
        line: usize,
        message: String,
    },
}

/// Reads and parses a set file: a regular file of at most [`SET_FILE_CAP`] bytes.
pub fn read_set_file(path: &Path) -> Result<ParsedSet, SetFileError> {
    let text = read_regular_file(path, SET_FILE_CAP, "set file")?;
    parse_set_text(&text, &escape_path(path))
}

/// Parses a set file's text; `origin` names it in errors and warnings.
pub fn parse_set_text(text: &str, origin: &str) -> Result<ParsedSet, SetFileError> {
    let mut parsed = ParsedSet::default();
    let mut masked_lines = 0usize;
    for (index, raw) in text.split('\n').enumerate() {
        // Comment bytes are ASCII, so the cut is on a character boundary.
        let content = match raw.bytes().position(|b| b == b'#' || b == b';') {
            Some(at) => &raw[..at],
            None => raw,
        };
        // `trim` also takes the `\r` of a CRLF line end.
        let entry = content.trim();
        if entry.is_empty() {
            continue;
        }
        let (prefix, host_bits) =
            SetPrefix::parse_masking(entry).map_err(|message| SetFileError::Line {
                path: origin.to_string(),
                line: index + 1,
                message: escape(&message).into_owned(),
            })?;
        if host_bits {
            masked_lines += 1;
            if masked_lines <= MAX_WARNINGS_PER_FILE {
                parsed.warnings.push(format!(
                    "{origin}:{}: `{}` has host bits set after the prefix; read as {prefix}",
                    index + 1,
                    escape(entry)
                ));
            }
        }
        parsed.prefixes.push(prefix);
    }
    if masked_lines > MAX_WARNINGS_PER_FILE {
        parsed.warnings.push(format!(
            "{origin}: {} more lines with host bits set, read as their prefixes",
            masked_lines - MAX_WARNINGS_PER_FILE
        ));
    }
    Ok(parsed)
}
