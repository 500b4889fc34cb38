//! End-to-end tests: the real `xdpsieve` binary attached to a veth in a namespace the test
//! creates, real traffic sent from a second namespace, captures read back by the pcap-file
//! crate and by tcpdump and tshark, and the exit summary checked against what was sent.
//!
//! They need root; under `CI` they fail rather than skip when they cannot run.

#[path = "common/child.rs"]
mod child;
mod common;
#[path = "common/tempdir.rs"]
mod tempdir;
#[path = "common/udp.rs"]
mod udp;
use child::{Firewall, xdp_attached};
use common::root_or_skip;
use tempdir::TempDir;
use udp::received;

use std::{
    net::{SocketAddr, UdpSocket},
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use pcap_file::{
    pcap::PcapReader,
    pcapng::{Block, PcapNgReader},
};
use xdpsieve::{demo::dns_response, netns::VethPair};

const BINARY: &str = env!("CARGO_BIN_EXE_xdpsieve");
const CLIENT_PORT: u16 = 40000;

/// Counts from the exit summary.
#[derive(Debug, Default, PartialEq, Eq)]
struct Summary {
    seen: u64,
    dropped: u64,
    passed: u64,
    malformed: u64,
    captured: u64,
    lost: u64,
    past_count: u64,
}

fn parse_summary(stderr: &str) -> Summary {
    let number = |line: &str, word: &str| -> Option<u64> {
        let words: Vec<&str> = line
            .split(|c: char| c.is_whitespace() || c == '(' || c == ',')
            .collect();
        words
            .windows(2)
            .find(|w| w[1] == word)
            .and_then(|w| w[0].parse().ok())
    };
    let mut s = Summary::default();
    for line in stderr.lines() {
        if line.contains("packets seen by xdpsieve") {
            s.seen = number(line, "packets").expect("seen");
            s.dropped = number(line, "dropped").expect("dropped");
            s.passed = number(line, "passed").expect("passed");
            s.malformed = number(line, "malformed").expect("malformed");
        } else if line.ends_with("packets captured") {
            s.captured = number(line, "packets").expect("captured");
        } else if line.contains("packets lost: capture buffer full") {
            s.lost = number(line, "packets").expect("lost");
        } else if line.contains("past the -c count") {
            s.past_count = number(line, "packets").expect("past count");
        }
    }
    assert!(
        s.seen > 0 || stderr.contains("0 packets seen"),
        "no summary in: {stderr}"
    );
    s
}

/// Binds the client sockets in the firewall namespace so delivered datagrams are counted
/// (and no ICMP port-unreachable muddies the counts).
fn client_sockets(net: &VethPair) -> (UdpSocket, UdpSocket) {
    net.fw
        .run(|| {
            let v4 = UdpSocket::bind(SocketAddr::new(VethPair::FW_V4.into(), CLIENT_PORT))?;
            let v6 = UdpSocket::bind(SocketAddr::new(VethPair::FW_V6.into(), CLIENT_PORT))?;
            for s in [&v4, &v6] {
                s.set_read_timeout(Some(Duration::from_millis(200)))?;
            }
            Ok::<_, std::io::Error>((v4, v6))
        })
        .expect("entering namespace")
        .expect("binding client sockets")
}

/// Sends `count` DNS responses over IPv4 and over IPv6 from port 53, and `count` datagrams
/// from port 5000 (which the DNS rule passes), all to the client port.
fn send_dns_and_other(net: &VethPair, count: u16, payload_extra: usize) {
    net.peer
        .run(|| {
            let dns4 = UdpSocket::bind(SocketAddr::new(VethPair::PEER_V4.into(), 53))?;
            let dns6 = UdpSocket::bind(SocketAddr::new(VethPair::PEER_V6.into(), 53))?;
            let other = UdpSocket::bind(SocketAddr::new(VethPair::PEER_V4.into(), 5000))?;
            for i in 0..count {
                let mut msg = dns_response(i);
                msg.resize(msg.len() + payload_extra, 0);
                dns4.send_to(&msg, (VethPair::FW_V4, CLIENT_PORT))?;
                dns6.send_to(&msg, (VethPair::FW_V6, CLIENT_PORT))?;
                other.send_to(b"not dns", (VethPair::FW_V4, CLIENT_PORT))?;
                // Pace the sends: the test is about correctness, not rate.
                std::thread::sleep(Duration::from_millis(2));
            }
            Ok::<_, std::io::Error>(())
        })
        .expect("entering namespace")
        .expect("sending traffic");
}

/// Lets frames still in flight on the veth reach the program before the test stops it: a
/// busy machine (the suite runs in parallel) can hold them back for a while.
fn settle() {
    std::thread::sleep(Duration::from_millis(300));
}

fn read_pcap(path: &Path) -> Vec<(u32, Vec<u8>)> {
    let file = std::fs::File::open(path).expect("opening capture");
    let mut reader = PcapReader::new(file).expect("pcap header");
    let mut packets = Vec::new();
    while let Some(p) = reader.next_raw_packet() {
        let p = p.expect("pcap packet");
        packets.push((p.orig_len, p.data.into_owned()));
    }
    packets
}

/// UDP source port of an Ethernet + IPv4/IPv6 (no options, no extension headers) frame.
fn udp_src_port(frame: &[u8]) -> u16 {
    let l4 = match u16::from_be_bytes([frame[12], frame[13]]) {
        0x0800 => 14 + usize::from(frame[14] & 0x0f) * 4,
        0x86dd => 14 + 40,
        other => panic!("unexpected ethertype {other:#x}"),
    };
    u16::from_be_bytes([frame[l4], frame[l4 + 1]])
}

fn tool(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program} (cargo xtask setup installs it): {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn drops_dns_responses_and_captures_them_as_pcap() {
    if !root_or_skip() {
        return;
    }
    let tmp = TempDir::new("pcap");
    let capture = tmp.file("dropped.pcap");
    let net = VethPair::create("pcap", None).expect("namespaces");
    let (client4, client6) = client_sockets(&net);
    let fw = Firewall::start(
        &net,
        &["--drop", "udp src port 53", "-w", capture.to_str().unwrap()],
    );

    const N: u16 = 50;
    send_dns_and_other(&net, N, 0);
    let (got4, got6) = (received(&client4), received(&client6));
    let out = fw.stop(libc::SIGINT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "xdpsieve failed: {stderr}");

    // Attached through a bpf_link in native mode: no fallback warnings.
    assert!(!stderr.contains("warning"), "{stderr}");
    // Only the non-DNS datagrams got through.
    assert_eq!((got4, got6), (usize::from(N), 0), "{stderr}");
    let s = parse_summary(&stderr);
    assert_eq!(s.seen, s.passed + s.dropped, "{stderr}");
    assert_eq!(s.dropped, 2 * u64::from(N), "{stderr}");
    assert_eq!(s.captured + s.lost, s.dropped, "{stderr}");
    assert_eq!(s.lost, 0, "{stderr}");

    let packets = read_pcap(&capture);
    assert_eq!(packets.len() as u64, s.captured);
    for (orig_len, data) in &packets {
        assert_eq!(*orig_len as usize, data.len());
        assert_eq!(udp_src_port(data), 53);
    }
    // A real client reads the same file.
    let text = tool("tcpdump", &["-nn", "-r", capture.to_str().unwrap()]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), packets.len(), "{text}");
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("192.0.2.1.53 > 192.0.2.2.40000"))
            .count(),
        usize::from(N)
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("2001:db8::1.53 > 2001:db8::2.40000"))
            .count(),
        usize::from(N)
    );
    assert!(lines.iter().all(|l| l.contains("A 192.0.2.80")), "{text}");
}

