//! One owner per interface: starting, taking over, reloading, stopping and sweeping a
//! firewall are serialised by an exclusive lock per interface and network namespace,
//! `/run/xdpsieve/<namespace>/<iface>.lock`.
//!
//! A run takes it before it touches anything of the interface and holds it for its whole
//! life; the kernel releases it when the process ends, SIGKILL included, so a firewall
//! left behind is free to be taken over. A run that finds it held changes nothing and says
//! which pid holds it. `stop` of a live recorder signals the recorder (which holds the
//! lock) and waits for it to end; `reload` of a live recorder asks the recorder; with no
//! recorder alive, the verb takes the lock itself.
//!
//! flock, not POSIX record locks: a record lock goes when the process closes any
//! descriptor of the file, and it never conflicts within a process. Who holds the lock is
//! written into the file by the holder (pid, the pid's start time and the verb), and
//! cleared before an orderly release; a reader trusts it only while that process lives
//! with that start time. The file is removed only by its holder, so whoever locks a file
//! checks that it is still the one at the path (else it locks again).

use std::{
    fmt,
    fs::{self, File, OpenOptions},
    io::{self, Read as _, Seek as _, Write as _},
    os::{
        fd::AsRawFd as _,
        unix::fs::{MetadataExt as _, OpenOptionsExt as _},
    },
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::instance::description::process_start;

/// What a holder is doing with the interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    /// `xdpsieve run`: starting, taking over, recording; for the life of the process.
    Run,
    Stop,
    Reload,
    /// A run removing what another interface's firewall left behind (see `sweep`).
    Sweep,
}

impl Verb {
    fn name(self) -> &'static str {
        match self {
            Verb::Run => "run",
            Verb::Stop => "stop",
            Verb::Reload => "reload",
            Verb::Sweep => "sweep",
        }
    }
}

/// Who holds an interface, as its lock file says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    /// The pid's start time (see [`process_start`]): while it matches, the holder lives.
    pub start: u64,
    /// `run`, `stop`, `reload`, `sweep`.
    pub verb: String,
}

/// An interface's lock, as found held by someone else.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Busy {
    pub interface: String,
    /// None when the holder did not say who it is (yet, or it is an older xdpsieve).
    pub holder: Option<Holder>,
}

impl fmt::Display for Busy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let iface = &self.interface;
        match &self.holder {
            Some(Holder { pid, verb, .. }) if verb == "run" => write!(
                f,
                "xdpsieve pid {pid} holds {iface} (`xdpsieve run`: starting, taking over or \
                 running there); nothing was changed. To replace it, stop it first with \
                 `xdpsieve stop -i {iface}` (or SIGTERM to pid {pid})"
            ),
            Some(Holder { pid, verb, .. }) => write!(
                f,
                "xdpsieve pid {pid} holds {iface} (`xdpsieve {verb}`); nothing was changed. Try \
                 again when it is done"
            ),
            None => write!(
                f,
                "another xdpsieve process holds {iface}; nothing was changed. Try again in a \
                 moment"
            ),
        }
    }
}

/// An interface's lock, held until dropped (or until the process ends).
#[derive(Debug)]
pub struct Owner {
    file: File,
    path: PathBuf,
    interface: String,
}

impl Owner {
    /// Takes the lock at `path` (creating the file) for `interface`, without waiting:
    /// `Ok(Err(busy))` when someone else holds it.
    pub fn try_take_at(
        path: &Path,
        interface: &str,
        verb: Verb,
    ) -> Result<std::result::Result<Owner, Busy>> {
        loop {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(path)
                .with_context(|| format!("opening the lock {}", path.display()))?;
            // SAFETY: flock on a descriptor we own.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
                let err = io::Error::last_os_error();
                if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
                    return Err(err).with_context(|| format!("locking {}", path.display()));
                }
                return Ok(Err(Busy {
                    interface: interface.to_string(),
                    holder: holder_of(&mut file),
                }));
            }
            // The holder before us may have removed the file (its firewall gone) after we
            // opened it: then the lock that counts is on the file now at the path.
            let here = file
                .metadata()
                .with_context(|| format!("reading {}", path.display()))?;
            let at_path = fs::symlink_metadata(path).ok();
            if at_path.is_none_or(|m| (m.dev(), m.ino()) != (here.dev(), here.ino())) {
                continue;
            }
            let start = process_start(std::process::id()).unwrap_or(0);
            file.set_len(0)
                .and_then(|()| file.rewind())
                .and_then(|()| writeln!(file, "{} {start} {}", std::process::id(), verb.name()))
                .with_context(|| format!("writing {}", path.display()))?;
            return Ok(Ok(Owner {
                file,
                path: path.to_path_buf(),
                interface: interface.to_string(),
            }));
        }
    }

    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// Removes the lock file (the firewall it guards is gone); the lock is held until drop,
    /// and whoever waits for it then finds the file gone and locks a new one.
    pub fn unlink(&self) {
        let _ = fs::remove_file(&self.path);
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        // Nobody holds it any more: say so before the lock goes (closing the file).
        let _ = self.file.set_len(0);
    }
}

