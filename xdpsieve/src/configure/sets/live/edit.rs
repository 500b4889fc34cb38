//! Changing a running generation's sets: the entry table (`SET_ENTRIES`), the trie
//! (`SET_NODES`), the classes (`SET_CLASSES`) and the bookkeeping (`SET_META`) together.
//!
//! The invariant kept at every step: the entry table holds at least what the trie says.
//! An added prefix gets its entry before the trie is painted, a removed one loses its entry
//! after the trie is repainted, so a process killed in between leaves an entry that blocks
//! nothing (listed, and put right by `del` or the next reload), never a block nobody can
//! see or lift. A new class is written to `SET_CLASSES` before the trie refers to it (the
//! trie's `new_class` callback). `SET_META` is written once, at the end of the change
//! ([`Editor::finish`]); the caller holds the signals that would end the process meanwhile.
//!
//! For each change, the entries of the set that overlap the prefixes it touches are indexed
//! in one pass over the table (`live::index`), so finding a set's prefixes that overlap
//! a removed one (what `Trie::remove` repaints) is a lookup, not a scan: 10,000 changes
//! cost one pass over the table.

use std::collections::HashSet;

use anyhow::{Context as _, Result, bail};
use aya::maps::{Array, MapData};
use xdpsieve_common::{
    SetClass, SetEntry, SetMeta,
    sets::{ENTRY_FILE, ENTRY_FREE, ENTRY_RUNTIME, FIRST_GROUP},
};

use super::{
    Generation,
    index::{Index, build_index, overlapping},
    text::show,
};
use crate::configure::sets::{
    kernel::{class_rules, entry_prefix, new_entry},
    trie::{Trie, TriePrefix},
};

/// One change of a locked generation, from [`Editor::new`] to [`Editor::finish`].
pub struct Editor<'a> {
    trie: Trie<'a>,
    entries: &'a mut [SetEntry],
    classes: &'a mut Array<MapData, SetClass>,
    rules: &'a [SetClass],
    meta_map: &'a mut Array<MapData, SetMeta>,
    meta: &'a mut SetMeta,
    /// Slots ever used (`SET_META.entries_used`).
    used: u32,
    /// Free slots below `used`, highest first (`pop` reuses the lowest).
    free: Vec<u32>,
}

/// What an add did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Added {
    /// New entries.
    pub added: usize,
    /// Runtime entries that were there: their timeout was set anew.
    pub renewed: usize,
    /// Prefixes the set's file already holds (left as they are: a file entry never expires).
    pub from_file: usize,
}

fn write_class(
    classes: &mut Array<MapData, SetClass>,
    rules: &[SetClass],
    id: u32,
    mask: u64,
) -> Result<()> {
    classes
        .set(id, class_rules(mask, rules), 0)
        .with_context(|| format!("writing class {id} to SET_CLASSES"))
}

