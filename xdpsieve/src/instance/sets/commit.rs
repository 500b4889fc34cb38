//! The editor of a locked generation ([`Editor`]: its set maps, mapped, with the count of
//! the writes made through it) and the writing of a change, in the order the parent's
//! `edit` module doc gives, so that a process killed between any two writes leaves what
//! `recover` repairs; the tests stop a change anywhere by that count. The changes
//! themselves are computed in `edit`, the repair in `recover`; both write through here.

use std::{
    sync::atomic::{AtomicU8, AtomicU64, Ordering},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use aya::maps::{Array, MapData};
use xdpsieve_common::{SetClass, SetEntry, SetGroup, SetMeta, sets::ENTRY_FREE};

use crate::configure::sets::{
    kernel::class_rules,
    trie::change::{Change, Space},
};

/// One change of a locked generation at a time; each operation (see `edit`) writes its
/// change whole.
pub struct Editor<'a> {
    pub(super) nodes: &'a mut [SetGroup],
    pub(super) entries: &'a mut [SetEntry],
    pub(super) classes: &'a mut Array<MapData, SetClass>,
    pub(super) rules: &'a [SetClass],
    pub(super) meta_map: &'a mut Array<MapData, SetMeta>,
    pub(super) meta: &'a mut SetMeta,
    pub(super) writes: Writes,
}

/// What one change writes to the entry table.
#[derive(Default)]
pub(super) struct EntryWrites {
    pub(super) added: Vec<(u32, SetEntry)>,
    pub(super) renewed: Vec<(u32, u64)>,
    pub(super) freed: Vec<u32>,
}

pub(super) fn write_class(
    classes: &mut Array<MapData, SetClass>,
    rules: &[SetClass],
    id: u32,
    mask: u64,
) -> Result<()> {
    classes
        .set(id, class_rules(mask, rules), 0)
        .with_context(|| format!("writing class {id} to SET_CLASSES"))
}

/// Counts the writes of a change and, for the tests of what a killed process leaves,
/// stops after the Nth: `XDPSIEVE_TEST_KILL_AFTER_WRITES=N` makes the process SIGKILL
/// itself there (the integration tests), [`Editor::stop_after`] makes the change return
/// an error there without another write (the unit tests).
#[derive(Default)]
pub(super) struct Writes {
    pub(super) done: u64,
    pub(super) kill_after: Option<u64>,
    pub(super) stop_after: Option<u64>,
}

impl Writes {
    pub(super) fn from_env() -> Writes {
        Writes {
            kill_after: std::env::var("XDPSIEVE_TEST_KILL_AFTER_WRITES")
                .ok()
                .and_then(|v| v.parse().ok()),
            ..Writes::default()
        }
    }

    pub(super) fn wrote(&mut self) -> Result<()> {
        self.done += 1;
        if self.kill_after == Some(self.done) {
            // SAFETY: kill and getpid have no preconditions; SIGKILL cannot be caught.
            unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        }
        if self.stop_after == Some(self.done) {
            bail!("stopped after write {} (test)", self.done);
        }
        Ok(())
    }
}

