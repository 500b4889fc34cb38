//! Putting a computed [`Change`] in force (see the parent module's doc for the order), and
//! the pieces a repair uses: replacing whole root entries by those of a trie built in
//! memory.

use std::sync::atomic::{AtomicU32, Ordering};

use xdpsieve_common::{
    SetGroup,
    sets::{FREE_GROUP, GROUP_ENTRIES, POINTER},
};

use super::{Change, Space};
use crate::configure::sets::trie::{Trie, TrieError};

/// Called after each write to the kernel's memory: a test can stop the change there, as if
/// the process had been killed.
pub(super) type Wrote<'w> = &'w mut dyn FnMut() -> anyhow::Result<()>;

impl Change<'_> {
    /// The change without its view of the trie in force: all that is left is to write it,
    /// for which the caller needs the trie's memory back.
    pub fn prepared(self) -> Change<'static> {
        Change {
            base: &[],
            roots: self.roots,
            slab: self.slab,
            slot_of: self.slot_of,
            spare_slots: self.spare_slots,
            alloc: self.alloc,
            garbage: self.garbage,
            masks: self.masks,
            class_of: self.class_of,
            classes_before: self.classes_before,
        }
    }

    /// Takes on the classes of `masks` beyond those it has (the same numbering, longer):
    /// the classes of a trie built in memory for a repair.
    pub fn adopt_classes(&mut self, masks: &[u64]) {
        for &mask in masks.iter().skip(self.masks.len()) {
            self.class_of.insert(mask, self.masks.len() as u32);
            self.masks.push(mask);
        }
    }

    /// Writes the private groups into `nodes` (the mapping of `SET_NODES`); nothing the
    /// program reaches refers to them yet. `wrote` is called after each write.
    pub fn write_groups(&self, nodes: &mut [SetGroup], wrote: Wrote<'_>) -> anyhow::Result<()> {
        for (id, &slot) in self.slot_of.iter().enumerate() {
            if slot != 0 {
                nodes[id] = self.slab[slot as usize - 1];
                wrote()?;
            }
        }
        Ok(())
    }

    /// Puts the change in force: each root entry that differs, with one atomic store
    /// (release: the groups it leads to are written before it).
    pub fn publish(&self, nodes: &mut [SetGroup], wrote: Wrote<'_>) -> anyhow::Result<()> {
        for (g, group) in self.roots.iter().enumerate() {
            for (i, &new) in group.entries.iter().enumerate() {
                let live = entry_cell(&mut nodes[g], i);
                if live.load(Ordering::Relaxed) != new {
                    live.store(new, Ordering::Release);
                    wrote()?;
                }
            }
        }
        Ok(())
    }

    /// Links the garbage and the groups this change gave back into the free list; the
    /// caller has waited until no walk of the program can be in the garbage. Returns the
    /// trie's space after the change.
    pub fn reclaim(&mut self, nodes: &mut [SetGroup], wrote: Wrote<'_>) -> anyhow::Result<Space> {
        let mut head = self.alloc.free_head;
        let mut free = self.alloc.free_left;
        for id in self.garbage.drain(..).chain(self.alloc.released.drain(..)) {
            let group = &mut nodes[id as usize];
            entry_cell(group, 1).store(FREE_GROUP, Ordering::Relaxed);
            entry_cell(group, 0).store(head, Ordering::Relaxed);
            head = id;
            free += 1;
            wrote()?;
        }
        Ok(Space {
            groups_used: self.alloc.high - free,
            groups_high: self.alloc.high,
            free_head: if free == 0 { 0 } else { head },
        })
    }

    /// Root entry `slot` (group `slot / 256`, entry `slot % 256`) as this change has it.
    pub fn root_entry(&self, slot: usize) -> u32 {
        self.roots[slot / GROUP_ENTRIES].entries[slot % GROUP_ENTRIES]
    }

    /// Replaces root entry `slot` by `entry` of `from` (a trie built in memory), copied
    /// into new groups; the subtree it replaces becomes garbage, unless it is `damaged`
    /// (its pointers cannot be followed: its groups stay unused until a reload). For a
    /// repair.
    pub fn replace_root(
        &mut self,
        slot: usize,
        from: &Trie,
        entry: u32,
        damaged: bool,
    ) -> Result<(), TrieError> {
        let old = self.root_entry(slot);
        let new = self.import(from, entry)?;
        if !damaged {
            self.discard(old);
        }
        self.roots[slot / GROUP_ENTRIES].entries[slot % GROUP_ENTRIES] = new;
        Ok(())
    }

    fn import(&mut self, from: &Trie, entry: u32) -> Result<u32, TrieError> {
        if entry & POINTER == 0 {
            return Ok(entry);
        }
        let mut content = from.groups()[(entry & !POINTER) as usize];
        for e in content.entries.iter_mut() {
            *e = self.import(from, *e)?;
        }
        self.place(content)
    }

    /// Every shared group under `entry` becomes garbage.
    fn discard(&mut self, entry: u32) {
        if entry & POINTER == 0 {
            return;
        }
        let id = entry & !POINTER;
        if self.is_private(id) {
            return; // a repair only replaces what was in force
        }
        self.garbage.push(id);
        for i in 0..GROUP_ENTRIES {
            self.discard(self.base[id as usize].entries[i]);
        }
    }
}

/// Entry `index` of a mapped group, for the accesses the program may race with.
fn entry_cell(group: &mut SetGroup, index: usize) -> &AtomicU32 {
    // SAFETY: AtomicU32 has u32's size and alignment, and the exclusive borrow makes this
    // the only Rust reference; the program reads the same memory concurrently, hence
    // atomic accesses.
    unsafe { AtomicU32::from_ptr(&mut group.entries[index]) }
}
