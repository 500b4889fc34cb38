//! Classic BPF to eBPF, for the kernel to run a capture filter as ordinary code of the XDP
//! program instead of interpreting it (a tenth of the cost or less: see BENCHMARKS.md,
//! "Capture filters"). The result replaces a slot's placeholder function in the object
//! (`object::place`), and the verifier checks it with the rest of the program.
//!
//! Hand-written because nothing maintained does this job for XDP: the kernel's own
//! converter (`bpf_convert_filter`) is not reachable from userspace, and Cloudflare's
//! cbpfc (Go, used by xdpcap) has no Rust counterpart. The machine is small: classic BPF has
//! two registers, 16 words of scratch memory, forward jumps and 35 opcodes.
//!
//! The generated function keeps libpcap's `bpf_filter` semantics, as the interpreter
//! (`xdpsieve-ebpf/src/capture_filter/interpreter.rs`) does, and hands it what is rare and
//! would make every packet load long:
//! - `r1` is the XDP context, `r2` the frame's whole length (`len`). The result in `r0` is
//!   one of [`filter::TRANSLATED_REJECT`], [`filter::TRANSLATED_SELECT`] or
//!   [`filter::TRANSLATED_INTERPRET`]: a packet load outside the linear data (XDP
//!   fragments, or past the frame's end) asks the caller to run the interpreter on the
//!   packet, which reads through fragments and rejects past the end, exactly as before.
//! - Registers: A in `r7`, X in `r8`, the context in `r6`, the packet's start in `r9`.
//!   Scratch word `M[k]` is the stack word at `r10 - 8 (k + 1)`; the words the program
//!   reads are zeroed at entry; `len` is kept below them.
//! - A division or modulo by zero rejects; shifts by 32 or more give 0.
//!
//! What it does not take (the caller then keeps the interpreter): a backward jump
//! (libpcap's `protochain` loop, whose bound the verifier cannot see) and a translation
//! longer than the slot function.
//!
//! The slot function is the translation behind a branch the verifier knows is taken, over
//! padding: the verifier never visits the padding and removes it in one piece (padding
//! of `goto +0` would be removed one instruction at a time: seconds per load).

use xdpsieve_common::{
    FilterInsn,
    filter::{self, SLOT_FUNCTION_INSNS},
};

pub use crate::configure::ebpf_code::EbpfInsn;
use crate::configure::ebpf_code::{
    self, ADD, ALU, ALU64, AND, B, END_TO_BE, EXIT, Emitter, FP, H, JA, JEQ, JGE, JGT, JMP, JMP32,
    JNE, K, LDX, LSH, Label, MEM, MOV, R0, R1, R2, R3, R5, R6, R7, R8, R9, RSH, ST, STX,
    Unfinished, W, X,
};

/// Why a classic program stays with the interpreter.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Untranslatable {
    #[error("it jumps backward (instruction {0}), as libpcap's `protochain` does")]
    BackwardJump(usize),
    #[error(
        "its translation takes {0} eBPF instructions, more than the {SLOT_FUNCTION_INSNS} there is room for"
    )]
    TooLong(usize),
    #[error("instruction {0} has an opcode the translator does not know")]
    Unknown(usize),
}

// Registers of the translation.
const CTX: u8 = R6;
const A: u8 = R7;
const RX: u8 = R8;
const DATA: u8 = R9;

/// The stack word that keeps `len` (below the 16 scratch words).
const LEN_SLOT: i16 = -136;
/// The verifier's bound on a packet pointer's offset (`MAX_PACKET_OFF`).
const MAX_PACKET_OFF: u32 = 0xffff;

