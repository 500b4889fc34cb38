//! Names for the kernel functions a verified program calls. In xlated code a helper call's
//! `imm` is the helper's address minus `__bpf_call_base` (and map helpers are already
//! rewritten to the map type's own function, e.g. `trie_lookup_elem`); /proc/kallsyms
//! gives both addresses, as root.

use std::{collections::HashMap, sync::OnceLock};

use super::Error;

/// Text symbols by address, and `__bpf_call_base`.
pub(super) struct Kallsyms {
    call_base: u64,
    by_addr: HashMap<u64, Vec<String>>,
}

impl Kallsyms {
    /// /proc/kallsyms, read once per process.
    pub(super) fn get() -> Result<&'static Kallsyms, Error> {
        static SYMS: OnceLock<Result<Kallsyms, String>> = OnceLock::new();
        SYMS.get_or_init(Kallsyms::read)
            .as_ref()
            .map_err(|e| Error::new(e.clone()))
    }

    fn read() -> Result<Kallsyms, String> {
        let text = std::fs::read_to_string("/proc/kallsyms")
            .map_err(|e| format!("reading /proc/kallsyms: {e}"))?;
        let mut by_addr: HashMap<u64, Vec<String>> = HashMap::new();
        let mut call_base = None;
        for line in text.lines() {
            let mut parts = line.split_whitespace();
            let (Some(addr), Some(kind), Some(name)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let Ok(addr) = u64::from_str_radix(addr, 16) else {
                continue;
            };
            if name == "__bpf_call_base" {
                call_base = Some(addr);
            }
            if addr != 0 && matches!(kind, "t" | "T") {
                by_addr.entry(addr).or_default().push(name.to_string());
            }
        }
        let call_base = call_base.filter(|&a| a != 0).ok_or(
            "/proc/kallsyms has no address for __bpf_call_base (not root, or kptr_restrict)",
        )?;
        Ok(Kallsyms { call_base, by_addr })
    }

    /// The function a call with this `imm` reaches, by every name kallsyms gives it.
    pub(super) fn call_target(&self, imm: i32) -> Option<&[String]> {
        let addr = self.call_base.wrapping_add_signed(i64::from(imm));
        self.by_addr.get(&addr).map(Vec::as_slice)
    }
}
