//! The capture filter: runs the programs libpcap compiles from tcpdump expressions
//! (`--filter 'tcp port 443'`), only for packets a rule selected for recording, before
//! anything is copied.
//!
//! A slot's filter runs one of two ways, chosen by userspace at load
//! (`Config::filter_translated`, read-only data, so the verifier keeps only the way in use):
//! - **translated**: userspace translates the classic program to eBPF and writes it over
//!   the slot's placeholder function (`translated`); the filter is then ordinary code of
//!   this program, checked by the verifier like the rest. This is the fast way. A packet
//!   it cannot read in the linear data (XDP fragments, a load past the end) it hands to
//!   the interpreter, which reads through fragments and rejects past the end.
//! - **interpreted** (`interpreter`): one `bpf_loop` step per classic instruction, for
//!   what the translation cannot take (a backward jump, a translation longer than the
//!   placeholder, one the verifier refuses).

mod interpreter;
mod translated;

use aya_ebpf::bindings::xdp_md;
use xdpsieve_common::{Config, filter};

/// Whether the filter in `slot` selects the frame of `frame_len` bytes (XDP fragments
/// included).
#[inline(always)]
pub(crate) fn selects(cfg: &Config, xdp: *mut xdp_md, slot: u32, frame_len: u32) -> bool {
    if cfg.filter_translated & (1 << slot) == 0 {
        return interpreter::selects(xdp, slot, frame_len);
    }
    let result = if slot == 0 {
        translated::xdpsieve_filter_slot0(xdp, frame_len)
    } else {
        translated::xdpsieve_filter_slot1(xdp, frame_len)
    };
    match result {
        filter::TRANSLATED_REJECT => false,
        filter::TRANSLATED_SELECT => true,
        _ => interpreter::selects(xdp, slot, frame_len),
    }
}

/// Which of the wanted records (capture, event) the filters select. The log shares the
/// capture filter's run when it has no filter of its own.
#[inline(always)]
pub(crate) fn apply(
    xdp: *mut xdp_md,
    cfg: &Config,
    want_capture: bool,
    want_log: bool,
    frame_len: u32,
) -> (bool, bool) {
    let mut capture_selected = None;
    let mut capture = want_capture;
    if want_capture && cfg.capture_filter != 0 {
        let selected = selects(cfg, xdp, cfg.capture_filter - 1, frame_len);
        capture_selected = Some(selected);
        capture = selected;
    }
    let mut log = want_log;
    if want_log && cfg.log_filter != 0 {
        log = match capture_selected {
            Some(selected) if cfg.log_filter == cfg.capture_filter => selected,
            _ => selects(cfg, xdp, cfg.log_filter - 1, frame_len),
        };
    }
    (capture, log)
}
