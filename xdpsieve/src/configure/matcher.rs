//! The rule set compiled to eBPF at load (see `xdpsieve_common::matcher`): code that tests
//! each rule's conditions in order and returns the index of the first rule that holds,
//! written over the program's placeholder function (`ebpf_code::object::place`).
//!
//! Why: the bitmaps ([`crate::configure::classify`]) cost the same whatever the rules, a
//! lookup or two per field in use and a word scan: about a hundred instructions on every
//! packet with a port in use, nearly two hundred at 1,024 port rules. Compiled code costs
//! what a packet's own path through it costs. Jumps only go forward, so no packet runs more
//! of it than the path this module measures, and a rule set is compiled only when that
//! path is at most [`MAX_PATH`] instructions (and the code fits the placeholder,
//! [`FUNCTION_INSNS`]). That bounds the cost; it does not make compiled code cheaper for
//! every rule set: a long rule set over protocols alone needs a single bitmap lookup
//! (about fifty), while its code can run up to twice that. Choosing by an estimate of both
//! costs per rule set would close that gap; it is not done.
//!
//! Two shapes; of those that fit, the one with the shorter longest path wins:
//! - **In order**: every rule's tests, rule after rule. Short rule sets.
//! - **Split on a port** (source or destination): the port's values, cut into the ranges
//!   over which the same rules allow it (every rule's range starts or ends one), are
//!   searched, one 32-bit comparison per level, to the code of that range's rules, in
//!   order, without the port test itself. Ranges with the same rules share their code.
//!   The rules without a condition on that port could hold in any range: they follow, as
//!   one chain, tested only below the index a range's rule found. 1,024 rules on single
//!   ports run about twelve comparisons and the tests of a rule or two, not 1,024 rules'
//!   tests.
//!
//! Rule sets that name address sets (their members change at run time, in maps) or have
//! continuing rules (the walk past them reads the bitmaps) keep the bitmaps, as do rule
//! sets no shape compiles short enough: the bitmaps are the general case, and the tests
//! run both on the same frames.
//!
//! The code, for `r1` the packet (`packet::*` offsets), `r0` the result:
//! - `if r1 == 0 goto none` (the verifier checks the function on its own, where the
//!   pointer may be null);
//! - the fields some rule tests, loaded once: family `r2`, protocol `r3`, ports present
//!   `r4`, source port `r5`, destination port `r6`, the first address words `r7` and `r8`;
//! - per rule, one 32-bit test per condition, each jumping to the next rule when it fails
//!   (an IPv6 prefix loads its other words into `r9`; a prefix that ends inside a word
//!   masks it in `r9`, never in `r0`), then `r0 = index; exit`;
//! - split: `r0 = NO_MATCH`, the search (`if port >= start goto upper half`, down to
//!   `goto range`), each range's rules (ending `r0 = index; exit`, or `r0 = index; goto
//!   chain` when a rule of the chain comes before), `goto chain`; the chain, each rule
//!   behind `if r0 < index goto done`; `done: exit`;
//! - `none: r0 = NO_MATCH; exit`.
//!
//! The conditions mean what the bitmaps mean (`classify::build`): the rule's family and
//! protocol, ports present when the rule has a port condition, each port within its range,
//! each address under its prefix. A split keeps the test of ports present: a packet
//! without ports reads as port 0, and lands in a range whose port rules then fail it.

use std::fmt;

use xdpsieve_common::matcher::{FUNCTION_INSNS, MAX_PATH, NO_MATCH, packet};

use crate::configure::{
    ebpf_code::{
        self, ALU, AND, B, EXIT, EbpfInsn, Emitter, H, JEQ, JGT, JLT, JMP, JMP32, JNE, K, LDX,
        Label, MEM, MOV, R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, W,
    },
    rules::{AddrMatch, Cidr, RuleSpec},
};

