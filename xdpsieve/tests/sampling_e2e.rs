//! End-to-end test of sampling and per-rule snap length: the real `xdpsieve` binary on a
//! veth in a namespace the test creates, real UDP traffic from a second namespace, the
//! capture read back by the pcap-file crate and by tcpdump, and the exit summary and
//! `xdpsieve status` checked against what was sent, exactly.
//!
//! Sampling counts per CPU; the sender is pinned to one CPU so that every frame reaches
//! the program on it (veth runs XDP where the frame was sent) and the counts are exact.
//!
//! It needs root; under `CI` it fails rather than skip when it cannot run.

use std::{
    net::{SocketAddr, UdpSocket},
    process::{Command, Stdio},
    time::Duration,
};

use pcap_file::pcapng::{
    Block, PcapNgReader, blocks::interface_statistics::InterfaceStatisticsOption,
};
use xdpsieve::sandbox::demo::dns_response;
use xdpsieve_netns::VethPair;
use xdpsieve_testkit::child::Firewall;
use xdpsieve_testkit::gate::root_or_skip;
use xdpsieve_testkit::summary::summary_number;
use xdpsieve_testkit::tempdir::TempDir;
use xdpsieve_testkit::udp::pin_to_one_cpu;

const BINARY: &str = env!("CARGO_BIN_EXE_xdpsieve");
const CLIENT_PORT: u16 = 40000;

/// Starts `xdpsieve run` and waits until `xdpsieve status` shows it live.
fn start_firewall(net: &VethPair, args: &[&str]) -> Firewall {
    let mut fw = Firewall::spawn(net, BINARY, args, Stdio::piped());
    fw.wait_until(|| status_json(net).contains("\"live\": true"));
    fw
}

fn status_json(net: &VethPair) -> String {
    status_output(net, &["status", "--json"])
}

