//! What every topic uses: the documentation addresses, loading the program, running a frame
//! through it with `BPF_PROG_TEST_RUN`, reading its counters and capture ring, and the
//! per-frame step record the fragment and unclassifiable tests compare.

use std::net::Ipv6Addr;

use aya::programs::{TestRun as _, TestRunOptions};
use xdpsieve::{
    configure::loader::{Firewall, Settings},
    configure::rules::{Action, RuleSet},
    read::record::{CaptureRecord, Verdict},
    read::source::Source,
};
use xdpsieve_common::{Counters, verdict};
use xdpsieve_testkit::frame::Frame;

pub(crate) const DROP: u32 = verdict::DROP as u32;
pub(crate) const PASS: u32 = verdict::PASS as u32;

// Documentation addresses only (RFC 5737, RFC 3849).
pub(crate) const HOST4: [u8; 4] = [192, 0, 2, 10];
pub(crate) const PEER4: [u8; 4] = [192, 0, 2, 20];
pub(crate) const RESOLVER4: [u8; 4] = [192, 0, 2, 53];
pub(crate) const WATCHED4: [u8; 4] = [192, 0, 2, 66];
pub(crate) const HOSTILE4: [u8; 4] = [198, 51, 100, 7];
pub(crate) const HOST6: [u8; 16] = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10).octets();
pub(crate) const PEER6: [u8; 16] = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x20).octets();
pub(crate) const WATCHED6: [u8; 16] = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x66).octets();
pub(crate) const HOSTILE6: [u8; 16] = Ipv6Addr::new(0x2001, 0xdb8, 0xbad, 0, 0, 0, 0, 7).octets();

pub(crate) fn load(settings: &Settings) -> Firewall {
    Firewall::load(settings).unwrap_or_else(|e| panic!("loading the XDP program: {e}"))
}

pub(crate) fn rule_set(rules: &[(Action, &str)]) -> RuleSet {
    let mut set = RuleSet::default();
    for (action, expr) in rules {
        set.push_expression(*action, expr)
            .unwrap_or_else(|e| panic!("rule `{expr}`: {e}"));
    }
    set
}

/// Runs `frame` through the program `repeat` times and returns its verdict.
pub(crate) fn run_repeat(fw: &mut Firewall, frame: &[u8], repeat: u32) -> u32 {
    let opts = TestRunOptions {
        data_in: Some(frame),
        repeat,
        ..TestRunOptions::new()
    };
    let verdict = fw
        .program()
        .expect("program")
        .test_run(opts)
        .unwrap_or_else(|e| panic!("test run of a {}-byte frame: {e}", frame.len()))
        .return_value;
    // Not ABORTED, and nothing but the two verdicts the program is written to return.
    assert!(
        verdict == DROP || verdict == PASS,
        "verdict {verdict} for frame {frame:02x?}"
    );
    verdict
}

pub(crate) fn run(fw: &mut Firewall, frame: &[u8]) -> u32 {
    run_repeat(fw, frame, 1)
}

pub(crate) fn counters(fw: &Firewall) -> Counters {
    fw.counters().expect("reading counters")
}

/// A capture record copied out of the ring.
#[derive(Debug)]
pub(crate) struct Record {
    pub(crate) timestamp_ns: u64,
    pub(crate) ifindex: u32,
    pub(crate) rx_queue: u32,
    pub(crate) orig_len: u32,
    pub(crate) rule_id: u32,
    pub(crate) verdict: Verdict,
    pub(crate) malformed: bool,
    pub(crate) unclassifiable: bool,
    pub(crate) data: Vec<u8>,
}

/// Reads every capture record the source holds now.
pub(crate) fn drain(source: &mut Source) -> Vec<Record> {
    let mut records = Vec::new();
    source.drain(|bytes| {
        let r = CaptureRecord::decode(bytes).expect("decoding a capture record");
        records.push(Record {
            timestamp_ns: r.timestamp_tai_ns,
            ifindex: r.ifindex,
            rx_queue: r.rx_queue,
            orig_len: r.orig_len,
            rule_id: r.rule_id,
            verdict: r.verdict,
            malformed: r.malformed,
            unclassifiable: r.unclassifiable,
            data: r.data.to_vec(),
        });
    });
    records
}

/// What one frame did to a firewall: its verdict, the rule-hit slot it moved, and how the
/// evasion counters moved.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Step {
    pub(crate) verdict: u32,
    pub(crate) slot: usize,
    pub(crate) unclassifiable: u64,
    pub(crate) tiny: u64,
    pub(crate) followed: u64,
    pub(crate) orphans: u64,
}

pub(crate) fn step(fw: &mut Firewall, slots: usize, frame: &Frame) -> Step {
    let before = counters(fw);
    let hits_before = fw.rule_hits(slots).expect("rule hits");
    let verdict = run(fw, &frame.build());
    let after = counters(fw);
    let hits_after = fw.rule_hits(slots).expect("rule hits");
    let moved: Vec<usize> = (0..=slots)
        .filter(|&s| hits_after[s] != hits_before[s])
        .collect();
    assert_eq!(moved.len(), 1, "one slot moves per IP frame: {moved:?}");
    Step {
        verdict,
        slot: moved[0],
        unclassifiable: after.unclassifiable - before.unclassifiable,
        tiny: after.tiny_fragments - before.tiny_fragments,
        followed: after.fragments_followed - before.fragments_followed,
        orphans: after.fragment_orphans - before.fragment_orphans,
    }
}

pub(crate) const fn plain(verdict: u32, slot: usize) -> Step {
    Step {
        verdict,
        slot,
        unclassifiable: 0,
        tiny: 0,
        followed: 0,
        orphans: 0,
    }
}

pub(crate) const fn followed(verdict: u32, slot: usize) -> Step {
    Step {
        followed: 1,
        ..plain(verdict, slot)
    }
}

pub(crate) const fn orphan(verdict: u32, slot: usize) -> Step {
    Step {
        orphans: 1,
        ..plain(verdict, slot)
    }
}

pub(crate) const fn tiny(verdict: u32, slot: usize) -> Step {
    Step {
        unclassifiable: 1,
        tiny: 1,
        ..plain(verdict, slot)
    }
}