/// Why a rule set is matched by the bitmaps rather than compiled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotCompiled {
    /// No rules: the program skips matching altogether.
    NoRules,
    /// A rule names an address set.
    Sets,
    /// A rule continues (monitor or limit).
    Continuing,
    /// The code would be this many instructions (`at_least`: or more, when the compiler
    /// gave up before writing it all), more than the placeholder holds.
    TooLong { insns: usize, at_least: bool },
    /// In every shape, some packet would run this many instructions of the code (at
    /// least), more than [`MAX_PATH`]: the bitmaps cost less.
    LongPath { insns: usize },
    /// Asked for ([`RuleEngine::Bitmaps`]).
    Asked,
    /// The kernel refused the compiled rules (its verifier's last word). A bug of
    /// xdpsieve's: the load is done again with the bitmaps, which give the same verdicts.
    Refused(String),
}

impl fmt::Display for NotCompiled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotCompiled::NoRules => write!(f, "no rules"),
            NotCompiled::Sets => write!(f, "a rule names an address set"),
            NotCompiled::Continuing => write!(f, "a rule continues (monitor or limit)"),
            NotCompiled::TooLong { insns, at_least } => write!(
                f,
                "compiled they would take {}{insns} eBPF instructions, more than the {} the \
                 placeholder holds",
                if *at_least { "at least " } else { "" },
                FUNCTION_INSNS - 2
            ),
            NotCompiled::LongPath { insns } => write!(
                f,
                "compiled, a packet could run {insns} eBPF instructions of them, more than \
                 the {MAX_PATH} past which the bitmaps cost less"
            ),
            NotCompiled::Asked => write!(f, "asked for"),
            NotCompiled::Refused(why) => write!(f, "the kernel refused the compiled rules: {why}"),
        }
    }
}

/// How the loaded program finds the first matching rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Matching {
    /// By the rule set's own code, of this many eBPF instructions.
    Compiled(usize),
    /// By the bitmaps, and why.
    Bitmaps(NotCompiled),
}

impl fmt::Display for Matching {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Matching::Compiled(n) => write!(f, "compiled to {n} eBPF instructions"),
            Matching::Bitmaps(why) => write!(f, "matched by bitmaps ({why})"),
        }
    }
}

/// How the first matching rule is to be found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RuleEngine {
    /// Compiled code when the rule set can be compiled and its code fits, else bitmaps.
    #[default]
    Auto,
    /// Always the bitmaps.
    Bitmaps,
}

/// How `rules` are matched under `engine`, and the placeholder function's code when they
/// are compiled.
pub fn plan(rules: &[RuleSpec], engine: RuleEngine) -> (Matching, Option<Vec<EbpfInsn>>) {
    if engine == RuleEngine::Bitmaps {
        return (Matching::Bitmaps(NotCompiled::Asked), None);
    }
    match compile(rules).and_then(|code| Ok((code.insns.len(), function(&code.insns)?))) {
        Ok((length, function)) => (Matching::Compiled(length), Some(function)),
        Err(why) => (Matching::Bitmaps(why), None),
    }
}

/// Compiled rules, without padding.
#[derive(Debug, PartialEq, Eq)]
pub struct Code {
    pub insns: Vec<EbpfInsn>,
    /// The most instructions of it one packet runs (at most; every jump goes forward).
    pub longest_path: usize,
    pub shape: Shape,
}

/// How the code tests the rules (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    InOrder,
    /// A binary search on the source or destination port, then the rules of that range.
    Split(Port),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Port {
    Src,
    Dst,
}

/// The code for `rules` (in evaluation order): of the shapes that fit, the one with the
/// shortest longest path.
pub fn compile(rules: &[RuleSpec]) -> Result<Code, NotCompiled> {
    let conditions = conditions(rules)?;
    let shapes = [
        Shape::InOrder,
        Shape::Split(Port::Dst),
        Shape::Split(Port::Src),
    ];
    // An unfinished emission (a jump out of an offset's reach) is more than fits anyway.
    let (fitting, too_long): (Vec<Code>, Vec<Code>) = shapes
        .iter()
        .filter_map(|&shape| emit(&conditions, shape).ok())
        .partition(|code| code.insns.len() <= FUNCTION_INSNS - 2);
    let shortest_path = fitting.iter().map(|code| code.longest_path).min();
    if let Some(best) = fitting
        .into_iter()
        .filter(|code| code.longest_path <= MAX_PATH)
        .min_by_key(|code| (code.longest_path, code.insns.len()))
    {
        return Ok(best);
    }
    if let Some(insns) = shortest_path {
        return Err(NotCompiled::LongPath { insns });
    }
    Err(match too_long.iter().map(|code| code.insns.len()).min() {
        Some(insns) => NotCompiled::TooLong {
            insns,
            at_least: false,
        },
        None => NotCompiled::TooLong {
            insns: FUNCTION_INSNS,
            at_least: true,
        },
    })
}

