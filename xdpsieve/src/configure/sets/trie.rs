//! The set trie: every set of a rule generation in one multibit trie that the XDP program
//! walks one address byte per level (see `xdpsieve_common::sets` for the layout).
//!
//! Why this structure: the kernel's `BPF_MAP_TYPE_LPM_TRIE` walks one node per prefix bit
//! it branches on and gets slower as it grows (the issue quotes 37 ns at 1 prefix, 665 ns at
//! 1M). Sets only need membership, not longest-prefix next hops, so a fixed-stride trie in
//! the manner of DPDK's rte_lpm (DIR-24-8 and its IPv6 variant) fits: a lookup is one array
//! read per address byte *on the path to the longest prefix there*, at most 3 for IPv4 and
//! 15 for IPv6, whatever the set's size. A leaf is a *class*, the combination of sets that
//! cover the address, so any number of sets (up to 64) costs one walk, and overlapping
//! prefixes are free. A hash table per prefix length with binary search over the lengths
//! (Waldvogel) needs ~5 hash lookups for IPv4 and more for IPv6, each dearer than a read of
//! an array the verifier inlines.
//!
//! Changes are *paints*: adding a prefix to set `s` ORs bit `s` into the class of every
//! address it covers, expanding a class entry into a group only where the prefix is longer
//! than the entry's span and the class actually changes. Removing ANDs the bit out and
//! repaints the set's remaining prefixes inside. Every change is planned first (a dry run
//! that counts the groups and classes it needs), so a change that cannot fit changes nothing.
//! Writes are atomic per entry, and a new group is filled before the pointer to it is
//! published, so the program, reading concurrently, sees each address either before or
//! after the change. Groups emptied by removals are not reclaimed until the next reload.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::atomic::{AtomicU32, Ordering},
};

use xdpsieve_common::{
    SetGroup,
    sets::{FIRST_GROUP, GROUP_ENTRIES, MAX_CLASSES, POINTER, V4_ROOT, V6_ROOT},
};

/// A prefix as the trie walks it: the address's bytes in network order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TriePrefix {
    pub v6: bool,
    pub bytes: [u8; 16],
    pub len: u8,
}

impl TriePrefix {
    /// The prefix of `len` bits of `addr`; host bits are cleared.
    pub fn new(addr: IpAddr, len: u8) -> TriePrefix {
        let (v6, mut bytes, max) = match addr {
            IpAddr::V4(a) => {
                let mut b = [0u8; 16];
                b[..4].copy_from_slice(&a.octets());
                (false, b, 32)
            }
            IpAddr::V6(a) => (true, a.octets(), 128),
        };
        let len = len.min(max);
        for (i, byte) in bytes.iter_mut().enumerate() {
            let bit = 8 * i as u32;
            if bit >= u32::from(len) {
                *byte = 0;
            } else if bit + 8 > u32::from(len) {
                *byte &= 0xffu8 << (bit + 8 - u32::from(len));
            }
        }
        TriePrefix { v6, bytes, len }
    }

    pub fn addr(&self) -> IpAddr {
        if self.v6 {
            IpAddr::from(self.bytes)
        } else {
            IpAddr::from([self.bytes[0], self.bytes[1], self.bytes[2], self.bytes[3]])
        }
    }

    /// Whether `self` covers every address of `other`.
    pub fn covers(&self, other: &TriePrefix) -> bool {
        self.v6 == other.v6
            && self.len <= other.len
            && TriePrefix::new(other.addr(), self.len).bytes == self.bytes
    }
}

/// Why a change does not fit.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TrieError {
    #[error(
        "the set trie is full ({capacity} groups of 1 KiB); nothing was changed. \
         `xdpsieve reload` rebuilds the sets with room to grow"
    )]
    GroupsFull { capacity: u32 },
    #[error(
        "the sets would need more than {MAX_CLASSES} distinct combinations of overlapping \
         sets; nothing was changed"
    )]
    ClassesFull,
}

/// Where the groups live: a growable vector while a generation is built, or the mapped
/// `SET_NODES` map of a running one (fixed capacity, read by the program concurrently).
pub enum Groups<'a> {
    Owned(Vec<SetGroup>),
    Mapped(&'a mut [SetGroup]),
}

const EMPTY_GROUP: SetGroup = SetGroup {
    entries: [0; GROUP_ENTRIES],
};

impl Groups<'_> {
    fn slice(&self) -> &[SetGroup] {
        match self {
            Groups::Owned(v) => v,
            Groups::Mapped(s) => s,
        }
    }

    fn entry(&self, group: u32, index: usize) -> &AtomicU32 {
        let g = &self.slice()[group as usize];
        // SAFETY: AtomicU32 has u32's size and alignment; the program reads the same
        // memory concurrently when mapped, hence atomic accesses.
        unsafe { AtomicU32::from_ptr(g.entries.as_ptr().add(index).cast_mut()) }
    }

    fn capacity(&self) -> Option<u32> {
        match self {
            Groups::Owned(_) => None,
            Groups::Mapped(s) => Some(s.len() as u32),
        }
    }
}

