//! The emulated address space. Every region (the xdp_buff context, the packet, each stack
//! frame, each map value copy, each map object) gets its own 4 GiB window: an address is
//! `(region + 1) << 32 | offset`. Pointer arithmetic and comparisons are then plain integer
//! operations, as in the kernel, and a NULL pointer is 0. The verifier has already proved
//! every access in bounds; an access outside its region here is an emulator bug, reported.
//!
//! Kernel objects the xlated code reads through (the xdp_buff's `rxq` and its `dev`) are
//! opaque regions whose loads are answered by width: see [`Kind::Rxq`].

use super::Error;

/// Headroom before the packet data (`XDP_PACKET_HEADROOM`), as `BPF_PROG_TEST_RUN` gives.
pub(super) const HEADROOM: usize = 256;
/// Tailroom after the frame (enough for what the verifier allows past data_end: nothing).
const TAILROOM: usize = 64;
/// Bytes per stack frame.
pub(super) const STACK: usize = 512;
/// The interface index `BPF_PROG_TEST_RUN` reports: loopback.
pub(super) const TEST_RUN_IFINDEX: u32 = 1;

/// What a region is; how its bytes are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// `struct xdp_buff`: data, data_end, data_meta, data_hard_start, rxq, txq (8 bytes
    /// each), frame_sz, flags.
    Ctx,
    Packet,
    Stack,
    /// `struct xdp_rxq_info`, opaque: an 8-byte load is its `dev` pointer, a 4-byte load
    /// its `queue_index` (0). The offsets are the kernel build's; only the widths differ.
    Rxq,
    /// `struct net_device`, opaque: a 4-byte load is its `ifindex` (loopback's, 1).
    Dev,
    /// A map object (`struct bpf_map`, `bpf_array`); its reads go to the map model.
    Map(usize),
    /// A per-CPU variable (`&pcpu_hot.cpu_number` and the like): reads 0 (CPU 0).
    PerCpuVar,
    /// Plain private bytes: map value copies, hash elements, ring buffer reservations.
    Bytes,
    /// Functions, for callbacks (`ld_imm64` of `BPF_PSEUDO_FUNC`): the offset is the
    /// function's first instruction. Not readable.
    Func,
}

pub(super) struct Region {
    pub(super) kind: Kind,
    pub(super) bytes: Vec<u8>,
}

/// Every region of one run.
pub(super) struct Memory {
    pub(super) regions: Vec<Region>,
    pub(super) frame_len: usize,
}

pub(super) fn addr(region: usize, off: usize) -> u64 {
    ((region as u64 + 1) << 32) | off as u64
}

/// (region, offset) of an address, if it is one.
pub(super) fn split(addr: u64) -> Option<(usize, usize)> {
    let region = (addr >> 32).checked_sub(1)?;
    Some((region as usize, (addr & 0xffff_ffff) as usize))
}

pub(super) const CTX: usize = 0;
pub(super) const PACKET: usize = 1;
const RXQ: usize = 2;
const DEV: usize = 3;
const PERCPU_VAR: usize = 4;
const FUNC: usize = 5;

impl Memory {
    /// The context, the packet holding `frame`, and the opaque kernel objects.
    pub(super) fn new(frame: &[u8]) -> Memory {
        let mut packet = vec![0u8; HEADROOM + frame.len() + TAILROOM];
        packet[HEADROOM..HEADROOM + frame.len()].copy_from_slice(frame);
        let data = addr(PACKET, HEADROOM);
        let mut ctx = vec![0u8; 64];
        for (at, v) in [
            (0, data),
            (8, data + frame.len() as u64),
            (16, data),
            (24, addr(PACKET, 0)),
            (32, addr(RXQ, 0)),
        ] {
            ctx[at..at + 8].copy_from_slice(&v.to_le_bytes());
        }
        ctx[48..52].copy_from_slice(&4096u32.to_le_bytes());
        let regions = vec![
            Region {
                kind: Kind::Ctx,
                bytes: ctx,
            },
            Region {
                kind: Kind::Packet,
                bytes: packet,
            },
            Region {
                kind: Kind::Rxq,
                bytes: Vec::new(),
            },
            Region {
                kind: Kind::Dev,
                bytes: Vec::new(),
            },
            Region {
                kind: Kind::PerCpuVar,
                bytes: Vec::new(),
            },
            Region {
                kind: Kind::Func,
                bytes: Vec::new(),
            },
        ];
        Memory {
            regions,
            frame_len: frame.len(),
        }
    }