/// A capture filter after the options, as with tcpdump: every DNS response is still
/// dropped (checked at the sockets), only the IPv6 ones are captured, and the IPv4 ones are
/// counted as not selected, not as lost.
#[test]
fn capture_filter_selects_what_is_recorded_not_what_is_dropped() {
    if !root_or_skip() {
        return;
    }
    let tmp = TempDir::new("filter");
    let capture = tmp.file("dropped-v6.pcap");
    let net = VethPair::create("filter", None).expect("namespaces");
    let (client4, client6) = client_sockets(&net);
    let path = capture.to_str().unwrap();
    let fw = Firewall::start(
        &net,
        &["--drop", "udp src port 53", "-w", path, "ip6", "and", "udp"],
    );
    const N: u16 = 30;
    send_dns_and_other(&net, N, 0);
    let (got4, got6) = (received(&client4), received(&client6));
    settle();
    let out = fw.stop(libc::SIGINT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "xdpsieve failed: {stderr}");
    assert!(stderr.contains("matching `ip6 and udp`"), "{stderr}");
    assert_eq!((got4, got6), (usize::from(N), 0), "{stderr}");
    let s = parse_summary(&stderr);
    assert_eq!(s.dropped, 2 * u64::from(N), "{stderr}");
    assert_eq!((s.captured, s.lost), (u64::from(N), 0), "{stderr}");
    assert!(
        stderr.contains(&format!("{N} packets not selected by the capture filter")),
        "{stderr}"
    );
    let text = tool("tcpdump", &["-nn", "-r", path]);
    assert_eq!(text.lines().count(), usize::from(N), "{text}");
    assert!(
        text.lines()
            .all(|l| l.contains("2001:db8::1.53 > 2001:db8::2.40000")),
        "{text}"
    );
}

#[test]
fn pcapng_carries_xdp_verdict_rule_and_interface() {
    if !root_or_skip() {
        return;
    }
    let tmp = TempDir::new("pcapng");
    let capture = tmp.file("all.pcapng");
    let net = VethPair::create("ng", None).expect("namespaces");
    let (_c4, _c6) = client_sockets(&net);
    let fw = Firewall::start(
        &net,
        &[
            "--drop",
            "udp src port 53",
            "--capture",
            "all",
            "--format",
            "pcapng",
            "-w",
            capture.to_str().unwrap(),
        ],
    );
    send_dns_and_other(&net, 10, 0);
    settle();
    let out = fw.stop(libc::SIGTERM);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let s = parse_summary(&stderr);
    assert_eq!(s.captured, s.seen, "capturing all: {stderr}");

    // The pcap-file crate reads every block.
    let mut reader = PcapNgReader::new(std::fs::File::open(&capture).unwrap()).unwrap();
    let mut epbs = 0;
    while let Some(block) = reader.next_block() {
        if let Block::EnhancedPacket(_) = block.expect("pcapng block") {
            epbs += 1;
        }
    }
    assert_eq!(epbs, s.captured);

    // tshark decodes the standard verdict option and our comment.
    let text = tool(
        "tshark",
        &[
            "-r",
            capture.to_str().unwrap(),
            "-T",
            "fields",
            "-E",
            "separator=|",
            "-e",
            "frame.verdict.ebpf_xdp",
            "-e",
            "frame.interface_name",
            "-e",
            "udp.srcport",
            "-e",
            "frame.comment",
        ],
    );
    let mut dropped = 0;
    for line in text.lines() {
        let fields: Vec<&str> = line.split('|').collect();
        assert_eq!(fields[1], VethPair::FW_IF, "{line}");
        if fields[2] == "53" {
            assert_eq!(fields[0], "1", "XDP_DROP expected: {line}");
            assert_eq!(fields[3], "rule=drop udp src port 53 id=1", "{line}");
            dropped += 1;
        } else {
            assert_eq!(fields[0], "2", "XDP_PASS expected: {line}");
            assert_eq!(fields[3], "rule=default id=0", "{line}");
        }
    }
    assert_eq!(dropped, 20);
    assert_eq!(text.lines().count() as u64, s.captured);
    // Only packets matching the filter are shown by the display filter on the verdict.
    let drops = tool(
        "tshark",
        &[
            "-r",
            capture.to_str().unwrap(),
            "-Y",
            "frame.verdict.ebpf_xdp == 1",
        ],
    );
    assert_eq!(drops.lines().count(), 20, "{drops}");
}

