//! Changing a running generation's sets: the entry table (`SET_ENTRIES`), the trie
//! (`SET_NODES`), the classes (`SET_CLASSES`) and the bookkeeping (`SET_META`) together.
//!
//! Each change is computed whole before anything is written (`trie::change`): one that
//! does not fit is refused and leaves every map as it was, trie space included. Then it
//! is written in an order that a process killed between any two writes leaves
//! recoverable:
//!
//! 1. `SET_META` with `in_change` set and every class the change uses (write-ahead);
//! 2. the new classes into `SET_CLASSES`, before anything refers to them;
//! 3. the trie's new groups (nothing the program reaches refers to them yet);
//! 4. the new entries (each entry's `state` last, so an entry is whole or free);
//! 5. the trie's root entries that change, one atomic store each: from here each address
//!    is judged by the new sets;
//! 6. the removed entries freed;
//! 7. after the program's walks in flight have ended (`commit::grace`), the groups the change
//!    unlinked go to the free list;
//! 8. `SET_META` with the new bookkeeping and `in_change` clear.
//!
//! The [`Editor`] (in `commit`) writes a change in that order. A process that finds
//! `in_change` set (the writer died) repairs the generation from the entry table before
//! anything else (`recover`). For each change, the entries of the set that overlap the
//! prefixes it touches are indexed in one pass over the table (`index`), so finding what a
//! removal repaints is a lookup, not a scan.

use std::collections::HashSet;

use anyhow::{Context as _, Result, bail};
use xdpsieve_common::{
    SetEntry,
    sets::{ENTRY_FILE, ENTRY_FREE, ENTRY_RUNTIME, FIRST_GROUP, ORIGIN_OPERATOR},
};

use super::{
    Generation,
    commit::{Editor, EntryWrites, Writes},
    index::{Index, build_index, overlapping},
    text::show,
};
use crate::configure::sets::{
    kernel::{entry_prefix, new_entry},
    trie::{TrieError, TriePrefix, change::Change},
};

/// Trie groups an add leaves free for later removals: a removal copies the groups on
/// the path it changes before the old ones can be freed, so a trie that adds filled to
/// the last group could refuse to lift a ban. 256 groups let a removal of 128 scattered
/// IPv4 addresses (or 18 IPv6 ones) through at any time; a small trie keeps a 16th.
const KEPT_FOR_REMOVALS: u32 = 256;

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

/// Says which set a refused change was for, and that nothing changed, once.
fn refused(error: TrieError, set_name: &str) -> anyhow::Error {
    anyhow::Error::new(error).context(format!(
        "set {set_name} was not changed (nothing was written)"
    ))
}

