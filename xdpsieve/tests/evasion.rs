//! No evasion, proven at the socket: the real `xdpsieve` binary on a veth in a namespace the
//! test creates, real listening sockets behind it in that namespace, and crafted packets
//! (scapy, run by /usr/bin/python3 in the peer namespace) that try to slip past its port
//! rules: IPv6 datagrams behind long extension-header chains, the RFC 1858 tiny-fragment
//! SYN, and fragmented UDP sent in and out of order. What a rule drops must never reach a
//! socket; what it allows must (so the test can see delivery at all).
//!
//! They need root and python3-scapy (`cargo xtask setup` installs it); under `CI` they fail
//! rather than skip when they cannot run.

#[path = "common/child.rs"]
#[expect(
    dead_code,
    reason = "the child guard serves several test binaries; this one uses a part"
)]
mod child;
mod common;
#[path = "common/udp.rs"]
mod udp;
use child::{Firewall, xdp_attached};
use common::root_or_skip;
use udp::received;

use std::{
    net::{SocketAddr, TcpListener, UdpSocket},
    process::{Command, Stdio},
    time::Duration,
};

use xdpsieve::netns::VethPair;

const BINARY: &str = env!("CARGO_BIN_EXE_xdpsieve");

/// The firewall under test: this build, or the one `XDPSIEVE_EVASION_BINARY` names (an older
/// build, to watch these tests fail against the parser that let the evasions through).
fn binary() -> String {
    std::env::var("XDPSIEVE_EVASION_BINARY").unwrap_or_else(|_| BINARY.to_string())
}
const PYTHON: &str = "/usr/bin/python3";

/// Ports behind the firewall: the rules drop the first of each pair, the second is open.
const UDP_DROPPED: u16 = 5353;
const UDP_ALLOWED: u16 = 5354;
const TCP_DROPPED: u16 = 8080;
const TCP_ALLOWED: u16 = 8081;

/// The packet crafter: `IFACE SRC_MAC DST_MAC SRC4 DST4 SRC6 DST6 MODE ARGS...`. Prints the
/// number of SYN-ACKs seen for the TCP modes.
const CRAFTER: &str = r#"
import os, sys, time
from scapy.all import (AsyncSniffer, Ether, IP, IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment,
                       Raw, TCP, UDP, conf, fragment, fragment6, sendp)
conf.verb = 0
iface, src_mac, dst_mac, src4, dst4, src6, dst6, mode = sys.argv[1:9]
args = sys.argv[9:]
ident = os.getpid() & 0xffff

def send(frames):
    sendp([Ether(src=src_mac, dst=dst_mac) / f for f in frames], iface=iface, verbose=False)

def ordered(frames, order):
    return list(reversed(frames)) if order == "reverse" else frames

def syn_bytes(dport):
    # Built once whole, so the checksum covers the header the fragments carry in slices.
    packet = IP(bytes(IP(src=src4, dst=dst4) / TCP(sport=40001, dport=dport, flags="S", seq=1000)))
    return bytes(packet[TCP])

def tcp_fragment(data, offset_units, more):
    return IP(src=src4, dst=dst4, id=ident, proto=6, flags="MF" if more else 0,
              frag=offset_units) / Raw(data)

def count_syn_acks(dport, frames):
    sniffer = AsyncSniffer(iface=iface, store=True, lfilter=lambda p: TCP in p
                           and p[TCP].sport == dport and int(p[TCP].flags) & 0x12 == 0x12)
    sniffer.start()
    time.sleep(0.5)
    send(frames)
    time.sleep(1.5)
    print(len(sniffer.stop()))

if mode == "udp6-chain":
    headers, dport = int(args[0]), int(args[1])
    packet = IPv6(src=src6, dst=dst6)
    for _ in range(headers):
        packet = packet / IPv6ExtHdrDestOpt()
    send([packet / UDP(sport=40000, dport=dport) / Raw(b"behind a chain")])