/// Waits until every run of the XDP program that may have started before now has ended,
/// so that nothing reads the groups a change unlinked: the program runs under RCU, and
/// `membarrier(MEMBARRIER_CMD_GLOBAL)` waits for an RCU grace period (~15 ms). Where the
/// kernel refuses it (nohz_full CPUs), a pause far longer than a driver's poll.
pub fn grace() {
    const MEMBARRIER_CMD_GLOBAL: libc::c_long = 1;
    // SAFETY: membarrier takes no pointers.
    let rc = unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) };
    if rc != 0 {
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Editor<'_> {
    /// Writes every class in use to `SET_CLASSES` (for a repair).
    pub(super) fn rewrite_classes(&mut self) -> Result<()> {
        let n = (self.meta.classes_used as usize).clamp(1, self.meta.class_masks.len());
        for id in 0..n {
            write_class(
                self.classes,
                self.rules,
                id as u32,
                self.meta.class_masks[id],
            )?;
        }
        Ok(())
    }

    pub(super) fn masks(&self) -> &[u64] {
        let n = (self.meta.classes_used as usize).clamp(1, self.meta.class_masks.len());
        &self.meta.class_masks[..n]
    }

    pub(super) fn space(&self) -> Space {
        Space {
            groups_used: self.meta.groups_used,
            groups_high: self.meta.groups_high,
            free_head: self.meta.free_head,
        }
    }

    pub(super) fn write_meta(&mut self, meta: SetMeta) -> Result<()> {
        self.meta_map.set(0, meta, 0).context("writing SET_META")?;
        *self.meta = meta;
        self.writes.wrote()
    }

    /// Writes `change` and `writes` in the order of the module doc.
    pub(super) fn commit(
        &mut self,
        mut change: Change<'static>,
        writes: &EntryWrites,
    ) -> Result<()> {
        let mut meta = *self.meta;
        meta.in_change = 1;
        let masks = change.class_masks();
        meta.classes_used = masks.len() as u32;
        meta.class_masks[..masks.len()].copy_from_slice(masks);
        self.write_meta(meta)?;
        for (id, mask) in change.new_classes() {
            write_class(self.classes, self.rules, id, mask)?;
            self.writes.wrote()?;
        }
        let Editor {
            nodes,
            entries,
            writes: counter,
            ..
        } = self;
        let mut wrote = || counter.wrote();
        change.write_groups(nodes, &mut wrote)?;
        for &(slot, entry) in &writes.added {
            write_entry(&mut entries[slot as usize], entry);
            wrote()?;
        }
        for &(slot, expires_ns) in &writes.renewed {
            // SAFETY: as in `write_entry`.
            unsafe { AtomicU64::from_ptr(&mut entries[slot as usize].expires_ns) }
                .store(expires_ns, Ordering::Relaxed);
            wrote()?;
        }
        change.publish(nodes, &mut wrote)?;
        for &slot in &writes.freed {
            free_entry(&mut entries[slot as usize]);
            wrote()?;
        }
        if change.has_garbage() {
            grace();
        }
        let space = change.reclaim(nodes, &mut wrote)?;
        meta.groups_used = space.groups_used;
        meta.groups_high = space.groups_high;
        meta.free_head = space.free_head;
        let top = writes.added.iter().map(|(s, _)| s + 1).max().unwrap_or(0);
        let mut used = meta.entries_used.max(top).min(entries.len() as u32);
        while used > 0 && entries[used as usize - 1].state == ENTRY_FREE {
            used -= 1;
        }
        meta.entries_used = used;
        meta.changes = meta.changes.wrapping_add(1);
        meta.in_change = 0;
        self.write_meta(meta)
    }
}

/// Fills a free slot: every field, then the state (release), so a process killed
/// part-way leaves the slot free.
fn write_entry(slot: &mut SetEntry, entry: SetEntry) {
    slot.expires_ns = entry.expires_ns;
    slot.set = entry.set;
    slot.family = entry.family;
    slot.prefix_len = entry.prefix_len;
    slot.origin = entry.origin;
    slot._pad = entry._pad;
    slot.addr = entry.addr;
    // SAFETY: AtomicU8 has u8's layout; the exclusive borrow makes this the only Rust
    // reference, and other processes read the mapped table concurrently.
    unsafe { AtomicU8::from_ptr(&mut slot.state) }.store(entry.state, Ordering::Release);
}

/// Frees a slot: the state first, so a process killed part-way leaves it free.
fn free_entry(slot: &mut SetEntry) {
    // SAFETY: as in `write_entry`.
    unsafe { AtomicU8::from_ptr(&mut slot.state) }.store(ENTRY_FREE, Ordering::Release);
    *slot = SetEntry {
        expires_ns: 0,
        set: 0,
        family: 0,
        prefix_len: 0,
        state: ENTRY_FREE,
        origin: 0,
        _pad: [0; 2],
        addr: [0; 16],
    };
}
