//! eBPF code written at load: the instruction encoding, an emitter with forward labels,
//! and the padded shape a placeholder function of the object is overwritten with
//! ([`object::place`]). Two producers use it: the capture filter's translation
//! (`capture_filter::translate`) and the compiled rule set (`matcher`).
//!
//! Hand-written because the job is small and specific (a few dozen opcodes, forward jumps
//! only, code patched into an existing object before aya loads it); the assemblers there
//! are (`rbpf`'s, the kernel's macros) either emit a different dialect or none of it.

pub mod object;

/// One eBPF instruction (`struct bpf_insn`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EbpfInsn {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

impl EbpfInsn {
    /// `r0 = 0`: the padding in front of generated code (never run; the verifier removes
    /// it).
    pub const PADDING: EbpfInsn = EbpfInsn {
        code: ALU64 | MOV | K,
        dst: R0,
        src: 0,
        off: 0,
        imm: 0,
    };

    /// The instruction as the kernel reads it (little-endian host).
    pub fn to_bytes(self) -> [u8; 8] {
        let mut bytes = [0u8; 8];
        bytes[0] = self.code;
        bytes[1] = (self.src << 4) | (self.dst & 0x0f);
        bytes[2..4].copy_from_slice(&self.off.to_le_bytes());
        bytes[4..8].copy_from_slice(&self.imm.to_le_bytes());
        bytes
    }
}

// eBPF opcode fields (linux/bpf.h, linux/bpf_common.h).
pub(crate) const LDX: u8 = 0x01;
pub(crate) const ST: u8 = 0x02;
pub(crate) const STX: u8 = 0x03;
pub(crate) const ALU: u8 = 0x04;
pub(crate) const JMP: u8 = 0x05;
pub(crate) const JMP32: u8 = 0x06;
pub(crate) const ALU64: u8 = 0x07;
pub(crate) const MEM: u8 = 0x60;
pub(crate) const W: u8 = 0x00;
pub(crate) const H: u8 = 0x08;
pub(crate) const B: u8 = 0x10;
pub(crate) const K: u8 = 0x00;
pub(crate) const X: u8 = 0x08;
pub(crate) const ADD: u8 = 0x00;
pub(crate) const LSH: u8 = 0x60;
pub(crate) const RSH: u8 = 0x70;
pub(crate) const AND: u8 = 0x50;
pub(crate) const MOV: u8 = 0xb0;
pub(crate) const END_TO_BE: u8 = 0xd8;
pub(crate) const JA: u8 = 0x00;
pub(crate) const JEQ: u8 = 0x10;
pub(crate) const JGT: u8 = 0x20;
pub(crate) const JGE: u8 = 0x30;
pub(crate) const JNE: u8 = 0x50;
pub(crate) const JLT: u8 = 0xa0;
pub(crate) const EXIT: u8 = 0x90;

// Registers.
pub(crate) const R0: u8 = 0;
pub(crate) const R1: u8 = 1;
pub(crate) const R2: u8 = 2;
pub(crate) const R3: u8 = 3;
pub(crate) const R4: u8 = 4;
pub(crate) const R5: u8 = 5;
pub(crate) const R6: u8 = 6;
pub(crate) const R7: u8 = 7;
pub(crate) const R8: u8 = 8;
pub(crate) const R9: u8 = 9;
pub(crate) const FP: u8 = 10;

/// A place in the code a jump can name before it is emitted.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Label(usize);

/// Why emitted code could not be finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unfinished {
    /// The jump at this index names a label never bound.
    Unbound(usize),
    /// A jump is farther than an instruction's offset reaches (the code's length).
    TooFar(usize),
}

/// Code under construction: instructions, and jumps to labels patched by [`finish`].
///
/// [`finish`]: Emitter::finish
#[derive(Default)]
pub(crate) struct Emitter {
    code: Vec<EbpfInsn>,
    /// Where each label was bound (an index into `code`).
    labels: Vec<Option<usize>>,
    /// Jumps to patch: (instruction index, label).
    fixups: Vec<(usize, Label)>,
}

impl Emitter {
    pub(crate) fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    pub(crate) fn bind(&mut self, label: Label) {
        self.labels[label.0] = Some(self.code.len());
    }

    /// Instructions emitted so far.
    pub(crate) fn len(&self) -> usize {
        self.code.len()
    }

    /// Whether some jump names `label`.
    pub(crate) fn is_used(&self, label: Label) -> bool {
        self.fixups.iter().any(|(_, l)| *l == label)
    }

    pub(crate) fn emit(&mut self, code: u8, dst: u8, src: u8, off: i16, imm: i32) {
        self.code.push(EbpfInsn {
            code,
            dst,
            src,
            off,
            imm,
        });
    }

    /// A jump (`code` a JMP or JMP32 operation) to `label`.
    pub(crate) fn jump(&mut self, code: u8, dst: u8, src: u8, imm: i32, label: Label) {
        self.fixups.push((self.code.len(), label));
        self.emit(code, dst, src, 0, imm);
    }

    pub(crate) fn finish(mut self) -> Result<Vec<EbpfInsn>, Unfinished> {
        for &(at, label) in &self.fixups {
            let target = self.labels[label.0].ok_or(Unfinished::Unbound(at))?;
            let off = target as i64 - at as i64 - 1;
            self.code[at].off =
                i16::try_from(off).map_err(|_| Unfinished::TooFar(self.code.len()))?;
        }
        Ok(self.code)
    }
}

/// `code` behind padding, to fill a placeholder function of `total` instructions exactly:
/// `r0 = 0; if r0 == 0 goto code; padding...; code`. The verifier knows the branch is
/// taken, never visits the padding and removes it in one piece (padding of `goto +0`
/// would be removed one instruction at a time: seconds per load). `None` when `code` does
/// not fit.
pub(crate) fn padded(code: &[EbpfInsn], total: usize) -> Option<Vec<EbpfInsn>> {
    let padding = total.checked_sub(2 + code.len())?;
    let skip = i16::try_from(padding).ok()?;
    let mut function = Vec::with_capacity(total);
    function.push(EbpfInsn::PADDING);
    function.push(EbpfInsn {
        code: JMP | JEQ | K,
        dst: R0,
        src: 0,
        off: skip,
        imm: 0,
    });
    function.extend(std::iter::repeat_n(EbpfInsn::PADDING, padding));
    function.extend_from_slice(code);
    Some(function)
}
