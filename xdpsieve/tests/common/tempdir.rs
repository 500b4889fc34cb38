//! A scratch directory under the system's temporary directory, removed on drop, so a test
//! that fails still leaves nothing behind.

use std::path::PathBuf;

/// A scratch directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// `xdpsieve-e2e-PID-TAG`: the process ID keeps parallel runs of a binary apart, the
    /// tag the tests within one.
    pub fn new(tag: &str) -> TempDir {
        TempDir::named(&format!("xdpsieve-e2e-{}-{tag}", std::process::id()))
    }

    /// `name` under the temporary directory, emptied first (a run killed earlier may have
    /// left it).
    pub fn named(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating temp dir");
        TempDir(dir)
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
