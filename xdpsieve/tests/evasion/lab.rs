//! The evasion tests' lab: two namespaces joined by a veth pair, the firewall under test
//! with its port rules (started after a control run, when the test wants one), sockets
//! behind it, and the scapy packet crafter in the peer namespace.

use std::{
    collections::BTreeSet,
    net::{SocketAddr, TcpListener, UdpSocket},
    process::{Command, Stdio},
    time::Duration,
};

use xdpsieve_netns::VethPair;
use xdpsieve_testkit::child::{Firewall, xdp_attached};
use xdpsieve_testkit::tool::stdout_of;

use super::chains_received;

const BINARY: &str = env!("CARGO_BIN_EXE_xdpsieve");

/// The firewall under test: this build, or the one `XDPSIEVE_EVASION_BINARY` names (an older
/// build, to watch these tests fail against the parser that let the evasions through).
fn binary() -> String {
    std::env::var("XDPSIEVE_EVASION_BINARY").unwrap_or_else(|_| BINARY.to_string())
}
const PYTHON: &str = "/usr/bin/python3";

/// Ports behind the firewall: the rules drop the first of each pair, the second is open.
pub(crate) const UDP_DROPPED: u16 = 5353;
pub(crate) const UDP_ALLOWED: u16 = 5354;
pub(crate) const TCP_DROPPED: u16 = 8080;
pub(crate) const TCP_ALLOWED: u16 = 8081;

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
pub(crate) struct Lab {
    // Field order is drop order: the firewall stops before its namespaces go.
    pub firewall: Option<Firewall>,
    crafter_args: Vec<String>,
    net: VethPair,
}

impl Lab {
    /// The namespaces and the crafter with no XDP program on the interface: the control
    /// run, to see what the kernel itself delivers.
    pub(crate) fn without_firewall(tag: &str) -> Lab {
        let output = Command::new(PYTHON)
            .args(["-c", "import scapy.all"])
            .output();
        if !output.is_ok_and(|o| o.status.success()) {
            panic!("{PYTHON} cannot import scapy: install python3-scapy (cargo xtask setup)");
        }
        let net = VethPair::create(tag, None).expect("creating the veth pair");
        let crafter_args = vec![
            VethPair::PEER_IF.to_string(),
            net.peer.mac(VethPair::PEER_IF).expect("the peer's MAC"),
            net.fw.mac(VethPair::FW_IF).expect("the firewall's MAC"),
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

    /// Starts the firewall with its port rules and `extra_args`; waits until it is attached.
    pub(crate) fn start_firewall(&mut self, extra_args: &[&str]) {
        let udp_rule = format!("udp dst port {UDP_DROPPED}");
        let tcp_rule = format!("tcp dst port {TCP_DROPPED}");
        let mut args = vec!["-q", "--drop", &udp_rule, "--drop", &tcp_rule];
        args.extend_from_slice(extra_args);
        let mut firewall = Firewall::spawn(&self.net, &binary(), &args, Stdio::null());
        firewall.wait_until(|| xdp_attached(&self.net));
        self.firewall = Some(firewall);
    }

    /// Runs the crafter in the peer namespace; returns what it printed.
    pub(crate) fn craft(&self, mode: &str, args: &[&str]) -> String {
        let mut crafter = self.net.peer.command(PYTHON);
        crafter
            .args(["-c", CRAFTER])
            .args(&self.crafter_args)
            .arg(mode)
            .args(args);
        stdout_of(&mut crafter, "the packet crafter (python3-scapy)")
            .trim()
            .to_string()
    }

    /// Sends one UDP datagram to `port` behind each chain of `lengths` destination-options
    /// headers; returns the lengths `socket` received.
    pub(crate) fn chains_delivered(
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
    pub(crate) fn syn_acks(&self, mode: &str, args: &[&str]) -> u32 {
        let printed = self.craft(mode, args);
        printed
            .parse()
            .unwrap_or_else(|_| panic!("crafter printed `{printed}`, not a count"))
    }

    /// Binds a UDP socket on `port` of the firewall side's address (IPv4 or IPv6).
    pub(crate) fn udp_socket(&self, v6: bool, port: u16) -> UdpSocket {
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
    pub(crate) fn tcp_listener(&self, port: u16) -> TcpListener {
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
    pub(crate) fn syn_received(&self, port: u16) -> usize {
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

    pub(crate) fn stop(mut self) -> String {
        let out = self.firewall.take().expect("running").stop(libc::SIGINT);
        assert!(out.status.success(), "xdpsieve failed: {out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

/// The numbers of the summary line the evasion defences print.
pub(crate) fn evasion_line(summary: &str) -> &str {
    summary
        .lines()
        .find(|l| l.contains("unclassifiable"))
        .unwrap_or_else(|| panic!("no unclassifiable line in the summary:\n{summary}"))
}