/// The trie and its classes.
pub struct Trie<'a> {
    groups: Groups<'a>,
    /// Groups in use, roots included.
    used: u32,
    /// Class id to set mask; class 0 is the empty mask.
    masks: Vec<u64>,
    class_of: HashMap<u64, u32>,
}

/// What a change does to a class's set mask.
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

/// What a planned change needs.
#[derive(Default)]
struct Plan {
    groups: u32,
    masks: Vec<u64>,
}

impl Trie<'static> {
    /// An empty trie in a vector that grows as prefixes need groups.
    pub fn new() -> Trie<'static> {
        Trie {
            groups: Groups::Owned(vec![EMPTY_GROUP; FIRST_GROUP as usize]),
            used: FIRST_GROUP,
            masks: vec![0],
            class_of: HashMap::from([(0, 0)]),
        }
    }

    /// The trie of `entries` (set index, prefix). Shorter prefixes go first, so a longer
    /// one inside a shorter one of the same set needs no group.
    pub fn build(entries: &[(u32, TriePrefix)]) -> Result<Trie<'static>, TrieError> {
        let mut order: Vec<&(u32, TriePrefix)> = entries.iter().collect();
        order.sort_unstable_by_key(|(set, p)| (p.len, *set));
        let mut trie = Trie::new();
        for (set, prefix) in order {
            trie.add(*set, prefix, &mut |_, _| Ok(())).map_err(|e| {
                match e.downcast::<TrieError>() {
                    Ok(e) => e,
                    Err(_) => TrieError::ClassesFull,
                }
            })?;
        }
        Ok(trie)
    }
}

impl Default for Trie<'static> {
    fn default() -> Self {
        Trie::new()
    }
}

