//! Where a firewall lives when no process holds it: its pins in bpffs and its description in
//! /run, per network namespace and interface.
//!
//! The firewall is fail-static: once attached, it stays in force until the operator removes
//! it, whatever happens to the process that records for it. Per interface, the pin
//! directory `<root>/netns-<dev>-<inode>/<iface>/` holds
//!
//! - `link`: the XDP bpf_link. While this pin exists the kernel keeps the program attached,
//!   after a panic, an abort, an OOM kill or SIGKILL of the recorder alike. Removing it is
//!   what detaches the program (on an explicit stop only).
//! - `prog`: the program, for bpftool and for whoever takes the firewall over.
//! - the counter maps `status` and a takeover read
//!   ([`crate::configure::loader::PINNED_MAPS`]), and the set maps `xdpsieve set` changes
//!   ([`crate::configure::loader::SET_PINS`]).
//!
//! and `/run/xdpsieve/netns-<dev>-<inode>/<iface>.json` describes the instance ([`Meta`],
//! see [`crate::instance::description`]). Beside it, `<iface>.lock` makes one process at a
//! time the interface's owner ([`owner`]).
//!
//! The root is `/sys/fs/bpf/xdpsieve`, or a directory of xdpsieve's own when someone else
//! made that one first ([`root`]). bpffs is shared by all network namespaces and interface
//! names are not, hence the `netns-<dev>-<inode>` level: the device and inode of the
//! namespace itself (nsfs), for every namespace including the host's, whichever way it was
//! reached (a /run/netns name, a bind mount elsewhere, a process's /proc entry). What
//! namespaces that are gone left behind is swept away when the kernel says so ([`sweep`]).
//!
//! bpffs is world-writable on some systems: a pin planted by another user would be taken
//! for ours. Directories are created 0700 by root, and a directory below the root that
//! belongs to someone else or that group or others may write to is refused ([`check_dir`]).

pub mod owner;
pub mod root;
mod sweep;

use std::{
    fs, io,
    os::unix::fs::{DirBuilderExt as _, MetadataExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, bail};

use crate::{
    base::snapshot::{self, Snapshot},
    configure::loader::LoaderError,
    instance::description::{self, Meta},
};

pub const BPFFS: &str = "/sys/fs/bpf";
pub const RUN_DIR: &str = "/run/xdpsieve";
/// The pinned bpf_link: while it exists the program stays attached.
pub const LINK_PIN: &str = "link";
/// The pinned program.
pub const PROG_PIN: &str = "prog";

/// `netns-<dev>-<inode>`: this thread's network namespace by its own identity (the nsfs
/// device and inode of the namespace), the host's included. `netns-unknown` when /proc
/// cannot tell (a run refuses to start then: see [`claim`]).
pub fn namespace_key() -> PathBuf {
    match fs::metadata("/proc/thread-self/ns/net") {
        Ok(meta) => PathBuf::from(format!("netns-{}-{}", meta.dev(), meta.ino())),
        Err(_) => PathBuf::from(UNKNOWN_NAMESPACE),
    }
}

const UNKNOWN_NAMESPACE: &str = "netns-unknown";

/// The directory of `iface`'s pins.
pub fn pin_dir(iface: &str) -> PathBuf {
    root::root().join(namespace_key()).join(iface)
}

/// The directory of this namespace's descriptions.
pub fn meta_dir() -> PathBuf {
    Path::new(RUN_DIR).join(namespace_key())
}

/// The description of the instance on `iface`.
pub fn meta_path(iface: &str) -> PathBuf {
    meta_dir().join(format!("{iface}.json"))
}

/// The watcher's health file for `iface`, next to its description (see `watch::health`).
/// Not `.json`, so `read_status` does not take it for an instance.
pub fn health_path(iface: &str) -> PathBuf {
    meta_path(iface).with_extension("health")
}

/// The lock that makes one process at a time `iface`'s owner ([`owner`]).
pub fn lock_path(iface: &str) -> PathBuf {
    meta_path(iface).with_extension("lock")
}

/// The lock file of the set generation whose `SET_META` has id `meta_id` (see
/// `instance::sets`). Map ids are global (not per network namespace), so the file lives in
/// the top run directory.
pub fn set_lock_path(meta_id: u32) -> PathBuf {
    Path::new(RUN_DIR).join(format!("sets-{meta_id}.lock"))
}

/// Takes `iface`'s lock for `verb` without waiting (see [`owner`]), making this namespace's
/// directory in /run if need be: `Ok(Err(busy))` says who holds it.
pub fn try_owner(
    iface: &str,
    verb: owner::Verb,
) -> Result<std::result::Result<owner::Owner, owner::Busy>> {
    // A namespace's directory goes once empty: made again if it went meanwhile.
    for _ in 0..5 {
        secure_dir(Path::new("/run"), &meta_dir())?;
        match owner::Owner::try_take_at(&lock_path(iface), iface, verb) {
            Err(e) if not_found(&e) => continue,
            other => return other,
        }
    }
    bail!(
        "cannot lock {}: its directory keeps disappearing",
        lock_path(iface).display()
    )
}

/// Takes `iface`'s lock for `verb`, waiting up to `wait` for a holder that lets go by itself
/// (a stop, a reload, a sweep), never for a run; fails saying who holds it.
pub fn take_owner(
    iface: &str,
    verb: owner::Verb,
    wait: std::time::Duration,
) -> Result<owner::Owner> {
    owner::wait_for(|| try_owner(iface, verb), wait)
}

/// Whether `error` comes from a path that does not exist.
fn not_found(error: &anyhow::Error) -> bool {
    error.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::NotFound)
    })
}

