//! Reading the files an operator names (rule files, set files) without trusting them.
//!
//! A path may name a device (`/dev/zero` never ends), a FIFO (opening it waits for a writer),
//! a directory, or a file far too large to be what it claims. Each is refused with an error
//! naming what the path is, before more than the cap is read into memory.

use std::{
    fs::OpenOptions,
    io::Read,
    os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _},
    path::Path,
};

use crate::base::text::escape_path;

/// Largest rule file read: far above any real rule set (the program holds at most
/// `MAX_RULES` rules, a few hundred bytes each), far below what hurts memory.
pub const RULE_FILE_CAP: u64 = 4 << 20;

/// Largest set file read: a million `255.255.255.255/32` lines with comments are ~20 MB,
/// lists with long comments run larger; 256 MiB leaves room for 10M prefixes, not more.
pub const SET_FILE_CAP: u64 = 256 << 20;

/// Why a file could not be read. The I/O error is part of the message, not a source of
/// its own: an error chain printed whole (`{:#}`) would say it twice.
#[derive(Debug, thiserror::Error)]
pub enum ReadFileError {
    #[error("cannot open {what} {path}: {cause}")]
    Open {
        what: String,
        path: String,
        cause: std::io::Error,
    },
    #[error("{what} {path} is {kind}, not a regular file; give the path of a file")]
    NotRegular {
        what: String,
        path: String,
        kind: &'static str,
    },
    #[error("{what} {path} is larger than {cap} bytes, the most accepted for a {what}")]
    TooLarge {
        what: String,
        path: String,
        cap: u64,
    },
    #[error("cannot read {what} {path}: {cause}")]
    Read {
        what: String,
        path: String,
        cause: std::io::Error,
    },
    #[error("{what} {path} is not UTF-8 text (byte {offset} is not valid UTF-8)")]
    NotText {
        what: String,
        path: String,
        offset: usize,
    },
}

/// Reads the UTF-8 text of `path`, which must be a regular file of at most `cap` bytes;
/// `what` ("rule file") names it in errors.
///
/// The file is opened non-blocking (so a FIFO does not hang the open) and its type checked
/// on the open descriptor (so it cannot be swapped between check and read); the read stops
/// one byte past the cap whatever the file's size claims, as /proc and growing files lie.
pub fn read_regular_file(path: &Path, cap: u64, what: &str) -> Result<String, ReadFileError> {
    let shown = || escape_path(path);
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|cause| ReadFileError::Open {
            what: what.into(),
            path: shown(),
            cause,
        })?;
    let read_error = |cause| ReadFileError::Read {
        what: what.into(),
        path: shown(),
        cause,
    };
    let file_type = file.metadata().map_err(read_error)?.file_type();
    if !file_type.is_file() {
        return Err(ReadFileError::NotRegular {
            what: what.into(),
            path: shown(),
            kind: describe(file_type),
        });
    }
    let mut bytes = Vec::new();
    Read::take(&file, cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > cap {
        return Err(ReadFileError::TooLarge {
            what: what.into(),
            path: shown(),
            cap,
        });
    }
    String::from_utf8(bytes).map_err(|e| ReadFileError::NotText {
        what: what.into(),
        path: shown(),
        offset: e.utf8_error().valid_up_to(),
    })
}

fn describe(file_type: std::fs::FileType) -> &'static str {
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_fifo() {
        "a FIFO (named pipe)"
    } else if file_type.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

#[cfg(test)]
mod tests {
    use xdpsieve_testkit::tempdir::TempDir;

    use super::*;

    fn error(path: &str, cap: u64) -> String {
        read_regular_file(Path::new(path), cap, "rule file")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn devices_directories_and_fifos_are_refused_by_kind() {
        assert!(error("/dev/zero", 100).contains("is a character device"));
        assert!(error("/", 100).contains("is a directory"));
        let dir = TempDir::new("input");
        let fifo = dir.file("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a NUL-terminated path that outlives the call.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = error(fifo.to_str().unwrap(), 100);
        assert!(e.contains("is a FIFO"), "{e}");
    }

    #[test]
    fn cap_is_exact_and_text_must_be_utf8() {
        let dir = TempDir::new("cap");
        let path = dir.file("r.toml");
        std::fs::write(&path, "0123456789").unwrap();
        assert_eq!(
            read_regular_file(&path, 10, "rule file").unwrap(),
            "0123456789"
        );
        let e = error(path.to_str().unwrap(), 9);
        assert!(e.contains("larger than 9 bytes"), "{e}");
        std::fs::write(&path, b"ok\xff").unwrap();
        let e = error(path.to_str().unwrap(), 9);
        assert!(e.contains("not UTF-8") && e.contains("byte 2"), "{e}");
    }

    #[test]
    fn missing_file_names_the_path_escaped() {
        let e = error("/nonexistent/\x1b[2J.toml", 9);
        assert!(e.contains("/nonexistent/\\x1b[2J.toml"), "{e}");
    }
}
