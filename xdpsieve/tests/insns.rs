//! The instruction counter (`xdpsieve_testkit::insns`) on the real firewall: its verdict
//! must be `BPF_PROG_TEST_RUN`'s on every benchmark path (no rule matched, dropped,
//! dropped and captured; IPv4, IPv6, TCP; 1 and `MAX_RULES` rules), and a count must
//! repeat exactly. Needs root; fails rather than skips under `CI`.

use std::os::fd::{AsFd as _, AsRawFd as _};

use xdpsieve::configure::{
    loader::{Firewall, Settings},
    rules::{Action, RuleSet},
};
use xdpsieve_common::{MAX_RULES, capture};
use xdpsieve_testkit::{
    bpf::{test_run, verdict_name},
    frame::Frame,
    gate::root_or_skip,
    insns::{Count, Program},
};

/// The firewall as `prog_cost` loads it: `rules - 1` fillers, then `src port 53`.
fn firewall(rules: usize, capture_drops: bool) -> Firewall {
    let mut set = RuleSet::default();
    for i in 1..rules {
        set.push_expression(Action::Drop, &format!("tcp dst port {}", 1000 + i))
            .expect("filler rule");
    }
    set.push_expression(Action::Drop, "src port 53")
        .expect("deciding rule");
    let settings = Settings {
        rules: set,
        capture: if capture_drops { capture::DROPPED } else { 0 },
        ring_bytes: 1 << 20,
        ..Settings::default()
    };
    Firewall::load(&settings).expect("loading xdpsieve")
}

fn v4() -> Frame {
    Frame::ipv4([198, 51, 100, 53], [192, 0, 2, 2])
}

fn v6() -> Frame {
    let resolver = std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x53).octets();
    let host = std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2).octets();
    Frame::ipv6(resolver, host)
}

/// (name, frame, expected verdict) for the benchmark's frames.
fn frames() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    vec![
        (
            "IPv4 UDP 64 B no-match",
            v4().udp(1234, 40000).pad_to(64).build(),
            "PASS",
        ),
        (
            "IPv4 UDP 64 B drop",
            v4().udp(53, 40000).pad_to(64).build(),
            "DROP",
        ),
        (
            "IPv6 UDP 64 B no-match",
            v6().udp(1234, 40000).pad_to(64).build(),
            "PASS",
        ),
        (
            "IPv6 UDP 64 B drop",
            v6().udp(53, 40000).pad_to(64).build(),
            "DROP",
        ),
        (
            "IPv4 TCP 1500 B no-match",
            v4().tcp(1234, 40000).pad_to(1500).build(),
            "PASS",
        ),
        (
            "IPv4 TCP 1500 B drop",
            v4().tcp(53, 40000).pad_to(1500).build(),
            "DROP",
        ),
    ]
}

/// Counts every frame on a firewall, checking each against the kernel; the counts.
fn check(rules: usize, capture_drops: bool) -> Vec<(&'static str, Count)> {
    let mut fw = firewall(rules, capture_drops);
    let prog = fw.program().expect("program");
    let fd = prog
        .fd()
        .expect("fd")
        .as_fd()
        .try_clone_to_owned()
        .expect("dup");
    let counter = Program::open(fd.as_fd()).expect("reading the verified program");
    let mut counts = Vec::new();
    for (name, bytes, expected) in frames() {
        let (kernel, _) = test_run(fd.as_raw_fd(), &bytes, 1).expect("BPF_PROG_TEST_RUN");
        let first = counter
            .count(&bytes)
            .unwrap_or_else(|e| panic!("{name}, {rules} rules: {e}"));
        let second = counter.count(&bytes).expect("second count");
        let what = format!("{name}, {rules} rule(s), capture {capture_drops}");
        assert_eq!(
            verdict_name(kernel),
            expected,
            "{what}: the kernel's verdict"
        );
        assert_eq!(
            verdict_name(first.verdict),
            verdict_name(kernel),
            "{what}: emulated verdict"
        );
        assert_eq!(first, second, "{what}: a count repeats exactly");
        assert!(
            (100..5000).contains(&first.insns),
            "{what}: {} instructions is implausible",
            first.insns
        );
        eprintln!("{what}: {} instructions, {:?}", first.insns, first.helpers);
        // Where the instructions go: XDPSIEVE_INSNS_TRACE=DIR writes each path's executed
        // instruction indexes and the program's id, to read beside `bpftool prog dump
        // xlated id ID`.
        if let Some(dir) = std::env::var_os("XDPSIEVE_INSNS_TRACE") {
            let info = prog.info().expect("program info");
            let file = std::path::Path::new(&dir).join(format!("{what}.trace"));
            let lines: Vec<String> = first.trace.iter().map(u32::to_string).collect();
            std::fs::write(&file, format!("id {}\n{}\n", info.id(), lines.join("\n")))
                .expect("writing the trace");
            let dump = std::process::Command::new("bpftool")
                .args(["prog", "dump", "xlated", "id", &info.id().to_string()])
                .output()
                .expect("bpftool");
            std::fs::write(file.with_extension("xlated"), dump.stdout).expect("writing the dump");
        }
        counts.push((name, first));
    }
    counts
}

fn insns_of(counts: &[(&str, Count)], name: &str) -> u64 {
    counts
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, c)| c.insns)
        .expect("counted")
}

#[test]
fn counts_agree_with_the_kernel_without_capture() {
    if !root_or_skip() {
        return;
    }
    let counts = check(1, false);
    // A drop does more than a pass: it finds and counts the rule.
    assert!(insns_of(&counts, "IPv4 UDP 64 B drop") > insns_of(&counts, "IPv4 UDP 64 B no-match"));
}

#[test]
fn counts_agree_with_the_kernel_with_capture() {
    if !root_or_skip() {
        return;
    }
    let plain = check(1, false);
    let captured = check(1, true);
    // Capturing the drop costs instructions (the ring buffer output and its record).
    let name = "IPv4 UDP 64 B drop";
    assert!(insns_of(&captured, name) > insns_of(&plain, name));
    let (_, c) = captured.iter().find(|(n, _)| *n == name).expect("counted");
    // One copy: the record is reserved in the ring and the packet loaded into it, never
    // assembled elsewhere and copied in by bpf_ringbuf_output.
    let called = |name: &str| c.helpers.iter().any(|(h, _)| h == name);
    assert!(
        called("bpf_ringbuf_reserve")
            && called("bpf_ringbuf_submit")
            && !called("bpf_ringbuf_output"),
        "a captured drop reserves its record in the ring: {:?}",
        c.helpers
    );
}

#[test]
fn counts_agree_with_the_kernel_at_the_most_rules() {
    if !root_or_skip() {
        return;
    }
    let most = check(MAX_RULES as usize, false);
    let one = check(1, false);
    let name = "IPv4 UDP 64 B no-match";
    assert!(insns_of(&most, name) >= insns_of(&one, name));
}