/// `code` (from [`compile`]) as the whole placeholder function.
pub fn function(code: &[EbpfInsn]) -> Result<Vec<EbpfInsn>, NotCompiled> {
    ebpf_code::padded(code, FUNCTION_INSNS).ok_or(NotCompiled::TooLong {
        insns: code.len(),
        at_least: false,
    })
}

/// What one rule tests.
#[derive(Clone)]
struct Conditions {
    /// The rule's position in evaluation order: what the code returns when it holds.
    index: i32,
    family: Option<u8>,
    protocol: Option<u8>,
    needs_ports: bool,
    src_port: Option<(u16, u16)>,
    dst_port: Option<(u16, u16)>,
    /// Prefixes longer than /0 (a /0 only restricts the family, which `family` tests).
    src: Option<Cidr>,
    dst: Option<Cidr>,
}

impl Conditions {
    fn port(&self, port: Port) -> Option<(u16, u16)> {
        match port {
            Port::Src => self.src_port,
            Port::Dst => self.dst_port,
        }
    }

    /// The rule's tests where `port` is known to be within its range.
    fn without(&self, port: Port) -> Conditions {
        let mut rule = self.clone();
        match port {
            Port::Src => rule.src_port = None,
            Port::Dst => rule.dst_port = None,
        }
        rule
    }
}

/// Each rule's tests, or why the rule set is not compiled.
fn conditions(rules: &[RuleSpec]) -> Result<Vec<Conditions>, NotCompiled> {
    if rules.is_empty() {
        return Err(NotCompiled::NoRules);
    }
    if rules.iter().any(RuleSpec::continues) {
        return Err(NotCompiled::Continuing);
    }
    let addr = |a: &Option<AddrMatch>| -> Result<Option<Cidr>, NotCompiled> {
        match a {
            None => Ok(None),
            Some(AddrMatch::Prefix(c)) => Ok(Some(*c)),
            Some(AddrMatch::Set(_)) => Err(NotCompiled::Sets),
        }
    };
    let mut conditions = Vec::with_capacity(rules.len());
    for (index, rule) in rules.iter().enumerate() {
        let family = rule.address_family();
        // A prefix of another family than the rule's can hold for no packet (the bitmaps'
        // tries keep each prefix under its own family). The rule checker refuses such a
        // rule; should one get here, it gets no code rather than a test of the wrong words.
        let other_family = [&rule.src, &rule.dst]
            .into_iter()
            .filter_map(|a| a.and_then(|a| a.prefix()))
            .any(|c| Some(c.family()) != family);
        if other_family {
            continue;
        }
        conditions.push(Conditions {
            index: index as i32,
            family,
            protocol: rule.protocol.map(|p| p.0),
            needs_ports: rule.needs_ports(),
            src_port: rule.src_port.map(|p| (p.min, p.max)),
            dst_port: rule.dst_port.map(|p| (p.min, p.max)),
            src: addr(&rule.src)?.filter(|c| c.prefix_len > 0),
            dst: addr(&rule.dst)?.filter(|c| c.prefix_len > 0),
        });
    }
    Ok(conditions)
}