impl<'a> Editor<'a> {
    /// Starts a change of `generation`, whose lock the caller holds.
    pub fn new(generation: &'a mut Generation) -> Result<Editor<'a>> {
        let Generation {
            nodes,
            entries,
            classes,
            rules,
            meta_map,
            meta,
            ..
        } = generation;
        let nodes = nodes.as_mut_slice();
        if nodes.len() < FIRST_GROUP as usize {
            bail!("this firewall was loaded without sets (its rule file declares none)");
        }
        let classes_used = (meta.classes_used as usize).min(meta.class_masks.len());
        let trie = Trie::open(nodes, meta.groups_used, &meta.class_masks[..classes_used]);
        let entries = entries.as_mut_slice();
        let used = meta.entries_used.min(entries.len() as u32);
        let free = (0..used)
            .rev()
            .filter(|&slot| entries[slot as usize].state == ENTRY_FREE)
            .collect();
        Ok(Editor {
            trie,
            entries,
            classes,
            rules,
            meta_map,
            meta,
            used,
            free,
        })
    }

    fn index(&self, set: u16, interest: &[TriePrefix]) -> Index {
        build_index(&self.entries[..self.used as usize], set, interest)
    }

    /// Adds `prefixes` to `set` as runtime entries expiring at `expires_ns` (0: never). A
    /// prefix already added at run time gets the new expiry; one from the set's file stays
    /// as it is. When the table or the trie cannot take them all, nothing is changed.
    pub fn add(&mut self, set: u16, prefixes: &[TriePrefix], expires_ns: u64) -> Result<Added> {
        let mut outcome = Added::default();
        let mut renew: Vec<u32> = Vec::new();
        let mut new: Vec<TriePrefix> = Vec::new();
        let mut seen = HashSet::new();
        let mut index = self.index(set, prefixes);
        let entries = &*self.entries;
        for p in prefixes {
            if !seen.insert(*p) {
                continue;
            }
            match index.get(p) {
                None => new.push(*p),
                Some(slots) => {
                    let runtime: Vec<u32> = slots
                        .iter()
                        .copied()
                        .filter(|&s| entries[s as usize].state == ENTRY_RUNTIME)
                        .collect();
                    if runtime.len() == slots.len() {
                        outcome.renewed += 1;
                        renew.extend(runtime);
                    } else {
                        outcome.from_file += 1;
                    }
                }
            }
        }
        let room = self.free.len() + (self.entries.len() - self.used as usize);
        if new.len() > room {
            bail!(
                "the set table is full: {} new entries asked for, room for {room} (of {} \
                 slots); nothing was changed. `xdpsieve reload` rebuilds the tables with room \
                 to grow",
                new.len(),
                self.entries.len()
            );
        }
        let mut done: Vec<u32> = Vec::with_capacity(new.len());
        for p in &new {
            let slot = self.alloc();
            self.entries[slot as usize] = new_entry(set, p, ENTRY_RUNTIME, expires_ns);
            index.add_slot(*p, slot);
            let (classes, rules) = (&mut *self.classes, self.rules);
            let painted = self.trie.add(u32::from(set), p, &mut |id, mask| {
                write_class(classes, rules, id, mask)
            });
            if let Err(e) = painted {
                index.remove_slot(p, slot);
                self.release(slot);
                for &slot in done.iter().rev() {
                    // Back to where we started: the classes these need exist already.
                    self.remove_slot(&mut index, set, slot)
                        .context("undoing a partial add")?;
                }
                return Err(e.context(format!(
                    "adding {} to set {set}; nothing was changed",
                    show(p)
                )));
            }
            done.push(slot);
        }
        for slot in renew {
            self.entries[slot as usize].expires_ns = expires_ns;
        }
        outcome.added = new.len();
        Ok(outcome)
    }

    /// Removes `prefixes` from `set` (every entry of each). When one is not in the set,
    /// nothing is changed and the error says which (and what covers it, if anything).
    pub fn remove(&mut self, set: u16, prefixes: &[TriePrefix], set_name: &str) -> Result<usize> {
        let mut index = self.index(set, prefixes);
        let mut slots = Vec::new();
        let mut seen = HashSet::new();
        for p in prefixes {
            if !seen.insert(*p) {
                continue;
            }
            match index.get(p) {
                Some(s) => slots.extend(s.iter().copied()),
                None => {
                    let covering: Vec<String> = overlapping(&index, p)
                        .iter()
                        .filter(|o| o.covers(p))
                        .map(show)
                        .collect();
                    let hint = if covering.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " (it is covered by {}: delete that to lift it)",
                            covering.join(", ")
                        )
                    };
                    bail!(
                        "{} is not in set {set_name}{hint}; nothing was changed. \
                         `xdpsieve set list {set_name}` shows what it holds",
                        show(p)
                    );
                }
            }
        }
        for &slot in &slots {
            self.remove_slot(&mut index, set, slot)?;
        }
        Ok(seen.len())
    }

    /// Removes the entry in `slot`: repaints the trie unless another entry of the set
    /// holds the same prefix, then frees the slot.
    fn remove_slot(&mut self, index: &mut Index, set: u16, slot: u32) -> Result<()> {
        let prefix = entry_prefix(&self.entries[slot as usize]);
        if index.remove_slot(&prefix, slot) {
            let remaining = overlapping(index, &prefix);
            let (classes, rules) = (&mut *self.classes, self.rules);
            self.trie
                .remove(u32::from(set), &prefix, &remaining, &mut |id, mask| {
                    write_class(classes, rules, id, mask)
                })
                .with_context(|| format!("removing {} from set {set}", show(&prefix)))?;
        }
        self.release(slot);
        Ok(())
    }

    /// Removes every entry of `set`: the set's bit is taken out of the whole trie in one
    /// pass over the groups in use, then the entries are freed. Returns how many there were.
    pub fn flush(&mut self, set: u16) -> Result<usize> {
        let slots: Vec<u32> = (0..self.used)
            .filter(|&s| {
                let e = &self.entries[s as usize];
                e.state != ENTRY_FREE && e.set == set
            })
            .collect();
        for v6 in [false, true] {
            let all = TriePrefix::new(
                if v6 {
                    std::net::Ipv6Addr::UNSPECIFIED.into()
                } else {
                    std::net::Ipv4Addr::UNSPECIFIED.into()
                },
                0,
            );
            let (classes, rules) = (&mut *self.classes, self.rules);
            self.trie
                .remove(u32::from(set), &all, &[], &mut |id, mask| {
                    write_class(classes, rules, id, mask)
                })
                .with_context(|| format!("emptying set {set}"))?;
        }
        for &slot in &slots {
            self.release(slot);
        }
        Ok(slots.len())
    }

    /// Removes the entries whose expiry is at or before `now_ns`; returns them.
    pub fn expire(&mut self, now_ns: u64) -> Result<Vec<(u16, TriePrefix)>> {
        let due: Vec<(u16, u32)> = (0..self.used)
            .filter_map(|s| {
                let e = &self.entries[s as usize];
                (e.state != ENTRY_FREE && e.expires_ns != 0 && e.expires_ns <= now_ns)
                    .then_some((e.set, s))
            })
            .collect();
        let mut sets: Vec<u16> = due.iter().map(|(set, _)| *set).collect();
        sets.sort_unstable();
        sets.dedup();
        let mut gone = Vec::with_capacity(due.len());
        for set in sets {
            let slots: Vec<u32> = due.iter().filter(|d| d.0 == set).map(|d| d.1).collect();
            let prefixes: Vec<TriePrefix> = slots
                .iter()
                .map(|&s| entry_prefix(&self.entries[s as usize]))
                .collect();
            let mut index = self.index(set, &prefixes);
            for (slot, prefix) in slots.into_iter().zip(prefixes) {
                self.remove_slot(&mut index, set, slot)?;
                gone.push((set, prefix));
            }
        }
        Ok(gone)
    }

    fn alloc(&mut self) -> u32 {
        match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.used += 1;
                self.used - 1
            }
        }
    }

    fn release(&mut self, slot: u32) {
        self.entries[slot as usize] = SetEntry {
            expires_ns: 0,
            set: 0,
            family: 0,
            prefix_len: 0,
            state: ENTRY_FREE,
            _pad: [0; 3],
            addr: [0; 16],
        };
        self.free.push(slot);
    }

    /// Writes `SET_META`: the groups, classes and entry slots now in use, and one more
    /// change (the recorder's expiry looks at the entry table again).
    pub fn finish(self) -> Result<()> {
        let mut used = self.used;
        while used > 0 && self.entries[used as usize - 1].state == ENTRY_FREE {
            used -= 1;
        }
        let masks = self.trie.class_masks();
        self.meta.groups_used = self.trie.groups_used();
        self.meta.classes_used = masks.len() as u32;
        self.meta.class_masks[..masks.len()].copy_from_slice(masks);
        self.meta.entries_used = used;
        self.meta.changes = self.meta.changes.wrapping_add(1);
        self.meta_map
            .set(0, *self.meta, 0)
            .context("writing SET_META")?;
        Ok(())
    }
}

/// Whether an entry came from the rule file (or its set file).
pub fn is_file_entry(entry: &SetEntry) -> bool {
    entry.state == ENTRY_FILE
}
