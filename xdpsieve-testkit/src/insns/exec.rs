//! The interpreter: runs a verified program's xlated instructions on one frame and counts
//! every instruction executed (ld_imm64 once; a call to a kernel function once, see
//! `helpers`). Registers are plain 64-bit values; pointers are addresses in the emulated
//! address space of `memory`.

use std::collections::BTreeMap;

use super::{
    Error, Program,
    alu::{alu, cond, endian, sign_extend},
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
    pub(super) trace: Vec<u32>,
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
            trace: Vec::new(),
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
            self.trace.push(pc as u32);
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
    /// goto L; [LRU: mark the element referenced]; r0 += <value offset>; [per-CPU: r0 =
    /// *(u64 *)r0; r0 = this CPU's copy]; L:`. The value offset is that immediate. An LRU
    /// element shows as already referenced, as in a benchmark that repeats one frame.
    fn htab_elem(&mut self, pc: usize, map: usize, key: &[u8]) -> Result<u64, Error> {
        let insns = &self.prog.insns;
        let pattern = || -> Option<(usize, Option<usize>, bool)> {
            let jeq = insns.get(pc + 1)?;
            if jeq.code != (CLASS_JMP | JMP_JEQ) || jeq.dst != 0 || jeq.imm != 0 || jeq.off < 1 {
                return None;
            }
            let end = pc + 2 + jeq.off as usize;
            let at = (pc + 2..end).find(|&i| {
                insns
                    .get(i)
                    .is_some_and(|a| a.code == (CLASS_ALU64 | ALU_ADD) && a.dst == 0 && a.imm > 0)
            })?;
            let mark = insns
                .get(pc + 2)
                .filter(|l| l.code == (CLASS_LDX | MODE_MEM | SIZE_B) && l.src == 0 && l.off >= 0)
                .map(|l| l.off as usize)
                .filter(|_| at > pc + 2);
            let per_cpu = insns.get(at + 1).is_some_and(|l| {
                l.code == (CLASS_LDX | MODE_MEM | 0x18) && l.src == 0 && l.dst == 0 && l.off == 0
            });
            Some((insns[at].imm as usize, mark, per_cpu))
        };
        let (value_off, mark, per_cpu) = pattern().ok_or_else(|| {
            Error::new("__htab_map_lookup_elem not followed by the verifier's inlined lookup")
        })?;
        if per_cpu {
            // The element holds a per-CPU pointer where the value would be: to CPU 0's.
            let Some((value, off)) = self.maps.value(&mut self.mem, map, key, 0)? else {
                return Ok(0);
            };
            let mut elem = vec![0u8; value_off + 8];
            elem[value_off..].copy_from_slice(&addr(value, off).to_le_bytes());
            return Ok(addr(self.mem.push(Kind::Bytes, elem), 0));
        }
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
