//! Runtime entries across generations: what `set add` put in the generation in force, read
//! out of it by set name so that the next generation (a reload, or a takeover by a new run)
//! holds them too, with the time they had left (`Built::for_sets` puts them in).
//!
//! They are read under the old generation's set lock, and the caller holds the lock until
//! the new generation is in force (then retires it): a `set add` made meanwhile waits and
//! lands in the new generation, instead of in the old one after it was read.

use anyhow::Result;
use xdpsieve_common::sets::ENTRY_RUNTIME;

use super::{Generation, SetLock, boottime_ns};
use crate::configure::sets::kernel::{RuntimeEntry, entry_prefix};

/// The entries added at run time to `generation` and not yet expired; `names` are its sets
/// in index order (`Meta::sets`).
pub fn runtime_entries(generation: &Generation, names: &[String]) -> Vec<RuntimeEntry> {
    let now = boottime_ns();
    generation
        .used_entries()
        .iter()
        .filter(|e| e.state == ENTRY_RUNTIME && (e.expires_ns == 0 || e.expires_ns > now))
        .filter_map(|e| {
            Some(RuntimeEntry {
                set: names.get(usize::from(e.set))?.clone(),
                prefix: entry_prefix(e),
                expires_ns: e.expires_ns,
                origin: e.origin,
            })
        })
        .collect()
}

/// Locks the sets in force on `iface` and reads their runtime entries; `names` as in
/// [`runtime_entries`]. Hold the lock until the new generation is in force, then
/// [`SetLock::retire`] it.
pub fn lock_and_read(iface: &str, names: &[String]) -> Result<(SetLock, Vec<RuntimeEntry>)> {
    let locked = Generation::lock(iface)?;
    let entries = runtime_entries(&locked.generation, names);
    Ok((locked.lock, entries))
}

/// For a new run taking firewalls over: the set locks and runtime entries of each left
/// behind (once per instance). One whose entries cannot be read is said on stderr; its
/// runtime entries are then not carried.
pub fn for_takeover(claims: &[crate::instance::pins::Claim]) -> (Vec<SetLock>, Vec<RuntimeEntry>) {
    let mut seen: Vec<(u32, u64)> = Vec::new();
    let (mut locks, mut entries) = (Vec::new(), Vec::new());
    for claim in claims {
        let crate::instance::pins::Found::LeftBehind { meta: Some(meta) } = &claim.found else {
            continue;
        };
        if meta.sets.is_empty() || seen.contains(&(meta.pid, meta.pid_start)) {
            continue;
        }
        seen.push((meta.pid, meta.pid_start));
        let names: Vec<String> = meta.sets.iter().map(|s| s.name.clone()).collect();
        match lock_and_read(&claim.interface, &names) {
            Ok((lock, mut found)) => {
                locks.push(lock);
                entries.append(&mut found);
            }
            Err(e) => crate::base::log::warning(format_args!(
                "xdpsieve: warning: cannot read the runtime set entries of the firewall left \
                 on {}; they are not carried over: {e:#}",
                crate::base::text::escape(&claim.interface)
            )),
        }
    }
    (locks, entries)
}
