//! eBPF instruction encoding: the fields of one 8-byte instruction, the opcode constants
//! the interpreter matches on, and a short textual form for error messages.

/// One instruction: `code`, `dst`, `src`, `off`, `imm`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Insn {
    pub(super) code: u8,
    pub(super) dst: u8,
    pub(super) src: u8,
    pub(super) off: i16,
    pub(super) imm: i32,
}

impl Insn {
    /// Decodes a little-endian instruction as the kernel stores it.
    pub(super) fn decode(raw: u64) -> Insn {
        let b = raw.to_le_bytes();
        Insn {
            code: b[0],
            dst: b[1] & 0x0f,
            src: b[1] >> 4,
            off: i16::from_le_bytes([b[2], b[3]]),
            imm: i32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }
    }

    pub(super) fn class(self) -> u8 {
        self.code & 0x07
    }

    /// ALU/JMP operation (the top four bits).
    pub(super) fn op(self) -> u8 {
        self.code & 0xf0
    }

    /// Whether the source operand is a register (`BPF_X`).
    pub(super) fn is_reg_src(self) -> bool {
        self.code & 0x08 != 0
    }

    /// Load/store access width in bytes.
    pub(super) fn width(self) -> usize {
        match self.code & 0x18 {
            SIZE_W => 4,
            SIZE_H => 2,
            SIZE_B => 1,
            _ => 8,
        }
    }

    /// Load/store mode (the top three bits).
    pub(super) fn mode(self) -> u8 {
        self.code & 0xe0
    }
}

impl std::fmt::Display for Insn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "code {:#04x} dst r{} src r{} off {} imm {}",
            self.code, self.dst, self.src, self.off, self.imm
        )
    }
}

// Classes.
pub(super) const CLASS_LD: u8 = 0x00;
pub(super) const CLASS_LDX: u8 = 0x01;
pub(super) const CLASS_ST: u8 = 0x02;
pub(super) const CLASS_STX: u8 = 0x03;
pub(super) const CLASS_ALU: u8 = 0x04;
pub(super) const CLASS_JMP: u8 = 0x05;
pub(super) const CLASS_JMP32: u8 = 0x06;
pub(super) const CLASS_ALU64: u8 = 0x07;

// Sizes.
pub(super) const SIZE_W: u8 = 0x00;
pub(super) const SIZE_H: u8 = 0x08;
pub(super) const SIZE_B: u8 = 0x10;

// Modes.
pub(super) const MODE_IMM: u8 = 0x00;
pub(super) const MODE_MEM: u8 = 0x60;
pub(super) const MODE_MEMSX: u8 = 0x80;
pub(super) const MODE_ATOMIC: u8 = 0xc0;

// ALU operations.
pub(super) const ALU_ADD: u8 = 0x00;
pub(super) const ALU_SUB: u8 = 0x10;
pub(super) const ALU_MUL: u8 = 0x20;
pub(super) const ALU_DIV: u8 = 0x30;
pub(super) const ALU_OR: u8 = 0x40;
pub(super) const ALU_AND: u8 = 0x50;
pub(super) const ALU_LSH: u8 = 0x60;
pub(super) const ALU_RSH: u8 = 0x70;
pub(super) const ALU_NEG: u8 = 0x80;
pub(super) const ALU_MOD: u8 = 0x90;
pub(super) const ALU_XOR: u8 = 0xa0;
pub(super) const ALU_MOV: u8 = 0xb0;
pub(super) const ALU_ARSH: u8 = 0xc0;
pub(super) const ALU_END: u8 = 0xd0;

// Jump operations.
pub(super) const JMP_JA: u8 = 0x00;
pub(super) const JMP_JEQ: u8 = 0x10;
pub(super) const JMP_JGT: u8 = 0x20;
pub(super) const JMP_JGE: u8 = 0x30;
pub(super) const JMP_JSET: u8 = 0x40;
pub(super) const JMP_JNE: u8 = 0x50;
pub(super) const JMP_JSGT: u8 = 0x60;
pub(super) const JMP_JSGE: u8 = 0x70;
pub(super) const JMP_CALL: u8 = 0x80;
pub(super) const JMP_EXIT: u8 = 0x90;
pub(super) const JMP_JLT: u8 = 0xa0;
pub(super) const JMP_JLE: u8 = 0xb0;
pub(super) const JMP_JSLT: u8 = 0xc0;
pub(super) const JMP_JSLE: u8 = 0xd0;

// Atomic operations (`imm` of an atomic store).
pub(super) const ATOMIC_FETCH: i32 = 0x01;
pub(super) const ATOMIC_XCHG: i32 = 0xe0 | ATOMIC_FETCH;
pub(super) const ATOMIC_CMPXCHG: i32 = 0xf0 | ATOMIC_FETCH;
pub(super) const ATOMIC_LOAD_ACQ: i32 = 0x100;
pub(super) const ATOMIC_STORE_REL: i32 = 0x110;

// `src_reg` of ld_imm64 and calls.
pub(super) const PSEUDO_MAP_FD: u8 = 1;
pub(super) const PSEUDO_MAP_VALUE: u8 = 2;
pub(super) const PSEUDO_FUNC: u8 = 4;
pub(super) const PSEUDO_CALL: u8 = 1;

/// `off` of `BPF_MOV64_PERCPU_REG` (`dst = src + this CPU's per-CPU offset`).
pub(super) const ADDR_PERCPU: i16 = -1;
