//! The set maps of a generation: what a new generation's maps are filled with, and the
//! memory mapping through which userspace writes and reads them.
//!
//! `SET_NODES` (the trie's groups) and `SET_ENTRIES` (what each set holds) are
//! `BPF_F_MMAPABLE` arrays: aya 0.14 has no batch map operations, and a million entries
//! written one `bpf()` call each would take seconds; mapped, they are a memory copy.
//! `SET_CLASSES` (what each class allows, read by the program), `SET_RULES` (the rules
//! naming each set, from which a live change makes a new class) and `SET_META` (how much
//! of each table is in use) are small and written by ordinary updates.

use std::{
    os::fd::{AsFd as _, AsRawFd as _},
    ptr::NonNull,
};

use anyhow::{Context as _, Result, bail};
use aya::{
    Ebpf, Pod,
    maps::{Array, MapData},
};
use xdpsieve_common::{
    RULE_WORDS, RuleBits, SetClass, SetEntry, SetGroup, SetMeta,
    sets::{ANY_SLOT, ENTRY_FILE, ENTRY_FREE, ENTRY_RUNTIME, FREE_GROUP, MAX_CLASSES, MAX_SETS},
};

use super::{
    SetSpec,
    trie::{Trie, TrieError, TriePrefix},
};

/// An entry added at run time (`xdpsieve set add`), carried into a new generation by a
/// reload or a takeover, by set name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeEntry {
    pub set: String,
    pub prefix: TriePrefix,
    /// `CLOCK_BOOTTIME` ns when it lapses; 0: never.
    pub expires_ns: u64,
    /// One of `sets::ORIGIN_*` (a ban stays a ban).
    pub origin: u8,
}

/// A memory mapping of an mmapable array map, as a slice of its values.
pub struct Mapped<T> {
    ptr: NonNull<T>,
    len: usize,
    bytes: usize,
}

impl<T: Pod> Mapped<T> {
    /// Maps `map` (read and write); `name` is for errors.
    pub fn new(map: &MapData, name: &str) -> Result<Mapped<T>> {
        let info = map
            .info()
            .with_context(|| format!("reading {name}'s info"))?;
        if info.value_size() as usize != size_of::<T>() {
            bail!(
                "{name} holds values of {} bytes, not {}: the pinned firewall was built by \
                 another version of xdpsieve (stop it with `xdpsieve stop` and start again)",
                info.value_size(),
                size_of::<T>()
            );
        }
        let len = info.max_entries() as usize;
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
        let bytes = (len * size_of::<T>()).div_ceil(page) * page;
        // SAFETY: maps a BPF map fd we hold; the kernel checks size and flags.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                map.fd().as_fd().as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("mapping {name} ({bytes} bytes) into memory"));
        }
        let ptr = NonNull::new(ptr.cast::<T>()).context("mmap returned null")?;
        Ok(Mapped { ptr, len, bytes })
    }

    pub fn as_slice(&self) -> &[T] {
        // SAFETY: the mapping holds `len` values of T, a Pod (any bit pattern is valid);
        // it lives as long as self.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The values. The program may read them concurrently: writers that it can observe use
    /// atomic stores (the trie does).
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        // SAFETY: as in `as_slice`, and `&mut self` makes this the only Rust reference.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> Drop for Mapped<T> {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `new` mapped.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.bytes) };
    }
}

/// The rules a class allows: those with no condition on the direction, and those naming
/// any set of `mask` there. `rules` is `SET_RULES` (per set, then [`ANY_SLOT`]).
pub fn class_rules(mask: u64, rules: &[SetClass]) -> SetClass {
    let mut class = rules.get(ANY_SLOT as usize).copied().unwrap_or(SetClass {
        src: RuleBits::EMPTY,
        dst: RuleBits::EMPTY,
    });
    for (set, r) in rules.iter().enumerate().take(MAX_SETS as usize) {
        if mask & (1 << set) != 0 {
            for w in 0..RULE_WORDS {
                class.src.words[w] |= r.src.words[w];
                class.dst.words[w] |= r.dst.words[w];
            }
        }
    }
    class
}

