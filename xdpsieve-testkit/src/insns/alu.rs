//! The arithmetic of eBPF instructions, as the kernel's interpreter defines it: ALU32
//! results zero-extended, division by zero giving 0 (modulo leaving the dividend), shift
//! counts masked, the signed and sign-extending forms selected by `off`, byte swaps, and
//! the conditions of the jumps.

use super::{Error, decode::*};

pub(super) fn sign_extend(v: u64, bytes: usize) -> u64 {
    let shift = 64 - 8 * bytes as u32;
    (((v << shift) as i64) >> shift) as u64
}

/// An ALU operation; 32-bit results are zero-extended. `off` 1 on DIV/MOD is the signed
/// form; on MOV, 8/16/32 sign-extends the source.
pub(super) fn alu(op: u8, dst: u64, src: u64, is64: bool, off: i16) -> Result<u64, Error> {
    if is64 {
        Ok(match op {
            ALU_ADD => dst.wrapping_add(src),
            ALU_SUB => dst.wrapping_sub(src),
            ALU_MUL => dst.wrapping_mul(src),
            ALU_DIV if src == 0 => 0,
            ALU_DIV if off == 1 => (dst as i64).wrapping_div(src as i64) as u64,
            ALU_DIV => dst / src,
            ALU_MOD if src == 0 => dst,
            ALU_MOD if off == 1 => (dst as i64).wrapping_rem(src as i64) as u64,
            ALU_MOD => dst % src,
            ALU_OR => dst | src,
            ALU_AND => dst & src,
            ALU_XOR => dst ^ src,
            ALU_LSH => dst << (src & 63),
            ALU_RSH => dst >> (src & 63),
            ALU_ARSH => ((dst as i64) >> (src & 63)) as u64,
            ALU_NEG => dst.wrapping_neg(),
            ALU_MOV if matches!(off, 8 | 16 | 32) => sign_extend(src, off as usize / 8),
            ALU_MOV => src,
            _ => return Err(Error::new(format!("ALU64 operation {op:#x}"))),
        })
    } else {
        let (a, b) = (dst as u32, src as u32);
        Ok(u64::from(match op {
            ALU_ADD => a.wrapping_add(b),
            ALU_SUB => a.wrapping_sub(b),
            ALU_MUL => a.wrapping_mul(b),
            ALU_DIV if b == 0 => 0,
            ALU_DIV if off == 1 => (a as i32).wrapping_div(b as i32) as u32,
            ALU_DIV => a / b,
            ALU_MOD if b == 0 => a,
            ALU_MOD if off == 1 => (a as i32).wrapping_rem(b as i32) as u32,
            ALU_MOD => a % b,
            ALU_OR => a | b,
            ALU_AND => a & b,
            ALU_XOR => a ^ b,
            ALU_LSH => a << (b & 31),
            ALU_RSH => a >> (b & 31),
            ALU_ARSH => ((a as i32) >> (b & 31)) as u32,
            ALU_NEG => a.wrapping_neg(),
            ALU_MOV if matches!(off, 8 | 16) => sign_extend(u64::from(b), off as usize / 8) as u32,
            ALU_MOV => b,
            _ => return Err(Error::new(format!("ALU32 operation {op:#x}"))),
        }))
    }
}

/// `BPF_END`: to little-endian (a truncation here), to big-endian, or (ALU64) a swap.
pub(super) fn endian(v: u64, bits: i32, is64: bool, to_be: bool) -> Result<u64, Error> {
    let swap = is64 || to_be;
    Ok(match (bits, swap) {
        (16, false) => v & 0xffff,
        (32, false) => v & 0xffff_ffff,
        (64, false) => v,
        (16, true) => u64::from((v as u16).swap_bytes()),
        (32, true) => u64::from((v as u32).swap_bytes()),
        (64, true) => v.swap_bytes(),
        _ => return Err(Error::new(format!("byte swap of {bits} bits"))),
    })
}

/// A conditional jump's test; 32-bit forms compare the low halves.
pub(super) fn cond(op: u8, a: u64, b: u64, is64: bool) -> Result<bool, Error> {
    let (ua, ub, sa, sb) = if is64 {
        (a, b, a as i64, b as i64)
    } else {
        (
            u64::from(a as u32),
            u64::from(b as u32),
            i64::from(a as i32),
            i64::from(b as i32),
        )
    };
    Ok(match op {
        JMP_JEQ => ua == ub,
        JMP_JNE => ua != ub,
        JMP_JGT => ua > ub,
        JMP_JGE => ua >= ub,
        JMP_JLT => ua < ub,
        JMP_JLE => ua <= ub,
        JMP_JSET => ua & ub != 0,
        JMP_JSGT => sa > sb,
        JMP_JSGE => sa >= sb,
        JMP_JSLT => sa < sb,
        JMP_JSLE => sa <= sb,
        _ => return Err(Error::new(format!("jump operation {op:#x}"))),
    })
}
