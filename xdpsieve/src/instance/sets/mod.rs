//! Live set changes: `xdpsieve set add|del|list|flush`, expiry of timed entries, and the
//! runtime entries a new generation carries over.
//!
//! Everything here acts on the *pinned* state, not on a process: the set maps pinned in
//! the interface's pin directory (`loader::SET_PINS`; the program's own map list would not
//! do, it names only the maps its code reads), checked against the program the pinned
//! link runs now, so that whatever a reload or takeover swapped in is what is changed. So
//! a change works from any shell, while a recorder runs or after it died, and takes effect
//! for the next packet (see `configure::sets::trie` for how a change is put in force).
//!
//! Changes are serialised by an exclusive `flock` on a lock file named after the
//! generation's `SET_META` map id ([`Generation::lock`]): two `set add`s at once, expiry by
//! the recorder, and a reload or takeover reading the runtime entries all take it. A
//! waiter re-checks after getting the lock that the generation it locked is still the one
//! in force (a reload may have replaced it meanwhile) and starts again if not. A reload
//! or takeover holds the old generation's lock from reading its runtime entries until the
//! new generation's maps are pinned ([`carry`]), then retires it.
//!
//! The layout: [`Generation`] (this file) opens and locks, and repairs what a change that
//! died part-way left (`recover`) before anyone reads or changes the sets under the
//! lock; [`edit`] changes entries and the trie together, with the per-change `index`;
//! [`text`] parses what the operator types; `save` writes `--save` into a set file;
//! [`command`] runs one `xdpsieve set` command and the recorder's expiry; [`status`] is
//! `status`'s view of the sets; [`carry`] the runtime entries a new generation keeps.

pub mod carry;
pub mod command;
pub mod commit;
pub mod edit;
mod index;
mod recover;
mod save;
pub mod status;
pub mod text;

