//! Executed eBPF instructions per packet: a deterministic cost for the benchmarks, where
//! timings on a shared machine swing severalfold.
//!
//! [`count`] takes a loaded program, fetches its *verified* instructions (the xlated code
//! the kernel runs, after the verifier's rewrites: context accesses turned into loads from
//! `struct xdp_buff`, map lookups inlined, `bpf_loop` unrolled into a loop) and interprets
//! them on one frame, as `BPF_PROG_TEST_RUN` would run it, counting every instruction
//! executed.
//!
//! What the count means and where it approximates:
//!
//! - every instruction counts 1; ld_imm64 (two slots) counts 1; a call to a kernel
//!   function (helper, or `__htab_map_lookup_elem` of an inlined hash lookup) counts 1,
//!   whatever the function does;
//! - maps are read, never written: each key's real value is read on its first lookup into a
//!   private copy the run may change (per-CPU maps: CPU 0's value). Updates and deletes
//!   succeed without effect; ring buffer and perf outputs succeed and write nowhere;
//! - an LRU hash element found shows as already referenced (the steady state of a
//!   benchmark repeating one frame), which skips the store that marks it;
//! - the context is `BPF_PROG_TEST_RUN`'s: 256 bytes of headroom, ingress on loopback
//!   (ifindex 1), rx queue 0, CPU 0; the clock starts at 1000 s and advances 1 µs per read;
//!   `bpf_get_prandom_u32` returns a fixed sequence;
//! - any other kernel function, kfunc or tail call is an error naming it.
//!
//! Needs root (xlated code, map contents, /proc/kallsyms addresses).
//!
//! Files: [`sys`] (the bpf syscalls), [`alu`] (instruction arithmetic), [`kallsyms`] (call targets by name), [`decode`]
//! (instruction fields), [`memory`] (the address space), [`maps`] (map contents and the
//! inlined lookups), [`helpers`] (kernel functions), [`exec`] (the interpreter).

mod alu;
mod decode;
mod exec;
mod helpers;
mod kallsyms;
mod maps;
mod memory;
mod sys;
#[cfg(test)]
mod tests;

use std::{
    collections::HashMap,
    os::fd::{AsFd as _, BorrowedFd},
};

use decode::{CLASS_JMP, Insn, JMP_CALL};
use maps::MapDef;

/// What went wrong, with the context it went wrong in (program, instruction, map).
#[derive(Debug, Clone)]
pub struct Error {
    message: String,
}

impl Error {
    pub(crate) fn new(message: impl Into<String>) -> Error {
        Error {
            message: message.into(),
        }
    }

    /// The same error, located at instruction `pc`.
    fn at(self, pc: usize, insn: Insn) -> Error {
        if self.message.starts_with("at insn ") {
            return self;
        }
        Error::new(format!("at insn {pc} ({insn}): {}", self.message))
    }

    fn in_program(self, prog: &Program) -> Error {
        Error::new(format!(
            "program {} ({:?}): {}",
            prog.id, prog.name, self.message
        ))
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// One run's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Count {
    /// eBPF instructions executed.
    pub insns: u64,
    /// The program's return value (the XDP action).
    pub verdict: u32,
    /// Kernel functions called, by name, with how many times.
    pub helpers: Vec<(String, u32)>,
    /// The index of each instruction executed, in order (as `bpftool prog dump xlated`
    /// numbers them): where a path's instructions go.
    pub trace: Vec<u32>,
}

/// A loaded program's verified code, its maps and call targets, ready to run on frames.
pub struct Program {
    id: u32,
    name: String,
    insns: Vec<Insn>,
    maps: Vec<MapDef>,
    /// The kernel function each helper call reaches, or why it has no name.
    calls: HashMap<usize, Result<String, String>>,
}

const PROG_TYPE_XDP: u32 = 6;

impl Program {
    /// Reads program `prog`'s xlated code and opens its maps.
    pub fn open(prog: BorrowedFd<'_>) -> Result<Program, Error> {
        let info = sys::prog_info(prog)?;
        let context = |e: Error| Error::new(format!("program {} ({:?}): {e}", info.id, info.name));
        if info.prog_type != PROG_TYPE_XDP {
            return Err(context(Error::new(format!(
                "program type {}, only XDP programs are emulated",
                info.prog_type
            ))));
        }
        let cpus = sys::possible_cpus().map_err(context)?;
        let mut maps = info
            .map_ids
            .iter()
            .map(|&id| MapDef::open(id, cpus))
            .collect::<Result<Vec<_>, _>>()
            .map_err(context)?;
        MapDef::open_inner(&mut maps, cpus).map_err(context)?;
        let insns: Vec<Insn> = info.insns.iter().map(|&raw| Insn::decode(raw)).collect();
        let syms = kallsyms::Kallsyms::get().map_err(context)?;
        let mut calls = HashMap::new();
        for (pc, insn) in insns.iter().enumerate() {
            if insn.code == (CLASS_JMP | JMP_CALL) && insn.src == 0 {
                let target = syms.call_target(insn.imm).map_or_else(
                    || Err(format!("call to {:#x} past __bpf_call_base, which /proc/kallsyms does not name", insn.imm)),
                    |names| Ok(names[0].clone()),
                );
                calls.insert(pc, target);
            }
        }
        Ok(Program {
            id: info.id,
            name: info.name,
            insns,
            maps,
            calls,
        })
    }

    /// Opens program `id` and reads it.
    pub fn open_id(id: u32) -> Result<Program, Error> {
        let fd = sys::prog_fd_by_id(id)?;
        Program::open(fd.as_fd())
    }

    /// Instructions of the verified program.
    pub fn len(&self) -> usize {
        self.insns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.insns.is_empty()
    }

    /// Runs the program on `frame`, counting the instructions it executes.
    pub fn count(&self, frame: &[u8]) -> Result<Count, Error> {
        let mut machine = exec::Machine::new(self, frame);
        let ret = machine.run_main().map_err(|e| e.in_program(self))?;
        Ok(Count {
            insns: machine.count,
            verdict: ret as u32,
            helpers: machine.helpers.into_iter().collect(),
            trace: machine.trace,
        })
    }
}

/// Counts the instructions program `prog` executes on `frame`.
pub fn count(prog: BorrowedFd<'_>, frame: &[u8]) -> Result<Count, Error> {
    Program::open(prog)?.count(frame)
}
