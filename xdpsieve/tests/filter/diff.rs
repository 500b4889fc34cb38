//! Differential test of the capture filter against tcpdump: a set of crafted frames (VLAN
//! and QinQ tags, IPv6 extension headers, IPv4 and IPv6 fragments, ICMP types, TCP flags,
//! non-IP frames, a truncated frame) is written to a pcap file; for each expression, the
//! frames the kernel filter selects (each frame run through the real program with
//! `BPF_PROG_TEST_RUN`, a capture rule selecting every frame) must be exactly the frames
//! `tcpdump -r FILE EXPR` lists.
//!
//! Needs root and tcpdump (`cargo xtask setup`); under `CI` it fails rather than skips.

use std::{collections::BTreeSet, process::Command, time::Duration};

use pcap_file::pcap::{PcapPacket, PcapWriter};
use xdpsieve::configure::capture_filter::CompiledFilter;
use xdpsieve_testkit::gate::root_or_skip;
use xdpsieve_testkit::tempdir::TempDir;
use xdpsieve_testkit::tool::stdout_of;

use crate::{
    cases::{EXPRESSIONS, frames},
    harness,
};

/// The frames (by index) `tcpdump -r` lists for `expression`; each frame's timestamp is its
/// index in seconds.
fn tcpdump_selects(file: &std::path::Path, expression: &str) -> BTreeSet<usize> {
    let mut tcpdump = Command::new("tcpdump");
    tcpdump
        .args(["-r"])
        .arg(file)
        .args(["-tt", "-nn", "-q", expression]);
    stdout_of(&mut tcpdump, "tcpdump")
        .lines()
        .filter(|line| !line.starts_with(char::is_whitespace))
        .filter_map(|line| line.split_once('.')?.0.parse().ok())
        .collect()
}

#[test]
fn kernel_filter_selects_what_tcpdump_selects() {
    if !root_or_skip() {
        return;
    }
    let frames = frames();
    let dir = TempDir::new("filter-diff");
    let file = dir.file("frames.pcap");
    {
        let out = std::fs::File::create(&file).expect("creating the pcap");
        let mut writer = PcapWriter::new(out).expect("pcap header");
        for (index, (_, frame)) in frames.iter().enumerate() {
            let packet = PcapPacket::new(
                Duration::from_secs(index as u64 + 1),
                frame.len() as u32,
                frame,
            );
            writer.write_packet(&packet).expect("writing a frame");
        }
    }
    assert!(EXPRESSIONS.len() >= 60);
    let mut failures = Vec::new();
    for expression in EXPRESSIONS {
        let expected: BTreeSet<usize> = tcpdump_selects(&file, expression)
            .into_iter()
            .map(|second| second - 1)
            .collect();
        let filter = CompiledFilter::compile(expression)
            .unwrap_or_else(|e| panic!("{e}"))
            .expect("not empty");
        let mut fw = harness::load(Some(filter));
        let selected: BTreeSet<usize> = frames
            .iter()
            .enumerate()
            .filter(|(_, (_, frame))| harness::selects(&mut fw, frame))
            .map(|(index, _)| index)
            .collect();
        if selected != expected {
            let names =
                |set: &BTreeSet<usize>| set.iter().map(|&i| frames[i].0).collect::<Vec<_>>();
            failures.push(format!(
                "`{expression}`: kernel {:?}, tcpdump {:?}",
                names(&selected),
                names(&expected)
            ));
        }
        // Not a vacuous comparison: each expression is checked on what it selects too.
        eprintln!(
            "`{expression}`: {} of {} frames",
            expected.len(),
            frames.len()
        );
    }
    assert!(failures.is_empty(), "differences:\n{}", failures.join("\n"));
}

#[test]
fn bad_expressions_are_refused_as_tcpdump_refuses_them() {
    for expression in [
        "tcp port 99999",
        "host",
        "udp and or tcp",
        "vlan 5000",
        "foo bar",
    ] {
        let err = CompiledFilter::compile(expression).expect_err(expression);
        let status = Command::new("tcpdump")
            .args(["-d", expression])
            .output()
            .expect("running tcpdump");
        assert!(!status.status.success(), "tcpdump accepts `{expression}`");
        assert!(err.to_string().contains(expression), "{err}");
    }
}
