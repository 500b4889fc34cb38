//! The finished files of a rotating capture with `-W`, oldest first: where room is made
//! when the disk is full. The capture's [`Sink`](crate::write::output::Sink) holds the ring
//! (as its [`Room`]) and, when a write fails for lack of space, removes the oldest file
//! still there (never the one it writes) and tries again, before the write is given up as
//! a failure.
//!
//! The ring knows how many packets each of its files holds, so the captured packets that
//! are no longer on disk are counted, by reason: in a file the ring overwrote when it came
//! round to its name again (`-C` with `-W`), or in one removed to make room.

use std::{
    collections::VecDeque,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use crate::write::output::Room;

/// Shared between the rotator (which adds each finished file) and the current file's sink
/// (which removes the oldest when the disk is full).
pub type SharedRing = Arc<Mutex<Ring>>;

impl Room for SharedRing {
    fn remove_oldest(&mut self) -> Option<PathBuf> {
        self.lock().ok()?.remove_oldest()
    }
}

#[derive(Debug, Default)]
pub struct Ring {
    /// Each finished file, with the packets it holds.
    files: VecDeque<(PathBuf, u64)>,
    overwritten: u64,
    removed: u64,
}

impl Ring {
    /// A file holding `packets` was finished (closed); it is the newest of the ring.
    pub fn push(&mut self, path: &Path, packets: u64) {
        self.forget(path);
        self.files.push_back((path.to_path_buf(), packets));
    }

    /// `path` is opened again (the ring wrapped round to its name): it is the current file
    /// now, not one to remove. Returns the packets of the finished file of that name, if
    /// there was one.
    pub fn forget(&mut self, path: &Path) -> Option<u64> {
        let at = self.files.iter().position(|(f, _)| f == path)?;
        self.files.remove(at).map(|(_, packets)| packets)
    }

    /// `path` is about to be created again, truncating it: the packets of the finished file
    /// of that name are overwritten, if it is still there (a `-z` command may have moved
    /// it away).
    pub fn reopen(&mut self, path: &Path) {
        if let Some(packets) = self.forget(path)
            && path.exists()
        {
            self.overwritten += packets;
        }
    }

    /// Removes the oldest finished file still on disk and returns its name; `None` when
    /// none is left. A file a `-z` command moved away is passed over.
    pub fn remove_oldest(&mut self) -> Option<PathBuf> {
        while let Some((oldest, packets)) = self.files.pop_front() {
            if std::fs::remove_file(&oldest).is_ok() {
                self.removed += packets;
                return Some(oldest);
            }
        }
        None
    }

    /// The finished files, oldest first.
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        self.files.iter().map(|(f, _)| f.as_path())
    }

    /// Captured packets no longer on disk: (in files the ring overwrote, in files removed
    /// to make room).
    pub fn packets_gone(&self) -> (u64, u64) {
        (self.overwritten, self.removed)
    }
}

#[cfg(test)]
mod tests {
    use xdpsieve_testkit::tempdir::TempDir;

    use super::*;

    #[test]
    fn removes_the_oldest_still_there_and_never_a_reopened_name() {
        let dir = TempDir::new("ring");
        let [a, b, c] = ["a", "b", "c"].map(|n| dir.file(n));
        for f in [&a, &b, &c] {
            std::fs::write(f, b"x").unwrap();
        }
        let mut ring = Ring::default();
        ring.push(&a, 1);
        ring.push(&b, 2);
        ring.push(&c, 4);
        // `a` was moved away (a -z command), `b` is written again: `c` is the one to go.
        std::fs::remove_file(&a).unwrap();
        ring.reopen(&b);
        assert_eq!(ring.remove_oldest(), Some(c.clone()));
        assert!(b.exists() && !c.exists());
        assert_eq!(ring.remove_oldest(), None);
        // `b`'s 2 packets were overwritten, `c`'s 4 removed; `a`'s were moved, not lost.
        assert_eq!(ring.packets_gone(), (2, 4));
        // A name reopened that the ring no longer holds, or whose file a command moved
        // away, loses nothing.
        ring.reopen(&c);
        ring.push(&a, 8);
        ring.reopen(&a);
        assert_eq!(ring.packets_gone(), (2, 4));
    }
}