/// `error`, naming the xdpsieve instance that describes itself as on the interface when an
/// attach was refused because a program is attached there already (the loader cannot
/// tell whose it is).
pub fn name_the_owner(error: LoaderError) -> LoaderError {
    match error {
        LoaderError::AlreadyAttached(interface, _) => {
            let owner = match description::read(&meta_path(&interface)) {
                Some(meta) if meta.is_live() => format!(" by xdpsieve (pid {})", meta.pid),
                Some(meta) => format!(" (left by xdpsieve pid {}, which is gone)", meta.pid),
                None => String::new(),
            };
            LoaderError::AlreadyAttached(interface, owner)
        }
        other => other,
    }
}

/// Whether a directory of `uid` can only have been filled by someone this process trusts:
/// itself; and, for root, the owner of /run/xdpsieve. /run is root's, so only root (or
/// systemd for root, through the unit's `RuntimeDirectory=`) can have made /run/xdpsieve
/// and chosen its owner: the service's user, whose pins `sudo xdpsieve status`, `set`,
/// `reload` and `stop` then act on. Any other user's directory stays refused.
pub fn trusted_owner(uid: u32) -> bool {
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    uid == me || (me == 0 && run_dir_owner() == Some(uid))
}

/// The owner of /run/xdpsieve, when /run is root's and neither can be written by others.
fn run_dir_owner() -> Option<u32> {
    let sound = |m: &fs::Metadata| m.is_dir() && m.mode() & 0o022 == 0;
    let run = fs::symlink_metadata("/run").ok()?;
    if !sound(&run) || run.uid() != 0 {
        return None;
    }
    let dir = fs::symlink_metadata(RUN_DIR).ok()?;
    sound(&dir).then(|| dir.uid())
}

/// Refuses a directory that someone other than us could have filled: owned by a user we
/// do not trust ([`trusted_owner`]), or writable by group or others.
pub fn check_dir(dir: &Path) -> Result<()> {
    let meta = fs::symlink_metadata(dir).with_context(|| format!("reading {}", dir.display()))?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if !meta.is_dir() {
        bail!(
            "refusing {}: it is not a directory; remove it (it was not made by xdpsieve)",
            dir.display()
        );
    }
    if !trusted_owner(meta.uid()) {
        bail!(
            "refusing {}: it belongs to uid {}, not to uid {me}; pins there could have been \
             planted by someone else. Check what it holds and remove it (rm -r {})",
            dir.display(),
            meta.uid(),
            dir.display()
        );
    }
    if meta.mode() & 0o022 != 0 {
        bail!(
            "refusing {}: group or others may write to it (mode {:o}); pins there could have \
             been planted by someone else. Check what it holds, then remove it (rm -r {}) or \
             `chmod 700` it",
            dir.display(),
            meta.mode() & 0o7777,
            dir.display()
        );
    }
    Ok(())
}

