//! `--save`: a set change written into the set's file as part of the change.
//!
//! The new file is prepared before the change is made ([`prepare`]: read, edited, written
//! to a temporary file of its own beside it and synced) and put in place only when the
//! change succeeded ([`Pending::commit`]: renamed over the file, the directory synced), so
//! a command that succeeds is in the file and one that fails is not; a reader (a reload,
//! a restart) sees the old list or the new one, never half of one. All of it happens with
//! the set's lock held and an exclusive lock on the file's directory, so concurrent
//! `--save`s to one file (from this firewall, or from another one reading the same file)
//! follow each other instead of overwriting each other's lines.

use std::{
    collections::HashSet,
    fs::{self, File, OpenOptions},
    io::Write as _,
    os::{
        fd::AsRawFd as _,
        unix::fs::{OpenOptionsExt as _, PermissionsExt as _},
    },
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};

use super::text::{parse_masking, show};
use crate::{base::text::escape_path, configure::sets::trie::TriePrefix};

/// What a change does to the file.
pub(super) enum Edit<'a> {
    /// Append the prefixes the file does not hold yet.
    Add(&'a [TriePrefix]),
    /// Remove the lines holding these prefixes (other lines, comments included, stay).
    Remove(&'a [TriePrefix]),
}

/// A new version of a set file, written aside; removed unless committed.
pub(super) struct Pending {
    file: PathBuf,
    tmp: PathBuf,
    /// The directory, locked (exclusive) until this is dropped.
    dir: File,
    /// Lines added or removed.
    pub lines: usize,
}

/// The prefix a set-file line holds, if any (comments and blanks hold none).
fn line_prefix(line: &str) -> Option<TriePrefix> {
    let content = match line.find(['#', ';']) {
        Some(at) => &line[..at],
        None => line,
    };
    let content = content.trim();
    if content.is_empty() {
        return None;
    }
    parse_masking(content).ok().map(|(p, _)| p)
}

/// The file's new text and how many lines changed.
fn edited(text: &str, edit: &Edit<'_>) -> (String, usize) {
    match edit {
        Edit::Add(prefixes) => {
            let held: HashSet<TriePrefix> = text.lines().filter_map(line_prefix).collect();
            let mut out = text.to_string();
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            let mut seen = HashSet::new();
            let mut count = 0;
            for p in prefixes.iter() {
                if !held.contains(p) && seen.insert(*p) {
                    out.push_str(&show(p));
                    out.push('\n');
                    count += 1;
                }
            }
            (out, count)
        }
        Edit::Remove(prefixes) => {
            let gone: HashSet<TriePrefix> = prefixes.iter().copied().collect();
            let mut out = String::with_capacity(text.len());
            let mut count = 0;
            for line in text.split_inclusive('\n') {
                if line_prefix(line).is_some_and(|p| gone.contains(&p)) {
                    count += 1;
                } else {
                    out.push_str(line);
                }
            }
            (out, count)
        }
    }
}

fn lock_dir(dir: &Path) -> Result<File> {
    let handle =
        File::open(dir).with_context(|| format!("opening the directory {}", escape_path(dir)))?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(handle.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("locking the directory {}", escape_path(dir)));
    }
    Ok(handle)
}

/// Locks the file's directory and writes the file's new version beside it.
pub(super) fn prepare(file: &Path, edit: &Edit<'_>) -> Result<Pending> {
    let shown = escape_path(file);
    let dir_path = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let dir = lock_dir(&dir_path)?;
    let text = fs::read_to_string(file).with_context(|| format!("reading the set file {shown}"))?;
    let (out, lines) = edited(&text, edit);
    let mode = fs::metadata(file).map_or(0o644, |m| m.permissions().mode() & 0o7777);
    let mut name = std::ffi::OsString::from(".");
    name.push(file.file_name().unwrap_or_default());
    name.push(format!(
        ".xdpsieve-{}-{}.tmp",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    let tmp = dir_path.join(name);
    // Created anew (never through a link someone planted), written and synced.
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .and_then(|mut f| f.write_all(out.as_bytes()).and_then(|()| f.sync_all()))
        .with_context(|| format!("writing the new version of the set file {shown}"))?;
    Ok(Pending {
        file: file.to_path_buf(),
        tmp,
        dir,
        lines,
    })
}

impl Pending {
    /// Puts the new version in place; returns the lines added or removed.
    pub(super) fn commit(self) -> Result<usize> {
        fs::rename(&self.tmp, &self.file)
            .with_context(|| format!("replacing the set file {}", escape_path(&self.file)))?;
        // The rename itself survives a crash once the directory is synced.
        // SAFETY: fsync on a descriptor we own.
        unsafe { libc::fsync(self.dir.as_raw_fd()) };
        Ok(self.lines)
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        // Gone after a commit (renamed); a change that failed leaves the file as it was.
        let _ = fs::remove_file(&self.tmp);
    }
}

#[cfg(test)]
mod tests {
    use xdpsieve_testkit::tempdir::TempDir;

    use super::*;
    use crate::instance::sets::text::parse_exact;

    #[test]
    fn a_save_is_in_the_file_only_once_committed() {
        let dir = TempDir::new("save");
        let file = dir.file("block.netset");
        fs::write(&file, "# list\n198.51.100.0/24 ; kept\n192.0.2.1").unwrap();
        let add = [
            parse_exact("192.0.2.1").unwrap(),
            parse_exact("203.0.113.0/24").unwrap(),
        ];
        // Prepared but dropped (the change failed): the file is as it was, no leftovers.
        drop(prepare(&file, &Edit::Add(&add)).unwrap());
        assert_eq!(
            fs::read_to_string(&file).unwrap(),
            "# list\n198.51.100.0/24 ; kept\n192.0.2.1"
        );
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        let saved = prepare(&file, &Edit::Add(&add)).unwrap().commit().unwrap();
        assert_eq!(saved, 1);
        assert_eq!(
            fs::read_to_string(&file).unwrap(),
            "# list\n198.51.100.0/24 ; kept\n192.0.2.1\n203.0.113.0/24\n"
        );
        let removed = prepare(&file, &Edit::Remove(&add))
            .unwrap()
            .commit()
            .unwrap();
        assert_eq!(removed, 2);
        assert_eq!(
            fs::read_to_string(&file).unwrap(),
            "# list\n198.51.100.0/24 ; kept\n"
        );
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary files left"
        );
    }

    #[test]
    fn concurrent_saves_to_one_file_lose_nothing() {
        let dir = TempDir::new("save-race");
        let file = dir.file("bans.txt");
        fs::write(&file, "").unwrap();
        std::thread::scope(|scope| {
            for t in 0..8u32 {
                let file = &file;
                scope.spawn(move || {
                    for i in 0..20u32 {
                        let p = parse_exact(&format!("198.51.100.{}", t * 20 + i)).unwrap();
                        prepare(file, &Edit::Add(&[p])).unwrap().commit().unwrap();
                    }
                });
            }
        });
        let text = fs::read_to_string(&file).unwrap();
        assert_eq!(text.lines().count(), 160, "{text}");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
