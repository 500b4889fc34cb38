//! The capture filter's interpreter: runs the classic BPF programs libpcap compiles from
//! tcpdump expressions when they are not translated to eBPF (see the parent module).
//!
//! The programs are in this program's read-only data (`FILTER_PROGRAMS`), written by the
//! loader next to `CONFIG`. One instruction is one `bpf_loop` iteration (Linux 5.17+): the
//! verifier checks the loop body once, whatever the program, so any program libpcap
//! produces (up to `BPF_MAXINSNS`) runs without a verifier limit of its own. Userspace
//! checks every jump lands inside its program and the last instruction returns
//! (`configure::capture_filter`). Classic BPF jumps only forward, so a run ends within
//! `MAX_INSNS` steps, except libpcap's `protochain` loop (a backward `ja`): the loop stops
//! after `STEP_BUDGET` steps, and a run that has not returned by then rejects.
//!
//! The machine follows libpcap's `bpf_filter`: a load past the end of the frame, a division
//! or modulo by zero, an unknown instruction reject the packet; `len` is the frame's whole
//! length, XDP fragments included (packet loads read through them too).

use core::ffi::c_void;

use aya_ebpf::{
    bindings::xdp_md,
    helpers::generated::{bpf_loop, bpf_xdp_load_bytes},
    macros::map,
    maps::PerCpuArray,
};
use xdpsieve_common::{FilterInsn, filter};

/// The filter programs, set by userspace before load (read-only data).
#[unsafe(no_mangle)]
static FILTER_PROGRAMS: [FilterInsn; filter::TABLE_INSNS] =
    [FilterInsn::REJECT; filter::TABLE_INSNS];

/// The classic machine's registers, per CPU. In map memory rather than on the stack:
/// `M[k]` is indexed by a value the verifier cannot know, which map memory allows.
#[repr(C)]
pub(super) struct Machine {
    a: u32,
    x: u32,
    /// Index of the next instruction in `FILTER_PROGRAMS`.
    pc: u32,
    /// The program's return value once it returned: 0 rejects.
    result: u32,
    frame_len: u32,
    _pad: u32,
    mem: [u32; filter::MEM_WORDS],
}

#[map]
static FILTER_MACHINE: PerCpuArray<Machine> = PerCpuArray::with_max_entries(1, 0);

/// What the loop body gets: the packet and the machine.
#[repr(C)]
struct Run {
    xdp: *mut xdp_md,
    machine: *mut Machine,
}

/// Whether the program in `slot` of `FILTER_PROGRAMS` selects the frame.
#[inline(always)]
pub(super) fn selects(xdp: *mut xdp_md, slot: u32, frame_len: u32) -> bool {
    let Some(machine) = FILTER_MACHINE.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: machine points to this CPU's value of a map we own, for this program run.
    unsafe {
        let m = &mut *machine;
        m.a = 0;
        m.x = 0;
        m.pc = slot * filter::MAX_INSNS;
        m.result = 0;
        m.frame_len = frame_len;
        m.mem = [0; filter::MEM_WORDS];
        let mut run = Run { xdp, machine };
        let body = step as *const () as *mut c_void;
        let data = core::ptr::addr_of_mut!(run).cast();
        bpf_loop(filter::STEP_BUDGET, body, data, 0);
        (*machine).result != 0
    }
}

#[inline(always)]
fn programs() -> &'static [FilterInsn; filter::TABLE_INSNS] {
    // As `config()`: the compiler must not fold in the default table.
    let address: *const [FilterInsn; filter::TABLE_INSNS] = &FILTER_PROGRAMS;
    // SAFETY: reads a local; the pointer it yields is the table's, valid for 'static.
    unsafe { &*core::ptr::read_volatile(&address) }
}

// Classic BPF opcode fields (linux/filter.h, pcap/bpf.h).
const CLASS_LD: u16 = 0x00;
const CLASS_LDX: u16 = 0x01;
const CLASS_ST: u16 = 0x02;
const CLASS_STX: u16 = 0x03;
const CLASS_ALU: u16 = 0x04;
const CLASS_JMP: u16 = 0x05;
const CLASS_RET: u16 = 0x06;
const CLASS_MISC: u16 = 0x07;
const SIZE_W: u16 = 0x00;
const SIZE_H: u16 = 0x08;
const SIZE_B: u16 = 0x10;
const MODE_IMM: u16 = 0x00;
const MODE_ABS: u16 = 0x20;
const MODE_IND: u16 = 0x40;
const MODE_MEM: u16 = 0x60;
const MODE_LEN: u16 = 0x80;
const MODE_MSH: u16 = 0xa0;
const SRC_X: u16 = 0x08;
const RVAL_A: u16 = 0x10;
const RVAL_X: u16 = 0x08;
const MISC_TXA: u16 = 0x80;