/// Creates `dir` and the directories above it down from `base` (which must exist) with
/// mode 0700, and checks every one of them from `base`'s child down. A directory that goes
/// meanwhile (an empty namespace's, removed by another process's sweep), before it is made
/// or between its making and its check, is made again.
fn secure_dir(base: &Path, dir: &Path) -> Result<()> {
    const ATTEMPTS: u32 = 5;
    let relative = dir.strip_prefix(base).unwrap_or(dir);
    let mut attempts = 0;
    'again: loop {
        attempts += 1;
        let retry = attempts < ATTEMPTS;
        let mut current = base.to_path_buf();
        for part in relative.components() {
            current.push(part);
            match fs::DirBuilder::new().mode(0o700).create(&current) {
                Ok(()) => {
                    // The umask may have taken bits away, never added any; set it exactly.
                    match fs::set_permissions(&current, fs::Permissions::from_mode(0o700)) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::NotFound && retry => continue 'again,
                        Err(e) => {
                            return Err(e).with_context(|| {
                                format!("setting the mode of {}", current.display())
                            });
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound && retry => continue 'again,
                Err(e) => return Err(e).with_context(|| format!("creating {}", current.display())),
            }
            if let Err(e) = check_dir(&current) {
                if retry && fs::symlink_metadata(&current).is_err() {
                    continue 'again;
                }
                return Err(e);
            }
        }
        return Ok(());
    }
}

/// Checks the directories of `iface`'s pins and description that exist, without creating
/// any (for `status`, `stop`, `reload` and `set`).
pub fn check_existing(iface: &str) -> Result<()> {
    for (base, dir) in [
        (Path::new(BPFFS), pin_dir(iface)),
        (Path::new("/run"), meta_dir()),
    ] {
        let mut current = base.to_path_buf();
        for part in dir.strip_prefix(base).unwrap_or(&dir).components() {
            current.push(part);
            if !current.exists() {
                break;
            }
            check_dir(&current)?;
        }
    }
    Ok(())
}

/// Mounts bpffs at /sys/fs/bpf when nothing is mounted there.
fn ensure_bpffs() -> Result<()> {
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    if mounts
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(BPFFS))
    {
        return Ok(());
    }
    let target = std::ffi::CString::new(BPFFS).context("bpffs path")?;
    let fstype = c"bpf";
    // SAFETY: valid NUL-terminated strings; no data argument.
    let rc = unsafe {
        libc::mount(
            fstype.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error()).context("mounting bpffs at /sys/fs/bpf");
    }
    Ok(())
}

/// What a new run finds on an interface.
#[derive(Debug)]
pub enum Found {
    /// Nothing of ours: attach afresh.
    Nothing,
    /// A firewall whose recorder is gone, still in force through its pinned link: take it
    /// over. `meta` is its description, when it left one.
    LeftBehind { meta: Option<Meta> },
}

/// An interface's pin directory and description, claimed by this run, which is its owner
/// (see [`owner`]) from the claim to its end.
#[derive(Debug)]
pub struct Claim {
    pub interface: String,
    pub dir: PathBuf,
    pub meta_file: PathBuf,
    pub found: Found,
    /// The interface's lock: held for the life of the run.
    pub owner: owner::Owner,
}

impl Claim {
    pub fn link_pin(&self) -> PathBuf {
        self.dir.join(LINK_PIN)
    }
}

/// Every counter of the firewall pinned for `iface`, whose description is `meta`.
pub fn snapshot(iface: &str, meta: &Meta) -> Result<Snapshot> {
    let names: Vec<String> = meta.interfaces.iter().map(|i| i.name.clone()).collect();
    snapshot::read_pinned(&pin_dir(iface), meta.rules.len(), &names)
}

/// Whether the firewall pinned for `iface` is in force: its link is pinned and attached
/// (a link whose interface was deleted is defunct: it filters nothing).
pub fn link_in_force(iface: &str) -> bool {
    let link = pin_dir(iface).join(LINK_PIN);
    link.exists()
        && !matches!(
            crate::configure::relink::pinned_link_ifindex(&link),
            Ok(Some(0))
        )
}

