//! Capture filters in tcpdump's language (`--filter 'tcp port 443 and host 198.51.100.7'`):
//! libpcap compiles the expression for an Ethernet link to classic BPF, exactly as
//! `tcpdump -r` would, and the XDP program runs those instructions in the kernel
//! (`xdpsieve-ebpf/src/capture_filter/`) for the packets a rule selected for recording:
//! translated to eBPF ([`translate`], written into the object by
//! [`crate::configure::ebpf_code::object`]) or, for what
//! the translation cannot take, interpreted. [`FilterEngine`] chooses; the default tries the
//! translation and falls back (the loader says why).
//!
//! Everything that can be wrong with a filter is found here, before anything is loaded or
//! attached: libpcap's own error for an expression it refuses, a program too long for the
//! table, and any instruction the kernel interpreter would not run the way libpcap's
//! `bpf_filter` does (the checks of the kernel's `bpf_check_classic`: known opcodes, jumps
//! that land inside the program, scratch memory indexes in range, a `ret` at the end).
//! Unlike the kernel's checker, a backward `ja` is allowed: libpcap's `protochain` loops
//! with one, and the kernel interpreter stops any run after
//! [`STEP_BUDGET`](xdpsieve_common::filter::STEP_BUDGET) instructions (rejecting the packet).

pub mod translate;

use pcap::{Capture, Linktype};
use xdpsieve_common::{
    FilterInsn,
    filter::{MAX_INSNS, MEM_WORDS, TABLE_INSNS},
};

/// How the kernel runs a filter (`--filter-engine`).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum FilterEngine {
    /// Translated to eBPF when it can be (no backward jump, short enough, accepted by the
    /// verifier), else interpreted.
    #[default]
    Auto,
    /// Translated to eBPF, or refused with the reason.
    Translated,
    /// Interpreted: one `bpf_loop` step per classic instruction (slower).
    Interpreter,
}

/// A filter expression and its classic BPF program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompiledFilter {
    /// The expression as given (what status lines and errors show).
    pub expression: String,
    pub insns: Vec<FilterInsn>,
}

#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error(
        "capture filter `{expression}`: {message} (the syntax is tcpdump's: see `man 7 pcap-filter`)"
    )]
    Syntax { expression: String, message: String },
    #[error(
        "capture filter `{expression}` compiles to {len} classic BPF instructions; the kernel \
         filter runs at most {MAX_INSNS}: split it, or filter the capture file afterwards"
    )]
    TooLong { expression: String, len: usize },
    #[error("capture filter `{expression}`: instruction {index} ({insn}): {problem}")]
    Invalid {
        expression: String,
        index: usize,
        insn: String,
        problem: &'static str,
    },
    #[error("capture filter: libpcap is not usable: {0}")]
    Libpcap(String),
}

impl CompiledFilter {
    /// Compiles `expression` as tcpdump does on an Ethernet link (optimized). An empty
    /// expression (or only blanks) is no filter: `None`.
    pub fn compile(expression: &str) -> Result<Option<CompiledFilter>, FilterError> {
        if expression.trim().is_empty() {
            return Ok(None);
        }
        let dead =
            Capture::dead(Linktype::ETHERNET).map_err(|e| FilterError::Libpcap(e.to_string()))?;
        let program = dead
            .compile(expression, true)
            .map_err(|e| FilterError::Syntax {
                expression: expression.to_string(),
                message: e.to_string(),
            })?;
        let insns = program
            .get_instructions()
            .iter()
            .map(|insn| parse_insn(&insn.to_string()))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                FilterError::Libpcap("unreadable instruction from pcap_compile".into())
            })?;
        let filter = CompiledFilter {
            expression: expression.to_string(),
            insns,
        };
        filter.validate()?;
        Ok(Some(filter))
    }

    /// Checks the program runs in the kernel interpreter as in libpcap (see the module doc).
    pub fn validate(&self) -> Result<(), FilterError> {
        let len = self.insns.len();
        if len == 0 || len > MAX_INSNS as usize {
            return Err(FilterError::TooLong {
                expression: self.expression.clone(),
                len,
            });
        }
        for (index, insn) in self.insns.iter().enumerate() {
            if let Some(problem) = check_insn(insn, index, len) {
                return Err(FilterError::Invalid {
                    expression: self.expression.clone(),
                    index,
                    insn: format!(
                        "code {:#06x} jt {} jf {} k {:#x}",
                        insn.code, insn.jt, insn.jf, insn.k
                    ),
                    problem,
                });
            }
        }
        Ok(())
    }
}

/// libpcap's instruction as the pcap crate prints it: `code jt jf k`, decimal.
fn parse_insn(text: &str) -> Option<FilterInsn> {
    let mut fields = text.split_whitespace();
    let insn = FilterInsn {
        code: fields.next()?.parse().ok()?,
        jt: fields.next()?.parse().ok()?,
        jf: fields.next()?.parse().ok()?,
        k: fields.next()?.parse().ok()?,
    };
    fields.next().is_none().then_some(insn)
}