#[test]
fn streams_to_stdout_and_stops_after_count() {
    if !root_or_skip() {
        return;
    }
    let net = VethPair::create("stdout", None).expect("namespaces");
    let (_c4, _c6) = client_sockets(&net);
    let fw = Firewall::start(&net, &["--drop", "udp src port 53", "-w", "-", "-c", "5"]);
    send_dns_and_other(&net, 20, 0);
    // -c makes it exit by itself.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut fw = fw;
    let child = fw.child_mut();
    while child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "xdpsieve did not exit after -c 5"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = fw.stop(0);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let mut reader = PcapReader::new(&out.stdout[..]).expect("pcap on stdout");
    let mut n = 0;
    while let Some(p) = reader.next_raw_packet() {
        assert_eq!(udp_src_port(&p.unwrap().data), 53);
        n += 1;
    }
    assert_eq!(n, 5);
    let s = parse_summary(&stderr);
    assert_eq!(s.captured, 5, "{stderr}");
    // Whatever arrived after the fifth packet is reported, not silently discarded.
    assert_eq!(s.captured + s.lost + s.past_count, s.dropped, "{stderr}");
    assert!(!xdp_attached(&net), "program left attached after exit");
}

#[test]
fn sigkill_leaves_the_firewall_in_force_until_stop() {
    if !root_or_skip() {
        return;
    }
    // The old rule (a SIGKILL detaches) is reversed: the firewall is fail-static, pinned in
    // bpffs, and only an explicit stop removes it. xdpsieve/tests/failstatic.rs tests this at
    // the socket behind the firewall.
    let tmp = TempDir::new("kill");
    let net = VethPair::create("kill", None).expect("namespaces");
    let fw = Firewall::start(
        &net,
        &["--drop", "udp", "-w", tmp.file("x.pcap").to_str().unwrap()],
    );
    assert!(xdp_attached(&net));
    let out = fw.stop(libc::SIGKILL);
    assert!(!out.status.success());
    std::thread::sleep(Duration::from_millis(200));
    assert!(xdp_attached(&net), "SIGKILL detached the firewall");
    let out = net
        .fw
        .command(BINARY)
        .args(["stop", "-i", VethPair::FW_IF])
        .output()
        .expect("running xdpsieve stop");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!xdp_attached(&net), "program left attached after stop");
}

#[test]
fn jumbo_frames_captured_with_true_length() {
    if !root_or_skip() {
        return;
    }
    let tmp = TempDir::new("jumbo");
    let full = tmp.file("full.pcap");
    let net = VethPair::create("jumbo", Some(9000)).expect("namespaces");
    let (_c4, _c6) = client_sockets(&net);
    // 8000 bytes of DNS payload: the frame spans several pages (xdp.frags).
    let fw = Firewall::start(
        &net,
        &["--drop", "udp src port 53", "-w", full.to_str().unwrap()],
    );
    send_dns_and_other(&net, 3, 8000);
    let out = fw.stop(libc::SIGINT);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let packets = read_pcap(&full);
    assert_eq!(packets.len(), 6);
    for (orig_len, data) in &packets {
        assert!(*orig_len > 8000, "orig_len {orig_len}");
        assert_eq!(data.len(), *orig_len as usize, "whole frame captured");
        // The last byte is the payload's padding, read across fragments.
        assert_eq!(data.last(), Some(&0));
    }

    let cut = tmp.file("cut.pcap");
    let fw = Firewall::start(
        &net,
        &[
            "--drop",
            "udp src port 53",
            "-s",
            "1500",
            "-w",
            cut.to_str().unwrap(),
        ],
    );
    send_dns_and_other(&net, 3, 8000);
    let out = fw.stop(libc::SIGINT);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let packets = read_pcap(&cut);
    assert_eq!(packets.len(), 6);
    for (orig_len, data) in &packets {
        assert_eq!(data.len(), 1500);
        assert!(*orig_len > 8000);
    }
    let text = tool("tcpdump", &["-nn", "-r", cut.to_str().unwrap()]);
    assert_eq!(text.lines().count(), 6, "{text}");
}