    pub(super) fn ctx_addr(&self) -> u64 {
        addr(CTX, 0)
    }

    pub(super) fn data_addr(&self) -> u64 {
        addr(PACKET, HEADROOM)
    }

    pub(super) fn percpu_var_addr(&self, off: u64) -> u64 {
        addr(PERCPU_VAR, (off & 0xffff) as usize)
    }

    /// The address standing for the function starting at instruction `pc`.
    pub(super) fn func_addr(&self, pc: usize) -> u64 {
        addr(FUNC, pc)
    }

    /// The instruction a function address stands for.
    pub(super) fn func_pc(&self, a: u64) -> Option<usize> {
        split(a).filter(|&(r, _)| r == FUNC).map(|(_, pc)| pc)
    }

    /// A new region; returns its index.
    pub(super) fn push(&mut self, kind: Kind, bytes: Vec<u8>) -> usize {
        self.regions.push(Region { kind, bytes });
        self.regions.len() - 1
    }

    /// The kind of region an address falls in.
    pub(super) fn kind_of(&self, a: u64) -> Option<Kind> {
        split(a)
            .and_then(|(r, _)| self.regions.get(r))
            .map(|r| r.kind)
    }

    /// A width-typed answer for the opaque kernel objects, or None for byte regions.
    pub(super) fn opaque_load(&self, region: usize, width: usize) -> Option<u64> {
        match self.regions[region].kind {
            Kind::Rxq if width == 8 => Some(addr(DEV, 0)),
            Kind::Rxq => Some(0),
            Kind::Dev if width == 4 => Some(u64::from(TEST_RUN_IFINDEX)),
            Kind::Dev | Kind::PerCpuVar => Some(0),
            _ => None,
        }
    }

    /// The bytes at `a`, `len` long, in a byte region.
    pub(super) fn slice(&self, a: u64, len: usize) -> Result<&[u8], Error> {
        let (r, off) =
            split(a).ok_or_else(|| Error::new(format!("access to non-pointer {a:#x}")))?;
        self.regions
            .get(r)
            .and_then(|reg| reg.bytes.get(off..off + len))
            .ok_or_else(|| self.out_of_bounds(a, len))
    }

    pub(super) fn slice_mut(&mut self, a: u64, len: usize) -> Result<&mut [u8], Error> {
        let err = self.out_of_bounds(a, len);
        let (r, off) =
            split(a).ok_or_else(|| Error::new(format!("access to non-pointer {a:#x}")))?;
        self.regions
            .get_mut(r)
            .and_then(|reg| reg.bytes.get_mut(off..off + len))
            .ok_or(err)
    }

    fn out_of_bounds(&self, a: u64, len: usize) -> Error {
        match split(a).and_then(|(r, off)| Some((self.regions.get(r)?, off))) {
            Some((reg, off)) => Error::new(format!(
                "access of {len} bytes at offset {off} of a {:?} region of {} bytes",
                reg.kind,
                reg.bytes.len()
            )),
            None => Error::new(format!("access of {len} bytes at {a:#x}, in no region")),
        }
    }
}

/// Little-endian value of up to 8 bytes.
pub(super) fn read_le(bytes: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b[..bytes.len()].copy_from_slice(bytes);
    u64::from_le_bytes(b)
}

/// Stores the low `out.len()` bytes of `v`.
pub(super) fn write_le(out: &mut [u8], v: u64) {
    let n = out.len();
    out.copy_from_slice(&v.to_le_bytes()[..n]);
}
