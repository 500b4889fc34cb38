//! The finished files of a rotating capture with `-W`, oldest first: where room is made
//! when the disk is full. The capture's [`Sink`](crate::output::Sink) holds the ring and,
//! when a write fails for lack of space, removes the oldest file still there (never the
//! one it writes) and tries again, before the write is given up as a failure.

use std::{
    collections::VecDeque,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

/// Shared between the rotator (which adds each finished file) and the current file's sink
/// (which removes the oldest when the disk is full).
pub type SharedRing = Arc<Mutex<Ring>>;

#[derive(Debug, Default)]
pub struct Ring {
    files: VecDeque<PathBuf>,
}

impl Ring {
    /// A file was finished (closed); it is the newest of the ring.
    pub fn push(&mut self, path: &Path) {
        self.forget(path);
        self.files.push_back(path.to_path_buf());
    }

    /// `path` is opened again (the ring wrapped round to its name): it is the current file
    /// now, not one to remove.
    pub fn forget(&mut self, path: &Path) {
        self.files.retain(|f| f != path);
    }

    /// Removes the oldest finished file still on disk and returns its name; `None` when
    /// none is left. A file a `-z` command moved away is passed over.
    pub fn remove_oldest(&mut self) -> Option<PathBuf> {
        while let Some(oldest) = self.files.pop_front() {
            if std::fs::remove_file(&oldest).is_ok() {
                return Some(oldest);
            }
        }
        None
    }

    /// The finished files, oldest first.
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        self.files.iter().map(PathBuf::as_path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_the_oldest_still_there_and_never_a_reopened_name() {
        let dir = std::env::temp_dir().join(format!("xdpsieve-ring-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let [a, b, c] = ["a", "b", "c"].map(|n| dir.join(n));
        for f in [&a, &b, &c] {
            std::fs::write(f, b"x").unwrap();
        }
        let mut ring = Ring::default();
        ring.push(&a);
        ring.push(&b);
        ring.push(&c);
        // `a` was moved away (a -z command), `b` is written again: `c` is the one to go.
        std::fs::remove_file(&a).unwrap();
        ring.forget(&b);
        assert_eq!(ring.remove_oldest(), Some(c.clone()));
        assert!(b.exists() && !c.exists());
        assert_eq!(ring.remove_oldest(), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