elif mode == "udp4-frag":
    dport, order = int(args[0]), args[1]
    packet = IP(src=src4, dst=dst4, id=ident) / UDP(sport=40000, dport=dport) / Raw(b"x" * 3000)
    send(ordered(fragment(packet, fragsize=1000), order))
elif mode == "udp6-frag":
    dport, order = int(args[0]), args[1]
    packet = (IPv6(src=src6, dst=dst6) / IPv6ExtHdrFragment(id=ident)
              / UDP(sport=40000, dport=dport) / Raw(b"x" * 3000))
    send(ordered(fragment6(packet, 1280), order))
elif mode == "tcp-syn":
    dport = int(args[0])
    count_syn_acks(dport, [IP(src=src4, dst=dst4) / TCP(sport=40001, dport=dport, flags="S")])
elif mode == "tcp-tiny":
    # RFC 1858: the first fragment carries only the ports and sequence number (8 bytes),
    # the flags follow at offset 8.
    dport, order = int(args[0]), args[1]
    syn = syn_bytes(dport)
    count_syn_acks(dport, ordered([tcp_fragment(syn[:8], 0, True),
                                   tcp_fragment(syn[8:], 1, False)], order))
elif mode == "tcp-frag":
    # A first fragment with the whole flags byte (16 bytes), the rest at offset 16.
    dport = int(args[0])
    syn = syn_bytes(dport)
    count_syn_acks(dport, [tcp_fragment(syn[:16], 0, True), tcp_fragment(syn[16:], 2, False)])
else:
    sys.exit("unknown mode " + mode)
"#;

/// The namespaces, the firewall with its port rules, and the crafter's fixed arguments.
struct Lab {
    // Field order is drop order: the firewall stops before its namespaces go.
    firewall: Option<Firewall>,
    crafter_args: Vec<String>,
    net: VethPair,
}

impl Lab {
    fn new(tag: &str, extra_args: &[&str]) -> Lab {
        let output = Command::new(PYTHON)
            .args(["-c", "import scapy.all"])
            .output();
        if !output.is_ok_and(|o| o.status.success()) {
            panic!("{PYTHON} cannot import scapy: install python3-scapy (cargo xtask setup)");
        }
        let net = VethPair::create(tag, None).expect("creating the veth pair");
        let udp_rule = format!("udp dst port {UDP_DROPPED}");
        let tcp_rule = format!("tcp dst port {TCP_DROPPED}");
        let mut args = vec!["-q", "--drop", &udp_rule, "--drop", &tcp_rule];
        args.extend_from_slice(extra_args);
        let mut firewall = Firewall::spawn(&net, &binary(), &args, Stdio::null());
        firewall.wait_until(|| xdp_attached(&net));
        let crafter_args = vec![
            VethPair::PEER_IF.to_string(),
            mac_of(&net.peer, VethPair::PEER_IF),
            mac_of(&net.fw, VethPair::FW_IF),
            VethPair::PEER_V4.to_string(),
            VethPair::FW_V4.to_string(),
            VethPair::PEER_V6.to_string(),
            VethPair::FW_V6.to_string(),
        ];
        Lab {
            firewall: Some(firewall),
            crafter_args,
            net,
        }
    }