/// The prefix an entry holds.
pub fn entry_prefix(entry: &SetEntry) -> TriePrefix {
    let addr = if entry.family == xdpsieve_common::family::IPV6 {
        std::net::IpAddr::from(entry.addr)
    } else {
        std::net::IpAddr::from([entry.addr[0], entry.addr[1], entry.addr[2], entry.addr[3]])
    };
    TriePrefix::new(addr, entry.prefix_len)
}

/// An entry for `prefix` in set `set`.
pub fn new_entry(set: u16, prefix: &TriePrefix, state: u8, expires_ns: u64) -> SetEntry {
    SetEntry {
        expires_ns,
        set,
        family: if prefix.v6 {
            xdpsieve_common::family::IPV6
        } else {
            xdpsieve_common::family::IPV4
        },
        prefix_len: prefix.len,
        state,
        origin: xdpsieve_common::sets::ORIGIN_OPERATOR,
        _pad: [0; 2],
        addr: prefix.bytes,
    }
}

/// Room for live changes beyond what a generation is built with: at least this many
/// groups (1 KiB each) and entries (32 bytes each), or a quarter more. An IPv4 address
/// banned where no prefix was takes up to two groups, so 24,576 groups (24 MiB) hold
/// 10,000 scattered bans with room to spare; only rule files that declare sets pay it, and
/// a reload sizes the maps anew.
const SPARE_GROUPS: u32 = 24_576;
const SPARE_ENTRIES: u32 = 65536;

/// What a new generation's set maps hold.
pub struct Built {
    pub trie: Trie,
    pub entries: Vec<SetEntry>,
    /// `SET_RULES`: per set, then [`ANY_SLOT`].
    pub rules: Vec<SetClass>,
}

impl Built {
    /// The set maps of a generation with `sets` (the rule file's, in order), the rules
    /// using them (`rules`, `SET_RULES`: see `classify::Tables::set_rules`) and the runtime
    /// entries carried over. `None` when the rule file declares no set. Also returns the
    /// runtime entries whose set is gone.
    pub fn for_sets(
        sets: &[SetSpec],
        rules: Vec<SetClass>,
        runtime: &[RuntimeEntry],
    ) -> Result<(Option<Built>, Vec<RuntimeEntry>), TrieError> {
        if sets.is_empty() {
            return Ok((None, runtime.to_vec()));
        }
        let mut entries = Vec::new();
        for (index, set) in sets.iter().enumerate() {
            for p in &set.prefixes {
                let prefix = TriePrefix::new(p.addr, p.prefix_len);
                entries.push(new_entry(index as u16, &prefix, ENTRY_FILE, 0));
            }
        }
        let mut orphans = Vec::new();
        for r in runtime {
            match sets.iter().position(|s| s.name == r.set) {
                Some(index) => entries.push(SetEntry {
                    origin: r.origin,
                    ..new_entry(index as u16, &r.prefix, ENTRY_RUNTIME, r.expires_ns)
                }),
                None => orphans.push(r.clone()),
            }
        }
        Ok((Some(Built::new(entries, rules)?), orphans))
    }

    /// The trie of `entries`; `rules` as in [`class_rules`].
    pub fn new(entries: Vec<SetEntry>, rules: Vec<SetClass>) -> Result<Built, TrieError> {
        let prefixes: Vec<(u32, TriePrefix)> = entries
            .iter()
            .filter(|e| e.state != ENTRY_FREE)
            .map(|e| (u32::from(e.set), entry_prefix(e)))
            .collect();
        Ok(Built {
            trie: Trie::build(&prefixes)?,
            entries,
            rules,
        })
    }

    /// Groups `SET_NODES` is created with.
    pub fn node_capacity(&self) -> u32 {
        let used = self.trie.groups().len() as u32;
        used.saturating_add((used / 4).max(SPARE_GROUPS))
    }

    /// Entries `SET_ENTRIES` is created with.
    pub fn entry_capacity(&self) -> u32 {
        let n = self.entries.len() as u32;
        n.saturating_add((n / 4).max(SPARE_ENTRIES))
    }

