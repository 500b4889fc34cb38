//! A scratch directory, removed on drop so that a test that fails still leaves nothing
//! behind; optionally a small tmpfs mounted on it (unmounted on drop), for a test that
//! fills the disk.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

/// A scratch directory under the system's temporary directory, removed on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
    /// A tmpfs is mounted on it.
    mounted: bool,
}

impl TempDir {
    /// `xdpsieve-test-PID-TAG`: the process ID keeps parallel runs of a test binary apart,
    /// the tag the tests within one.
    pub fn new(tag: &str) -> TempDir {
        TempDir::named(&format!("xdpsieve-test-{}-{tag}", std::process::id()))
    }

    /// `name` under the temporary directory, emptied first (a run killed earlier may have
    /// left it).
    pub fn named(name: &str) -> TempDir {
        TempDir::under(&std::env::temp_dir(), name)
    }

    /// `base/name`, emptied first.
    pub fn under(base: &Path, name: &str) -> TempDir {
        let path = base.join(name);
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("creating the scratch directory {}: {e}", path.display()));
        TempDir {
            path,
            mounted: false,
        }
    }

    /// As [`TempDir::new`], with a tmpfs of `size` (e.g. "3m") mounted on it: writes fill
    /// it. Needs root.
    pub fn tmpfs(tag: &str, size: &str) -> TempDir {
        let mut dir = TempDir::new(tag);
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "xdpsieve-test",
            ])
            .arg(&dir.path)
            .status()
            .expect("running mount");
        assert!(status.success(), "mounting a tmpfs on {:?}", dir.path);
        dir.mounted = true;
        dir
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// The regular files in it, sorted by name.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = fs::read_dir(&self.path)
            .expect("listing the scratch directory")
            .map(|e| e.expect("a directory entry").path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        files
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg(&self.path).status();
        }
        let _ = fs::remove_dir_all(&self.path);
    }
}
