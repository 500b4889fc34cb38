//! End-to-end tests: the real `xdpsieve` binary attached to a veth in a namespace the test
//! creates, real traffic sent from a second namespace, captures read back by the pcap-file
//! crate and by tcpdump and tshark, and the exit summary checked against what was sent.
//!
//! By topic, in `e2e/`:
//! - `capture`: pcap and pcapng files, the capture filter, standard output, jumbo frames,
//!   several interfaces, interface statistics;
//! - `cli`: rule files and flags, operator mistakes, `check-rules`, `--help`, privileges;
//! - `directions`: a rule without a direction (`udp port 5353`) at the socket, both ways;
//! - `limits`: limit rules (per source, per prefix) and a monitor rule's twin, at the socket;
//! - `latency`: how soon a captured packet comes out, idle and right after a flood;
//! - `lifecycle`: SIGKILL leaving the firewall in force, skb fallback, the demo;
//! - `memory`: the kernel memory of the rings, `--ring-size` only where records are sent;
//! - `events`: the event log and its rate limit;
//! - `status`: `xdpsieve status`, instances left behind, metrics and stats lines;
//! - `top`: `status --top N` and `xdpsieve top` (in a pseudo-terminal) while drops flow.
//!
//! This file holds the helpers more than one topic uses.
//!
//! They need root; under `CI` they fail rather than skip when they cannot run.

mod capture;
mod cli;
mod directions;
mod events;
mod latency;
mod lifecycle;
mod limits;
mod memory;
mod status;
mod top;

use std::{
    net::{SocketAddr, UdpSocket},
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use pcap_file::pcap::PcapReader;
use xdpsieve::sandbox::demo::dns_response;
use xdpsieve_netns::VethPair;

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
