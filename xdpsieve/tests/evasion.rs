//! No evasion, proven at the socket: the real `xdpsieve` binary on a veth in a namespace the
//! test creates, real listening sockets behind it in that namespace, and crafted packets
//! (scapy, run by /usr/bin/python3 in the peer namespace) that try to slip past its port
//! rules: IPv6 datagrams behind long extension-header chains, the RFC 1858 tiny-fragment
//! SYN, and fragmented UDP sent in and out of order. What a rule drops must never reach a
//! socket; what it allows must (so the test can see delivery at all).
//!
//! Kernels differ in what they deliver without any firewall (some discard IPv6 packets with
//! a dozen or more extension headers by themselves), so the chain tests first measure the
//! running kernel with a control run, print what they found, and judge xdpsieve relative
//! to it (see `tests/README.md` for every such assumption).
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

use std::collections::BTreeSet;

use xdpsieve::netns::VethPair;
use xdpsieve_common::MAX_IPV6_EXT_HEADERS;

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

def chain(headers, dport):
    # The payload names the chain's length, so the socket can say which ones arrived.
    packet = IPv6(src=src6, dst=dst6)
    for _ in range(headers):
        packet = packet / IPv6ExtHdrDestOpt()
    return packet / UDP(sport=40000, dport=dport) / Raw(b"chain %d" % headers)

if mode == "udp6-chains":
    dport = int(args[0])
    send([chain(int(headers), dport) for headers in args[1:]])
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

/// The namespaces, the firewall with its port rules (once started), and the crafter's
/// fixed arguments.
struct Lab {
    // Field order is drop order: the firewall stops before its namespaces go.
    firewall: Option<Firewall>,
    crafter_args: Vec<String>,
    net: VethPair,
}

impl Lab {
    /// The namespaces with the firewall running its port rules and `extra_args`.
    fn new(tag: &str, extra_args: &[&str]) -> Lab {
        let mut lab = Lab::without_firewall(tag);
        lab.start_firewall(extra_args);
        lab
    }

    /// Starts the firewall with its port rules and `extra_args`; waits until it is attached.
    fn start_firewall(&mut self, extra_args: &[&str]) {
        let udp_rule = format!("udp dst port {UDP_DROPPED}");
        let tcp_rule = format!("tcp dst port {TCP_DROPPED}");
        let mut args = vec!["-q", "--drop", &udp_rule, "--drop", &tcp_rule];
        args.extend_from_slice(extra_args);
        let mut firewall = Firewall::spawn(&self.net, &binary(), &args, Stdio::null());
        firewall.wait_until(|| xdp_attached(&self.net));
        self.firewall = Some(firewall);
    }