    /// Kernel memory of the set maps, in bytes (their values; the kernel adds a little
    /// per map).
    pub fn memory_bytes(&self) -> u64 {
        u64::from(self.node_capacity()) * size_of::<SetGroup>() as u64
            + u64::from(self.entry_capacity()) * size_of::<SetEntry>() as u64
            + u64::from(MAX_CLASSES + MAX_SETS + 1) * size_of::<SetClass>() as u64
            + size_of::<SetMeta>() as u64
    }

    /// Writes the trie's groups into `slots` (which hold them all) and links the groups
    /// the build folded away into the free list (see `SetMeta::free_head`); its head.
    pub fn write_groups(&self, slots: &mut [SetGroup]) -> u32 {
        let groups = self.trie.groups();
        slots[..groups.len()].copy_from_slice(groups);
        let mut free_head = 0;
        for &id in self.trie.free_groups() {
            slots[id as usize].entries[0] = free_head;
            slots[id as usize].entries[1] = FREE_GROUP;
            free_head = id;
        }
        free_head
    }

    /// The set's bookkeeping as a fresh generation starts it, with the free list that
    /// [`Built::write_groups`] made.
    pub fn meta(&self, free_head: u32) -> SetMeta {
        let masks = self.trie.class_masks();
        let mut meta = SetMeta {
            groups_used: self.trie.groups_used(),
            classes_used: masks.len() as u32,
            entries_used: self.entries.len() as u32,
            changes: 0,
            groups_high: self.trie.groups().len() as u32,
            free_head,
            in_change: 0,
            _pad: 0,
            class_masks: [0; MAX_CLASSES as usize],
        };
        meta.class_masks[..masks.len()].copy_from_slice(masks);
        meta
    }

    /// Fills a loaded (not yet attached) generation's set maps, created with
    /// [`Built::node_capacity`] and [`Built::entry_capacity`].
    pub fn write(&self, ebpf: &mut Ebpf) -> Result<()> {
        let groups = self.trie.groups();
        let mut nodes = Mapped::<SetGroup>::new(map_data(ebpf, "SET_NODES")?, "SET_NODES")?;
        let slots = nodes.as_mut_slice();
        if slots.len() < groups.len() {
            bail!(
                "SET_NODES has {} groups, {} needed",
                slots.len(),
                groups.len()
            );
        }
        let free_head = self.write_groups(slots);
        let mut table = Mapped::<SetEntry>::new(map_data(ebpf, "SET_ENTRIES")?, "SET_ENTRIES")?;
        let slots = table.as_mut_slice();
        if slots.len() < self.entries.len() {
            bail!(
                "SET_ENTRIES has {} slots, {} needed",
                slots.len(),
                self.entries.len()
            );
        }
        slots[..self.entries.len()].copy_from_slice(&self.entries);
        let masks = self.trie.class_masks();
        {
            let mut classes = array::<SetClass>(ebpf, "SET_CLASSES")?;
            for (id, &mask) in masks.iter().enumerate() {
                classes
                    .set(id as u32, class_rules(mask, &self.rules), 0)
                    .context("writing SET_CLASSES")?;
            }
        }
        {
            let mut rules = array::<SetClass>(ebpf, "SET_RULES")?;
            for (slot, r) in self.rules.iter().enumerate() {
                rules.set(slot as u32, r, 0).context("writing SET_RULES")?;
            }
        }
        array::<SetMeta>(ebpf, "SET_META")?
            .set(0, self.meta(free_head), 0)
            .context("writing SET_META")?;
        Ok(())
    }
}

fn map_data<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a MapData> {
    match ebpf.map(name) {
        Some(aya::maps::Map::Array(data)) => Ok(data),
        Some(_) => bail!("{name} is not an array map"),
        None => bail!("the program has no {name} map"),
    }
}

fn array<'a, V: Pod>(ebpf: &'a mut Ebpf, name: &str) -> Result<Array<&'a mut MapData, V>> {
    let map = ebpf
        .map_mut(name)
        .with_context(|| format!("the program has no {name} map"))?;
    Array::try_from(map).with_context(|| format!("opening {name}"))
}