/// The eBPF function for `program` (a validated classic program: see
/// `CompiledFilter::validate`), without padding.
pub fn translate(program: &[FilterInsn]) -> Result<Vec<EbpfInsn>, Untranslatable> {
    let reachable = reachable(program)?;
    let mut e = Emitter::default();
    let at: Vec<Label> = program.iter().map(|_| e.label()).collect();
    let ends = Ends {
        reject: e.label(),
        interpret: e.label(),
    };

    // Prologue: the context, the packet, `len`, A = X = 0, the scratch words it reads.
    e.emit(ALU64 | MOV | X, CTX, R1, 0, 0);
    e.emit(LDX | MEM | W, DATA, CTX, 0, 0);
    e.emit(STX | MEM | W, FP, R2, LEN_SLOT, 0);
    e.emit(ALU | MOV | K, A, 0, 0, 0);
    e.emit(ALU | MOV | K, RX, 0, 0, 0);
    let mut read = [false; 16];
    for insn in program {
        if matches!(insn.code, 0x60 | 0x61) {
            read[(insn.k & 15) as usize] = true;
        }
    }
    for (k, _) in read.iter().enumerate().filter(|(_, r)| **r) {
        e.emit(ST | MEM | W, FP, 0, scratch(k as u32), 0);
    }

    for (index, insn) in program.iter().enumerate() {
        if !reachable[index] {
            continue;
        }
        e.bind(at[index]);
        let k = insn.k;
        let code = insn.code;
        match code & 0x07 {
            // ld
            0x00 => match code & 0xe0 {
                0x00 => e.emit(ALU | MOV | K, A, 0, 0, k as i32),
                0x20 => load_abs(&mut e, A, k, size(code), &ends),
                0x40 => load_ind(&mut e, A, k, size(code), &ends),
                0x60 => e.emit(LDX | MEM | W, A, FP, scratch(k), 0),
                0x80 => e.emit(LDX | MEM | W, A, FP, LEN_SLOT, 0),
                _ => return Err(Untranslatable::Unknown(index)),
            },
            // ldx
            0x01 => match code & 0xe0 {
                0x00 => e.emit(ALU | MOV | K, RX, 0, 0, k as i32),
                0x60 => e.emit(LDX | MEM | W, RX, FP, scratch(k), 0),
                0x80 => e.emit(LDX | MEM | W, RX, FP, LEN_SLOT, 0),
                // ldxb 4*([k]&0xf)
                0xa0 => {
                    load_abs(&mut e, RX, k, B, &ends);
                    e.emit(ALU | AND | K, RX, 0, 0, 0x0f);
                    e.emit(ALU | LSH | K, RX, 0, 0, 2);
                }
                _ => return Err(Untranslatable::Unknown(index)),
            },
            0x02 => e.emit(STX | MEM | W, FP, A, scratch(k), 0),
            0x03 => e.emit(STX | MEM | W, FP, RX, scratch(k), 0),
            0x04 => alu(&mut e, code, k, &ends).ok_or(Untranslatable::Unknown(index))?,
            0x05 => {
                let next = index + 1;
                if code & 0xf0 == 0x00 {
                    let target = next.wrapping_add(k as usize);
                    e.jump(JMP | JA, 0, 0, 0, at[target]);
                    continue;
                }
                let op = match code & 0xf0 {
                    0x10 => JEQ,
                    0x20 => JGT,
                    0x30 => JGE,
                    0x40 => 0x40, // jset
                    _ => return Err(Untranslatable::Unknown(index)),
                };
                let (src, imm, source) = if code & 0x08 != 0 {
                    (RX, 0, X)
                } else {
                    (0, k as i32, K)
                };
                let on_true = next + usize::from(insn.jt);
                let on_false = next + usize::from(insn.jf);
                e.jump(JMP32 | op | source, A, src, imm, at[on_true]);
                if on_false != next {
                    e.jump(JMP | JA, 0, 0, 0, at[on_false]);
                }
            }
            // ret: any value but 0 selects.
            0x06 => {
                let value = match code & 0x18 {
                    0x10 => Some(A),
                    0x08 => Some(RX),
                    _ => None,
                };
                let select = filter::TRANSLATED_SELECT as i32;
                match value {
                    Some(register) => {
                        e.emit(ALU64 | MOV | K, R0, 0, 0, filter::TRANSLATED_REJECT as i32);
                        e.emit(JMP32 | JEQ | K, register, 0, 1, 0);
                        e.emit(ALU64 | MOV | K, R0, 0, 0, select);
                    }
                    None if k == 0 => {
                        e.emit(ALU64 | MOV | K, R0, 0, 0, filter::TRANSLATED_REJECT as i32);
                    }
                    None => e.emit(ALU64 | MOV | K, R0, 0, 0, select),
                }
                e.emit(JMP | EXIT, 0, 0, 0, 0);
            }
            0x07 => {
                if code & 0xf8 == 0x80 {
                    e.emit(ALU | MOV | X, A, RX, 0, 0); // txa
                } else {
                    e.emit(ALU | MOV | X, RX, A, 0, 0); // tax
                }
            }
            _ => return Err(Untranslatable::Unknown(index)),
        }
    }
    // The shared ends, if anything jumps there (the verifier refuses unreachable code).
    for (label, result) in [
        (ends.reject, filter::TRANSLATED_REJECT),
        (ends.interpret, filter::TRANSLATED_INTERPRET),
    ] {
        if e.is_used(label) {
            e.bind(label);
            e.emit(ALU64 | MOV | K, R0, 0, 0, result as i32);
            e.emit(JMP | EXIT, 0, 0, 0, 0);
        }
    }
    let code = e.finish().map_err(|e| match e {
        Unfinished::Unbound(at) => Untranslatable::Unknown(at),
        Unfinished::TooFar(len) => Untranslatable::TooLong(len),
    })?;
    if code.len() > SLOT_FUNCTION_INSNS - 2 {
        return Err(Untranslatable::TooLong(code.len()));
    }
    Ok(code)
}

