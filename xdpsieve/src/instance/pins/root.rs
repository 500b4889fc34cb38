//! The pin root: the one directory in bpffs under which xdpsieve pins its firewalls, found
//! the same way by every verb.
//!
//! It is `/sys/fs/bpf/xdpsieve` when that is xdpsieve's: a directory (not a symlink) that
//! belongs to root and that neither group nor others may write to. bpffs is world-writable
//! on some systems (mode 1777), so any local user may have made `/sys/fs/bpf/xdpsieve`
//! first: refusing it would let them keep the firewall from starting. Instead a fresh
//! directory `/sys/fs/bpf/xdpsieve-<random>` is made (mkdir is atomic: it is ours or it
//! fails, and a name someone took is skipped), set 0700 and checked.
//!
//! Where the root is, and its identity (device and inode), is recorded in
//! `/run/xdpsieve/pin-root-<bpffs device>`, which only root can write (/run is root's and
//! /run/xdpsieve is 0700): every verb reads it, so `status`, `set`, `reload` and `stop`
//! find the pins wherever they are. One record per bpffs instance, because a private mount
//! namespace (`ip netns exec` remounts /sys) can have a bpffs of its own while /run is
//! shared.
//!
//! Why the host's /sys/fs/bpf rather than a bpffs of xdpsieve's own under a root-only
//! directory: a bpffs mounted from inside a private mount namespace (a sandboxed systemd
//! service, `ip netns exec`) goes away with that namespace, and the pins with it, which
//! would detach the firewall. The host's bpffs is the same instance in every mount
//! namespace that sees it.
//!
//! In a bpffs root that others may write without the sticky bit, another user can rename
//! xdpsieve's directory (not move it elsewhere: moving a directory to another parent needs
//! write permission on the directory itself, which is root's 0700). A recorded root that is
//! no longer at its path is looked for by its identity among bpffs's entries, so `status`
//! and `stop` still find the pins; the root is then used where it is, and the record says so.

use std::{
    fs, io,
    os::unix::fs::{DirBuilderExt as _, MetadataExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize};

use super::{BPFFS, RUN_DIR, secure_dir};

/// The pin root when it is xdpsieve's.
pub const DEFAULT_ROOT: &str = "/sys/fs/bpf/xdpsieve";

/// Where the pin root of one bpffs instance is, and what it is.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Record {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

/// The record of the bpffs mounted at /sys/fs/bpf (by its device number).
fn record_path() -> Option<PathBuf> {
    let dev = fs::metadata(BPFFS).ok()?.dev();
    Some(Path::new(RUN_DIR).join(format!("pin-root-{dev}")))
}

/// Whether `meta` is a directory that could only have been filled by us: not a symlink,
/// ours (our uid, or for root the service's, see [`super::trusted_owner`]), and not
/// writable by group or others.
fn is_ours(meta: &fs::Metadata) -> bool {
    meta.is_dir() && super::trusted_owner(meta.uid()) && meta.mode() & 0o022 == 0
}

/// The recorded root where it is now: at its recorded path, else (renamed) among the
/// entries of bpffs's root, found by its identity.
fn find_recorded(record: &Record) -> Option<PathBuf> {
    let same = |m: &fs::Metadata| is_ours(m) && (m.dev(), m.ino()) == (record.dev, record.ino);
    if fs::symlink_metadata(&record.path).is_ok_and(|m| same(&m)) {
        return Some(record.path.clone());
    }
    fs::read_dir(BPFFS)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| fs::symlink_metadata(p).is_ok_and(|m| same(&m)))
}

fn read_record() -> Option<Record> {
    serde_json::from_slice(&fs::read(record_path()?).ok()?).ok()
}

/// The pin root, as every verb finds it (creates nothing): the recorded one where it is,
/// else the default. The default may not exist, or not be ours: the callers check every
/// directory they read pins from ([`super::check_existing`]).
pub fn root() -> PathBuf {
    read_record()
        .and_then(|r| find_recorded(&r))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT))
}

