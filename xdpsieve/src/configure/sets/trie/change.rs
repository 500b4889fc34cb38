//! One change of a set trie, computed aside and then put in force.
//!
//! A [`Change`] reads the trie in force (`base`, never written while the change is made)
//! and keeps what it changes to itself: a copy of the root groups, and *private* groups
//! that no entry the program can reach refers to yet. Painting a prefix copies the groups
//! on its path that really change (copy on write), edits private groups in place, and
//! folds a group whose 256 entries end up equal into a single entry of its parent. A
//! shared group the change replaces is *garbage*: still readable by a walk that started
//! before the change was published, so it is freed only after that ([`Change::reclaim`]).
//!
//! Nothing is written to the kernel until the caller has the whole change: a change that
//! does not fit (no groups, no classes) fails here and leaves the maps as they were. Then
//! [`Change::write_groups`] fills the private groups (unreachable, so invisible),
//! [`Change::publish`] stores each root entry that differs with one atomic write, and
//! [`Change::reclaim`] links the garbage into the free list once the caller has waited
//! out the walks in flight.
//!
//! The same code builds a new generation's trie in memory ([`Change::building`]): there
//! the base is empty and every group is private.

mod commit;

use std::collections::HashMap;

use xdpsieve_common::{
    SetGroup,
    sets::{FIRST_GROUP, FREE_GROUP, GROUP_ENTRIES, MAX_CLASSES, POINTER},
};

use super::{Groups, Trie, TrieError, TriePrefix, root};

/// What a paint does to a class's set mask.
#[derive(Clone, Copy)]
enum Op {
    Add(u64),
    Remove(u64),
}

impl Op {
    fn apply(self, mask: u64) -> u64 {
        match self {
            Op::Add(bit) => mask | bit,
            Op::Remove(bit) => mask & !bit,
        }
    }
}

/// Where new groups come from: groups this change gave back, the free list of the trie in
/// force, then groups never used.
struct Alloc {
    /// Private groups this change no longer needs (never published: reusable at once).
    released: Vec<u32>,
    /// The rest of the free list in force, and its length.
    free_head: u32,
    free_left: u32,
    /// The next group never used.
    high: u32,
    /// `SET_NODES`' size; `None` while building in memory.
    capacity: Option<u32>,
    /// Groups that must stay available after this change (room kept for removals).
    floor: u32,
}

impl Alloc {
    fn available(&self) -> u32 {
        let never_used = self
            .capacity
            .map_or(u32::MAX, |c| c.saturating_sub(self.high));
        (self.released.len() as u32)
            .saturating_add(self.free_left)
            .saturating_add(never_used)
    }
}

/// The state of a trie's free groups, as `SET_META` records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Space {
    pub groups_used: u32,
    pub groups_high: u32,
    pub free_head: u32,
}

/// A change of a trie (see the module doc).
pub struct Change<'a> {
    base: &'a [SetGroup],
    roots: Vec<SetGroup>,
    /// Private groups' contents, and per group id its slot there (+1; 0: not private).
    slab: Vec<SetGroup>,
    slot_of: Vec<u32>,
    spare_slots: Vec<u32>,
    alloc: Alloc,
    /// Shared groups this change unlinks.
    garbage: Vec<u32>,
    masks: Vec<u64>,
    class_of: HashMap<u64, u32>,
    classes_before: usize,
}

const EMPTY: SetGroup = SetGroup {
    entries: [0; GROUP_ENTRIES],
};

impl Groups for Change<'_> {
    fn group(&self, id: u32) -> &SetGroup {
        if id < FIRST_GROUP {
            return &self.roots[id as usize];
        }
        match self.slot_of.get(id as usize) {
            Some(&slot) if slot != 0 => &self.slab[slot as usize - 1],
            _ => &self.base[id as usize],
        }
    }
}

impl Change<'static> {
    /// A new trie in memory, with the classes of `masks` (class 0 first: no set).
    pub fn building(masks: &[u64]) -> Change<'static> {
        Change::with(
            &[],
            vec![EMPTY; FIRST_GROUP as usize],
            masks,
            Alloc {
                released: Vec::new(),
                free_head: 0,
                free_left: 0,
                high: FIRST_GROUP,
                capacity: None,
                floor: 0,
            },
        )
    }

    /// The trie built: groups from 0 to the highest used, the free ones among them listed.
    pub fn into_trie(mut self) -> Trie {
        let high = self.alloc.high as usize;
        let mut groups = std::mem::take(&mut self.roots);
        groups.resize(high, EMPTY);
        for (id, &slot) in self.slot_of.iter().enumerate() {
            if slot != 0 {
                groups[id] = self.slab[slot as usize - 1];
            }
        }
        let mut free = std::mem::take(&mut self.alloc.released);
        free.sort_unstable();
        Trie::from_parts(groups, self.masks, free)
    }
}