    /// Runs the crafter in the peer namespace; returns what it printed.
    fn craft(&self, mode: &str, args: &[&str]) -> String {
        let out = self
            .net
            .peer
            .command(PYTHON)
            .args(["-c", CRAFTER])
            .args(&self.crafter_args)
            .arg(mode)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("running the packet crafter");
        assert!(
            out.status.success(),
            "crafter {mode} {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// SYN-ACKs the crafter saw come back for a TCP mode.
    fn syn_acks(&self, mode: &str, args: &[&str]) -> u32 {
        let printed = self.craft(mode, args);
        printed
            .parse()
            .unwrap_or_else(|_| panic!("crafter printed `{printed}`, not a count"))
    }

    /// Binds a UDP socket on `port` of the firewall side's address (IPv4 or IPv6).
    fn udp_socket(&self, v6: bool, port: u16) -> UdpSocket {
        let addr = if v6 {
            SocketAddr::new(VethPair::FW_V6.into(), port)
        } else {
            SocketAddr::new(VethPair::FW_V4.into(), port)
        };
        self.net
            .fw
            .run(|| {
                let socket = UdpSocket::bind(addr)?;
                socket.set_read_timeout(Some(Duration::from_millis(300)))?;
                Ok::<_, std::io::Error>(socket)
            })
            .expect("entering the firewall namespace")
            .unwrap_or_else(|e| panic!("binding UDP {addr}: {e}"))
    }

    /// Listens on `port` (IPv4), behind the firewall.
    fn tcp_listener(&self, port: u16) -> TcpListener {
        let addr = SocketAddr::new(VethPair::FW_V4.into(), port);
        self.net
            .fw
            .run(|| {
                let listener = TcpListener::bind(addr)?;
                listener.set_nonblocking(true)?;
                Ok::<_, std::io::Error>(listener)
            })
            .expect("entering the firewall namespace")
            .unwrap_or_else(|e| panic!("listening on TCP {addr}: {e}"))
    }

    /// Half-open connections (SYN received, SYN-ACK sent) on `port` behind the firewall.
    fn syn_received(&self, port: u16) -> usize {
        let out = self
            .net
            .fw
            .command("ss")
            .args([
                "-Htn",
                "state",
                "syn-recv",
                "sport",
                "=",
                &format!(":{port}"),
            ])
            .output()
            .expect("running ss");
        String::from_utf8_lossy(&out.stdout).lines().count()
    }

    fn stop(mut self) -> String {
        let out = self.firewall.take().expect("running").stop(libc::SIGINT);
        assert!(out.status.success(), "xdpsieve failed: {out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

fn mac_of(ns: &xdpsieve::netns::Netns, iface: &str) -> String {
    let out = ns
        .ip(&["-o", "link", "show", "dev", iface])
        .expect("reading the interface");
    out.split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .unwrap_or_else(|| panic!("no MAC address for {iface} in `{out}`"))
        .to_string()
}

/// The numbers of the summary line the evasion defences print.
fn evasion_line(summary: &str) -> &str {
    summary
        .lines()
        .find(|l| l.contains("unclassifiable"))
        .unwrap_or_else(|| panic!("no unclassifiable line in the summary:\n{summary}"))
}

#[test]
fn ipv6_extension_chains_cannot_hide_a_dropped_port() {
    if !root_or_skip() {
        return;
    }
    // Drops go to a pcapng file, to read the unclassifiable flag back with tshark.
    let capture =
        std::env::temp_dir().join(format!("xdpsieve-evasion-{}.pcapng", std::process::id()));
    let _remove = RemoveOnDrop(capture.clone());
    let capture_arg = capture.to_str().expect("temp path is UTF-8");
    let lab = Lab::new("ev-chain", &["-w", capture_arg, "--format", "pcapng"]);
    let dropped = lab.udp_socket(true, UDP_DROPPED);
    let allowed = lab.udp_socket(true, UDP_ALLOWED);
    // 10 and 40 headers: past the old bound of 8, within MAX_IPV6_EXT_HEADERS.
    for headers in ["10", "40"] {
        lab.craft("udp6-chain", &[headers, &UDP_ALLOWED.to_string()]);
        assert_eq!(
            received(&allowed),
            1,
            "{headers} destination-option headers to the allowed port must be delivered"
        );
        lab.craft("udp6-chain", &[headers, &UDP_DROPPED.to_string()]);
        assert_eq!(
            received(&dropped),
            0,
            "{headers} destination-option headers hid the dropped port from the firewall"
        );
    }
    // Past the bound the packet is unclassifiable: dropped, even to the allowed port.
    lab.craft("udp6-chain", &["70", &UDP_ALLOWED.to_string()]);
    assert_eq!(received(&allowed), 0, "70 headers: unclassifiable, dropped");
    let summary = lab.stop();
    assert!(
        evasion_line(&summary).starts_with("1 packets unclassifiable"),
        "{summary}"
    );
    // The pcapng comment says why the packet was dropped, as tshark reads it.
    let out = Command::new("tshark")
        .args(["-r", capture_arg, "-T", "fields", "-e", "frame.comment"])
        .output()
        .expect("running tshark (install it: cargo xtask setup)");
    let comments = String::from_utf8_lossy(&out.stdout);
    let flagged: Vec<&str> = comments
        .lines()
        .filter(|l| l.contains("unclassifiable"))
        .collect();
    assert_eq!(flagged, ["rule=default id=0 unclassifiable"], "{comments}");
}

/// Removes a file on drop (the test's capture), pass or fail.
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn unclassifiable_pass_lets_the_host_judge() {
    if !root_or_skip() {
        return;
    }
    // The control for the case above: the kernel behind the firewall does accept a chain of
    // 70 headers, so dropping it is the firewall's doing.
    let lab = Lab::new("ev-chainpass", &["--unclassifiable", "pass"]);
    let allowed = lab.udp_socket(true, UDP_ALLOWED);
    lab.craft("udp6-chain", &["70", &UDP_ALLOWED.to_string()]);
    assert_eq!(
        received(&allowed),
        1,
        "70 headers with --unclassifiable pass"
    );
}

#[test]
fn tiny_fragment_syn_gets_no_answer() {
    if !root_or_skip() {
        return;
    }
    let lab = Lab::new("ev-tiny", &[]);
    let dropped_listener = lab.tcp_listener(TCP_DROPPED);
    let _allowed = lab.tcp_listener(TCP_ALLOWED);
    let allowed = TCP_ALLOWED.to_string();
    let dropped = TCP_DROPPED.to_string();
    assert!(
        lab.syn_acks("tcp-syn", &[&allowed]) >= 1,
        "a plain SYN to the open port must be answered (else the test sees nothing)"
    );
    assert!(
        lab.syn_acks("tcp-frag", &[&allowed]) >= 1,
        "a SYN fragmented after its flags, to the open port, must be answered"
    );
    assert_eq!(lab.syn_acks("tcp-syn", &[&dropped]), 0, "plain SYN");
    for order in ["in-order", "reverse"] {
        assert_eq!(
            lab.syn_acks("tcp-tiny", &[&dropped, order]),
            0,
            "tiny-fragment SYN ({order}) to the dropped port was answered"
        );
    }
    assert_eq!(
        lab.syn_received(TCP_DROPPED),
        0,
        "half-open on the dropped port"
    );
    assert!(
        dropped_listener.accept().is_err(),
        "a connection was accepted on the dropped port"
    );
    let summary = lab.stop();
    let line = evasion_line(&summary);
    // Two trains of two fragments: a tiny first and one at offset 8 in each.
    assert!(
        line.starts_with("4 packets unclassifiable (4 tiny TCP fragments)"),
        "{summary}"
    );
}

#[test]
fn fragmented_udp_shares_its_first_fragments_verdict() {
    if !root_or_skip() {
        return;
    }
    let lab = Lab::new("ev-frag", &[]);
    for (v6, mode) in [(false, "udp4-frag"), (true, "udp6-frag")] {
        let dropped = lab.udp_socket(v6, UDP_DROPPED);
        let allowed = lab.udp_socket(v6, UDP_ALLOWED);
        for order in ["in-order", "reverse"] {
            lab.craft(mode, &[&UDP_ALLOWED.to_string(), order]);
            assert_eq!(received(&allowed), 1, "{mode} {order} to the allowed port");
            lab.craft(mode, &[&UDP_DROPPED.to_string(), order]);
            assert_eq!(received(&dropped), 0, "{mode} {order} to the dropped port");
        }
    }
    let summary = lab.stop();
    // In order, the later fragments follow their first; in reverse, they come first and
    // are orphans (the first fragment's drop still stops the reassembly).
    let line = evasion_line(&summary);
    assert!(line.contains("later fragments took"), "{summary}");
    assert!(!line.contains(" 0 later fragments took"), "{summary}");
}