/// What is wrong with instruction `index` of a `len`-instruction program, if anything.
fn check_insn(insn: &FilterInsn, index: usize, len: usize) -> Option<&'static str> {
    let code = insn.code;
    let k = insn.k as usize;
    let class = code & 0x07;
    let last = index + 1 == len;
    if last && class != 0x06 {
        return Some("the program does not end with a return");
    }
    let mem_ok = k < MEM_WORDS;
    match class {
        // ld: w/h/b with abs or ind; w with imm, mem, len.
        0x00 => match (code & 0x18, code & 0xe0) {
            (_, 0x20 | 0x40) if code & 0x18 != 0x18 => None,
            (0x00, 0x00 | 0x80) => None,
            (0x00, 0x60) if mem_ok => None,
            (0x00, 0x60) => Some("scratch memory index out of range"),
            _ => Some("unknown load"),
        },
        // ldx: w with imm, mem, len; b with msh.
        0x01 => match code & 0xf8 {
            0x00 | 0x80 | 0xb0 => None,
            0x60 if mem_ok => None,
            0x60 => Some("scratch memory index out of range"),
            _ => Some("unknown load"),
        },
        0x02 | 0x03 if code & 0xf8 != 0 => Some("unknown store"),
        0x02 | 0x03 if !mem_ok => Some("scratch memory index out of range"),
        0x02 | 0x03 => None,
        0x04 => {
            let op = code & 0xf0;
            if code & !0xf8 != 0x04 || op > 0xa0 {
                Some("unknown arithmetic operation")
            } else if matches!(op, 0x30 | 0x90) && code & 0x08 == 0 && insn.k == 0 {
                Some("division by zero")
            } else if matches!(op, 0x60 | 0x70) && code & 0x08 == 0 && insn.k >= 32 {
                Some("shift by 32 or more")
            } else {
                None
            }
        }
        0x05 => {
            let op = code & 0xf0;
            if code & !0xf8 != 0x05 || op > 0x40 {
                return Some("unknown jump");
            }
            let next = index as i64 + 1;
            // `ja` may jump backwards: libpcap's `protochain` loops over the header chain
            // that way (the kernel's step budget bounds such loops, see `STEP_BUDGET`).
            let targets: &[i64] = if op == 0x00 {
                &[next + i64::from(insn.k as i32)]
            } else {
                &[next + i64::from(insn.jt), next + i64::from(insn.jf)]
            };
            targets
                .iter()
                .any(|&t| t < 0 || t >= len as i64)
                .then_some("jump outside the program")
        }
        0x06 => match code & 0x18 {
            0x00 | 0x08 | 0x10 if code & !0x18 == 0x06 => None,
            _ => Some("unknown return"),
        },
        _ => match code {
            0x07 | 0x87 => None,
            _ => Some("unknown instruction"),
        },
    }
}

/// The table the program's `FILTER_PROGRAMS` is loaded with: `capture` in its slot and
/// `log` in its own (absent ones reject, and are never run).
pub fn table(
    capture: Option<&CompiledFilter>,
    log: Option<&CompiledFilter>,
) -> Box<[FilterInsn; TABLE_INSNS]> {
    let mut table = Box::new([FilterInsn::REJECT; TABLE_INSNS]);
    for (slot, filter) in [capture, log].into_iter().enumerate() {
        if let Some(filter) = filter {
            let start = slot * MAX_INSNS as usize;
            table[start..start + filter.insns.len()].copy_from_slice(&filter.insns);
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_what_tcpdump_compiles() {
        let filter = CompiledFilter::compile("udp port 53")
            .expect("compiles")
            .expect("some");
        assert!(filter.insns.len() > 5);
        assert_eq!(filter.insns.last().map(|i| i.code), Some(0x06));
        assert_eq!(CompiledFilter::compile("  ").expect("empty is fine"), None);
    }

    #[test]
    fn refuses_what_libpcap_refuses() {
        let err = CompiledFilter::compile("tcp port 99999").expect_err("port out of range");
        assert!(err.to_string().contains("tcp port 99999"), "{err}");
        let err = CompiledFilter::compile("host and or").expect_err("syntax");
        assert!(err.to_string().contains("syntax"), "{err}");
    }

    #[test]
    fn refuses_programs_the_interpreter_would_not_run_as_libpcap() {
        let ret = FilterInsn::REJECT;
        let bad = |insns: Vec<FilterInsn>| {
            CompiledFilter {
                expression: "x".into(),
                insns,
            }
            .validate()
            .expect_err("invalid")
            .to_string()
        };
        let jump = |k| FilterInsn {
            code: 0x05,
            jt: 0,
            jf: 0,
            k,
        };
        assert!(bad(vec![jump(1), ret]).contains("outside"));
        assert!(bad(vec![jump(u32::MAX - 1), ret]).contains("outside"));
        let ld_a = FilterInsn {
            code: 0x00,
            jt: 0,
            jf: 0,
            k: 1,
        };
        assert!(bad(vec![ld_a]).contains("does not end"));
        let st = FilterInsn {
            code: 0x02,
            jt: 0,
            jf: 0,
            k: 16,
        };
        assert!(bad(vec![st, ret]).contains("scratch memory"));
        let div0 = FilterInsn {
            code: 0x34,
            jt: 0,
            jf: 0,
            k: 0,
        };
        assert!(bad(vec![div0, ret]).contains("division by zero"));
        assert!(bad(vec![]).contains("at most"));
    }

    #[test]
    fn table_places_each_filter_in_its_slot() {
        let f = CompiledFilter::compile("tcp").expect("ok").expect("some");
        let t = table(None, Some(&f));
        assert_eq!(t[0], FilterInsn::REJECT);
        let start = MAX_INSNS as usize;
        assert_eq!(&t[start..start + f.insns.len()], &f.insns[..]);
    }
}
