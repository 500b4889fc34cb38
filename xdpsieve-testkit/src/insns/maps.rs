//! The maps as the emulated program sees them: real contents, read lazily through the bpf
//! syscall on the first lookup of each key, into private copies the program may write
//! (the real maps are never written). Per-CPU maps show CPU 0's value.
//!
//! Map pointers are symbolic regions ([`Kind::Map`]). The verifier inlines array and
//! per-CPU array lookups into arithmetic on the map pointer (`r1 = map; r1 += <offset of
//! the values in struct bpf_array>; ...`): the first immediate added to a map pointer is
//! taken as that offset, and reads past it go to element `(offset - it) / elem_size`
//! (per-CPU arrays: an 8-byte pointer per element, to CPU 0's value). Hash lookups become
//! a call to `__htab_map_lookup_elem`, which returns an element whose value sits at the
//! offset the next instructions add (read from the code, see `exec`). An array of maps
//! holds a `struct bpf_map *` per element: an inlined lookup reads it, and gets the inner
//! map's object (the inner maps are opened with the program's, see [`MapDef::inner`]).

use std::{collections::HashMap, os::fd::AsFd as _};

use super::{
    Error,
    memory::{Kind, Memory, addr, split},
    sys::{self, MapInfo},
};

pub(super) const ARRAY: u32 = 2;
pub(super) const PERCPU_HASH: u32 = 5;
pub(super) const PERCPU_ARRAY: u32 = 6;
pub(super) const LRU_PERCPU_HASH: u32 = 10;
pub(super) const ARRAY_OF_MAPS: u32 = 12;
pub(super) const RINGBUF: u32 = 27;

/// A map of the program, and how many values a lookup returns.
pub(super) struct MapDef {
    pub(super) info: MapInfo,
    /// Bytes the syscall's lookup writes: the value, or one 8-byte-aligned value per
    /// possible CPU.
    lookup_len: usize,
    /// An array of maps: the map in each slot, by index among the maps (None: empty).
    pub(super) inner: Vec<Option<usize>>,
}

impl MapDef {
    pub(super) fn open(id: u32, cpus: usize) -> Result<MapDef, Error> {
        let info = sys::map_info(id)?;
        let vs = info.value_size as usize;
        let lookup_len = if is_per_cpu(info.map_type) {
            vs.next_multiple_of(8) * cpus
        } else {
            vs
        };
        Ok(MapDef {
            info,
            lookup_len,
            inner: Vec::new(),
        })
    }

    /// Opens the maps in the slots of every array of maps among `defs` and appends them
    /// (an inlined lookup of such an array yields its inner map's object).
    pub(super) fn open_inner(defs: &mut Vec<MapDef>, cpus: usize) -> Result<(), Error> {
        for outer in 0..defs.len() {
            if defs[outer].info.map_type != ARRAY_OF_MAPS {
                continue;
            }
            let mut inner = Vec::new();
            for slot in 0..defs[outer].info.max_entries {
                let mut id = [0u8; 4];
                let found = sys::lookup(defs[outer].info.fd.as_fd(), &slot.to_le_bytes(), &mut id)
                    .map_err(|e| {
                        Error::new(format!("slot {slot} of {}: {e}", defs[outer].describe()))
                    })?;
                inner.push(if found {
                    defs.push(MapDef::open(u32::from_le_bytes(id), cpus)?);
                    Some(defs.len() - 1)
                } else {
                    None
                });
            }
            defs[outer].inner = inner;
        }
        Ok(())
    }

    /// Array element stride (`round_up(value_size, 8)`).
    fn elem_size(&self) -> usize {
        (self.info.value_size as usize).next_multiple_of(8)
    }

    pub(super) fn describe(&self) -> String {
        format!(
            "map {} ({:?}, type {}, {} entries)",
            self.info.id, self.info.name, self.info.map_type, self.info.max_entries
        )
    }
}

fn is_per_cpu(map_type: u32) -> bool {
    matches!(map_type, PERCPU_HASH | PERCPU_ARRAY | LRU_PERCPU_HASH)
}

/// A private copy of a value: (region, offset of the value in it).
type ValueCopy = (usize, usize);

/// What a read of a map object resolves to.
pub(super) enum Resolved {
    /// An address in a byte region (an array element's private copy).
    Addr(u64),
    /// A value to load: the per-CPU pointer of a per-CPU array element.
    Value(u64),
}

/// The maps during one run: the object regions, the value area offsets learned from the
/// code, the private copies by key.
pub(super) struct MapState<'p> {
    pub(super) defs: &'p [MapDef],
    objects: Vec<usize>,
    value_off: Vec<Option<usize>>,
    /// (map, key) -> (region, offset of the value in it), or None when absent.
    copies: HashMap<(usize, Vec<u8>), Option<ValueCopy>>,
}