impl<'a> Change<'a> {
    fn with(base: &'a [SetGroup], roots: Vec<SetGroup>, masks: &[u64], alloc: Alloc) -> Self {
        let masks = if masks.is_empty() {
            vec![0]
        } else {
            masks.to_vec()
        };
        let class_of = masks
            .iter()
            .enumerate()
            .map(|(i, &m)| (m, i as u32))
            .collect();
        Change {
            base,
            roots,
            slab: Vec::new(),
            slot_of: Vec::new(),
            spare_slots: Vec::new(),
            alloc,
            garbage: Vec::new(),
            classes_before: masks.len(),
            masks,
            class_of,
        }
    }

    /// A change of the trie in force: `groups` is the whole of `SET_NODES`, `masks` the
    /// classes in use, `space` its free groups. The change may use all free groups but
    /// `floor` (what removals may need later).
    pub fn of(groups: &'a [SetGroup], masks: &[u64], space: Space, floor: u32) -> Self {
        let roots = groups[..FIRST_GROUP as usize].to_vec();
        let capacity = groups.len() as u32;
        let high = space.groups_high.clamp(FIRST_GROUP, capacity);
        Change::with(
            groups,
            roots,
            masks,
            Alloc {
                released: Vec::new(),
                free_head: space.free_head,
                free_left: high.saturating_sub(space.groups_used),
                high,
                capacity: Some(capacity),
                floor,
            },
        )
    }

    /// Adds `prefix` to set `set` (0..64).
    pub fn add(&mut self, set: u32, prefix: &TriePrefix) -> Result<(), TrieError> {
        self.paint(Op::Add(1 << set), prefix)
    }

    /// Removes `prefix` from set `set`: takes the set's bit out of the prefix's addresses,
    /// then puts it back under `remaining`, the set's other prefixes that overlap it. A
    /// remaining prefix covering the whole of `prefix` leaves it as it was.
    pub fn remove(
        &mut self,
        set: u32,
        prefix: &TriePrefix,
        remaining: &[TriePrefix],
    ) -> Result<(), TrieError> {
        if remaining.iter().any(|r| r.covers(prefix)) {
            return Ok(());
        }
        let bit = 1u64 << set;
        self.paint(Op::Remove(bit), prefix)?;
        for r in remaining.iter().filter(|r| prefix.covers(r)) {
            self.paint(Op::Add(bit), r)?;
        }
        Ok(())
    }

    /// Class id to set mask, with the classes this change made.
    pub fn class_masks(&self) -> &[u64] {
        &self.masks
    }

    /// The classes this change made, as (id, mask).
    pub fn new_classes(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        (self.classes_before..self.masks.len()).map(|i| (i as u32, self.masks[i]))
    }

    /// Whether the change unlinks groups the program may still be reading.
    pub fn has_garbage(&self) -> bool {
        !self.garbage.is_empty()
    }

    fn paint(&mut self, op: Op, p: &TriePrefix) -> Result<(), TrieError> {
        let base = root(p.v6) as usize;
        let (b0, b1) = (usize::from(p.bytes[0]), usize::from(p.bytes[1]));
        let slots: Vec<(usize, usize)> = if p.len <= 8 {
            let groups = 1usize << (8 - p.len);
            (b0..b0 + groups)
                .flat_map(|g| (0..GROUP_ENTRIES).map(move |i| (base + g, i)))
                .collect()
        } else if p.len <= 16 {
            (b1..b1 + (1usize << (16 - p.len)))
                .map(|i| (base + b0, i))
                .collect()
        } else {
            let (g, i) = (base + b0, b1);
            let new = self.apply(self.roots[g].entries[i], op, p, 2)?;
            self.roots[g].entries[i] = new;
            return Ok(());
        };
        for (g, i) in slots {
            let new = self.paint_all(self.roots[g].entries[i], op)?;
            self.roots[g].entries[i] = new;
        }
        Ok(())
    }

    /// The new value of `entry`, which covers the addresses whose first `fixed` bytes are
    /// its path, after painting `p` (longer than that, or the whole entry is painted).
    fn apply(
        &mut self,
        entry: u32,
        op: Op,
        p: &TriePrefix,
        fixed: usize,
    ) -> Result<u32, TrieError> {
        if usize::from(p.len) <= 8 * fixed {
            return self.paint_all(entry, op);
        }
        self.edit(entry, op, Some((p, fixed)))
    }

    /// The new value of `entry` with every address under it painted.
    fn paint_all(&mut self, entry: u32, op: Op) -> Result<u32, TrieError> {
        if entry & POINTER == 0 {
            let mask = self.masks[entry as usize];
            return self.class(op.apply(mask));
        }
        self.edit(entry, op, None)
    }

