//! Kernel tests of sampling (`--sample N`, a rule's `sample = N`) and of a rule's own snap
//! length (`snaplen = N`): the real XDP program, verified and loaded by this kernel, fed
//! crafted frames through `BPF_PROG_TEST_RUN`, with exact counts.
//!
//! Sampling keeps the first of every N packets selected for recording, counted per rule
//! slot and CPU. One test run with `repeat` stays on one CPU, so the counts below are exact:
//! records = ceil(frames / N), and records + sampled_out = frames, always.
//!
//! They need root; under `CI` they fail rather than skip when they cannot run.

use aya::programs::{TestRun as _, TestRunOptions};
use xdpsieve::{
    configure::loader::{Firewall, Settings},
    configure::rules::RuleSet,
    read::record::CaptureRecord,
    read::source::Source,
};
use xdpsieve_common::{Counters, capture, verdict};
use xdpsieve_testkit::frame::Frame;
use xdpsieve_testkit::gate::root_or_skip;

const DROP: u32 = verdict::DROP as u32;

// Documentation addresses only (RFC 5737).
const HOST4: [u8; 4] = [192, 0, 2, 10];
const PEER4: [u8; 4] = [198, 51, 100, 7];

/// Rules for the tests: DNS replies (UDP source port 53) dropped by a rule with its own
/// sampling, snap length and rate as the test asks; everything else falls to the default
/// verdict, drop.
fn rules(options: &str) -> RuleSet {
    let text = format!(
        "default = \"drop\"\n\
         [[rule]]\n\
         id = 7\n\
         name = \"dns-flood\"\n\
         action = \"drop\"\n\
         protocol = \"udp\"\n\
         src_port = 53\n\
         {options}\n"
    );
    RuleSet::from_toml(&text, "test rules").unwrap_or_else(|e| panic!("test rules: {e}"))
}

fn load(settings: &Settings) -> Firewall {
    Firewall::load(settings).unwrap_or_else(|e| panic!("loading the XDP program: {e}"))
}

/// Runs `frame` through the program `repeat` times in one test run (one CPU).
fn run_repeat(fw: &mut Firewall, frame: &[u8], repeat: u32) -> u32 {
    let opts = TestRunOptions {
        data_in: Some(frame),
        repeat,
        ..TestRunOptions::new()
    };
    fw.program()
        .expect("program")
        .test_run(opts)
        .unwrap_or_else(|e| panic!("test run of a {}-byte frame: {e}", frame.len()))
        .return_value
}

fn counters(fw: &Firewall) -> Counters {
    fw.counters().expect("reading counters")
}

/// (rule id, captured length, original length) of every record the ring holds now.
fn drain(source: &mut Source) -> Vec<(u32, usize, u32)> {
    let mut records = Vec::new();
    source.drain(|bytes| {
        let r = CaptureRecord::decode(bytes).expect("decoding a capture record");
        records.push((r.rule_id, r.data.len(), r.orig_len));
    });
    records
}

/// A DNS reply (matches rule 7) and another UDP packet (falls to the default verdict).
fn dns_reply(len: usize) -> Vec<u8> {
    Frame::ipv4(PEER4, HOST4).udp(53, 40000).pad_to(len).build()
}

fn other_udp(len: usize) -> Vec<u8> {
    Frame::ipv4(PEER4, HOST4).udp(40000, 9).pad_to(len).build()
}

/// 1000 frames at `--sample 10`: exactly 100 records and 900 sampled out, in the program
/// counters, the rule's and the interface's; events are sampled the same way.
#[test]
fn global_sample_records_one_in_n() {
    if !root_or_skip() {
        return;
    }
    let mut fw = load(&Settings {
        rules: RuleSet::from_toml("default = \"drop\"\n", "test rules").expect("rules"),
        capture: capture::DROPPED,
        log: capture::DROPPED,
        sample: 10,
        ring_bytes: 1 << 20,
        ..Settings::default()
    });
    let mut ring = fw.take_capture_source().expect("capture source");
    assert_eq!(run_repeat(&mut fw, &other_udp(100), 1000), DROP);

    let records = drain(&mut ring);
    assert_eq!(records.len(), 100);
    let c = counters(&fw);
    assert_eq!(
        (c.seen, c.dropped, c.captured, c.events, c.sampled_out),
        (1000, 1000, 100, 100, 900),
        "{c:?}"
    );
    // Sampling is not loss and not the rate limit.
    assert_eq!(
        (c.capture_lost, c.event_lost, c.rate_limited, c.no_reader),
        (0, 0, 0, 0),
        "{c:?}"
    );
    let slots = fw.rule_counters(0).expect("rule counters");
    assert_eq!((slots[0].hits, slots[0].sampled_out), (1000, 900));
    let interface_sampled: u64 = fw
        .interface_counters()
        .expect("interface counters")
        .iter()
        .map(|i| i.sampled_out)
        .sum();
    assert_eq!(interface_sampled, 900);
}

/// A rule's `sample = 4` beside `--sample 10`: the rule's packets 1 in 4 (250 of 1000),
/// the default verdict's 1 in 10 (100 of 1000), each counted on its own slot.
#[test]
fn rule_sample_beside_the_global_one() {
    if !root_or_skip() {
        return;
    }
    let set = rules("sample = 4");
    assert_eq!(set.rules[0].sample, Some(4));
    let mut fw = load(&Settings {
        rules: set,
        capture: capture::DROPPED,
        sample: 10,
        ring_bytes: 1 << 20,
        ..Settings::default()
    });
    let mut ring = fw.take_capture_source().expect("capture source");
    assert_eq!(run_repeat(&mut fw, &dns_reply(100), 1000), DROP);
    assert_eq!(run_repeat(&mut fw, &other_udp(100), 1000), DROP);

    let records = drain(&mut ring);
    let by_rule = records.iter().filter(|r| r.0 == 7).count();
    let by_default = records.iter().filter(|r| r.0 == 0).count();
    assert_eq!((by_rule, by_default), (250, 100));
    let c = counters(&fw);
    assert_eq!((c.captured, c.sampled_out), (350, 750 + 900), "{c:?}");
    let slots = fw.rule_counters(1).expect("rule counters");
    assert_eq!((slots[0].hits, slots[0].sampled_out), (1000, 900));
    assert_eq!((slots[1].hits, slots[1].sampled_out), (1000, 750));
}