impl<'a> Trie<'a> {
    /// The trie of a running generation: its mapped groups, how many are in use and the
    /// class masks (from `SET_META`).
    pub fn open(groups: &'a mut [SetGroup], used: u32, masks: &[u64]) -> Trie<'a> {
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
        Trie {
            groups: Groups::Mapped(groups),
            used: used.max(FIRST_GROUP),
            masks,
            class_of,
        }
    }

    /// Groups in use, roots included (1 KiB each).
    pub fn groups_used(&self) -> u32 {
        self.used
    }

    /// The groups in use (for copying into a new generation's map).
    pub fn groups(&self) -> &[SetGroup] {
        &self.groups.slice()[..self.used as usize]
    }

    /// Class id to set mask.
    pub fn class_masks(&self) -> &[u64] {
        &self.masks
    }

    /// The mask of the sets holding `addr`.
    pub fn lookup(&self, addr: IpAddr) -> u64 {
        let p = TriePrefix::new(
            addr,
            match addr {
                IpAddr::V4(_) => 32,
                IpAddr::V6(_) => 128,
            },
        );
        let mut group = root(p.v6) + u32::from(p.bytes[0]);
        let mut level = 1;
        loop {
            let e = self
                .groups
                .entry(group, usize::from(p.bytes[level]))
                .load(Ordering::Relaxed);
            if e & POINTER == 0 {
                return self.masks.get(e as usize).copied().unwrap_or(0);
            }
            group = e & !POINTER;
            level += 1;
            if level >= if p.v6 { 16 } else { 4 } {
                return 0;
            }
        }
    }

    /// Adds `prefix` to set `set` (0..64). Classes it creates are passed to `new_class`
    /// before any entry refers to them (a running generation writes `SET_CLASSES` there).
    pub fn add(
        &mut self,
        set: u32,
        prefix: &TriePrefix,
        new_class: &mut dyn FnMut(u32, u64) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        self.change(Op::Add(1 << set), prefix, new_class)
    }

    /// Removes `prefix` from set `set`: takes the set's bit out of the prefix's addresses,
    /// then puts it back under `remaining`, the set's other prefixes that overlap it (the
    /// caller finds them in the entry table). A remaining prefix covering the whole of
    /// `prefix` leaves it as it was.
    pub fn remove(
        &mut self,
        set: u32,
        prefix: &TriePrefix,
        remaining: &[TriePrefix],
        new_class: &mut dyn FnMut(u32, u64) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        if remaining.iter().any(|r| r.covers(prefix)) {
            return Ok(());
        }
        let bit = 1u64 << set;
        // Plan the removal and the repaints together: the repaints need no groups the
        // removal did not keep, but they may need classes.
        let mut plan = Plan::default();
        self.walk(Op::Remove(bit), prefix, Some(&mut plan));
        let inner: Vec<&TriePrefix> = remaining.iter().filter(|r| prefix.covers(r)).collect();
        for r in &inner {
            self.walk(Op::Add(bit), r, Some(&mut plan));
        }
        self.check(&plan)?;
        self.intern_all(&plan.masks, new_class)?;
        self.walk(Op::Remove(bit), prefix, None);
        for r in inner {
            self.walk(Op::Add(bit), r, None);
        }
        Ok(())
    }

    fn change(
        &mut self,
        op: Op,
        prefix: &TriePrefix,
        new_class: &mut dyn FnMut(u32, u64) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let mut plan = Plan::default();
        self.walk(op, prefix, Some(&mut plan));
        self.check(&plan)?;
        self.intern_all(&plan.masks, new_class)?;
        self.walk(op, prefix, None);
        Ok(())
    }

    fn check(&self, plan: &Plan) -> Result<(), TrieError> {
        if let Some(capacity) = self.groups.capacity()
            && self.used + plan.groups > capacity
        {
            return Err(TrieError::GroupsFull { capacity });
        }
        let mut new: Vec<u64> = plan
            .masks
            .iter()
            .copied()
            .filter(|m| !self.class_of.contains_key(m))
            .collect();
        new.sort_unstable();
        new.dedup();
        if self.masks.len() + new.len() > MAX_CLASSES as usize {
            return Err(TrieError::ClassesFull);
        }
        Ok(())
    }

    fn intern_all(
        &mut self,
        masks: &[u64],
        new_class: &mut dyn FnMut(u32, u64) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        for &m in masks {
            if !self.class_of.contains_key(&m) {
                let id = self.masks.len() as u32;
                new_class(id, m)?;
                self.masks.push(m);
                self.class_of.insert(m, id);
            }
        }
        Ok(())
    }

    /// Applies `op` to the addresses of `prefix`, or with `plan`, only records the groups
    /// and masks applying it would need.
    fn walk(&mut self, op: Op, prefix: &TriePrefix, mut plan: Option<&mut Plan>) {
        let base = root(prefix.v6);
        if prefix.len <= 8 {
            let first = u32::from(prefix.bytes[0]);
            for g in first..first + (1 << (8 - prefix.len)) {
                for i in 0..GROUP_ENTRIES {
                    self.paint_slot(op, base + g, i, plan.as_deref_mut());
                }
            }
            return;
        }
        self.descend(op, prefix, base + u32::from(prefix.bytes[0]), 1, plan);
    }

    /// At `group`, which consumes byte `level` of the address.
    fn descend(
        &mut self,
        op: Op,
        prefix: &TriePrefix,
        group: u32,
        level: usize,
        mut plan: Option<&mut Plan>,
    ) {
        let rem = u32::from(prefix.len) - 8 * level as u32;
        let byte = usize::from(prefix.bytes[level]);
        if rem <= 8 {
            for i in byte..byte + (1 << (8 - rem)) {
                self.paint_slot(op, group, i, plan.as_deref_mut());
            }
            return;
        }
        let e = self.groups.entry(group, byte).load(Ordering::Relaxed);
        if e & POINTER != 0 {
            self.descend(op, prefix, e & !POINTER, level + 1, plan);
            return;
        }
        let mask = self.masks[e as usize];
        if op.apply(mask) == mask {
            return; // already as the change wants it: no group needed
        }
        match plan {
            Some(plan) => {
                // A new group below; everything under it gets the changed mask or keeps
                // the old one.
                plan.groups += (u32::from(prefix.len).div_ceil(8) - 1) - level as u32;
                plan.masks.push(op.apply(mask));
            }
            None => {
                let new = self.alloc(e);
                self.descend(op, prefix, new, level + 1, None);
                self.groups
                    .entry(group, byte)
                    .store(POINTER | new, Ordering::Release);
            }
        }
    }

    /// Applies `op` to everything under one entry.
    fn paint_slot(&mut self, op: Op, group: u32, index: usize, plan: Option<&mut Plan>) {
        let e = self.groups.entry(group, index).load(Ordering::Relaxed);
        if e & POINTER != 0 {
            let child = e & !POINTER;
            let mut plan = plan;
            for i in 0..GROUP_ENTRIES {
                self.paint_slot(op, child, i, plan.as_deref_mut());
            }
            return;
        }
        let mask = self.masks[e as usize];
        let changed = op.apply(mask);
        if changed == mask {
            return;
        }
        match plan {
            Some(plan) => plan.masks.push(changed),
            None => {
                let class = self.class_of[&changed];
                self.groups
                    .entry(group, index)
                    .store(class, Ordering::Release);
            }
        }
    }

    /// A new group with every entry `class`. Capacity was checked by the plan.
    fn alloc(&mut self, class: u32) -> u32 {
        let g = self.used;
        self.used += 1;
        let fill = SetGroup {
            entries: [class; GROUP_ENTRIES],
        };
        match &mut self.groups {
            Groups::Owned(v) => v.push(fill),
            Groups::Mapped(s) => {
                for (i, _) in fill.entries.iter().enumerate() {
                    // SAFETY: as in `Groups::entry`; not yet reachable by the program.
                    unsafe {
                        AtomicU32::from_ptr(s[g as usize].entries.as_mut_ptr().add(i))
                            .store(class, Ordering::Relaxed)
                    };
                }
            }
        }
        g
    }
}

fn root(v6: bool) -> u32 {
    if v6 { V6_ROOT } else { V4_ROOT }
}

#[cfg(test)]
mod tests;
