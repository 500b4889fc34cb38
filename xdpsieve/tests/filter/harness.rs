//! Shared by the filter tests: the real program loaded with a capture filter and a rule that
//! drops (and so selects for capture) every IP packet, fed one frame at a time through
//! `BPF_PROG_TEST_RUN`; a frame is selected when the capture counter moved.
//!
//! Every filter is loaded twice, interpreted and translated to eBPF (when it translates:
//! not libpcap's `protochain` loop), and every frame runs through both: they must agree.

use aya::programs::{TestRun as _, TestRunOptions};
use xdpsieve::{
    configure::capture_filter::{CompiledFilter, FilterEngine, translate},
    configure::loader::{Firewall, Settings},
    configure::rules::{Action, RuleSet},
};
use xdpsieve_common::{Counters, FilterInsn, capture};

/// The same filter loaded both ways.
pub(crate) struct Engines {
    pub interpreted: Firewall,
    /// `None` without a filter, or for one the translator leaves to the interpreter.
    pub translated: Option<Firewall>,
}

/// Loads the program: every IP packet dropped, every packet (dropped or passed) captured,
/// through `filter`, once per engine.
pub(crate) fn load(filter: Option<CompiledFilter>) -> Engines {
    let translates = filter
        .as_ref()
        .is_some_and(|f| translate::translate(&f.insns).is_ok());
    Engines {
        interpreted: load_with(filter.clone(), FilterEngine::Interpreter),
        translated: translates.then(|| load_with(filter, FilterEngine::Translated)),
    }
}

/// Loads the program as [`load`] does, with one engine.
pub(crate) fn load_with(filter: Option<CompiledFilter>, engine: FilterEngine) -> Firewall {
    let rules = RuleSet {
        default_action: Action::Drop,
        ..RuleSet::default()
    };
    let settings = Settings {
        rules,
        capture: capture::DROPPED | capture::PASSED,
        log_filter: filter.clone(),
        capture_filter: filter,
        filter_engine: engine,
        ..Settings::default()
    };
    Firewall::load(&settings)
        .unwrap_or_else(|e| panic!("loading the XDP program ({engine:?}): {e}"))
}

/// Loads the program with a hand-written classic program (checked as libpcap's would be).
pub(crate) fn load_insns(insns: &[FilterInsn]) -> Engines {
    let filter = CompiledFilter {
        expression: "hand-written".into(),
        insns: insns.to_vec(),
    };
    filter.validate().unwrap_or_else(|e| panic!("{e}"));
    load(Some(filter))
}

/// The interpreted program's counters.
pub(crate) fn counters(engines: &Engines) -> Counters {
    engines.interpreted.counters().expect("reading counters")
}

/// Runs `frame` once through each engine; true when the filter selected it. Both engines
/// must agree.
pub(crate) fn selects(engines: &mut Engines, frame: &[u8]) -> bool {
    let interpreted = selects_one(&mut engines.interpreted, frame);
    if let Some(translated) = &mut engines.translated {
        assert_eq!(
            selects_one(translated, frame),
            interpreted,
            "translated and interpreted filters differ on {frame:02x?}"
        );
    }
    interpreted
}

/// Runs `frame` once through the program.
pub(crate) fn run(fw: &mut Firewall, frame: &[u8]) {
    let opts = TestRunOptions {
        data_in: Some(frame),
        ..TestRunOptions::new()
    };
    fw.program()
        .expect("program")
        .test_run(opts)
        .unwrap_or_else(|e| panic!("test run of a {}-byte frame: {e}", frame.len()));
}

/// Runs `frame` once; true when the filter selected it (a capture record was written).
pub(crate) fn selects_one(fw: &mut Firewall, frame: &[u8]) -> bool {
    let before = fw.counters().expect("reading counters");
    run(fw, frame);
    let after = fw.counters().expect("reading counters");
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
pub(crate) const fn insn(code: u16, jt: u8, jf: u8, k: u32) -> FilterInsn {
    FilterInsn { code, jt, jf, k }
}
