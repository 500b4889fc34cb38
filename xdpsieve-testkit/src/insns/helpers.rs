//! The kernel functions a verified XDP program calls, emulated. A call counts as one
//! instruction whatever the function does inside (the count is of eBPF instructions, not
//! of the kernel's own code).
//!
//! - lookups (`bpf_map_lookup_elem` and the per-type functions the verifier calls
//!   instead: `array_map_lookup_elem`, `trie_lookup_elem`, `htab_lru_percpu_map_lookup_elem`,
//!   ...): the real map's value (CPU 0's for per-CPU maps; LPM tries answer with the longest
//!   prefix), copied; `__htab_map_lookup_elem` (inlined hash lookups) returns an element
//!   whose value sits where the following code expects it;
//! - updates and deletes succeed and change nothing, neither the real map nor the copies;
//! - ring buffer output/reserve/submit/discard and perf event output succeed and write
//!   nowhere (a reservation is a private buffer);
//! - `bpf_xdp_get_buff_len`, `bpf_xdp_load_bytes`, `bpf_xdp_store_bytes` on the frame;
//! - `bpf_loop` (when not inlined): the callback runs, its instructions counted;
//! - clocks: a fixed clock that advances 1 µs per call; `bpf_get_prandom_u32`: a fixed
//!   sequence; `bpf_get_smp_processor_id`: 0.
//!
//! Anything else is an error that names the function.

use super::{
    Error,
    maps::RINGBUF,
    memory::{Kind, Memory, split},
};
use crate::insns::maps::MapState;

/// What the interpreter does with a call's result.
pub(super) enum Outcome {
    /// r0 = value.
    Ret(u64),
    /// `__htab_map_lookup_elem`: look the key up and return its element (value offset
    /// decided by the caller from the code).
    HtabElem { map: usize, key: Vec<u8> },
    /// `bpf_loop` (when the verifier did not inline it): call the callback at `pc`
    /// with (i, ctx) up to `nr` times, until it returns non-zero.
    Loop { nr: u64, pc: usize, ctx: u64 },
}

/// The emulated state helpers touch besides memory and maps.
pub(super) struct World {
    pub(super) clock: u64,
    pub(super) prandom: u64,
}

impl World {
    pub(super) fn new() -> World {
        World {
            clock: 1_000_000_000_000,
            prandom: 0x2545_f491_4f6c_dd1d,
        }
    }
}

/// The map an argument points to.
fn map_arg(mem: &Memory, a: u64) -> Result<usize, Error> {
    match mem.kind_of(a) {
        Some(Kind::Map(m)) if split(a).is_some_and(|(_, off)| off == 0) => Ok(m),
        _ => Err(Error::new(format!("argument {a:#x} is not a map pointer"))),
    }
}

fn key_arg(mem: &Memory, maps: &MapState<'_>, m: usize, a: u64) -> Result<Vec<u8>, Error> {
    Ok(mem.slice(a, maps.defs[m].info.key_size as usize)?.to_vec())
}

/// Calls `name` with r1-r5 = `args`.
pub(super) fn call(
    name: &str,
    args: [u64; 5],
    mem: &mut Memory,
    maps: &mut MapState<'_>,
    world: &mut World,
) -> Result<Outcome, Error> {
    let [r1, r2, r3, r4, _] = args;
    let ret = match name {
        "__htab_map_lookup_elem" => {
            let map = map_arg(mem, r1)?;
            let key = key_arg(mem, maps, map, r2)?;
            return Ok(Outcome::HtabElem { map, key });
        }
        n if n.ends_with("lookup_elem") && !n.contains("percpu_elem") => {
            let m = map_arg(mem, r1)?;
            let key = key_arg(mem, maps, m, r2)?;
            maps.lookup(mem, m, &key)?
        }
        n if n.ends_with("update_elem") || n.ends_with("delete_elem") => {
            map_arg(mem, r1)?;
            0
        }
        "bpf_ringbuf_output" | "bpf_xdp_event_output" | "bpf_perf_event_output" => 0,
        "bpf_ringbuf_reserve" => {
            let m = map_arg(mem, r1)?;
            if maps.defs[m].info.map_type != RINGBUF {
                return Err(Error::new(
                    "bpf_ringbuf_reserve on a map that is no ring buffer",
                ));
            }
            let region = mem.push(Kind::Bytes, vec![0u8; (r2 as usize).next_multiple_of(8)]);
            super::memory::addr(region, 0)
        }
        "bpf_ringbuf_submit" | "bpf_ringbuf_discard" => 0,
        "bpf_xdp_get_buff_len" => mem.frame_len as u64,
        "bpf_xdp_load_bytes" | "bpf_xdp_store_bytes" => {
            let (off, len) = (r2 as u32 as usize, r4 as u32 as usize);
            if off + len > mem.frame_len {
                (-i64::from(libc::EFAULT)) as u64
            } else {
                let pkt = mem.data_addr() + off as u64;
                if name == "bpf_xdp_load_bytes" {
                    let bytes = mem.slice(pkt, len)?.to_vec();
                    mem.slice_mut(r3, len)?.copy_from_slice(&bytes);
                } else {
                    let bytes = mem.slice(r3, len)?.to_vec();
                    mem.slice_mut(pkt, len)?.copy_from_slice(&bytes);
                }
                0
            }
        }
        "bpf_ktime_get_ns"
        | "bpf_ktime_get_boot_ns"
        | "bpf_ktime_get_coarse_ns"
        | "bpf_ktime_get_tai_ns" => {
            world.clock += 1_000;
            world.clock
        }
        "bpf_get_prandom_u32" | "bpf_user_rnd_u32" => {
            // xorshift64*: a fixed sequence.
            let mut x = world.prandom;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            world.prandom = x;
            u64::from((x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32)
        }
        "bpf_get_smp_processor_id" | "bpf_get_raw_cpu_id" => 0,
        "bpf_loop" => {
            let pc = mem
                .func_pc(r2)
                .ok_or_else(|| Error::new("bpf_loop's callback is not a function address"))?;
            if r4 != 0 {
                return Err(Error::new(format!("bpf_loop with flags {r4:#x}")));
            }
            return Ok(Outcome::Loop {
                nr: r1,
                pc,
                ctx: r3,
            });
        }
        _ => {
            return Err(Error::new(format!(
                "the program calls {name}, which the instruction counter does not emulate"
            )));
        }
    };
    Ok(Outcome::Ret(ret))
}
