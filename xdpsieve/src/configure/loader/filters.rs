//! The filters of a load: which slot the capture and log filters take, how each runs
//! (translated to eBPF or interpreted, see [`FilterEngine`]), and what the program is
//! loaded with for that (the `Config` fields, the interpreter's table, the object with
//! the translations written in).

use std::fmt;

use xdpsieve_common::{Config, FilterInsn, filter};

use crate::configure::{
    capture_filter::{self, FilterEngine, translate},
    ebpf_code::EbpfInsn,
};

/// How one filter slot runs in the loaded program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterRun {
    /// The expression as the operator wrote it.
    pub expression: String,
    /// `capture` or `log`.
    pub purpose: &'static str,
    pub how: FilterHow,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FilterHow {
    /// Translated to this many eBPF instructions.
    Translated(usize),
    /// Interpreted, and why (empty when asked for).
    Interpreted(String),
}

impl fmt::Display for FilterRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} filter `{}`: ", self.purpose, self.expression)?;
        match &self.how {
            FilterHow::Translated(n) => write!(f, "translated to {n} eBPF instructions"),
            FilterHow::Interpreted(why) if why.is_empty() => write!(f, "interpreted"),
            FilterHow::Interpreted(why) => write!(f, "interpreted ({why})"),
        }
    }
}

/// What a load takes from the filters.
pub(super) struct FilterLoad {
    pub config: Config,
    /// The interpreter's programs, when there is a filter.
    pub table: Option<Box<[FilterInsn; filter::TABLE_INSNS]>>,
    /// The translations, by the slot function they go over.
    pub functions: Vec<(&'static str, Vec<EbpfInsn>)>,
    pub runs: Vec<FilterRun>,
}

/// The filters of `capture` and `log` (the log's own, or the capture filter's) for a load
/// with `engine`. `Err` only when `engine` is [`FilterEngine::Translated`] and a filter
/// cannot be translated.
pub(super) fn plan(
    mut config: Config,
    capture: Option<&capture_filter::CompiledFilter>,
    log: Option<&capture_filter::CompiledFilter>,
    engine: FilterEngine,
) -> Result<FilterLoad, String> {
    // The log shares the capture filter's slot (and its run) when it is the same program.
    let own_log = log.filter(|log| Some(*log) != capture);
    if capture.is_some() {
        config.capture_filter = filter::CAPTURE_SLOT + 1;
    }
    config.log_filter = match (log, own_log) {
        (None, _) => 0,
        (Some(_), None) => filter::CAPTURE_SLOT + 1,
        (Some(_), Some(_)) => filter::LOG_SLOT + 1,
    };
    let mut runs = Vec::new();
    let mut translated = Vec::new();
    let slots = [
        (filter::CAPTURE_SLOT, capture, "capture"),
        (filter::LOG_SLOT, own_log, "log"),
    ];
    for (slot, compiled, purpose) in slots {
        let Some(compiled) = compiled else { continue };
        let how = match engine {
            FilterEngine::Interpreter => FilterHow::Interpreted(String::new()),
            _ => match translate::translate(&compiled.insns)
                .and_then(|code| Ok((code.len(), translate::slot_function(&code)?)))
            {
                Ok((length, function)) => {
                    translated.push((filter::SLOT_FUNCTIONS[slot as usize], function));
                    config.filter_translated |= 1 << slot;
                    FilterHow::Translated(length)
                }
                Err(e) if engine == FilterEngine::Translated => {
                    return Err(format!(
                        "{purpose} filter `{}` cannot be translated to eBPF: {e}; \
                         use --filter-engine auto or interpreter",
                        compiled.expression
                    ));
                }
                Err(e) => FilterHow::Interpreted(format!("not translated: {e}")),
            },
        };
        runs.push(FilterRun {
            expression: compiled.expression.clone(),
            purpose,
            how,
        });
    }
    // A translated filter hands the interpreter the packets it cannot read in the linear
    // data, so the table is loaded whenever there is a filter.
    let table = (!runs.is_empty()).then(|| capture_filter::table(capture, own_log));
    Ok(FilterLoad {
        config,
        table,
        functions: translated,
        runs,
    })
}

/// Why the kernel refused a program with translated filters, in one short line, from the
/// load error (which ends with the verifier's log) and its errno.
pub(super) fn refusal(error: &str, errno: Option<i32>) -> String {
    // The verifier's statistics close every log; what it objected to comes before them.
    if error.contains("BPF program is too large") {
        return "the verifier gave up after 1,000,000 instructions: the filter has too many \
                paths for it"
            .into();
    }
    let stats = ["verification time", "stack depth", "processed "];
    let Some(line) = error
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty() && !stats.iter().any(|s| l.starts_with(s)))
    else {
        return "the verifier refused it".into();
    };
    let line: String = line.chars().take(200).collect();
    // A log that ends on an instruction (`968: (85) call ...`) says no reason: the verifier
    // stopped without one, out of memory or interrupted by a signal (seen once in CI, beside
    // another test verifying a program as large), not because of the program.
    let at_instruction = line
        .split_once(": (")
        .is_some_and(|(pc, _)| !pc.is_empty() && pc.bytes().all(|b| b.is_ascii_digit()));
    if at_instruction {
        let why = errno.map_or_else(
            || "no error number".to_string(),
            |n| std::io::Error::from_raw_os_error(n).to_string(),
        );
        return format!(
            "the verifier stopped at `{line}` without saying why ({why}): out of memory or \
             interrupted, not the program's fault; loading again may pass"
        );
    }
    line
}

#[cfg(test)]
mod tests {
    use super::refusal;

    #[test]
    fn a_refusal_is_one_line_of_what_the_verifier_objected_to() {
        let too_large = "the BPF_PROG_LOAD syscall returned Argument list too long. Verifier \
                         output: 22813: (2d) if r1 > r3 goto pc+30 BPF program is too large. \
                         Processed 1000001 insn\nverification time 3657906 usec\nstack depth \
                         256+0+136\nprocessed 1000001 insns (limit 1000000)";
        assert!(refusal(too_large, Some(libc::E2BIG)).contains("1,000,000 instructions"));
        let other = "Verifier output: 12: (61) r2 = *(u32 *)(r1 +0)\ninvalid access to packet\n\
                     verification time 10 usec\nstack depth 0\nprocessed 3 insns";
        assert_eq!(
            refusal(other, Some(libc::EACCES)),
            "invalid access to packet"
        );
        // A log cut off at an instruction: no reason given.
        let stopped = "Verifier output: 967: (bf) r2 = r10\n968: (85) call bpf_xdp_load_bytes#189";
        let said = refusal(stopped, Some(libc::ENOMEM));
        assert!(
            said.starts_with("the verifier stopped at `968: (85) call")
                && said.contains("without saying why (Cannot allocate memory"),
            "{said}"
        );
    }
}