impl<'p> MapState<'p> {
    pub(super) fn new(defs: &'p [MapDef], mem: &mut Memory) -> MapState<'p> {
        let objects = (0..defs.len())
            .map(|m| mem.push(Kind::Map(m), Vec::new()))
            .collect();
        MapState {
            defs,
            objects,
            value_off: vec![None; defs.len()],
            copies: HashMap::new(),
        }
    }

    /// The map with this id, by index.
    pub(super) fn by_id(&self, id: u32) -> Result<usize, Error> {
        self.defs
            .iter()
            .position(|d| d.info.id == id)
            .ok_or_else(|| Error::new(format!("map id {id} is not among the program's maps")))
    }

    /// The address of map `m`'s object.
    pub(super) fn object_addr(&self, m: usize) -> u64 {
        addr(self.objects[m], 0)
    }

    /// Called on `dst += imm` when dst is a map object's address at offset 0: the first
    /// such immediate is where the values start.
    pub(super) fn learn_value_off(&mut self, m: usize, imm: i32) {
        if self.value_off[m].is_none() && imm > 0 {
            self.value_off[m] = Some(imm as usize);
        }
    }

    /// The private copy of `key`'s value in map `m`, read from the real map on first use:
    /// (region, offset of the value), with `header` bytes before the value (a hash
    /// element's), or None when the key is absent.
    pub(super) fn value(
        &mut self,
        mem: &mut Memory,
        m: usize,
        key: &[u8],
        header: usize,
    ) -> Result<Option<(usize, usize)>, Error> {
        if let Some(&hit) = self.copies.get(&(m, key.to_vec())) {
            return Ok(hit);
        }
        let def = &self.defs[m];
        let mut buf = vec![0u8; def.lookup_len.max(1)];
        let found = sys::lookup(def.info.fd.as_fd(), key, &mut buf).map_err(|e| {
            Error::new(format!(
                "looking up key {key:02x?} in {}: {e}",
                def.describe()
            ))
        })?;
        let copy = if found {
            let vs = def.info.value_size as usize;
            let mut bytes = vec![0u8; header + vs.next_multiple_of(8)];
            bytes[header..header + vs].copy_from_slice(&buf[..vs]);
            Some((mem.push(Kind::Bytes, bytes), header))
        } else {
            None
        };
        self.copies.insert((m, key.to_vec()), copy);
        Ok(copy)
    }

    /// The value address for a lookup helper (`*_lookup_elem`), 0 when absent.
    pub(super) fn lookup(&mut self, mem: &mut Memory, m: usize, key: &[u8]) -> Result<u64, Error> {
        Ok(self
            .value(mem, m, key, 0)?
            .map_or(0, |(region, off)| addr(region, off)))
    }

    /// The element of an array map (for `BPF_PSEUDO_MAP_VALUE` and inlined lookups).
    fn array_elem(&mut self, mem: &mut Memory, m: usize, idx: usize) -> Result<usize, Error> {
        let key = (idx as u32).to_le_bytes();
        self.value(mem, m, &key, 0)?
            .map(|(region, _)| region)
            .ok_or_else(|| {
                Error::new(format!(
                    "element {idx} of {} is absent (out of range)",
                    self.defs[m].describe()
                ))
            })
    }

    /// `BPF_PSEUDO_MAP_VALUE`: the address `off` bytes into element 0 of array map `m`.
    pub(super) fn map_value_addr(
        &mut self,
        mem: &mut Memory,
        m: usize,
        off: usize,
    ) -> Result<u64, Error> {
        let region = self.array_elem(mem, m, 0)?;
        Ok(addr(region, off))
    }

    /// What an access at `a`, inside map object region `m`, resolves to.
    pub(super) fn resolve(
        &mut self,
        mem: &mut Memory,
        m: usize,
        a: u64,
        width: usize,
    ) -> Result<Resolved, Error> {
        let (_, off) = split(a).expect("a map object address");
        let def = &self.defs[m];
        let Some(v) = self.value_off[m].filter(|&v| off >= v) else {
            return Err(Error::new(format!(
                "access at offset {off} of the object of {} (struct bpf_map fields are not \
                 emulated; values start at {:?})",
                def.describe(),
                self.value_off[m]
            )));
        };
        match def.info.map_type {
            ARRAY => {
                let esz = def.elem_size();
                let (idx, within) = ((off - v) / esz, (off - v) % esz);
                let region = self.array_elem(mem, m, idx)?;
                Ok(Resolved::Addr(addr(region, within)))
            }
            PERCPU_ARRAY if width == 8 && (off - v) % 8 == 0 => {
                let region = self.array_elem(mem, m, (off - v) / 8)?;
                Ok(Resolved::Value(addr(region, 0)))
            }
            ARRAY_OF_MAPS if width == 8 && (off - v) % 8 == 0 => {
                // An empty slot reads as a null pointer, as in the kernel.
                let slot = def.inner.get((off - v) / 8).copied().flatten();
                Ok(Resolved::Value(slot.map_or(0, |i| self.object_addr(i))))
            }
            _ => Err(Error::new(format!(
                "access of {width} bytes at offset {off} of the object of {}: only array and \
                 per-CPU array lookups are inlined",
                def.describe()
            ))),
        }
    }
}
