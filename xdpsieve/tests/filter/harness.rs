//! Shared by the filter tests: the real program loaded with a capture filter and a rule that
//! drops (and so selects for capture) every IP packet, fed one frame at a time through
//! `BPF_PROG_TEST_RUN`; a frame is selected when the capture counter moved.

use aya::programs::{TestRun, TestRunOptions};
use xdpsieve::{
    capture_filter::CompiledFilter,
    loader::{Firewall, Settings},
    rules::{Action, RuleSet},
};
use xdpsieve_common::{Counters, FilterInsn, capture};

/// Loads the program: every IP packet dropped, every packet (dropped or passed) captured,
/// through `filter`.
pub fn load(filter: Option<CompiledFilter>) -> Firewall {
    let rules = RuleSet {
        default_action: Action::Drop,
        ..RuleSet::default()
    };
    let settings = Settings {
        rules,
        capture: capture::DROPPED | capture::PASSED,
        log_filter: filter.clone(),
        capture_filter: filter,
        ..Settings::default()
    };
    Firewall::load(&settings).unwrap_or_else(|e| panic!("loading the XDP program: {e}"))
}

/// Loads the program with a hand-written classic program (checked as libpcap's would be).
pub fn load_insns(insns: &[FilterInsn]) -> Firewall {
    let filter = CompiledFilter {
        expression: "hand-written".into(),
        insns: insns.to_vec(),
    };
    filter.validate().unwrap_or_else(|e| panic!("{e}"));
    load(Some(filter))
}

pub fn counters(fw: &Firewall) -> Counters {
    fw.counters().expect("reading counters")
}

/// Runs `frame` once; true when the filter selected it (a capture record was written).
pub fn selects(fw: &mut Firewall, frame: &[u8]) -> bool {
    let before = counters(fw);
    let opts = TestRunOptions {
        data_in: Some(frame),
        ..TestRunOptions::new()
    };
    fw.program()
        .expect("program")
        .test_run(opts)
        .unwrap_or_else(|e| panic!("test run of a {}-byte frame: {e}", frame.len()));
    let after = counters(fw);
    let captured = after.captured + after.capture_lost - before.captured - before.capture_lost;
    let refused = after.not_selected - before.not_selected;
    assert_eq!(
        captured + refused,
        1,
        "each frame is either captured or not selected: {frame:02x?}"
    );
    captured == 1
}

/// One instruction.
pub const fn insn(code: u16, jt: u8, jf: u8, k: u32) -> FilterInsn {
    FilterInsn { code, jt, jf, k }
}