/// `translate`'s `code` behind padding, to fill a slot function exactly (see
/// [`ebpf_code::padded`]).
pub fn slot_function(code: &[EbpfInsn]) -> Result<Vec<EbpfInsn>, Untranslatable> {
    ebpf_code::padded(code, SLOT_FUNCTION_INSNS).ok_or(Untranslatable::TooLong(code.len()))
}

/// Where a run ends early: rejected, or handed to the interpreter.
struct Ends {
    reject: Label,
    interpret: Label,
}

/// Which instructions a run can reach (the verifier refuses unreachable code); an error
/// for a backward jump.
fn reachable(program: &[FilterInsn]) -> Result<Vec<bool>, Untranslatable> {
    let mut reachable = vec![false; program.len()];
    if let Some(first) = reachable.first_mut() {
        *first = true;
    }
    // Jumps only go forward, so one pass in order sees every way into an instruction first.
    for index in 0..program.len() {
        if !reachable[index] {
            continue;
        }
        let insn = program[index];
        let next = index + 1;
        let targets: [Option<usize>; 2] = match insn.code & 0x07 {
            0x06 => [None, None],
            0x05 if insn.code & 0xf0 == 0x00 => {
                let target = (next as u64).wrapping_add(u64::from(insn.k));
                if target <= index as u64 || target >= program.len() as u64 {
                    return Err(Untranslatable::BackwardJump(index));
                }
                [Some(target as usize), None]
            }
            0x05 => [
                Some(next + usize::from(insn.jt)),
                Some(next + usize::from(insn.jf)),
            ],
            _ => [Some(next), None],
        };
        for target in targets.into_iter().flatten() {
            *reachable
                .get_mut(target)
                .ok_or(Untranslatable::Unknown(index))? = true;
        }
    }
    Ok(reachable)
}

/// The eBPF size of a classic load (`BPF_W`, `BPF_H`, `BPF_B` have the same bits).
fn size(code: u16) -> u8 {
    (code & 0x18) as u8
}

fn size_bytes(size: u8) -> i32 {
    match size {
        H => 2,
        B => 1,
        _ => 4,
    }
}

/// The stack offset of scratch word `k` (validated below 16).
fn scratch(k: u32) -> i16 {
    -8 * (i16::try_from(k & 15).unwrap_or(0) + 1)
}

/// Converts a loaded big-endian value in `dst` to the host's order.
fn to_host(e: &mut Emitter, dst: u8, size: u8) {
    match size {
        H => e.emit(ALU | END_TO_BE, dst, 0, 0, 16),
        W => e.emit(ALU | END_TO_BE, dst, 0, 0, 32),
        _ => {}
    }
}

/// A jump to `label` the verifier knows is always taken (the context is never null),
/// where an unconditional one would leave what follows unreachable in the control flow
/// graph, which the verifier refuses even when nothing jumps there.
fn always(e: &mut Emitter, label: Label) {
    e.jump(JMP | JNE | K, CTX, 0, 0, label);
}