/// Takes a lock with `try_once` (which says who holds it, if someone does), waiting up to
/// `wait` for a holder that lets go by itself: a stop, a reload or a sweep, never a run (a
/// run holds its interfaces for its life). Fails with who holds it.
pub fn wait_for(
    mut try_once: impl FnMut() -> Result<std::result::Result<Owner, Busy>>,
    wait: Duration,
) -> Result<Owner> {
    let deadline = Instant::now() + wait;
    let mut said = false;
    loop {
        let busy = match try_once()? {
            Ok(owner) => return Ok(owner),
            Err(busy) => busy,
        };
        let transient = busy.holder.as_ref().is_some_and(|h| h.verb != "run");
        if Instant::now() >= deadline || !transient {
            bail!("{busy}");
        }
        if !said && let Some(holder) = &busy.holder {
            said = true;
            crate::base::log::info(format_args!(
                "xdpsieve: waiting for xdpsieve pid {} (`xdpsieve {}`) to finish with {}",
                holder.pid, holder.verb, busy.interface
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Who holds the lock of `file`, as it wrote there: trusted while that process lives with
/// the start time written. A holder writes just after locking, so an empty or stale file
/// is read again for a moment.
fn holder_of(file: &mut File) -> Option<Holder> {
    let deadline = Instant::now() + Duration::from_millis(500);
    loop {
        let mut text = String::new();
        let read = file.rewind().and_then(|()| file.read_to_string(&mut text));
        let mut words = text.split_whitespace();
        let parsed = (
            words.next().and_then(|w| w.parse::<u32>().ok()),
            words.next().and_then(|w| w.parse::<u64>().ok()),
            words.next(),
        );
        if read.is_ok()
            && let (Some(pid), Some(start), Some(verb)) = parsed
            && process_start(pid) == Some(start)
        {
            return Some(Holder {
                pid,
                start,
                verb: verb.to_string(),
            });
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_names_its_holder_and_a_removed_file_is_not_trusted() {
        let dir = xdpsieve_testkit::tempdir::TempDir::new("owner");
        let path = dir.file("fw0.lock");
        let first = Owner::try_take_at(&path, "fw0", Verb::Run)
            .unwrap()
            .expect("free");
        let busy = Owner::try_take_at(&path, "fw0", Verb::Stop)
            .unwrap()
            .expect_err("held");
        let me = std::process::id();
        assert_eq!(
            busy.holder,
            Some(Holder {
                pid: me,
                start: process_start(me).unwrap(),
                verb: "run".into()
            })
        );
        assert!(
            busy.to_string()
                .contains(&format!("xdpsieve pid {me} holds fw0"))
        );
        // Nobody waits for a run.
        let started = Instant::now();
        let err = wait_for(
            || Owner::try_take_at(&path, "fw0", Verb::Stop),
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(format!("{err}").contains("`xdpsieve run`"), "{err}");
        // The holder removes the file and lets go: the next one locks a new file.
        first.unlink();
        drop(first);
        let second = Owner::try_take_at(&path, "fw0", Verb::Stop)
            .unwrap()
            .expect("free again");
        assert!(path.exists());
        drop(second);
        // Released in order: nobody is named any more.
        assert_eq!(fs::read_to_string(&path).unwrap(), "");
    }
}