/// Continue the loop / stop it (`bpf_loop`'s callback contract).
const CONTINUE: i64 = 0;
const STOP: i64 = 1;

/// One instruction. `index` is bpf_loop's; the machine keeps its own program counter.
#[inline(never)]
unsafe extern "C" fn step(_index: u32, data: *mut c_void) -> i64 {
    // SAFETY: data is the `Run` that `selects` passed, alive for the whole loop.
    let run = unsafe { &*(data as *const Run) };
    // SAFETY: the machine is this CPU's map value (see `selects`).
    let m = unsafe { &mut *run.machine };
    let Some(&insn) = programs().get(m.pc as usize) else {
        return reject(m);
    };
    let k = insn.k;
    let mut next = m.pc + 1;
    match insn.code & 0x07 {
        CLASS_LD => {
            let value = match insn.code & 0xe0 {
                MODE_IMM => Some(k),
                MODE_ABS => load(run.xdp, k, insn.code & 0x18),
                MODE_IND => match m.x.checked_add(k) {
                    Some(offset) => load(run.xdp, offset, insn.code & 0x18),
                    None => None,
                },
                MODE_MEM => Some(m.mem[(k & 15) as usize]),
                MODE_LEN => Some(m.frame_len),
                _ => None,
            };
            match value {
                Some(v) => m.a = v,
                None => return reject(m),
            }
        }
        CLASS_LDX => {
            let value = match insn.code & 0xe0 {
                MODE_IMM => Some(k),
                MODE_MEM => Some(m.mem[(k & 15) as usize]),
                MODE_LEN => Some(m.frame_len),
                MODE_MSH => load(run.xdp, k, SIZE_B).map(|b| (b & 0xf) << 2),
                _ => None,
            };
            match value {
                Some(v) => m.x = v,
                None => return reject(m),
            }
        }
        CLASS_ST => m.mem[(k & 15) as usize] = m.a,
        CLASS_STX => m.mem[(k & 15) as usize] = m.x,
        CLASS_ALU => {
            let src = if insn.code & SRC_X != 0 { m.x } else { k };
            let a = m.a;
            m.a = match insn.code & 0xf0 {
                0x00 => a.wrapping_add(src),
                0x10 => a.wrapping_sub(src),
                0x20 => a.wrapping_mul(src),
                0x30 if src != 0 => a / src,
                0x40 => a | src,
                0x50 => a & src,
                // libpcap's bpf_filter: a shift by 32 or more gives 0.
                0x60 => a.checked_shl(src).unwrap_or(0),
                0x70 => a.checked_shr(src).unwrap_or(0),
                0x80 => a.wrapping_neg(),
                0x90 if src != 0 => a % src,
                0xa0 => a ^ src,
                // Division or modulo by zero, or an unknown operation.
                _ => return reject(m),
            };
        }
        CLASS_JMP => {
            let src = if insn.code & SRC_X != 0 { m.x } else { k };
            let taken = match insn.code & 0xf0 {
                0x00 => {
                    next = next.wrapping_add(k);
                    None
                }
                0x10 => Some(m.a == src),
                0x20 => Some(m.a > src),
                0x30 => Some(m.a >= src),
                0x40 => Some(m.a & src != 0),
                _ => return reject(m),
            };
            match taken {
                Some(true) => next += u32::from(insn.jt),
                Some(false) => next += u32::from(insn.jf),
                None => {}
            }
        }
        CLASS_RET => {
            m.result = match insn.code & 0x18 {
                RVAL_A => m.a,
                RVAL_X => m.x,
                _ => k,
            };
            return STOP;
        }
        CLASS_MISC => {
            if insn.code & 0xf8 == MISC_TXA {
                m.a = m.x;
            } else {
                m.x = m.a;
            }
        }
        _ => return reject(m),
    }
    m.pc = next;
    CONTINUE
}

#[inline(always)]
fn reject(m: &mut Machine) -> i64 {
    m.result = 0;
    STOP
}

/// A big-endian load of the size `size` (`SIZE_*`) at `offset`; `None` past the end.
#[inline(always)]
fn load(xdp: *mut xdp_md, offset: u32, size: u16) -> Option<u32> {
    let mut buf = [0u8; 4];
    let len: u32 = match size {
        SIZE_W => 4,
        SIZE_H => 2,
        SIZE_B => 1,
        _ => return None,
    };
    // SAFETY: xdp is the program's context; buf has room for `len` (at most 4) bytes.
    if unsafe { bpf_xdp_load_bytes(xdp, offset, buf.as_mut_ptr().cast(), len) } != 0 {
        return None;
    }
    Some(match len {
        4 => u32::from_be_bytes(buf),
        2 => u32::from(u16::from_be_bytes([buf[0], buf[1]])),
        _ => u32::from(buf[0]),
    })
}