/// The pin root for a run, made if need be (see the module's doc), checked and recorded.
/// bpffs must be mounted at /sys/fs/bpf.
pub fn prepare() -> Result<PathBuf> {
    secure_dir(Path::new("/run"), Path::new(RUN_DIR))?;
    // One run at a time decides: two that both found no root must not make two.
    let run_dir = fs::File::open(RUN_DIR).with_context(|| format!("opening {RUN_DIR}"))?;
    lock_exclusive(&run_dir).with_context(|| format!("locking {RUN_DIR}"))?;
    let record_file = record_path().context("reading /sys/fs/bpf")?;
    if let Some(record) = read_record()
        && let Some(found) = find_recorded(&record)
    {
        if found != record.path {
            crate::base::log::warning(format_args!(
                "xdpsieve: warning: xdpsieve's pin directory {} was renamed to {} (others may \
                 write to {BPFFS} without the sticky bit: mount bpffs with mode 1777 or 0700); \
                 using it where it is",
                record.path.display(),
                found.display()
            ));
            write_record(&record_file, &found)?;
        }
        return Ok(found);
    }
    let default = Path::new(DEFAULT_ROOT);
    let root = match make_dir(default)? {
        true => default.to_path_buf(),
        false => match fs::symlink_metadata(default) {
            Ok(meta) if is_ours(&meta) => default.to_path_buf(),
            found => {
                let what = match found {
                    Ok(meta) if !meta.is_dir() => "it is not a directory".to_string(),
                    Ok(meta) if meta.uid() != 0 => format!("it belongs to uid {}", meta.uid()),
                    Ok(meta) => format!(
                        "group or others may write to it (mode {:o})",
                        meta.mode() & 0o7777
                    ),
                    Err(e) => e.to_string(),
                };
                let fresh = make_fresh()?;
                crate::base::log::warning(format_args!(
                    "xdpsieve: warning: {DEFAULT_ROOT} is not xdpsieve's ({what}): someone else \
                     made it, and pins there could be tampered with. Pinning in {} instead \
                     (recorded in {}, where `status`, `set`, `reload` and `stop` find it)",
                    fresh.display(),
                    record_file.display()
                ));
                fresh
            }
        },
    };
    write_record(&record_file, &root)?;
    Ok(root)
}

/// Makes `dir` with mode 0700; false when something is there already.
fn make_dir(dir: &Path) -> Result<bool> {
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {
            // The umask may have taken bits away, never added any; set it exactly.
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .with_context(|| format!("setting the mode of {}", dir.display()))?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e).with_context(|| format!("creating {}", dir.display())),
    }
}

/// A new `/sys/fs/bpf/xdpsieve-<random>`, ours: made by this mkdir (names someone took are
/// skipped), then checked.
fn make_fresh() -> Result<PathBuf> {
    for _ in 0..16 {
        let dir = Path::new(BPFFS).join(format!("xdpsieve-{:016x}", random()?));
        if !make_dir(&dir)? {
            continue;
        }
        let meta =
            fs::symlink_metadata(&dir).with_context(|| format!("reading {}", dir.display()))?;
        if !is_ours(&meta) {
            bail!(
                "{} is not as it was made (mode {:o}, uid {}); refusing to pin there",
                dir.display(),
                meta.mode() & 0o7777,
                meta.uid()
            );
        }
        return Ok(dir);
    }
    bail!("could not make a directory of xdpsieve's own in {BPFFS}: every name tried was taken")
}

/// 64 random bits from the kernel.
fn random() -> Result<u64> {
    let mut bytes = [0u8; 8];
    // SAFETY: getrandom writes at most `bytes.len()` bytes into the buffer we pass.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if n != bytes.len() as isize {
        return Err(io::Error::last_os_error()).context("reading random bytes");
    }
    Ok(u64::from_ne_bytes(bytes))
}

/// Records `root` (its path and identity) in `file`, whole (a temporary file and a rename).
fn write_record(file: &Path, root: &Path) -> Result<()> {
    let meta = fs::symlink_metadata(root).with_context(|| format!("reading {}", root.display()))?;
    let record = Record {
        path: root.to_path_buf(),
        dev: meta.dev(),
        ino: meta.ino(),
    };
    if read_record().as_ref() == Some(&record) {
        return Ok(());
    }
    let tmp = file.with_extension("tmp");
    fs::write(&tmp, serde_json::to_vec(&record)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, file).with_context(|| format!("writing {}", file.display()))
}

/// flock(LOCK_EX) on `file`, waiting.
pub(super) fn lock_exclusive(file: &fs::File) -> io::Result<()> {
    use std::os::fd::AsRawFd as _;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
