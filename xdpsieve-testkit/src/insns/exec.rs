//! The interpreter: runs a verified program's xlated instructions on one frame and counts
//! every instruction executed (ld_imm64 once; a call to a kernel function once, see
//! `helpers`). Registers are plain 64-bit values; pointers are addresses in the emulated
//! address space of `memory`.

use std::collections::BTreeMap;

use super::{
    Error, Program,
    decode::*,
    helpers::{self, Outcome, World},
    maps::{MapState, Resolved},
    memory::{Kind, Memory, STACK, addr, read_le, split, write_le},
};

/// A run stops with an error past this many instructions (the verifier's bound on a
/// program with loops is far lower in practice; this only catches emulator bugs).
const MAX_INSNS: u64 = 50_000_000;

/// A caller's state saved across a bpf-to-bpf call.
struct Frame {
    ret_pc: usize,
    saved: [u64; 4],
    fp: u64,
}

pub(super) struct Machine<'p> {
    prog: &'p Program,
    pub(super) mem: Memory,
    maps: MapState<'p>,
    world: World,
    pub(super) count: u64,
    pub(super) helpers: BTreeMap<String, u32>,
    /// Stack regions by call depth.
    stacks: Vec<usize>,
}

impl<'p> Machine<'p> {
    pub(super) fn new(prog: &'p Program, frame: &[u8]) -> Machine<'p> {
        let mut mem = Memory::new(frame);
        let maps = MapState::new(&prog.maps, &mut mem);
        Machine {
            prog,
            mem,
            maps,
            world: World::new(),
            count: 0,
            helpers: BTreeMap::new(),
            stacks: Vec::new(),
        }
    }

    /// The top of the stack frame at `depth`.
    fn frame_pointer(&mut self, depth: usize) -> Result<u64, Error> {
        if depth >= 64 {
            return Err(Error::new("call depth past 64"));
        }
        while self.stacks.len() <= depth {
            let r = self.mem.push(Kind::Stack, vec![0u8; STACK]);
            self.stacks.push(r);
        }
        Ok(addr(self.stacks[depth], STACK))
    }

    /// Runs the program from its first instruction with r1 = ctx; returns r0 at exit.
    pub(super) fn run_main(&mut self) -> Result<u64, Error> {
        let ctx = self.mem.ctx_addr();
        self.run(0, [ctx, 0, 0, 0, 0], 0)
    }

    /// Runs from `entry` until the exit of that function.
    fn run(&mut self, entry: usize, args: [u64; 5], depth0: usize) -> Result<u64, Error> {
        let mut r = [0u64; 11];
        r[1..6].copy_from_slice(&args);
        r[10] = self.frame_pointer(depth0)?;
        let mut frames: Vec<Frame> = Vec::new();
        let mut pc = entry;
        loop {
            let insn = *self
                .prog
                .insns
                .get(pc)
                .ok_or_else(|| Error::new(format!("pc {pc} is past the program's end")))?;
            self.count += 1;
            if self.count > MAX_INSNS {
                return Err(Error::new(format!("more than {MAX_INSNS} instructions")));
            }
            let step = self.step(&mut r, &mut pc, &mut frames, depth0, insn);
            match step.map_err(|e| e.at(pc, insn))? {
                Step::Next => pc += 1,
                Step::Jump(to) => pc = to,
                Step::Exit => match frames.pop() {
                    None => return Ok(r[0]),
                    Some(f) => {
                        r[6..10].copy_from_slice(&f.saved);
                        r[10] = f.fp;
                        pc = f.ret_pc;
                    }
                },
            }
        }
    }

    fn step(
        &mut self,
        r: &mut [u64; 11],
        pc: &mut usize,
        frames: &mut Vec<Frame>,
        depth0: usize,
        insn: Insn,
    ) -> Result<Step, Error> {
        let (d, s) = (usize::from(insn.dst), usize::from(insn.src));
        if d > 10 || s > 10 {
            return Err(Error::new("register number past r10"));
        }
        let jump = |off: i64| -> Result<Step, Error> {
            let to = *pc as i64 + 1 + off;
            usize::try_from(to)
                .map(Step::Jump)
                .map_err(|_| Error::new(format!("jump to {to}")))
        };
        match insn.class() {
            CLASS_ALU | CLASS_ALU64 => {
                let is64 = insn.class() == CLASS_ALU64;
                let src = if insn.is_reg_src() {
                    r[s]
                } else {
                    insn.imm as i64 as u64
                };
                if insn.op() == ALU_END {
                    r[d] = endian(r[d], insn.imm, is64, insn.is_reg_src())?;
                } else if is64
                    && insn.op() == ALU_MOV
                    && insn.is_reg_src()
                    && insn.off == ADDR_PERCPU
                {
                    // This CPU's copy: CPU 0, whose per-CPU offset the model takes as 0.
                    r[d] = if self.mem.kind_of(r[s]).is_some() {
                        r[s]
                    } else {
                        self.mem.percpu_var_addr(r[s])
                    };
                } else {
                    if is64
                        && insn.op() == ALU_ADD
                        && !insn.is_reg_src()
                        && let (Some(Kind::Map(m)), Some((_, 0))) =
                            (self.mem.kind_of(r[d]), split(r[d]))
                    {
                        self.maps.learn_value_off(m, insn.imm);
                    }
                    r[d] = alu(insn.op(), r[d], src, is64, insn.off)?;
                }
                Ok(Step::Next)
            }
            CLASS_LD => {
                if insn.code != (CLASS_LD | MODE_IMM | 0x18) {
                    return Err(Error::new("legacy packet load (LD_ABS/LD_IND)"));
                }
                let next = self
                    .prog
                    .insns
                    .get(*pc + 1)
                    .ok_or_else(|| Error::new("ld_imm64 at the program's end"))?;
                r[d] = match insn.src {
                    0 => u64::from(insn.imm as u32) | u64::from(next.imm as u32) << 32,
                    PSEUDO_MAP_FD => self.maps.object_addr(self.maps.by_id(insn.imm as u32)?),
                    PSEUDO_FUNC => {
                        // After JIT the dump holds the relative target again.
                        let to = *pc as i64 + 1 + i64::from(insn.imm);
                        let to = usize::try_from(to)
                            .map_err(|_| Error::new(format!("callback at {to}")))?;
                        self.mem.func_addr(to)
                    }
                    PSEUDO_MAP_VALUE => {
                        let m = self.maps.by_id(insn.imm as u32)?;
                        self.maps
                            .map_value_addr(&mut self.mem, m, next.imm as u32 as usize)?
                    }
                    other => {
                        return Err(Error::new(format!(
                            "ld_imm64 with src_reg {other} (BTF ids, callbacks by address) is not emulated"
                        )));
                    }
                };
                Ok(Step::Jump(*pc + 2))
            }
            CLASS_LDX => {
                let a = r[s].wrapping_add_signed(i64::from(insn.off));
                let w = insn.width();
                r[d] = match insn.mode() {
                    MODE_MEM => self.load(a, w)?,
                    MODE_MEMSX => sign_extend(self.load(a, w)?, w),
                    mode => return Err(Error::new(format!("load mode {mode:#x}"))),
                };
                Ok(Step::Next)
            }
            CLASS_ST | CLASS_STX => {
                let a = r[d].wrapping_add_signed(i64::from(insn.off));
                let w = insn.width();
                let v = if insn.class() == CLASS_ST {
                    insn.imm as i64 as u64
                } else {
                    r[s]
                };
                match insn.mode() {
                    MODE_MEM => self.store(a, w, v)?,
                    MODE_ATOMIC if insn.class() == CLASS_STX => self.atomic(r, insn, a, w)?,
                    mode => return Err(Error::new(format!("store mode {mode:#x}"))),
                }
                Ok(Step::Next)
            }
            CLASS_JMP | CLASS_JMP32 => {
                let is64 = insn.class() == CLASS_JMP;
                match insn.op() {
                    JMP_JA if is64 => jump(i64::from(insn.off)),
                    JMP_JA => jump(i64::from(insn.imm)),
                    JMP_EXIT => Ok(Step::Exit),
                    JMP_CALL if is64 => match insn.src {
                        0 => {
                            self.helper(r, *pc, depth0 + frames.len() + 1)?;
                            Ok(Step::Next)
                        }
                        PSEUDO_CALL => {
                            // Once JITed, `off` holds the relative target and `imm` the
                            // subprogram's index; before, `imm` is the relative target.
                            let rel = if insn.off != 0 {
                                i64::from(insn.off)
                            } else {
                                i64::from(insn.imm)
                            };
                            let depth = depth0 + frames.len() + 1;
                            let saved = [r[6], r[7], r[8], r[9]];
                            frames.push(Frame {
                                ret_pc: *pc + 1,
                                saved,
                                fp: r[10],
                            });
                            r[10] = self.frame_pointer(depth)?;
                            jump(rel)
                        }
                        other => Err(Error::new(format!(
                            "call with src_reg {other} (kfuncs are not emulated)"
                        ))),
                    },
                    op => {
                        let rhs = if insn.is_reg_src() {
                            r[s]
                        } else {
                            insn.imm as i64 as u64
                        };
                        if cond(op, r[d], rhs, is64)? {
                            jump(i64::from(insn.off))
                        } else {
                            Ok(Step::Next)
                        }
                    }
                }
            }
            _ => Err(Error::new("unknown instruction class")),
        }
    }

    /// An emulated load of `w` bytes at `a`.
    fn load(&mut self, a: u64, w: usize) -> Result<u64, Error> {
        let (region, _) =
            split(a).ok_or_else(|| Error::new(format!("load from non-pointer {a:#x}")))?;
        match self.mem.kind_of(a) {
            Some(Kind::Map(m)) => match self.maps.resolve(&mut self.mem, m, a, w)? {
                Resolved::Addr(x) => Ok(read_le(self.mem.slice(x, w)?)),
                Resolved::Value(v) => Ok(v),
            },
            Some(_) => match self.mem.opaque_load(region, w) {
                Some(v) => Ok(v),
                None => Ok(read_le(self.mem.slice(a, w)?)),
            },
            None => Err(Error::new(format!("load from {a:#x}, in no region"))),
        }
    }

    fn store(&mut self, a: u64, w: usize, v: u64) -> Result<(), Error> {
        let a = match self.mem.kind_of(a) {
            Some(Kind::Map(m)) => match self.maps.resolve(&mut self.mem, m, a, w)? {
                Resolved::Addr(x) => x,
                Resolved::Value(_) => {
                    return Err(Error::new("store to a per-CPU array's pointer table"));
                }
            },
            Some(Kind::Rxq | Kind::Dev | Kind::PerCpuVar) => {
                return Err(Error::new("store to an opaque kernel object"));
            }
            _ => a,
        };
        write_le(self.mem.slice_mut(a, w)?, v);
        Ok(())
    }

    fn atomic(&mut self, r: &mut [u64; 11], insn: Insn, a: u64, w: usize) -> Result<(), Error> {
        let (d, s) = (usize::from(insn.dst), usize::from(insn.src));
        let trunc = |v: u64| {
            if w == 8 {
                v
            } else {
                v & ((1u64 << (8 * w)) - 1)
            }
        };
        match insn.imm {
            ATOMIC_LOAD_ACQ => {
                r[d] = self.load(r[s].wrapping_add_signed(i64::from(insn.off)), w)?;
                return Ok(());
            }
            ATOMIC_STORE_REL => return self.store(a, w, r[s]),
            _ => {}
        }
        if w != 4 && w != 8 {
            return Err(Error::new("atomic of a width other than 4 or 8 bytes"));
        }
        let old = self.load(a, w)?;
        match insn.imm {
            ATOMIC_XCHG => {
                self.store(a, w, r[s])?;
                r[s] = old;
            }
            ATOMIC_CMPXCHG => {
                if old == trunc(r[0]) {
                    self.store(a, w, r[s])?;
                }
                r[0] = old;
            }
            imm => {
                let new = alu((imm & !ATOMIC_FETCH) as u8, old, r[s], true, 0)?;
                self.store(a, w, new)?;
                if imm & ATOMIC_FETCH != 0 {
                    r[s] = old;
                }
            }
        }
        Ok(())
    }

    /// A call to a kernel function: `prog.calls` names it.
    fn helper(&mut self, r: &mut [u64; 11], pc: usize, depth: usize) -> Result<(), Error> {
        let name = self
            .prog
            .calls
            .get(&pc)
            .ok_or_else(|| Error::new("call to no known function"))?;
        let name = name.as_ref().map_err(|e| Error::new(e.clone()))?;
        *self.helpers.entry(name.clone()).or_default() += 1;
        let args = [r[1], r[2], r[3], r[4], r[5]];
        r[0] = match helpers::call(name, args, &mut self.mem, &mut self.maps, &mut self.world)? {
            Outcome::Ret(v) => v,
            Outcome::HtabElem { map, key } => self.htab_elem(pc, map, &key)?,
            Outcome::Loop {
                nr,
                pc: callback,
                ctx,
            } => {
                // The kernel's bpf_loop: at most 1 << 23 rounds; returns the rounds run.
                if nr > 1 << 23 {
                    (-i64::from(libc::E2BIG)) as u64
                } else {
                    let mut rounds = nr;
                    for i in 0..nr {
                        if self.run(callback, [i, ctx, 0, 0, 0], depth)? != 0 {
                            rounds = i + 1;
                            break;
                        }
                    }
                    rounds
                }
            }
        };
        Ok(())
    }

    /// `__htab_map_lookup_elem`, as the verifier inlines a hash lookup: `call; if r0 == 0
    /// goto L; [LRU: mark the element referenced]; r0 += <value offset>; L:`. The value
    /// offset is that last immediate. An LRU element shows as already referenced, as in
    /// a benchmark that repeats one frame.
    fn htab_elem(&mut self, pc: usize, map: usize, key: &[u8]) -> Result<u64, Error> {
        let insns = &self.prog.insns;
        let pattern = || -> Option<(usize, Option<usize>)> {
            let jeq = insns.get(pc + 1)?;
            if jeq.code != (CLASS_JMP | JMP_JEQ) || jeq.dst != 0 || jeq.imm != 0 || jeq.off < 1 {
                return None;
            }
            let add = insns.get(pc + 1 + jeq.off as usize)?;
            if add.code != (CLASS_ALU64 | ALU_ADD) || add.dst != 0 || add.imm <= 0 {
                return None;
            }
            let mark = insns
                .get(pc + 2)
                .filter(|l| l.code == (CLASS_LDX | MODE_MEM | SIZE_B) && l.src == 0 && l.off >= 0)
                .map(|l| l.off as usize)
                .filter(|_| jeq.off > 1);
            Some((add.imm as usize, mark))
        };
        let (value_off, mark) = pattern().ok_or_else(|| {
            Error::new("__htab_map_lookup_elem not followed by the verifier's inlined lookup")
        })?;
        Ok(match self.maps.value(&mut self.mem, map, key, value_off)? {
            None => 0,
            Some((region, _)) => {
                if let Some(at) = mark {
                    self.mem.regions[region].bytes[at] = 1;
                }
                addr(region, 0)
            }
        })
    }
}

enum Step {
    Next,
    Jump(usize),
    Exit,
}

fn sign_extend(v: u64, bytes: usize) -> u64 {
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