fn status_output(net: &VethPair, args: &[&str]) -> String {
    net.fw
        .command(BINARY)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Sends `count` UDP datagrams of `payload` bytes from `src_port` to the client port, from
/// one CPU, paced so that no frame is lost on the veth before the program sees it.
fn send(net: &VethPair, src_port: u16, count: u16, payload: usize) {
    net.peer
        .run(|| {
            pin_to_one_cpu();
            let socket = UdpSocket::bind(SocketAddr::new(VethPair::PEER_V4.into(), src_port))?;
            for i in 0..count {
                let mut msg = dns_response(i);
                msg.resize(payload, 0);
                socket.send_to(&msg, (VethPair::FW_V4, CLIENT_PORT))?;
                std::thread::sleep(Duration::from_micros(500));
            }
            Ok::<_, std::io::Error>(())
        })
        .expect("entering namespace")
        .expect("sending traffic");
}

/// Counter `key` of the (one) instance in `xdpsieve status --json`.
fn status_total(json: &str, key: &str) -> Option<u64> {
    fn counters(value: &serde_json::Value) -> Option<&serde_json::Value> {
        match value {
            serde_json::Value::Object(map) => map
                .get("counters")
                .or_else(|| map.values().find_map(counters)),
            serde_json::Value::Array(items) => items.iter().find_map(counters),
            _ => None,
        }
    }
    let value: serde_json::Value = serde_json::from_str(json).ok()?;
    counters(&value)?.get(key)?.as_u64()
}

/// Rule `flood` (UDP from port 53): 1 in 4, 96 bytes. Rule `rare` (UDP from port 5353):
/// `--sample 10`, whole packets (past `-s 64`). Everything else passes, uncaptured.
const RULES: &str = r#"default = "pass"

[[rule]]
id = 1
name = "flood"
action = "drop"
protocol = "udp"
src_port = 53
sample = 4
snaplen = 96

[[rule]]
id = 2
name = "rare"
action = "drop"
protocol = "udp"
src_port = 5353
snaplen = 1500
"#;

#[test]
fn sampling_and_rule_snaplen_exact_in_file_summary_and_status() {
    if !root_or_skip() {
        return;
    }
    let tmp = TempDir::new("sample");
    let capture = tmp.file("sampled.pcapng");
    let rules = tmp.file("rules.toml");
    std::fs::write(&rules, RULES).expect("writing rules");
    let net = VethPair::create("sample", None).expect("namespaces");
    let fw = start_firewall(
        &net,
        &[
            "--rules",
            rules.to_str().unwrap(),
            "--sample",
            "10",
            "-s",
            "64",
            "--format",
            "pcapng",
            // The listener lives in the firewall's namespace: no port shared with others.
            "--metrics",
            "127.0.0.1:9470",
            "-w",
            capture.to_str().unwrap(),
        ],
    );

    // Frames: 14 Ethernet + 20 IPv4 + 8 UDP + payload.
    const FLOOD: u16 = 400;
    const RARE: u16 = 50;
    const PAYLOAD: usize = 300;
    const FRAME: u32 = 14 + 20 + 8 + PAYLOAD as u32;
    send(&net, 53, FLOOD, PAYLOAD);
    send(&net, 5353, RARE, PAYLOAD);
    // Let frames still in flight reach the program, then read the live status.
    std::thread::sleep(Duration::from_millis(300));
    let status = status_json(&net);
    let status_text = status_output(&net, &["status"]);
    // A real HTTP client in the firewall's namespace.
    let metrics = net
        .fw
        .command("curl")
        .args(["-sS", "--max-time", "10", "http://127.0.0.1:9470/metrics"])
        .output()
        .expect("running curl (cargo xtask setup installs it)");
    let metrics = String::from_utf8_lossy(&metrics.stdout).into_owned();
    let out = fw.stop(libc::SIGINT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "xdpsieve failed: {stderr}");

    // 400 at 1 in 4 and 50 at 1 in 10 (the first of each group): 100 + 5 kept.
    let (flood_kept, rare_kept) = (100u64, 5u64);
    let sampled_out = u64::from(FLOOD) - flood_kept + u64::from(RARE) - rare_kept;

    // The file: exactly the kept packets, cut to each rule's snap length, true lengths.
    let mut reader =
        PcapNgReader::new(std::fs::File::open(&capture).expect("capture")).expect("pcapng");
    let (mut flood, mut rare, mut isb_comment) = (0u64, 0u64, String::new());
    while let Some(block) = reader.next_block() {
        match block.expect("pcapng block") {
            Block::EnhancedPacket(p) => {
                assert_eq!(p.original_len, FRAME);
                let src_port = u16::from_be_bytes([p.data[34], p.data[35]]);
                match src_port {
                    53 => {
                        assert_eq!(p.data.len(), 96, "flood rule's snaplen");
                        flood += 1;
                    }
                    5353 => {
                        assert_eq!(p.data.len(), FRAME as usize, "rare rule: whole packet");
                        rare += 1;
                    }
                    other => panic!("captured a packet from port {other}"),
                }
            }
            // The file's snap length is the largest asked for (the rare rule's), so the
            // writer does not cut what the program captured whole.
            Block::InterfaceDescription(idb) => assert_eq!(idb.snaplen, 1500),
            Block::InterfaceStatistics(isb) => {
                for option in &isb.options {
                    if let InterfaceStatisticsOption::Comment(c) = option {
                        isb_comment = c.to_string();
                    }
                }
            }
            _ => {}
        }
    }
    assert_eq!((flood, rare), (flood_kept, rare_kept), "{stderr}");
    // Sampled-out packets are reported as not loss, apart from osdrop.
    assert!(
        isb_comment.contains(&format!("sampled out (by choice, not loss): {sampled_out}")),
        "interface statistics comment: {isb_comment:?}"
    );

    // A real reader agrees.
    let text = Command::new("tcpdump")
        .args(["-nn", "-r", capture.to_str().unwrap()])
        .output()
        .expect("running tcpdump (cargo xtask setup installs it)");
    let text = String::from_utf8_lossy(&text.stdout);
    assert_eq!(
        text.lines().count() as u64,
        flood_kept + rare_kept,
        "{text}"
    );
    assert_eq!(
        text.lines()
            .filter(|l| l.contains("192.0.2.1.5353 > 192.0.2.2.40000"))
            .count() as u64,
        rare_kept
    );

    // The summary: everything dropped, the kept ones captured, the rest sampled out and
    // no loss.
    assert_eq!(
        summary_number(&stderr, "packets captured"),
        Some(flood_kept + rare_kept),
        "{stderr}"
    );
    assert_eq!(
        summary_number(&stderr, "packets lost: capture buffer full"),
        Some(0),
        "{stderr}"
    );
    assert_eq!(
        summary_number(&stderr, "packets not recorded by choice: sampled out"),
        Some(sampled_out),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{} hits, 300 sampled out", FLOOD)),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{} hits, 45 sampled out", RARE)),
        "{stderr}"
    );

    // `xdpsieve status` shows the same counts while running.
    assert_eq!(
        status_total(&status, "sampled_out"),
        Some(sampled_out),
        "{status}"
    );
    assert_eq!(
        status_total(&status, "captured"),
        Some(flood_kept + rare_kept),
        "{status}"
    );
    assert_eq!(status_total(&status, "capture_lost"), Some(0), "{status}");
    // Per rule too, in the JSON (rule id, count) and on the rule lines.
    let compact: String = status.split_whitespace().collect();
    assert!(
        compact.contains("\"rule_sampled_out\":[[0,0],[1,300],[2,45]]"),
        "{status}"
    );
    for (rule, sampled) in [("flood", 300), ("rare", 45)] {
        assert!(
            status_text
                .lines()
                .any(|l| l.contains(rule) && l.contains(&format!("{sampled} sampled out"))),
            "{status_text}"
        );
    }

    // And the metrics: the total, per rule and per interface.
    for line in [
        format!("xdpsieve_sampled_out_packets_total {sampled_out}"),
        "xdpsieve_rule_sampled_out_packets_total{rule_id=\"1\",rule=\"flood\",action=\"drop\"} 300"
            .to_string(),
        "xdpsieve_rule_sampled_out_packets_total{rule_id=\"2\",rule=\"rare\",action=\"drop\"} 45"
            .to_string(),
        format!("xdpsieve_interface_sampled_out_packets_total{{interface=\"fw0\"}} {sampled_out}"),
    ] {
        assert!(metrics.contains(&line), "{line} not in {metrics}");
    }
}
