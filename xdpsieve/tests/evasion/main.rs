//! No evasion, proven at the socket: the real `xdpsieve` binary on a veth in a namespace the
//! test creates, real listening sockets behind it in that namespace, and crafted packets
//! (scapy, run by /usr/bin/python3 in the peer namespace) that try to slip past its port
//! rules: IPv6 datagrams behind long extension-header chains, the RFC 1858 tiny-fragment
//! SYN, and fragmented UDP sent in and out of order. What a rule drops must never reach a
//! socket; what it allows must (so the test can see delivery at all).
//!
//! Kernels differ in what they deliver without any firewall (some discard IPv6 packets with
//! a dozen or more extension headers by themselves), so each test first sends its packets
//! with no XDP program on the interface (the control), prints what the kernel did, and
//! judges xdpsieve relative to that: at the socket where the kernel delivers, and by the
//! program's own counts and capture comments where it does not (see `tests/README.md` for
//! every such assumption).
//!
//! They need root and python3-scapy (`cargo xtask setup` installs it); under `CI` they fail
//! rather than skip when they cannot run.

mod lab;

use std::{collections::BTreeSet, net::UdpSocket, process::Command};

use xdpsieve_common::MAX_IPV6_EXT_HEADERS;
use xdpsieve_testkit::gate::{kernel_found, root_or_skip};
use xdpsieve_testkit::tempdir::TempDir;
use xdpsieve_testkit::udp::received;

use lab::{Lab, TCP_ALLOWED, TCP_DROPPED, UDP_ALLOWED, UDP_DROPPED, evasion_line};

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
    let longest = reach.iter().max().map_or("none".into(), usize::to_string);
    kernel_found(format_args!(
        "with no firewall, a datagram behind N IPv6 destination-options headers reaches a \
         socket for N in {reach:?} (longest {longest}), is discarded for N in {lost:?}"
    ));
    delivered
}

#[test]
fn ipv6_extension_chains_cannot_hide_a_dropped_port() {
    if !root_or_skip() {
        return;
    }
    // Drops go to a pcapng file, to read the verdicts' comments back with tshark.
    let scratch = TempDir::new("evasion");
    let capture = scratch.file("drops.pcapng");
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
        kernel_found(format_args!(
            "discards {long} headers by itself, so delivery with --unclassifiable pass \
             cannot be shown here; checking xdpsieve passed it"
        ));
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

/// Both orders the fragment tests send a train in.
const ORDERS: [&str; 2] = ["in-order", "reverse"];

#[test]
fn tiny_fragment_syn_gets_no_answer() {
    if !root_or_skip() {
        return;
    }
    let mut lab = Lab::without_firewall("ev-tiny");
    let dropped_listener = lab.tcp_listener(TCP_DROPPED);
    let _allowed = lab.tcp_listener(TCP_ALLOWED);
    let allowed = TCP_ALLOWED.to_string();
    let dropped = TCP_DROPPED.to_string();
    // The control: does this kernel reassemble and answer a tiny-fragment SYN at all? (The
    // peer's kernel resets the half-open connection the answer leaves.)
    let answered: Vec<&str> = ORDERS
        .into_iter()
        .filter(|order| lab.syn_acks("tcp-tiny", &[&dropped, order]) >= 1)
        .collect();
    if answered.len() == ORDERS.len() {
        kernel_found(format_args!(
            "with no firewall, a tiny-fragment SYN is answered in either order"
        ));
    } else {
        kernel_found(format_args!(
            "with no firewall, a tiny-fragment SYN is answered only {answered:?}: the \
             kernel stops the rest itself, so there only xdpsieve's counts show its part"
        ));
    }

    lab.start_firewall(&[]);
    assert!(
        lab.syn_acks("tcp-syn", &[&allowed]) >= 1,
        "a plain SYN to the open port must be answered (else the test sees nothing)"
    );
    assert!(
        lab.syn_acks("tcp-frag", &[&allowed]) >= 1,
        "a SYN fragmented after its flags, to the open port, must be answered"
    );
    assert_eq!(lab.syn_acks("tcp-syn", &[&dropped]), 0, "plain SYN");
    for order in ORDERS {
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
    const TRAINS: [(bool, &str); 2] = [(false, "udp4-frag"), (true, "udp6-frag")];
    let mut lab = Lab::without_firewall("ev-frag");
    // The control: which trains this kernel reassembles and delivers without a firewall.
    let mut delivers = Vec::new();
    for (v6, mode) in TRAINS {
        let socket = lab.udp_socket(v6, UDP_DROPPED);
        for order in ORDERS {
            lab.craft(mode, &[&UDP_DROPPED.to_string(), order]);
            delivers.push(((mode, order), received(&socket) == 1));
        }
    }
    let found: Vec<String> = delivers
        .iter()
        .map(|((mode, order), d)| {
            format!(
                "{mode} {order} {}",
                if *d { "delivered" } else { "discarded" }
            )
        })
        .collect();
    kernel_found(format_args!(
        "with no firewall, fragmented UDP: {}",
        found.join(", ")
    ));

    lab.start_firewall(&[]);
    for (v6, mode) in TRAINS {
        let dropped = lab.udp_socket(v6, UDP_DROPPED);
        let allowed = lab.udp_socket(v6, UDP_ALLOWED);
        for order in ORDERS {
            let kernel = delivers.contains(&((mode, order), true));
            lab.craft(mode, &[&UDP_ALLOWED.to_string(), order]);
            assert_eq!(
                received(&allowed),
                u64::from(kernel),
                "{mode} {order} to the allowed port (the kernel alone delivers: {kernel})"
            );
            lab.craft(mode, &[&UDP_DROPPED.to_string(), order]);
            assert_eq!(received(&dropped), 0, "{mode} {order} to the dropped port");
        }
    }
    let summary = lab.stop();
    // In order, the later fragments follow their first; in reverse, they come first and
    // are orphans (the first fragment's drop still stops the reassembly). Counted by the
    // program whatever the kernel does with them.
    let line = evasion_line(&summary);
    assert!(line.contains("later fragments took"), "{summary}");
    assert!(!line.contains(" 0 later fragments took"), "{summary}");
}