/// `dst = packet[k..k + size]`, big-endian, from the linear data; else the interpreter.
fn load_abs(e: &mut Emitter, dst: u8, k: u32, size: u8, ends: &Ends) {
    let bytes = size_bytes(size);
    if k.saturating_add(bytes as u32) > MAX_PACKET_OFF {
        return always(e, ends.interpret);
    }
    e.emit(LDX | MEM | W, R3, CTX, 4, 0); // data_end
    e.emit(ALU64 | MOV | X, R1, DATA, 0, 0);
    e.emit(ALU64 | ADD | K, R1, 0, 0, k as i32 + bytes);
    e.jump(JMP | JGT | X, R1, R3, 0, ends.interpret);
    match i16::try_from(k) {
        Ok(off) => e.emit(LDX | MEM | size, dst, DATA, off, 0),
        Err(_) => {
            e.emit(ALU64 | MOV | X, R2, DATA, 0, 0);
            e.emit(ALU64 | ADD | K, R2, 0, 0, k as i32);
            e.emit(LDX | MEM | size, dst, R2, 0, 0);
        }
    }
    to_host(e, dst, size);
}

/// `dst = packet[X + k..X + k + size]`, big-endian, from the linear data; else the
/// interpreter (which also takes an offset past 2^32: it rejects).
fn load_ind(e: &mut Emitter, dst: u8, k: u32, size: u8, ends: &Ends) {
    let bytes = size_bytes(size);
    if k.saturating_add(bytes as u32) > MAX_PACKET_OFF {
        return always(e, ends.interpret);
    }
    // r5 = X + k, checked against the verifier's bound on packet offsets.
    e.emit(ALU64 | MOV | X, R5, RX, 0, 0);
    e.emit(ALU64 | ADD | K, R5, 0, 0, k as i32);
    e.jump(
        JMP | JGT | K,
        R5,
        0,
        (MAX_PACKET_OFF as i32) - bytes,
        ends.interpret,
    );
    e.emit(LDX | MEM | W, R3, CTX, 4, 0); // data_end
    e.emit(ALU64 | MOV | X, R2, DATA, 0, 0);
    e.emit(ALU64 | ADD | X, R2, R5, 0, 0);
    e.emit(ALU64 | MOV | X, R1, R2, 0, 0);
    e.emit(ALU64 | ADD | K, R1, 0, 0, bytes);
    e.jump(JMP | JGT | X, R1, R3, 0, ends.interpret);
    e.emit(LDX | MEM | size, dst, R2, 0, 0);
    to_host(e, dst, size);
}

/// One classic ALU instruction on A; `None` for an unknown operation.
fn alu(e: &mut Emitter, code: u16, k: u32, ends: &Ends) -> Option<()> {
    let op = (code & 0xf0) as u8;
    let by_x = code & 0x08 != 0;
    match op {
        // neg
        0x80 => e.emit(ALU | 0x80, A, 0, 0, 0),
        // add, sub, mul, or, and, xor: the same operation on 32 bits.
        0x00 | 0x10 | 0x20 | 0x40 | 0x50 | 0xa0 if by_x => e.emit(ALU | op | X, A, RX, 0, 0),
        0x00 | 0x10 | 0x20 | 0x40 | 0x50 | 0xa0 => e.emit(ALU | op | K, A, 0, 0, k as i32),
        // div, mod: by zero rejects (eBPF would give 0 or keep A).
        0x30 | 0x90 if by_x => {
            e.jump(JMP32 | JEQ | K, RX, 0, 0, ends.reject);
            e.emit(ALU | op | X, A, RX, 0, 0);
        }
        0x30 | 0x90 if k == 0 => always(e, ends.reject),
        0x30 | 0x90 => e.emit(ALU | op | K, A, 0, 0, k as i32),
        // lsh, rsh: by 32 or more gives 0 (as in libpcap's bpf_filter).
        LSH | RSH if by_x => {
            let wide = e.label();
            let done = e.label();
            e.jump(JMP32 | JGE | K, RX, 0, 32, wide);
            e.emit(ALU | op | X, A, RX, 0, 0);
            e.jump(JMP | JA, 0, 0, 0, done);
            e.bind(wide);
            e.emit(ALU | MOV | K, A, 0, 0, 0);
            e.bind(done);
        }
        LSH | RSH if k >= 32 => e.emit(ALU | MOV | K, A, 0, 0, 0),
        LSH | RSH => e.emit(ALU | op | K, A, 0, 0, k as i32),
        _ => return None,
    }
    Some(())
}

#[cfg(test)]
mod tests;