/// `sample = 1` on a rule records all of its packets even under `--sample 10`.
#[test]
fn rule_sample_one_overrides_the_global_sampling() {
    if !root_or_skip() {
        return;
    }
    let mut fw = load(&Settings {
        rules: rules("sample = 1"),
        capture: capture::DROPPED,
        sample: 10,
        ring_bytes: 1 << 20,
        ..Settings::default()
    });
    let mut ring = fw.take_capture_source().expect("capture source");
    assert_eq!(run_repeat(&mut fw, &dns_reply(100), 300), DROP);
    assert_eq!(drain(&mut ring).len(), 300);
    let c = counters(&fw);
    assert_eq!((c.captured, c.sampled_out), (300, 0), "{c:?}");
}

/// Order: sampling, then the rate limit. 1000 frames, 1 in 10 sampled (100 left), then a
/// limit of 20 per hour (a burst of 20): 20 records, 80 rate-limited, 900 sampled out. Had
/// the limit come first, its 20 would have been sampled down to 2.
#[test]
fn sampling_comes_before_the_rate_limit() {
    if !root_or_skip() {
        return;
    }
    let mut fw = load(&Settings {
        rules: rules("sample = 10\nlog_rate = \"20/h\""),
        capture: capture::DROPPED,
        ring_bytes: 1 << 20,
        ..Settings::default()
    });
    let mut ring = fw.take_capture_source().expect("capture source");
    assert_eq!(run_repeat(&mut fw, &dns_reply(100), 1000), DROP);
    assert_eq!(drain(&mut ring).len(), 20);
    let c = counters(&fw);
    assert_eq!(
        (c.captured, c.rate_limited, c.sampled_out, c.capture_lost),
        (20, 80, 900, 0),
        "{c:?}"
    );
    let slots = fw.rule_counters(1).expect("rule counters");
    assert_eq!(
        (slots[1].hits, slots[1].suppressed, slots[1].sampled_out),
        (1000, 80, 900)
    );
}

/// A rule's `snaplen = 96` beside `-s 200`: the rule's packets cut at 96 bytes, the
/// default verdict's at 200, short ones whole; every record keeps its true length.
#[test]
fn rule_snaplen_beside_the_default() {
    if !root_or_skip() {
        return;
    }
    let set = rules("snaplen = 96");
    assert_eq!(set.rules[0].snaplen, Some(96));
    let mut fw = load(&Settings {
        rules: set,
        capture: capture::DROPPED,
        snaplen: 200,
        ring_bytes: 1 << 20,
        ..Settings::default()
    });
    let mut ring = fw.take_capture_source().expect("capture source");
    let long_dns = dns_reply(1500);
    let short_dns = dns_reply(60);
    let long_other = other_udp(1500);
    let mid_other = other_udp(150);
    for frame in [&long_dns, &short_dns, &long_other, &mid_other] {
        assert_eq!(run_repeat(&mut fw, frame, 1), DROP);
    }
    let records = drain(&mut ring);
    assert_eq!(
        records,
        vec![(7, 96, 1500), (7, 60, 60), (0, 200, 1500), (0, 150, 150)]
    );
    let c = counters(&fw);
    assert_eq!((c.captured, c.capture_lost), (4, 0), "{c:?}");
}

/// A rule's snap length may exceed `-s`: whole packets for a rare rule, headers only for
/// the rest.
#[test]
fn rule_snaplen_above_the_default() {
    if !root_or_skip() {
        return;
    }
    let mut fw = load(&Settings {
        rules: rules("snaplen = 16384"),
        capture: capture::DROPPED,
        snaplen: 64,
        ring_bytes: 1 << 20,
        ..Settings::default()
    });
    let mut ring = fw.take_capture_source().expect("capture source");
    assert_eq!(run_repeat(&mut fw, &dns_reply(1500), 1), DROP);
    assert_eq!(run_repeat(&mut fw, &other_udp(1500), 1), DROP);
    assert_eq!(drain(&mut ring), vec![(7, 1500, 1500), (0, 64, 1500)]);
}

/// `sample` and `snaplen` out of range are refused with the file's line and what to write.
#[test]
fn bad_sample_and_snaplen_are_refused() {
    for (options, expected) in [
        ("sample = 0", "`sample` must be a whole number N >= 1"),
        ("sample = \"4\"", "`sample` must be a whole number N >= 1"),
        ("sample = -3", "`sample` must be a whole number N >= 1"),
        (
            "snaplen = 0",
            "`snaplen` must be a whole number of bytes from 1 to 16384",
        ),
        ("snaplen = 16385", "not 16385"),
    ] {
        let text = format!("[[rule]]\naction = \"drop\"\n{options}\n");
        let err = RuleSet::from_toml(&text, "bad.toml")
            .expect_err(options)
            .to_string();
        assert!(err.contains(expected), "{options}: {err}");
        assert!(err.starts_with("bad.toml:3:"), "{options}: {err}");
    }
    let err = Firewall::load(&Settings {
        sample: 0,
        ..Settings::default()
    })
    .err()
    .expect("sample 0 refused");
    assert!(err.to_string().contains("at least 1"), "{err}");
}