fn emit(rules: &[Conditions], shape: Shape) -> Result<Code, ebpf_code::Unfinished> {
    let mut e = Emitter::default();
    let none = e.label();
    e.jump(JMP | JEQ | K, R1, 0, 0, none);
    // The fields some rule tests, each loaded once.
    let any = |f: &dyn Fn(&Conditions) -> bool| rules.iter().any(f);
    let loads: [(bool, u8, u8, i16); 7] = [
        (any(&|r| r.family.is_some()), B, R2, packet::FAMILY),
        (any(&|r| r.protocol.is_some()), B, R3, packet::PROTOCOL),
        (any(&|r| r.needs_ports), B, R4, packet::HAS_PORTS),
        (any(&|r| r.src_port.is_some()), H, R5, packet::SRC_PORT),
        (any(&|r| r.dst_port.is_some()), H, R6, packet::DST_PORT),
        (any(&|r| r.src.is_some()), W, R7, packet::SRC),
        (any(&|r| r.dst.is_some()), W, R8, packet::DST),
    ];
    for (used, size, register, offset) in loads {
        if used {
            e.emit(LDX | MEM | size, register, R1, offset, 0);
        }
    }
    let split_path = match shape {
        Shape::InOrder => {
            rules_in_order(&mut e, rules);
            None
        }
        Shape::Split(port) => Some(split::split(&mut e, rules, port)),
    };
    e.bind(none);
    e.emit(ALU | MOV | K, R0, 0, 0, NO_MATCH as i32);
    e.emit(JMP | EXIT, 0, 0, 0, 0);
    let insns = e.finish()?;
    Ok(Code {
        // In order, the code is one path: its length bounds every packet's.
        longest_path: split_path.unwrap_or(insns.len()),
        insns,
        shape,
    })
}

/// Each rule's tests, one after the other, falling through past the last; a rule that
/// holds returns its index.
fn rules_in_order(e: &mut Emitter, rules: &[Conditions]) {
    tests_in_order(e, rules, |e, index| {
        e.emit(ALU | MOV | K, R0, 0, 0, index);
        e.emit(JMP | EXIT, 0, 0, 0, 0);
    });
}

/// Each rule's tests, one after the other, falling through past the last; `holds` writes
/// what follows the tests of the rule (of that index) that hold.
fn tests_in_order(e: &mut Emitter, rules: &[Conditions], holds: impl Fn(&mut Emitter, i32)) {
    for rule in rules {
        let next = e.label();
        if let Some(family) = rule.family {
            e.jump(JMP32 | JNE | K, R2, 0, i32::from(family), next);
        }
        if let Some(protocol) = rule.protocol {
            e.jump(JMP32 | JNE | K, R3, 0, i32::from(protocol), next);
        }
        if rule.needs_ports {
            e.jump(JMP32 | JEQ | K, R4, 0, 0, next);
        }
        for (range, register) in [(rule.src_port, R5), (rule.dst_port, R6)] {
            if let Some(range) = range {
                port_range(e, register, range, next);
            }
        }
        for (prefix, first, offset) in [(rule.src, R7, packet::SRC), (rule.dst, R8, packet::DST)] {
            if let Some(prefix) = prefix {
                under_prefix(e, prefix, first, offset, next);
            }
        }
        holds(e, rule.index);
        e.bind(next);
    }
}

/// Jumps to `next` unless the port in `register` is within `(min, max)`.
fn port_range(e: &mut Emitter, register: u8, (min, max): (u16, u16), next: Label) {
    if min == max {
        e.jump(JMP32 | JNE | K, register, 0, i32::from(min), next);
        return;
    }
    if min > 0 {
        e.jump(JMP32 | JLT | K, register, 0, i32::from(min), next);
    }
    if max < u16::MAX {
        e.jump(JMP32 | JGT | K, register, 0, i32::from(max), next);
    }
}

/// Jumps to `next` unless the address at `offset` (its first word already in `first`) is
/// under `prefix`. Words are compared as the packet holds them (network byte order, as
/// `Cidr::to_words` gives them); a word the prefix does not reach is not read.
fn under_prefix(e: &mut Emitter, prefix: Cidr, first: u8, offset: i16, next: Label) {
    let (addr, mask) = prefix.to_words();
    for word in 0..4 {
        if mask[word] == 0 {
            break;
        }
        let register = if word == 0 {
            first
        } else {
            e.emit(LDX | MEM | W, R9, R1, offset + 4 * word as i16, 0);
            R9
        };
        let register = if mask[word] == u32::MAX {
            register
        } else {
            // The first word is masked in a copy, so that it stays whole for the next
            // rule; a later word is a fresh load. Not in `r0`: split code keeps a result
            // there.
            if register != R9 {
                e.emit(ALU | MOV | ebpf_code::X, R9, register, 0, 0);
            }
            e.emit(ALU | AND | K, R9, 0, 0, mask[word] as i32);
            R9
        };
        e.jump(JMP32 | JNE | K, register, 0, addr[word] as i32, next);
    }
}

mod split;
#[cfg(test)]
mod tests;