#[test]
fn rules_from_file_and_flags_together() {
    if !root_or_skip() {
        return;
    }
    let tmp = TempDir::new("rules");
    let rules = tmp.file("fw.toml");
    std::fs::write(
        &rules,
        "default = \"pass\"\n[[rule]]\nname = \"v6-dns\"\naction = \"drop\"\nprotocol = \"udp\"\nsrc = \"2001:db8::/32\"\nsrc_port = 53\n",
    )
    .unwrap();
    let capture = tmp.file("x.pcapng");
    let net = VethPair::create("rules", None).expect("namespaces");
    let (c4, c6) = client_sockets(&net);
    let fw = Firewall::start(
        &net,
        &[
            "--rules",
            rules.to_str().unwrap(),
            "--drop",
            "udp src net 192.0.2.1/32 and src port 5000",
            "--format",
            "pcapng",
            "-w",
            capture.to_str().unwrap(),
        ],
    );
    send_dns_and_other(&net, 10, 0);
    let (got4, got6) = (received(&c4), received(&c6));
    let out = fw.stop(libc::SIGINT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // IPv4 DNS passes (10), port-5000 datagrams are dropped, IPv6 DNS is dropped.
    assert_eq!((got4, got6), (10, 0), "{stderr}");
    assert!(stderr.contains("v6-dns"), "{stderr}");
    let text = tool(
        "tshark",
        &[
            "-r",
            capture.to_str().unwrap(),
            "-T",
            "fields",
            "-e",
            "frame.comment",
        ],
    );
    assert_eq!(
        text.lines().filter(|l| *l == "rule=v6-dns id=1").count(),
        10,
        "{text}"
    );
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("rule=drop udp src net") && l.ends_with("id=2"))
            .count(),
        10,
        "{text}"
    );
}