/// Makes this run `iface`'s owner, prepares its directories (0700, checked) and says what
/// was there. Refuses, changing nothing, when another process holds the interface (a run,
/// live or starting, or a stop or reload that does not finish in time); clears what a dead
/// run left without a link (and says so).
pub fn claim(iface: &str, my_pid: u32) -> Result<Claim> {
    if namespace_key() == Path::new(UNKNOWN_NAMESPACE) {
        bail!(
            "cannot tell which network namespace this is (/proc/thread-self/ns/net cannot be \
             read): mount /proc"
        );
    }
    ensure_bpffs()?;
    let root = root::prepare()?;
    // Before anything of the interface is touched: a run that loses this changes nothing.
    let owner = take_owner(iface, owner::Verb::Run, std::time::Duration::from_secs(40))?;
    sweep::sweep(&root);
    let (dir, meta_file) = (pin_dir(iface), meta_path(iface));
    secure_dir(Path::new(BPFFS), &dir)?;
    let old = description::read(&meta_file);
    // Only a recorder of an older xdpsieve, which took no lock, can be alive here.
    if let Some(old) = &old
        && old.is_live()
        && old.pid != my_pid
    {
        bail!(
            "xdpsieve (pid {}) is already running on {iface}; stop it first with \
             `xdpsieve stop -i {iface}` (or SIGTERM to pid {})",
            old.pid,
            old.pid
        );
    }
    let link = dir.join(LINK_PIN);
    // A pinned link only keeps a firewall in force while it is attached to this interface:
    // one whose interface was deleted is defunct (ifindex 0), and one attached elsewhere
    // was left by a namespace that is gone and whose identity this one reuses.
    // Only what the kernel says for certain counts: a link that cannot be read stays.
    let attached_to = match crate::configure::relink::pinned_link_ifindex(&link) {
        Ok(Some(ifindex)) => Some(ifindex),
        _ => None,
    };
    let defunct = attached_to.is_some_and(|ifindex| {
        ifindex == 0
            || crate::configure::loader::ifindex_of(iface).is_ok_and(|current| current != ifindex)
    });
    if defunct {
        crate::base::log::info(format_args!(
            "xdpsieve: removing a defunct firewall pinned for {iface}: its link is no longer \
             attached to {iface}"
        ));
        fs::remove_file(&link).with_context(|| format!("removing {}", link.display()))?;
    }
    let found = if link.exists() {
        Found::LeftBehind { meta: old }
    } else {
        if let Some(old) = &old {
            crate::base::log::info(format_args!(
                "xdpsieve: removing stale pins of {iface} left by pid {}, which is gone",
                old.pid
            ));
        } else if fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some()) {
            crate::base::log::info(format_args!(
                "xdpsieve: removing stale pins of {iface} with no owner"
            ));
        }
        clear_dir(&dir)?;
        let _ = fs::remove_file(&meta_file);
        let _ = fs::remove_file(health_path(iface));
        let _ = fs::remove_file(meta_file.with_extension("writers"));
        Found::Nothing
    };
    Ok(Claim {
        interface: iface.to_string(),
        dir,
        meta_file,
        found,
        owner,
    })
}

/// Removes every pin in `dir` except the link (which only an explicit stop removes).
pub fn clear_dir(dir: &Path) -> Result<()> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        if entry.file_name() == LINK_PIN {
            continue;
        }
        fs::remove_file(entry.path())
            .with_context(|| format!("removing the stale pin {}", entry.path().display()))?;
    }
    Ok(())
}

/// Pins `maps` in `dir` (replacing what a previous instance pinned, except the link) and
/// writes the description `meta_file`, for one interface whose owner the caller is. The
/// loader pins the link when it attaches, and the program ([`PROG_PIN`]) after this.
pub fn publish(
    dir: &Path,
    meta_file: &Path,
    maps: &[(&str, &aya::maps::Map)],
    meta: &Meta,
) -> Result<()> {
    clear_dir(dir)?;
    for (name, map) in maps {
        map.pin(dir.join(name))
            .with_context(|| format!("pinning {name} under {}", dir.display()))?;
    }
    description::write(meta_file, meta)
}

/// Removes the pin directory and description of the interface `owner` holds, and its lock
/// file. The caller has removed (or never had) the link pin, so the program is no longer
/// attached.
pub fn remove(owner: &owner::Owner) {
    let iface = owner.interface();
    remove_at(&pin_dir(iface), &meta_path(iface), owner);
}

/// [`remove`] for the pin directory `dir` and description `meta_file` of any namespace.
fn remove_at(dir: &Path, meta_file: &Path, owner: &owner::Owner) {
    // Nobody can change the sets of a firewall being removed: their lock file goes too.
    if let Ok(set_meta) = aya::maps::MapInfo::from_pin(dir.join("SET_META")) {
        let _ = fs::remove_file(set_lock_path(set_meta.id()));
    }
    let _ = fs::remove_dir_all(dir);
    let _ = fs::remove_file(meta_file);
    let _ = fs::remove_file(meta_file.with_extension("health"));
    let _ = fs::remove_file(meta_file.with_extension("writers"));
    owner.unlink();
    // The namespace's directories go too once empty (remove_dir refuses otherwise).
    for path in [dir, meta_file] {
        if let Some(parent) = path.parent() {
            let _ = fs::remove_dir(parent);
        }
    }
}

#[cfg(test)]
mod tests {
    use xdpsieve_testkit::tempdir::TempDir;

    use super::*;

    #[test]
    fn world_writable_or_foreign_directories_are_refused() {
        let scratch = TempDir::new("pins");
        let base = scratch.path();
        let dir = base.join("a").join("b");
        secure_dir(base, &dir).unwrap();
        assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        fs::set_permissions(base.join("a"), fs::Permissions::from_mode(0o777)).unwrap();
        let err = format!("{:#}", secure_dir(base, &dir).unwrap_err());
        assert!(err.contains("group or others may write to it"), "{err}");
        fs::set_permissions(base.join("a"), fs::Permissions::from_mode(0o700)).unwrap();
        secure_dir(base, &dir).unwrap();
    }
}