    /// The namespaces and the crafter with no XDP program on the interface: the control
    /// run, to see what the kernel itself delivers.
    fn without_firewall(tag: &str) -> Lab {
        let output = Command::new(PYTHON)
            .args(["-c", "import scapy.all"])
            .output();
        if !output.is_ok_and(|o| o.status.success()) {
            panic!("{PYTHON} cannot import scapy: install python3-scapy (cargo xtask setup)");
        }
        let net = VethPair::create(tag, None).expect("creating the veth pair");
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
            firewall: None,
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

    /// Sends one UDP datagram to `port` behind each chain of `lengths` destination-options
    /// headers; returns the lengths `socket` received.
    fn chains_delivered(
        &self,
        port: u16,
        lengths: &[usize],
        socket: &UdpSocket,
    ) -> BTreeSet<usize> {
        let mut args = vec![port.to_string()];
        args.extend(lengths.iter().map(usize::to_string));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.craft("udp6-chains", &args);
        chains_received(socket)
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

/// Chain lengths probed: around the parser's fast walk (8), the lengths kernels were seen to
/// stop delivering at (13 here, between 10 and 20 elsewhere), and around
/// [`MAX_IPV6_EXT_HEADERS`] (64).
const CHAIN_PROBES: &[usize] = &[1, 8, 9, 10, 12, 13, 16, 19, 20, 32, 40, 64, 65, 70];

/// The chain lengths (from "chain N" payloads) waiting on `socket`.
fn chains_received(socket: &UdpSocket) -> BTreeSet<usize> {
    let mut buf = [0u8; 2048];
    let mut lengths = BTreeSet::new();
    while let Ok(n) = socket.recv(&mut buf) {
        let payload = String::from_utf8_lossy(&buf[..n]);
        let length = payload
            .strip_prefix("chain ")
            .and_then(|l| l.parse().ok())
            .unwrap_or_else(|| panic!("a datagram that is no probe: `{payload}`"));
        lengths.insert(length);
    }
    lengths
}

/// The control: which of `lengths` this kernel delivers to `socket` (on the allowed port)
/// with no XDP program on the interface. Says what it found in one line.
fn kernel_delivers(lab: &Lab, lengths: &[usize], socket: &UdpSocket) -> BTreeSet<usize> {
    assert!(
        lab.firewall.is_none(),
        "the control runs without the firewall"
    );
    let delivered = lab.chains_delivered(UDP_ALLOWED, lengths, socket);
    let (reach, lost): (Vec<usize>, Vec<usize>) =
        lengths.iter().partition(|l| delivered.contains(l));
    eprintln!(
        "kernel: with no firewall, a datagram behind N IPv6 destination-options headers \
         reaches a socket for N in {reach:?}, is discarded for N in {lost:?}"
    );
    delivered
}

#[test]
fn ipv6_extension_chains_cannot_hide_a_dropped_port() {
    if !root_or_skip() {
        return;
    }
    // Drops go to a pcapng file, to read the verdicts' comments back with tshark.
    let capture =
        std::env::temp_dir().join(format!("xdpsieve-evasion-{}.pcapng", std::process::id()));
    let _remove = RemoveOnDrop(capture.clone());
    let capture_arg = capture.to_str().expect("temp path is UTF-8");
    let mut lab = Lab::without_firewall("ev-chain");
    let dropped = lab.udp_socket(true, UDP_DROPPED);
    let allowed = lab.udp_socket(true, UDP_ALLOWED);
    let kernel = kernel_delivers(&lab, CHAIN_PROBES, &allowed);
    assert!(
        kernel.contains(&1),
        "not even one extension header reached the socket without a firewall: the lab is broken"
    );

    lab.start_firewall(&["-w", capture_arg, "--format", "pcapng"]);
    // Every chain the kernel delivers, up to the parser's bound, still reaches the open port;
    // past the bound the packet is unclassifiable and dropped, whatever the kernel would do.
    let classifiable: BTreeSet<usize> = kernel
        .iter()
        .copied()
        .filter(|&l| l <= MAX_IPV6_EXT_HEADERS)
        .collect();
    assert_eq!(
        lab.chains_delivered(UDP_ALLOWED, CHAIN_PROBES, &allowed),
        classifiable,
        "chains to the allowed port: xdpsieve must deliver what the kernel does, up to \
         {MAX_IPV6_EXT_HEADERS} headers"
    );
    assert_eq!(
        lab.chains_delivered(UDP_DROPPED, CHAIN_PROBES, &dropped),
        BTreeSet::new(),
        "chains hid the dropped port from the firewall"
    );
    let summary = lab.stop();

    // The verdicts, counted by the program whether or not the kernel would have delivered
    // the packet: the rule dropped every classifiable chain to the dropped port, and every
    // chain past the bound (to either port) was dropped as unclassifiable.
    let within = CHAIN_PROBES
        .iter()
        .filter(|&&l| l <= MAX_IPV6_EXT_HEADERS)
        .count();
    let past = CHAIN_PROBES.len() - within;
    assert!(past > 0 && within > 0, "the probes cross the bound");
    let seen = summary.lines().next().unwrap_or_default();
    assert!(
        seen.contains(&format!("({} dropped,", within + 2 * past)),
        "{summary}"
    );
    assert!(
        evasion_line(&summary).starts_with(&format!(
            "{} packets unclassifiable (0 tiny TCP fragments)",
            2 * past
        )),
        "{summary}"
    );
    // The pcapng comment says why each packet was dropped, as tshark reads it.
    let out = Command::new("tshark")
        .args(["-r", capture_arg, "-T", "fields", "-e", "frame.comment"])
        .output()
        .expect("running tshark (install it: cargo xtask setup)");
    let comments = String::from_utf8_lossy(&out.stdout);
    let (flagged, by_rule): (Vec<&str>, Vec<&str>) = comments
        .lines()
        .filter(|l| !l.is_empty())
        .partition(|l| l.contains("unclassifiable"));
    assert_eq!(
        flagged,
        vec!["rule=default id=0 unclassifiable"; 2 * past],
        "{comments}"
    );
    assert_eq!(by_rule.len(), within, "{comments}");
    assert!(by_rule.iter().all(|c| c.ends_with(" id=1")), "{comments}");
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
    // A chain past the parser's bound: with `--unclassifiable pass` the host decides. Kernels
    // differ on whether they accept it, so the control says whether delivery can be shown.
    let long = MAX_IPV6_EXT_HEADERS + 6;
    let mut lab = Lab::without_firewall("ev-chainpass");
    let allowed = lab.udp_socket(true, UDP_ALLOWED);
    let kernel_accepts = kernel_delivers(&lab, &[long], &allowed).contains(&long);
    lab.start_firewall(&["--unclassifiable", "pass"]);
    let delivered = lab.chains_delivered(UDP_ALLOWED, &[long], &allowed);
    if kernel_accepts {
        assert_eq!(
            delivered,
            BTreeSet::from([long]),
            "{long} headers with --unclassifiable pass"
        );
    } else {
        eprintln!(
            "kernel: discards {long} headers by itself, so delivery with --unclassifiable pass \
             cannot be shown here; checking xdpsieve passed it"
        );
    }
    // Whatever the kernel did next: the program counted the packet unclassifiable and
    // passed it (nothing else is sent to a port the rules drop).
    let summary = lab.stop();
    assert!(
        evasion_line(&summary).starts_with("1 packets unclassifiable"),
        "{summary}"
    );
    let seen = summary.lines().next().unwrap_or_default();
    assert!(seen.contains("(0 dropped,"), "{summary}");
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