/// Runs the binary to completion (killed after 30 s) and returns (success, stderr).
fn run_plain(net: Option<&VethPair>, args: &[&str]) -> (bool, String) {
    let mut cmd = match net {
        Some(net) => net.fw.command(BINARY),
        None => Command::new(BINARY),
    };
    let mut child = cmd
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running xdpsieve");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("xdpsieve {args:?} did not exit within 30 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().expect("collecting output");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn clear_errors_for_operator_mistakes() {
    if !root_or_skip() {
        return;
    }
    let tmp = TempDir::new("errors");
    let net = VethPair::create("errors", None).expect("namespaces");
    let out = tmp.file("x.pcap");
    let out = out.to_str().unwrap();

    let (ok, err) = run_plain(
        Some(&net),
        &["run", "-i", "nosuch0", "--drop", "udp", "-w", out],
    );
    assert!(
        !ok && err.contains("no such network interface: nosuch0"),
        "{err}"
    );

    let (ok, err) = run_plain(
        Some(&net),
        &[
            "run",
            "-i",
            VethPair::FW_IF,
            "--drop",
            "udp",
            "-w",
            "/nonexistent/dir/x.pcap",
        ],
    );
    assert!(
        !ok && err.contains("cannot open output file /nonexistent/dir/x.pcap"),
        "{err}"
    );

    let (ok, err) = run_plain(
        Some(&net),
        &["run", "-i", VethPair::FW_IF, "--drop", "port 53", "-w", out],
    );
    assert!(!ok && err.contains("needs a direction"), "{err}");

    let (ok, err) = run_plain(
        Some(&net),
        &[
            "run",
            "-i",
            VethPair::FW_IF,
            "--drop",
            "udp",
            "--capture",
            "dropped",
        ],
    );
    assert!(!ok && err.contains("needs a capture file"), "{err}");

    let bad = tmp.file("bad.toml");
    std::fs::write(
        &bad,
        "[[rule]]\naction = \"drop\"\nsrc = \"192.0.2.0/33\"\n",
    )
    .unwrap();
    let (ok, err) = run_plain(None, &["check-rules", bad.to_str().unwrap()]);
    assert!(
        !ok && err.contains(&format!("{}:3:7:", bad.display())) && err.contains("prefix length"),
        "{err}"
    );

    // A second instance on the same interface is refused, and the first keeps running.
    let first = Firewall::start(&net, &["--drop", "udp", "-w", out]);
    let second_out = tmp.file("y.pcap");
    let (ok, err) = run_plain(
        Some(&net),
        &[
            "run",
            "-i",
            VethPair::FW_IF,
            "--drop",
            "udp",
            "-w",
            second_out.to_str().unwrap(),
        ],
    );
    assert!(
        !ok && err.contains(&format!(
            "xdpsieve (pid {}) is already running on fw0; stop it first with `xdpsieve stop -i fw0`",
            first.pid()
        )),
        "{err}"
    );
    assert!(xdp_attached(&net));
    let done = first.stop(libc::SIGINT);
    assert!(done.status.success());
}

#[test]
fn check_rules_prints_the_rule_table() {
    let tmp = TempDir::new("check");
    let file = tmp.file("ok.toml");
    std::fs::write(&file, "default = \"drop\"\n[[rule]]\nname = \"web\"\naction = \"pass\"\nprotocol = \"tcp\"\ndst_port = \"80-443\"\n").unwrap();
    let out = Command::new(BINARY)
        .args(["check-rules", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("1 rules, default drop"), "{text}");
    assert!(
        text.contains("web") && text.contains("tcp and dst port 80-443"),
        "{text}"
    );
}

#[test]
fn help_explains_every_flag() {
    let out = Command::new(BINARY)
        .args(["run", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--interface",
        "--rules",
        "--drop",
        "--pass",
        "--default",
        "-w",
        "--snaplen",
        "-c",
        "--capture",
        "--format",
        "--mode",
        "--ring-size",
    ] {
        assert!(text.contains(flag), "--help lacks {flag}");
    }
}

#[test]
fn demo_runs_and_cleans_up() {
    if !root_or_skip() {
        return;
    }
    let tmp = TempDir::new("demo");
    let capture = tmp.file("demo.pcap");
    let demo = Command::new(BINARY)
        .args(["demo", "-w", capture.to_str().unwrap(), "--responses", "3"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let tag = format!("xsieve-{}-", demo.id());
    let out = demo.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("Received in")
            && stdout.contains(": 0 DNS responses over IPv4, 0 over IPv6, 3 other"),
        "{stdout}"
    );
    assert_eq!(read_pcap(&capture).len(), 6);
    let leftover = tool("ip", &["netns", "list"]);
    assert!(
        !leftover.lines().any(|l| l.starts_with(&tag)),
        "namespaces left: {leftover}"
    );
}

#[test]
fn several_interfaces_in_one_capture() {
    if !root_or_skip() {
        return;
    }
    let tmp = TempDir::new("multi");
    let capture = tmp.file("multi.pcapng");
    let net = VethPair::create("multi", None).expect("namespaces");
    // A second link from the firewall namespace to a second peer, on 198.51.100.0/24.
    let peer2 = xdpsieve::netns::Netns::create("multi-peer2").expect("namespace");
    net.fw
        .ip(&[
            "link",
            "add",
            "fw1",
            "type",
            "veth",
            "peer",
            "name",
            "peer1",
            "netns",
            peer2.name(),
        ])
        .unwrap();
    net.fw
        .ip(&["addr", "add", "198.51.100.2/24", "dev", "fw1"])
        .unwrap();
    net.fw.ip(&["link", "set", "fw1", "up"]).unwrap();
    peer2
        .ip(&["addr", "add", "198.51.100.1/24", "dev", "peer1"])
        .unwrap();
    peer2.ip(&["link", "set", "peer1", "up"]).unwrap();

    let fw = Firewall::start(
        &net,
        &[
            "-i",
            "fw1",
            "--drop",
            "udp src port 53",
            "--format",
            "pcapng",
            "-w",
            capture.to_str().unwrap(),
        ],
    );
    send_dns_and_other(&net, 4, 0);
    peer2
        .run(|| {
            let s = UdpSocket::bind("198.51.100.1:53")?;
            for i in 0..4 {
                s.send_to(&dns_response(i), "198.51.100.2:40000")?;
            }
            Ok::<_, std::io::Error>(())
        })
        .unwrap()
        .unwrap();
    let out = fw.stop(libc::SIGINT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("fw0 (native), fw1 (native)"), "{stderr}");
    let text = tool(
        "tshark",
        &[
            "-r",
            capture.to_str().unwrap(),
            "-T",
            "fields",
            "-e",
            "frame.interface_name",
        ],
    );
    assert_eq!(text.lines().filter(|l| *l == "fw0").count(), 8, "{text}");
    assert_eq!(text.lines().filter(|l| *l == "fw1").count(), 4, "{text}");
}

#[test]
fn auto_mode_falls_back_to_skb_where_native_is_missing() {
    if !root_or_skip() {
        return;
    }
    let tmp = TempDir::new("skb");
    let net = VethPair::create("skb", None).expect("namespaces");
    // The loopback device has no native XDP support.
    let out = tmp.file("x.pcap");
    let out = out.to_str().unwrap();

    let (ok, err) = run_plain(
        Some(&net),
        &[
            "run", "-i", "lo", "--mode", "native", "--drop", "udp", "-w", out,
        ],
    );
    assert!(
        !ok && err.contains("does not support native XDP") && err.contains("--mode skb"),
        "{err}"
    );

    let mut child = net
        .fw
        .command(BINARY)
        .args(["run", "-i", "lo", "--drop", "udp", "-w", out])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !net
        .fw
        .ip(&["-d", "link", "show", "dev", "lo"])
        .unwrap()
        .contains("prog/xdp")
    {
        assert!(Instant::now() < deadline, "no attachment to lo");
        assert!(child.try_wait().unwrap().is_none(), "xdpsieve exited");
        std::thread::sleep(Duration::from_millis(25));
    }
    // SAFETY: kill on our own child's PID.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let done = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "{err}");
    assert!(
        err.contains("warning: lo has no native XDP support") && err.contains("lo (skb)"),
        "{err}"
    );
}

#[test]
fn refuses_to_run_without_privileges() {
    if !root_or_skip() {
        return;
    }
    let tmp = TempDir::new("unpriv");
    // Drop to nobody with no capabilities (setpriv from util-linux).
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--",
        ])
        .arg(BINARY)
        .args([
            "run",
            "-i",
            "lo",
            "--drop",
            "udp",
            "-w",
            tmp.file("x.pcap").to_str().unwrap(),
        ])
        .output()
        .expect("running setpriv");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("needs root, or the capabilities CAP_BPF and CAP_NET_ADMIN"),
        "{err}"
    );
}

#[test]
fn interrupted_demo_removes_its_namespaces() {
    if !root_or_skip() {
        return;
    }
    let tmp = TempDir::new("demo-int");
    let demo = Command::new(BINARY)
        .args([
            "demo",
            "-w",
            tmp.file("d.pcap").to_str().unwrap(),
            "--responses",
            "1000",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let tag = format!("xsieve-{}-", demo.id());
    let deadline = Instant::now() + Duration::from_secs(20);
    // Interrupt once the firewall is attached and traffic is flowing.
    loop {
        assert!(Instant::now() < deadline, "demo never started its firewall");
        let list = tool("ip", &["netns", "list"]);
        let fw_ns = list
            .lines()
            .find(|l| l.starts_with(&tag) && l.contains("-demo-fw"))
            .map(|l| l.split_whitespace().next().unwrap().to_string());
        if let Some(ns) = fw_ns {
            // The namespace exists a moment before its interface: poll without asserting.
            let link = Command::new("ip")
                .args(["-n", &ns, "-d", "link", "show", "dev", "fw0"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            if link.contains("prog/xdp") {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    std::thread::sleep(Duration::from_millis(200));
    // SAFETY: kill on our own child's PID.
    unsafe { libc::kill(demo.id() as i32, libc::SIGINT) };
    let out = demo.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "an interrupted demo reports it");
    assert!(err.contains("interrupted"), "{err}");
    // The firewall child still printed its summary (it was stopped, not killed).
    assert!(err.contains("packets seen by xdpsieve"), "{err}");
    let list = tool("ip", &["netns", "list"]);
    assert!(
        !list.lines().any(|l| l.starts_with(&tag)),
        "namespaces left: {list}"
    );
}

/// Log lines of one run, split by verdict.
fn run_with_log(
    net: &VethPair,
    tmp: &TempDir,
    transport: &str,
    format: &str,
    n: u16,
) -> (String, String) {
    let log = tmp.file(&format!("{transport}.{format}.log"));
    let fw = Firewall::start(
        net,
        &[
            "--drop",
            "udp src port 53",
            "--log",
            "all",
            "--log-format",
            format,
            "--log-file",
            log.to_str().unwrap(),
            "--transport",
            transport,
        ],
    );
    send_dns_and_other(net, n, 0);
    settle();
    let out = fw.stop(libc::SIGINT);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    (
        std::fs::read_to_string(&log).expect("reading the log"),
        stderr,
    )
}

#[test]
fn event_log_matches_the_traffic_for_both_transports() {
    if !root_or_skip() {
        return;
    }
    let tmp = TempDir::new("log");
    let net = VethPair::create("log", None).expect("namespaces");
    let (_c4, _c6) = client_sockets(&net);
    const N: u16 = 20;
    // DNS response: 45 bytes; + UDP 8 + IPv4 20 / IPv6 40 + Ethernet 14.
    let (len4, len6) = (45 + 8 + 20 + 14, 45 + 8 + 40 + 14);
    for transport in ["ringbuf", "perf"] {
        let (log, stderr) = run_with_log(&net, &tmp, transport, "json", N);
        let entries: Vec<serde_json::Value> = log
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        let drops: Vec<&serde_json::Value> =
            entries.iter().filter(|e| e["verdict"] == "DROP").collect();
        assert_eq!(drops.len(), 2 * usize::from(N), "{transport}: {log}");
        for e in &drops {
            assert_eq!(e["interface"], "fw0");
            assert_eq!(e["rule"], "drop udp src port 53");
            assert_eq!(e["rule_id"], 1);
            assert_eq!(e["protocol"], "udp");
            assert_eq!(e["src_port"], 53);
            assert_eq!(e["dst_port"], CLIENT_PORT);
            assert_eq!(e["malformed"], false);
            assert_eq!(e["vlan"], serde_json::Value::Null);
            match e["family"].as_str() {
                Some("ipv4") => {
                    assert_eq!(
                        (e["src"].as_str(), e["dst"].as_str()),
                        (Some("192.0.2.1"), Some("192.0.2.2"))
                    );
                    assert_eq!(e["len"], len4);
                }
                Some("ipv6") => {
                    assert_eq!(
                        (e["src"].as_str(), e["dst"].as_str()),
                        (Some("2001:db8::1"), Some("2001:db8::2"))
                    );
                    assert_eq!(e["len"], len6);
                }
                other => panic!("family {other:?}"),
            }
        }
        let others = entries
            .iter()
            .filter(|e| e["verdict"] == "PASS" && e["src_port"] == 5000)
            .count();
        assert_eq!(others, usize::from(N), "{transport}: {log}");
        // Timestamps are the kernel's, in order per CPU, and close to now.
        let now_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        for e in &entries {
            let t = e["time_ns"].as_u64().unwrap();
            assert!(now_ns - t < 60_000_000_000, "{e}");
        }
        // Every event the program sent is in the log, and the summary says so.
        assert!(
            stderr.contains(&format!("{} events logged", entries.len())),
            "{stderr}"
        );
        assert!(stderr.contains("0 events lost"), "{stderr}");

        let (text, _) = run_with_log(&net, &tmp, transport, "text", N);
        let line4 = format!(
            " fw0 DROP udp 192.0.2.1:53 -> 192.0.2.2:40000 len={len4} rule=drop udp src port 53"
        );
        let line6 = format!(
            " fw0 DROP udp [2001:db8::1]:53 -> [2001:db8::2]:40000 len={len6} rule=drop udp src port 53"
        );
        assert_eq!(
            text.lines().filter(|l| l.ends_with(&line4)).count(),
            usize::from(N),
            "{text}"
        );
        assert_eq!(
            text.lines().filter(|l| l.ends_with(&line6)).count(),
            usize::from(N),
            "{text}"
        );
        assert_eq!(
            text.lines()
                .filter(
                    |l| l.contains(" PASS udp 192.0.2.1:5000 -> 192.0.2.2:40000 ")
                        && l.ends_with("rule=default")
                )
                .count(),
            usize::from(N),
            "{text}"
        );
    }
}

#[test]
fn rate_limit_suppresses_and_counts_exactly() {
    if !root_or_skip() {
        return;
    }
    let tmp = TempDir::new("rate");
    let rules = tmp.file("fw.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nname = \"dns-flood\"\naction = \"drop\"\nprotocol = \"udp\"\nsrc_port = 53\nlog = true\nlog_rate = \"100/s\"\n",
    )
    .unwrap();
    let log = tmp.file("rate.log");
    let capture = tmp.file("rate.pcap");
    let net = VethPair::create("rate", None).expect("namespaces");
    let (_c4, _c6) = client_sockets(&net);
    let fw = Firewall::start(
        &net,
        &[
            "--rules",
            rules.to_str().unwrap(),
            "--log-file",
            log.to_str().unwrap(),
            "-w",
            capture.to_str().unwrap(),
        ],
    );
    // A bounded flood: 3000 responses as fast as the socket goes.
    const FLOOD: u64 = 3000;
    let started = Instant::now();
    net.peer
        .run(|| {
            let s = UdpSocket::bind(SocketAddr::new(VethPair::PEER_V4.into(), 53))?;
            let msg = dns_response(1);
            for _ in 0..FLOOD {
                s.send_to(&msg, (VethPair::FW_V4, CLIENT_PORT))?;
            }
            Ok::<_, std::io::Error>(())
        })
        .unwrap()
        .unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    settle();
    let out = fw.stop(libc::SIGINT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let events = std::fs::read_to_string(&log).unwrap().lines().count() as u64;
    let s = parse_summary(&stderr);
    assert_eq!(s.dropped, FLOOD, "{stderr}");
    // A burst of 100, then 100 per second (plus slack for the time to stop).
    let allowed = 100.0 + 100.0 * (elapsed + 1.0);
    assert!(
        events >= 100 && (events as f64) <= allowed,
        "{events} events in {elapsed:.2} s: {stderr}"
    );
    // Nothing goes missing without a count: recorded + suppressed = every packet.
    let suppressed: u64 = stderr
        .lines()
        .find_map(|l| l.strip_suffix(" packets not recorded: over their rule's rate limit"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no rate-limit line: {stderr}"));
    assert_eq!(events + suppressed, FLOOD, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "3000 hits, {suppressed} not recorded (rate limit)"
        )),
        "{stderr}"
    );
    // The capture rides the same limiter: captured + lost + suppressed = dropped.
    assert_eq!(s.captured + s.lost + suppressed, FLOOD, "{stderr}");
    assert_eq!(read_pcap(&capture).len() as u64, s.captured);
}

#[test]
fn pcapng_ends_with_interface_statistics() {
    if !root_or_skip() {
        return;
    }
    let tmp = TempDir::new("isb");
    let capture = tmp.file("isb.pcapng");
    let net = VethPair::create("isb", None).expect("namespaces");
    let (_c4, _c6) = client_sockets(&net);
    let fw = Firewall::start(
        &net,
        &[
            "--drop",
            "udp src port 53",
            "--format",
            "pcapng",
            "-w",
            capture.to_str().unwrap(),
        ],
    );
    send_dns_and_other(&net, 5, 0);
    settle();
    let out = fw.stop(libc::SIGINT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let s = parse_summary(&stderr);

    use pcap_file::pcapng::blocks::{
        interface_statistics::InterfaceStatisticsOption as Isb, section_header::SectionHeaderOption,
    };
    let mut reader = PcapNgReader::new(std::fs::File::open(&capture).unwrap()).unwrap();
    assert!(reader.section().options.iter().any(
        |o| matches!(o, SectionHeaderOption::UserApplication(a) if a.starts_with("xdpsieve "))
    ));
    let mut isb = None;
    while let Some(block) = reader.next_block() {
        if let Block::InterfaceStatistics(b) = block.unwrap() {
            isb = Some(b.into_owned());
        }
    }
    let isb = isb.expect("an interface statistics block");
    let (mut recv, mut drop, mut os_drop, mut delivered) = (None, None, None, None);
    for option in &isb.options {
        match option {
            Isb::IsbIfRecv(v) => recv = Some(*v),
            Isb::IsbIfDrop(v) => drop = Some(*v),
            Isb::IsbOsDrop(v) => os_drop = Some(*v),
            Isb::IsbUsrDeliv(v) => delivered = Some(*v),
            _ => {}
        }
    }
    assert_eq!(recv, Some(s.seen));
    assert_eq!(drop, Some(s.dropped));
    assert_eq!(os_drop, Some(s.lost));
    assert_eq!(delivered, Some(s.captured));
    // Wireshark's own reader sees the block too.
    let info = tool("capinfos", &["-I", capture.to_str().unwrap()]);
    assert!(info.contains("Number of stat entries = 1"), "{info}");
}

/// Runs `xdpsieve status ARGS` inside the firewall's namespace, as a second process.
fn status_in(net: &VethPair, args: &[&str]) -> String {
    let out = net
        .fw
        .command(BINARY)
        .arg("status")
        .args(args)
        .output()
        .expect("running xdpsieve status");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn status_from_another_process_while_traffic_flows() {
    if !root_or_skip() {
        return;
    }
    let net = VethPair::create("status", None).expect("namespaces");
    let (_c4, _c6) = client_sockets(&net);
    let fw = Firewall::start(&net, &["--drop", "udp src port 53", "--log-rate", "10/s"]);
    send_dns_and_other(&net, 10, 0);
    settle();
    let text = status_in(&net, &[]);
    assert!(
        text.contains(&format!(
            "fw0: xdpsieve {} pid {}",
            env!("CARGO_PKG_VERSION"),
            fw.pid()
        )),
        "{text}"
    );
    assert!(
        text.contains("on fw0 (native), transport ringbuf"),
        "{text}"
    );
    assert!(text.contains("20 hits"), "{text}");
    let json: serde_json::Value =
        serde_json::from_str(&status_in(&net, &["-i", "fw0", "--json"])).unwrap();
    let s = &json[0];
    assert_eq!(s["live"], true);
    assert_eq!(s["pid"], fw.pid());
    assert_eq!(s["interfaces"][0]["mode"], "native");
    assert_eq!(s["rules"][0]["name"], "drop udp src port 53");
    assert_eq!(s["rules"][0]["rate"], "10/s");
    assert_eq!(s["counters"]["dropped"], 20);
    assert_eq!(s["counters"]["rule_hits"][1], serde_json::json!([1, 20]));

    // More traffic: the running instance keeps counting, undisturbed by the reader.
    send_dns_and_other(&net, 5, 0);
    settle();
    let json: serde_json::Value = serde_json::from_str(&status_in(&net, &["--json"])).unwrap();
    assert_eq!(json[0]["counters"]["dropped"], 30);
    let out = fw.stop(libc::SIGINT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(parse_summary(&stderr).dropped == 30, "{stderr}");
    // Pins are removed on exit.
    assert!(status_in(&net, &[]).contains("no xdpsieve is running"));
}

#[test]
fn a_killed_instance_is_shown_as_left_behind_and_taken_over() {
    if !root_or_skip() {
        return;
    }
    // Before fail-static, a killed instance's pins were stale and the next start cleaned
    // them. Now its firewall stays in force: status says so (with its counters) and the
    // next start takes it over.
    let net = VethPair::create("stale", None).expect("namespaces");
    let fw = Firewall::start(&net, &["--drop", "udp src port 53"]);
    let pid = fw.pid();
    let out = fw.stop(libc::SIGKILL);
    assert!(!out.status.success());
    let text = status_in(&net, &[]);
    assert!(
        text.contains(&format!(
            "fw0: firewall in force, running without a recorder (pid {pid} died)"
        )),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_str(&status_in(&net, &["--json"])).unwrap();
    assert_eq!(json[0]["live"], false);
    assert_eq!(json[0]["in_force"], true);
    assert!(json[0]["counters"].is_object(), "{json}");
    // The next start takes it over and says so.
    let fw = Firewall::start(&net, &["--drop", "udp src port 53"]);
    let out = fw.stop(libc::SIGINT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("took over the firewall left on fw0 by pid {pid}")),
        "{stderr}"
    );
    assert!(status_in(&net, &[]).contains("no xdpsieve is running"));
    assert!(!xdp_attached(&net), "program left attached after SIGINT");
}

#[test]
fn metrics_scraped_over_loopback_and_stats_lines() {
    if !root_or_skip() {
        return;
    }
    let net = VethPair::create("metrics", None).expect("namespaces");
    let (_c4, _c6) = client_sockets(&net);
    let fw = Firewall::start(
        &net,
        &[
            "--drop",
            "udp src port 53",
            "--metrics",
            "127.0.0.1:9470",
            "--stats-interval",
            "0.2",
        ],
    );
    send_dns_and_other(&net, 10, 0);
    settle();
    // A real HTTP client, in the firewall's namespace (the listener lives there).
    let out = net
        .fw
        .command("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "-D",
            "-",
            "http://127.0.0.1:9470/metrics",
        ])
        .output()
        .expect("running curl (cargo xtask setup installs it)");
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(body.contains("application/openmetrics-text"), "{body}");
    assert!(
        body.contains("xdpsieve_packets_total{verdict=\"drop\"} 20"),
        "{body}"
    );
    assert!(
        body.contains("xdpsieve_rule_hits_total{rule_id=\"1\",rule=\"drop udp src port 53\",action=\"drop\"} 20"),
        "{body}"
    );
    assert!(
        body.contains("xdpsieve_interface_packets_total{interface=\"fw0\",verdict=\"drop\"} 20"),
        "{body}"
    );
    assert!(
        body.contains("xdpsieve_records_lost_total{stream=\"capture\"} 0"),
        "{body}"
    );
    assert!(
        body.contains("xdpsieve_rate_limited_packets_total 0"),
        "{body}"
    );
    assert!(body.trim_end().ends_with("# EOF"), "{body}");
    let out = fw.stop(libc::SIGINT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("metrics at http://127.0.0.1:9470/metrics"),
        "{stderr}"
    );
    // The live status line appeared while traffic flowed.
    assert!(
        stderr.lines().any(|l| l.starts_with("xdpsieve: ")
            && l.contains(" pkt/s (")
            && l.contains("rate-limited 0")),
        "{stderr}"
    );
}
