//! The interpreter's arithmetic against the eBPF semantics (no root), and small
//! hand-written programs counted and checked against `BPF_PROG_TEST_RUN` (root; fails
//! rather than skips under `CI`).

use std::os::fd::{AsFd as _, AsRawFd as _};

use super::{
    alu::{alu, cond, endian},
    count,
    decode::*,
};
use crate::bpf::{insn, load_floor_program, load_program, test_run};

#[test]
fn alu32_zero_extends_and_alu64_wraps() {
    assert_eq!(alu(ALU_ADD, u64::MAX, 1, false, 0).unwrap(), 0);
    assert_eq!(alu(ALU_SUB, 0, 1, false, 0).unwrap(), 0xffff_ffff);
    assert_eq!(alu(ALU_SUB, 0, 1, true, 0).unwrap(), u64::MAX);
    assert_eq!(alu(ALU_MOV, 0, u64::MAX, false, 0).unwrap(), 0xffff_ffff);
}

#[test]
fn division_by_zero_follows_the_kernel() {
    assert_eq!(alu(ALU_DIV, 7, 0, true, 0).unwrap(), 0);
    assert_eq!(alu(ALU_MOD, 7, 0, true, 0).unwrap(), 7);
    assert_eq!(alu(ALU_MOD, u64::MAX, 0, false, 0).unwrap(), 0xffff_ffff);
    // Signed forms (off 1).
    assert_eq!(
        alu(ALU_DIV, (-7i64) as u64, 2, true, 1).unwrap(),
        (-3i64) as u64
    );
    assert_eq!(
        alu(ALU_MOD, (-7i64) as u64, 2, true, 1).unwrap(),
        (-1i64) as u64
    );
    assert_eq!(
        alu(ALU_DIV, i64::MIN as u64, u64::MAX, true, 1).unwrap(),
        i64::MIN as u64
    );
}

#[test]
fn shifts_mask_and_arsh_keeps_the_sign() {
    assert_eq!(alu(ALU_LSH, 1, 65, true, 0).unwrap(), 2);
    assert_eq!(alu(ALU_LSH, 1, 33, false, 0).unwrap(), 2);
    assert_eq!(
        alu(ALU_ARSH, 0x8000_0000, 4, false, 0).unwrap(),
        0xf800_0000
    );
    assert_eq!(alu(ALU_MOV, 0, 0x80, true, 8).unwrap(), (-128i64) as u64);
}

#[test]
fn byte_swaps() {
    assert_eq!(endian(0x1234_5678, 16, false, true).unwrap(), 0x7856);
    assert_eq!(endian(0x1234_5678, 16, false, false).unwrap(), 0x5678);
    assert_eq!(
        endian(0x0102_0304_0506_0708, 64, true, false).unwrap(),
        0x0807_0605_0403_0201
    );
}

#[test]
fn jumps_compare_signed_and_32_bit() {
    assert!(cond(JMP_JSLT, u64::MAX, 0, true).unwrap());
    assert!(!cond(JMP_JLT, u64::MAX, 0, true).unwrap());
    assert!(cond(JMP_JEQ, 0x1_0000_0005, 5, false).unwrap());
    assert!(cond(JMP_JSET, 6, 2, true).unwrap());
}

fn root() -> bool {
    crate::gate::root_or_skip()
}

/// `code dst, src, off, imm` as the kernel stores it.
fn raw(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    u64::from(code)
        | u64::from(dst | src << 4) << 8
        | u64::from(off as u16) << 16
        | u64::from(imm as u32) << 32
}

#[test]
fn a_floor_program_is_two_instructions() {
    if !root() {
        return;
    }
    for verdict in [1u8, 2] {
        let fd = load_floor_program(verdict).expect("loading");
        let c = count(fd.as_fd(), &[0u8; 64]).expect("counting");
        assert_eq!((c.insns, c.verdict), (2, u32::from(verdict)));
        assert!(c.helpers.is_empty());
    }
}

#[test]
fn a_loop_over_the_stack_and_the_packet_matches_the_kernel() {
    if !root() {
        return;
    }
    // r2 = data; r3 = data_end; r4 = data + 14; if r4 > r3 goto pass;
    // r0 = *(u8 *)(r2 + 13); *(u64 *)(r10 - 8) = r0; r1 = 0; loop: r1 += 1;
    // if r1 < 10 goto loop; r5 = *(u64 *)(r10 - 8); r0 = r5 & 1; r0 += 1; exit; pass: r0 = 2; exit
    let insns = [
        raw(0x61, 2, 1, 0, 0),   // r2 = *(u32 *)(r1 + 0)   (data)
        raw(0x61, 3, 1, 4, 0),   // r3 = *(u32 *)(r1 + 4)   (data_end)
        raw(0xbf, 4, 2, 0, 0),   // r4 = r2
        raw(0x07, 4, 0, 0, 14),  // r4 += 14
        raw(0x2d, 4, 3, 10, 0),  // if r4 > r3 goto pass
        raw(0x71, 0, 2, 13, 0),  // r0 = *(u8 *)(r2 + 13)
        raw(0x7b, 10, 0, -8, 0), // *(u64 *)(r10 - 8) = r0
        raw(0xb7, 1, 0, 0, 0),   // r1 = 0
        raw(0x07, 1, 0, 0, 1),   // loop: r1 += 1
        raw(0xa5, 1, 0, -2, 10), // if r1 < 10 goto loop
        raw(0x79, 5, 10, -8, 0), // r5 = *(u64 *)(r10 - 8)
        raw(0xbf, 0, 5, 0, 0),   // r0 = r5
        raw(0x57, 0, 0, 0, 1),   // r0 &= 1
        raw(0x07, 0, 0, 0, 1),   // r0 += 1
        raw(0x95, 0, 0, 0, 0),   // exit
        insn(0xb7, 0, 2),        // pass: r0 = 2
        insn(0x95, 0, 0),        // exit
    ];
    let fd = load_program(6, &insns).expect("loading");
    for last in [0u8, 1] {
        let mut frame = [0u8; 64];
        frame[13] = last;
        let c = count(fd.as_fd(), &frame).expect("counting");
        let (kernel, _) = test_run(fd.as_raw_fd(), &frame, 1).expect("test run");
        assert_eq!(c.verdict, kernel, "frame byte 13 = {last}");
        // 8 before the loop, 2 per round, 5 after.
        assert_eq!(c.insns, 8 + 2 * 10 + 5);
    }
    let c = count(fd.as_fd(), &[0u8; 10]).expect("counting a short frame");
    assert_eq!((c.insns, c.verdict), (7, 2));
}