    /// Edits the group under `entry` (made from it when it is a class): every child with
    /// `at` None, else the children under `p`, whose group consumes address byte `fixed`.
    fn edit(
        &mut self,
        entry: u32,
        op: Op,
        at: Option<(&TriePrefix, usize)>,
    ) -> Result<u32, TrieError> {
        if entry & POINTER == 0
            && op.apply(self.masks[entry as usize]) == self.masks[entry as usize]
        {
            return Ok(entry); // nothing under it changes
        }
        let (range, deeper) = match at {
            None => (0..GROUP_ENTRIES, None),
            Some((p, fixed)) => {
                let rem = usize::from(p.len) - 8 * fixed;
                let byte = usize::from(p.bytes[fixed]);
                if rem <= 8 {
                    (byte..byte + (1 << (8 - rem)), None)
                } else {
                    (byte..byte + 1, Some((p, fixed + 1)))
                }
            }
        };
        let child = |change: &mut Self, c: u32| match deeper {
            Some((p, fixed)) => change.apply(c, op, p, fixed),
            None => change.paint_all(c, op),
        };
        let group = entry & !POINTER;
        if entry & POINTER != 0 && self.is_private(group) {
            // Ours alone: edit in place.
            let mut leaf_written = false;
            for i in range {
                let old = self.group(group).entries[i];
                let new = child(self, old)?;
                self.private_mut(group).entries[i] = new;
                leaf_written |= new & POINTER == 0;
            }
            if leaf_written && let Some(leaf) = uniform(self.group(group)) {
                self.release(group);
                return Ok(leaf);
            }
            return Ok(entry);
        }
        let mut content = if entry & POINTER != 0 {
            *self.group(group)
        } else {
            SetGroup {
                entries: [entry; GROUP_ENTRIES],
            }
        };
        let mut changed = false;
        for i in range {
            let new = child(self, content.entries[i])?;
            changed |= new != content.entries[i];
            content.entries[i] = new;
        }
        if !changed {
            return Ok(entry);
        }
        if entry & POINTER != 0 {
            self.garbage.push(group); // shared: replaced by a copy (or folded away)
        }
        self.place(content)
    }

    /// An entry for `content`: its class when every entry is that class, else a pointer
    /// to a new private group holding it.
    fn place(&mut self, content: SetGroup) -> Result<u32, TrieError> {
        if let Some(leaf) = uniform(&content) {
            return Ok(leaf);
        }
        let id = self.take_group()?;
        let slot = match self.spare_slots.pop() {
            Some(slot) => {
                self.slab[slot as usize] = content;
                slot
            }
            None => {
                self.slab.push(content);
                self.slab.len() as u32 - 1
            }
        };
        if self.slot_of.len() <= id as usize {
            self.slot_of.resize(id as usize + 1, 0);
        }
        self.slot_of[id as usize] = slot + 1;
        Ok(POINTER | id)
    }

    fn is_private(&self, id: u32) -> bool {
        self.slot_of.get(id as usize).is_some_and(|&s| s != 0)
    }

    fn private_mut(&mut self, id: u32) -> &mut SetGroup {
        let slot = self.slot_of[id as usize] as usize - 1;
        &mut self.slab[slot]
    }

    /// Gives a private group back (never published, so reusable at once).
    fn release(&mut self, id: u32) {
        let slot = std::mem::take(&mut self.slot_of[id as usize]);
        self.spare_slots.push(slot - 1);
        self.alloc.released.push(id);
    }

    fn take_group(&mut self) -> Result<u32, TrieError> {
        let alloc = &mut self.alloc;
        if let Some(capacity) = alloc.capacity
            && alloc.available() <= alloc.floor
        {
            return Err(TrieError::GroupsFull { capacity });
        }
        if let Some(id) = alloc.released.pop() {
            return Ok(id);
        }
        if alloc.free_left > 0 {
            let id = alloc.free_head;
            let group = self
                .base
                .get(id as usize)
                .filter(|g| id >= FIRST_GROUP && g.entries[1] == FREE_GROUP)
                .ok_or(TrieError::FreeListDamaged { group: id })?;
            alloc.free_head = group.entries[0];
            alloc.free_left -= 1;
            return Ok(id);
        }
        alloc.high += 1;
        Ok(alloc.high - 1)
    }

    fn class(&mut self, mask: u64) -> Result<u32, TrieError> {
        if let Some(&id) = self.class_of.get(&mask) {
            return Ok(id);
        }
        if self.masks.len() >= MAX_CLASSES as usize {
            return Err(TrieError::ClassesFull);
        }
        let id = self.masks.len() as u32;
        self.masks.push(mask);
        self.class_of.insert(mask, id);
        Ok(id)
    }
}

/// The class every entry of `group` is, if they all are the same class.
fn uniform(group: &SetGroup) -> Option<u32> {
    let first = group.entries[0];
    (first & POINTER == 0 && group.entries.iter().all(|&e| e == first)).then_some(first)
}