impl<'a> Editor<'a> {
    /// Starts changing `generation`, whose lock the caller holds; first repairs what a
    /// change that died part-way left (see the module doc).
    pub fn new(generation: &'a mut Generation) -> Result<Editor<'a>> {
        Editor::with_writes(generation, Writes::from_env())
    }

    /// For tests: as [`Editor::new`], with the repair (if one is due) stopped after its
    /// `n`th write.
    #[cfg(test)]
    pub fn new_stopping(generation: &'a mut Generation, n: u64) -> Result<Editor<'a>> {
        let writes = Writes {
            stop_after: Some(n),
            ..Writes::default()
        };
        Editor::with_writes(generation, writes)
    }

    fn with_writes(generation: &'a mut Generation, writes: Writes) -> Result<Editor<'a>> {
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
        let mut editor = Editor {
            nodes,
            entries: entries.as_mut_slice(),
            classes,
            rules,
            meta_map,
            meta,
            writes,
        };
        if editor.meta.in_change != 0 {
            super::recover::recover(&mut editor)
                .context("repairing the sets after a change that did not finish")?;
        }
        Ok(editor)
    }

    /// For tests: the next change stops after its `n`th write, as a killed process would.
    #[cfg(test)]
    pub fn stop_after(&mut self, n: u64) {
        self.writes = Writes {
            stop_after: Some(n),
            ..Writes::default()
        };
    }

    /// The writes made so far (for tests that stop a change at each of them).
    #[cfg(test)]
    pub fn writes_done(&self) -> u64 {
        self.writes.done
    }

    /// The entries in use (free ones included), as they are now.
    pub fn entries(&self) -> &[SetEntry] {
        &self.entries[..self.used() as usize]
    }

    fn used(&self) -> u32 {
        self.meta.entries_used.min(self.entries.len() as u32)
    }

    fn index(&self, set: u16, interest: &[TriePrefix]) -> Index {
        build_index(&self.entries[..self.used() as usize], set, interest)
    }

    /// Adds `prefixes` to `set` (named `set_name`) as runtime entries expiring at
    /// `expires_ns` (0: never). A prefix already added at run time gets the new expiry;
    /// one from the set's file stays as it is. When the table or the trie cannot take them
    /// all, nothing is changed.
    pub fn add(
        &mut self,
        set: u16,
        set_name: &str,
        prefixes: &[TriePrefix],
        expires_ns: u64,
    ) -> Result<Added> {
        self.add_as(set, set_name, prefixes, expires_ns, ORIGIN_OPERATOR)
    }

    /// As [`Editor::add`], the new entries marked as added by `origin` (`sets::ORIGIN_*`;
    /// renewed ones keep theirs).
    pub fn add_as(
        &mut self,
        set: u16,
        set_name: &str,
        prefixes: &[TriePrefix],
        expires_ns: u64,
        origin: u8,
    ) -> Result<Added> {
        let mut outcome = Added::default();
        let mut writes = EntryWrites::default();
        let mut new: Vec<TriePrefix> = Vec::new();
        let mut seen = HashSet::new();
        let index = self.index(set, prefixes);
        for p in prefixes {
            if !seen.insert(*p) {
                continue;
            }
            match index.get(p) {
                None => new.push(*p),
                Some(slots) => {
                    let runtime = slots
                        .iter()
                        .filter(|&&s| self.entries[s as usize].state == ENTRY_RUNTIME);
                    if runtime.clone().count() == slots.len() {
                        outcome.renewed += 1;
                        writes.renewed.extend(runtime.map(|&s| (s, expires_ns)));
                    } else {
                        outcome.from_file += 1;
                    }
                }
            }
        }
        let mut slots = self.free_slots();
        if new.len() > slots.len() {
            bail!(
                "set {set_name} was not changed: the set table is full ({} new entries asked \
                 for, room for {} of its {} slots). `xdpsieve reload` rebuilds the tables \
                 with room to grow",
                new.len(),
                slots.len(),
                self.entries.len()
            );
        }
        // Shorter first: a longer prefix inside one just added needs no group.
        new.sort_unstable_by_key(|p| p.len);
        let kept = KEPT_FOR_REMOVALS.min((self.nodes.len() as u32 - FIRST_GROUP) / 16);
        let mut change = Change::of(&*self.nodes, self.masks(), self.space(), kept);
        for p in &new {
            change
                .add(u32::from(set), p)
                .map_err(|e| refused(e, set_name))?;
        }
        let change = change.prepared();
        slots.truncate(new.len());
        writes.added = new
            .iter()
            .zip(slots)
            .map(|(p, slot)| {
                let entry = SetEntry {
                    origin,
                    ..new_entry(set, p, ENTRY_RUNTIME, expires_ns)
                };
                (slot, entry)
            })
            .collect();
        outcome.added = new.len();
        self.commit(change, &writes)?;
        Ok(outcome)
    }

    /// The slots a change may fill, lowest first: free ones below `entries_used`, then
    /// those never used.
    fn free_slots(&self) -> Vec<u32> {
        let used = self.used();
        (0..used)
            .filter(|&s| self.entries[s as usize].state == ENTRY_FREE)
            .chain(used..self.entries.len() as u32)
            .collect()
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
        self.remove_slots(set, set_name, &mut index, slots)?;
        Ok(seen.len())
    }

    /// Removes the entries in `slots` (of `set`, indexed in `index`) in one change.
    fn remove_slots(
        &mut self,
        set: u16,
        set_name: &str,
        index: &mut Index,
        slots: Vec<u32>,
    ) -> Result<()> {
        let mut change = Change::of(&*self.nodes, self.masks(), self.space(), 0);
        for &slot in &slots {
            let prefix = entry_prefix(&self.entries[slot as usize]);
            // Another entry of the set holding the same prefix keeps it painted.
            if index.remove_slot(&prefix, slot) {
                let remaining = overlapping(index, &prefix);
                change
                    .remove(u32::from(set), &prefix, &remaining)
                    .map_err(|e| refused(e, set_name))?;
            }
        }
        let change = change.prepared();
        let writes = EntryWrites {
            freed: slots,
            ..EntryWrites::default()
        };
        self.commit(change, &writes)
    }

    /// Removes every entry of `set`. Returns how many there were.
    pub fn flush(&mut self, set: u16, set_name: &str) -> Result<usize> {
        let slots: Vec<u32> = (0..self.used())
            .filter(|&s| {
                let e = &self.entries[s as usize];
                e.state != ENTRY_FREE && e.set == set
            })
            .collect();
        let mut change = Change::of(&*self.nodes, self.masks(), self.space(), 0);
        for v6 in [false, true] {
            change
                .remove(u32::from(set), &TriePrefix::everything(v6), &[])
                .map_err(|e| refused(e, set_name))?;
        }
        let change = change.prepared();
        let count = slots.len();
        let writes = EntryWrites {
            freed: slots,
            ..EntryWrites::default()
        };
        self.commit(change, &writes)?;
        Ok(count)
    }

    /// Removes the entries whose expiry is at or before `now_ns`, in one change; returns
    /// them. Writes nothing when none is due.
    pub fn expire(&mut self, now_ns: u64) -> Result<Vec<(u16, TriePrefix)>> {
        let due: Vec<(u16, u32)> = (0..self.used())
            .filter_map(|s| {
                let e = &self.entries[s as usize];
                (e.state != ENTRY_FREE && e.expires_ns != 0 && e.expires_ns <= now_ns)
                    .then_some((e.set, s))
            })
            .collect();
        if due.is_empty() {
            return Ok(Vec::new());
        }
        let mut sets: Vec<u16> = due.iter().map(|(set, _)| *set).collect();
        sets.sort_unstable();
        sets.dedup();
        let mut change = Change::of(&*self.nodes, self.masks(), self.space(), 0);
        let mut gone = Vec::with_capacity(due.len());
        for set in sets {
            let slots: Vec<u32> = due.iter().filter(|d| d.0 == set).map(|d| d.1).collect();
            let prefixes: Vec<TriePrefix> = slots
                .iter()
                .map(|&s| entry_prefix(&self.entries[s as usize]))
                .collect();
            let mut index = build_index(&self.entries[..self.used() as usize], set, &prefixes);
            for (slot, prefix) in slots.into_iter().zip(prefixes) {
                if index.remove_slot(&prefix, slot) {
                    let remaining = overlapping(&index, &prefix);
                    change
                        .remove(u32::from(set), &prefix, &remaining)
                        .map_err(|e| refused(e, &format!("#{set}")))?;
                }
                gone.push((set, prefix));
            }
        }
        let change = change.prepared();
        let writes = EntryWrites {
            freed: due.iter().map(|d| d.1).collect(),
            ..EntryWrites::default()
        };
        self.commit(change, &writes)?;
        Ok(gone)
    }
}

/// Whether an entry came from the rule file (or its set file).
pub fn is_file_entry(entry: &SetEntry) -> bool {
    entry.state == ENTRY_FILE
}

/// Where an entry came from, as `set list` and `top` say it: `file`, `runtime` (`set
/// add`) or `ban` (a limit rule's automatic ban).
pub fn origin_name(entry: &SetEntry) -> &'static str {
    if is_file_entry(entry) {
        "file"
    } else if entry.origin == xdpsieve_common::sets::ORIGIN_BAN {
        "ban"
    } else {
        "runtime"
    }
}