use std::{
    fs::{File, OpenOptions},
    os::{fd::AsRawFd as _, unix::fs::OpenOptionsExt as _},
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use aya::maps::{Array, Map, MapData, MapInfo};
use xdpsieve_common::{SetClass, SetEntry, SetGroup, SetMeta, sets::ENTRY_FREE};

use crate::configure::sets::kernel::Mapped;
use crate::instance::pins;

/// The set maps of the generation in force.
pub struct Generation {
    pub nodes: Mapped<SetGroup>,
    pub entries: Mapped<SetEntry>,
    pub classes: Array<MapData, SetClass>,
    /// `SET_RULES` as read at open: per set, then `ANY_SLOT`.
    pub rules: Vec<SetClass>,
    pub meta_map: Array<MapData, SetMeta>,
    /// `SET_META` as read at open (under the lock, when opened by [`Generation::lock`]).
    pub meta: SetMeta,
    /// The kernel's id of `SET_META`: names the generation (and its lock).
    pub meta_id: u32,
    /// Kernel memory of the set maps' values (value size times entries, summed).
    pub memory_bytes: u64,
}

/// The lock of one generation's sets, held until dropped.
pub struct SetLock {
    _file: File,
    meta_id: u32,
}

impl SetLock {
    /// Releases the lock of a generation that is no longer in force (a reload or a
    /// takeover swapped another in) and removes its file: a waiter finds the generation
    /// changed and starts again on the new one.
    pub fn retire(self) {
        let _ = std::fs::remove_file(pins::set_lock_path(self.meta_id));
    }
}

/// A generation with its lock held: changes through it are serialised with every other.
pub struct Locked {
    pub generation: Generation,
    pub lock: SetLock,
}

/// The set maps pinned for an interface, by name, with their ids.
struct Found {
    ids: Vec<(&'static str, u32)>,
    memory_bytes: u64,
    /// The pinned maps are those of the program in force. Not so for a moment during a
    /// reload or a takeover, between the swap and the new pins.
    current: bool,
    /// The program in force.
    program_id: u32,
    /// The pin directory the maps were found in.
    dir: std::path::PathBuf,
}

/// How long a set command waits for another one's change before giving up.
const LOCK_WAIT: Duration = Duration::from_secs(30);

/// The program that `iface`'s pinned link runs now (the generation in force).
pub fn program_in_force(iface: &str) -> Result<u32> {
    let link = pins::pin_dir(iface).join(pins::LINK_PIN);
    let info = crate::configure::relink::pinned_link_info(&link)
        .with_context(|| {
            format!(
                "no xdpsieve firewall is in force on {iface} (cannot open its link pin {}); \
                 start one with `xdpsieve run -i {iface} --rules FILE`",
                link.display()
            )
        })?
        .filter(|i| i.ifindex != 0)
        .with_context(|| {
            format!("the firewall pinned for {iface} is no longer attached (defunct link)")
        })?;
    Ok(info.program_id)
}

/// The maps program `program_id` reads, found through the program pinned in `dir` (each
/// generation pins its program there, and its twin while the link runs that): listing the kernel's programs to find it by id, or
/// opening it by its id, needs CAP_SYS_ADMIN, which a service runs without. The list is
/// the fallback (a firewall of an older xdpsieve); empty when neither tells, which [`find`]
/// takes for a generation still being published.
fn program_maps(dir: &Path, program_id: u32) -> Result<Vec<u32>> {
    // The program, or its twin while the link runs that (after a queue refresh).
    for pin in [pins::PROG_PIN, crate::configure::loader::TWIN_PIN] {
        if let Ok((id, maps)) = crate::configure::relink::pinned_program_maps(&dir.join(pin))
            && id == program_id
        {
            return Ok(maps);
        }
    }
    let Some(program) = aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .find(|p| p.id() == program_id)
    else {
        return Ok(Vec::new());
    };
    Ok(program
        .map_ids()
        .context("listing the program's maps")?
        .unwrap_or_default())
}

fn find(iface: &str) -> Result<Found> {
    let program_id = program_in_force(iface)?;
    let dir = pins::pin_dir(iface);
    let mut found = Found {
        ids: Vec::new(),
        memory_bytes: 0,
        current: false,
        program_id,
        dir: dir.clone(),
    };
    for name in crate::configure::loader::SET_PINS {
        let path = dir.join(name);
        let Ok(map) = MapInfo::from_pin(&path) else {
            continue;
        };
        found.ids.push((name, map.id()));
        found.memory_bytes += u64::from(map.value_size()) * u64::from(map.max_entries());
    }
    let nodes = found.id("SET_NODES")?;
    found.current = program_maps(&dir, program_id)?.contains(&nodes);
    Ok(found)
}

/// [`find`], waiting (until `deadline`) while a reload or takeover publishes its pins.
fn find_current(iface: &str, deadline: Instant) -> Result<Found> {
    loop {
        let found = find(iface)?;
        if found.current {
            return Ok(found);
        }
        if Instant::now() >= deadline {
            bail!(
                "the set maps pinned for {iface} are not those of the program in force (a \
                 reload or takeover is under way, or one failed half-way); try again"
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

impl Found {
    fn id(&self, name: &str) -> Result<u32> {
        self.ids
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, id)| *id)
            .with_context(|| {
                format!(
                    "no {name} is pinned for this firewall: it was started by a version of \
                     xdpsieve without live sets; restart it (`xdpsieve run` takes it over) to \
                     change its sets"
                )
            })
    }
}

/// The map `name` of id `id`, found pinned in `dir`: through its pin when that is still
/// the map (opening a map by its id needs CAP_SYS_ADMIN, which a service runs without),
/// else by its id.
fn open_map(dir: &Path, id: u32, name: &str) -> Result<MapData> {
    if let Ok(data) = MapData::from_pin(dir.join(name))
        && data.info().is_ok_and(|info| info.id() == id)
    {
        return Ok(data);
    }
    MapData::from_id(id).with_context(|| format!("opening {name} (map id {id})"))
}

impl Generation {
    /// Opens the set maps in force on `iface` without the lock: for reading only (`list`,
    /// `status`), or for a caller that holds the lock another way.
    pub fn open(iface: &str) -> Result<Generation> {
        Generation::open_found(&find_current(
            iface,
            Instant::now() + Duration::from_secs(1),
        )?)
    }

    /// Opens the set maps in force on `iface` without the lock and without waiting: `None`
    /// while a reload or takeover publishes new ones. With the program in force.
    pub fn open_if_current(iface: &str) -> Result<Option<(u32, Generation)>> {
        let found = find(iface)?;
        if !found.current {
            return Ok(None);
        }
        Ok(Some((found.program_id, Generation::open_found(&found)?)))
    }

    fn open_found(found: &Found) -> Result<Generation> {
        let open = |name: &str| open_map(&found.dir, found.id(name)?, name);
        let nodes = Mapped::new(&open("SET_NODES")?, "SET_NODES")?;
        let entries = Mapped::new(&open("SET_ENTRIES")?, "SET_ENTRIES")?;
        let array = |name: &str| -> Result<Map> {
            Map::from_map_data(open(name)?).with_context(|| format!("opening {name}"))
        };
        let classes: Array<MapData, SetClass> =
            Array::try_from(array("SET_CLASSES")?).context("SET_CLASSES")?;
        let rule_map: Array<MapData, SetClass> =
            Array::try_from(array("SET_RULES")?).context("SET_RULES")?;
        let rules = rule_map
            .iter()
            .collect::<Result<Vec<_>, _>>()
            .context("reading SET_RULES")?;
        let meta_map: Array<MapData, SetMeta> =
            Array::try_from(array("SET_META")?).context("SET_META")?;
        let meta = meta_map.get(&0, 0).context("reading SET_META")?;
        Ok(Generation {
            nodes,
            entries,
            classes,
            rules,
            meta_map,
            meta,
            meta_id: found.id("SET_META")?,
            memory_bytes: found.memory_bytes,
        })
    }

    /// Opens the set maps in force on `iface` with their generation's lock held, waiting
    /// for a change in progress (up to half a minute).
    pub fn lock(iface: &str) -> Result<Locked> {
        match Generation::lock_until(iface, Instant::now() + LOCK_WAIT)? {
            Some(locked) => Ok(locked),
            None => bail!(
                "another set change (or a reload) has held the sets of {iface} for {} s; \
                 nothing was changed. Try again",
                LOCK_WAIT.as_secs()
            ),
        }
    }

    /// As [`Generation::lock`], but `None` at once when another process holds the lock
    /// (for the recorder's expiry, which must not stall the loop; it tries again later).
    pub fn try_lock(iface: &str) -> Result<Option<Locked>> {
        Generation::lock_until(iface, Instant::now())
    }

    fn lock_until(iface: &str, deadline: Instant) -> Result<Option<Locked>> {
        loop {
            let found = find(iface)?;
            if found.current {
                let meta_id = found.id("SET_META")?;
                let Some(file) = lock_file(meta_id, deadline)? else {
                    return Ok(None);
                };
                let lock = SetLock {
                    _file: file,
                    meta_id,
                };
                // A reload may have swapped the generation while we waited: only the one
                // in force now may be changed.
                let now = find(iface)?;
                if now.current && now.id("SET_META")? == meta_id {
                    let mut generation = Generation::open_found(&found)?;
                    if generation.meta.in_change != 0 {
                        // A change died part-way: repaired before anyone reads or changes.
                        commit::Editor::new(&mut generation)?;
                    }
                    return Ok(Some(Locked { generation, lock }));
                }
                if now.id("SET_META")? != meta_id {
                    lock.retire();
                }
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// The entries in use (slots below `entries_used`; free ones included).
    pub fn used_entries(&self) -> &[SetEntry] {
        let used = (self.meta.entries_used as usize).min(self.entries.as_slice().len());
        &self.entries.as_slice()[..used]
    }

    /// Per set index, the entries it holds and how many of them have a timeout.
    pub fn counts(&self) -> Vec<(usize, usize)> {
        let mut counts = vec![(0, 0); xdpsieve_common::sets::MAX_SETS as usize];
        for e in self.used_entries() {
            if e.state != ENTRY_FREE
                && let Some(c) = counts.get_mut(usize::from(e.set))
            {
                c.0 += 1;
                c.1 += usize::from(e.expires_ns != 0);
            }
        }
        counts
    }
}

/// Takes the exclusive lock of a generation, waiting until `deadline`; `None` when it is
/// still held by then.
fn lock_file(meta_id: u32, deadline: Instant) -> Result<Option<File>> {
    let dir = Path::new(pins::RUN_DIR);
    pins::check_dir(dir)?;
    let path = pins::set_lock_path(meta_id);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
        .with_context(|| format!("opening the set lock {}", path.display()))?;
    let mut said = false;
    loop {
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(Some(file));
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(err).with_context(|| format!("locking {}", path.display()));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        if !said && deadline > Instant::now() + Duration::from_secs(1) {
            said = true;
            crate::base::log::info(format_args!(
                "xdpsieve: waiting for another set change (or a reload) to finish"
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// `CLOCK_BOOTTIME` in ns: the clock of `SetEntry::expires_ns` (it keeps counting through
/// suspend, so a ban lasts its time in the world, not in uptime).
pub fn boottime_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we pass; CLOCK_BOOTTIME exists on
    // every kernel with BPF links.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// Blocks the signals that would end the process in the middle of a change (leaving the
/// trie and the entry table disagreeing) until dropped; they are delivered then.
pub struct SignalsHeld {
    old: libc::sigset_t,
}

impl SignalsHeld {
    pub fn new() -> SignalsHeld {
        // SAFETY: sigset operations on local, initialised sets; pthread_sigmask on the
        // calling thread only.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
                libc::sigaddset(&mut set, s);
            }
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
            SignalsHeld { old }
        }
    }
}

impl Default for SignalsHeld {
    fn default() -> Self {
        SignalsHeld::new()
    }
}

impl Drop for SignalsHeld {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved in `new`.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut()) };
    }
}

#[cfg(test)]
pub(crate) mod tests;
