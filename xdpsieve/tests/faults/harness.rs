//! The faults tests' harness: the running firewall, sockets behind it, a bounded flood from the peer namespace, and readers of the
//! exit summary and the capture files.

use std::{
    net::{SocketAddr, UdpSocket},
    path::Path,
    process::{Command, Output, Stdio},
    time::Duration,
};

use pcap_file::pcap::PcapReader;
use xdpsieve_netns::VethPair;
use xdpsieve_testkit::child;
use xdpsieve_testkit::tool::tool_with;

pub(crate) const BINARY: &str = env!("CARGO_BIN_EXE_xdpsieve");
/// The port the firewall drops; a socket listens on it behind the firewall.
pub(crate) const DROPPED_PORT: u16 = 40001;
/// A port the firewall passes, to see that the firewall still works both ways.
pub(crate) const PASSED_PORT: u16 = 40002;

/// A running `xdpsieve run` with the rule on the dropped port; killed (by PID) on drop if
/// still running.
pub(crate) struct Firewall(child::Firewall);

impl Firewall {
    pub(crate) fn start(net: &VethPair, args: &[&str], stdout: Stdio) -> Firewall {
        let rule = format!("udp dst port {DROPPED_PORT}");
        let mut all = vec!["--drop", &rule];
        all.extend_from_slice(args);
        let mut fw = child::Firewall::spawn(net, BINARY, &all, stdout);
        fw.wait_until(|| child::xdp_attached(net) && child::published(BINARY, net));
        Firewall(fw)
    }

    pub(crate) fn running(&mut self) -> bool {
        self.0.running()
    }

    pub(crate) fn signal(&mut self, signal: i32) {
        self.0.signal(signal);
    }

    /// SIGINT, then the exit status and output.
    pub(crate) fn stop(self) -> Output {
        self.0.stop(libc::SIGINT)
    }
}

/// Sockets behind the firewall on the dropped and the passed port.
pub(crate) fn sockets(net: &VethPair) -> (UdpSocket, UdpSocket) {
    net.fw
        .run(|| {
            let dropped = UdpSocket::bind(SocketAddr::new(VethPair::FW_V4.into(), DROPPED_PORT))?;
            let passed = UdpSocket::bind(SocketAddr::new(VethPair::FW_V4.into(), PASSED_PORT))?;
            for s in [&dropped, &passed] {
                s.set_read_timeout(Some(Duration::from_millis(200)))?;
                // Room for every datagram of a flood, so none is lost before it is counted.
                let size: libc::c_int = 8 << 20;
                // SAFETY: setsockopt with a valid int option on a socket we own.
                unsafe {
                    libc::setsockopt(
                        std::os::fd::AsRawFd::as_raw_fd(s),
                        libc::SOL_SOCKET,
                        libc::SO_RCVBUFFORCE,
                        (&raw const size).cast(),
                        size_of::<libc::c_int>() as libc::socklen_t,
                    )
                };
            }
            Ok::<_, std::io::Error>((dropped, passed))
        })
        .expect("entering namespace")
        .expect("binding sockets")
}

/// Sends `count` datagrams of `size` bytes to the dropped port and one to the passed port
/// every tenth, from the peer namespace. Bounded: `count` sends, a 100 µs pause per ten.
pub(crate) fn flood(net: &VethPair, count: u64, size: usize) -> u64 {
    net.peer
        .run(|| {
            let socket = UdpSocket::bind(SocketAddr::new(VethPair::PEER_V4.into(), 0))?;
            let payload = vec![0x5a; size];
            let mut passed = 0;
            for i in 0..count {
                socket.send_to(&payload, (VethPair::FW_V4, DROPPED_PORT))?;
                if i % 10 == 0 {
                    socket.send_to(b"passed", (VethPair::FW_V4, PASSED_PORT))?;
                    passed += 1;
                    std::thread::sleep(Duration::from_micros(100));
                }
            }
            Ok::<_, std::io::Error>(passed)
        })
        .expect("entering namespace")
        .expect("sending traffic")
}

/// Frames still in flight reach the program before the test looks.
pub(crate) fn settle() {
    std::thread::sleep(Duration::from_millis(300));
}

/// Runs `program ARGS` in the firewall's namespace; its standard output.
pub(crate) fn in_namespace(net: &VethPair, program: &str, args: &[&str]) -> String {
    tool_with(net.fw.command(program), program, args)
}

/// The number before `words` on the summary line containing them (0 when no such line).
pub(crate) fn count(stderr: &str, words: &str) -> u64 {
    stderr
        .lines()
        .find(|l| l.contains(words))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// (dropped, captured, not written, lost) from the exit summary.
pub(crate) fn capture_counts(stderr: &str) -> (u64, u64, u64, u64) {
    let dropped = stderr
        .lines()
        .find(|l| l.contains("packets seen by xdpsieve"))
        .and_then(|l| l.split('(').nth(1)?.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no summary in: {stderr}"));
    (
        dropped,
        count(stderr, "packets captured"),
        count(stderr, "packets not written: capture output failed"),
        count(stderr, "packets lost: capture buffer full"),
    )
}

/// Stops the run, which must exit cleanly having let nothing through to `dropped`, the
/// socket behind the dropped port: its standard error.
pub(crate) fn stop_cleanly(fw: Firewall, dropped: &UdpSocket) -> String {
    let out = fw.stop();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        xdpsieve_testkit::udp::received(dropped),
        0,
        "a dropped datagram got through"
    );
    stderr
}

pub(crate) fn stop_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains(" stopped: ") && l.contains("filtering goes on"))
        .collect()
}

pub(crate) fn pcap_packets(path: &Path) -> u64 {
    let mut reader = PcapReader::new(std::fs::File::open(path).expect("capture")).expect("header");
    let mut n = 0;
    while let Some(packet) = reader.next_raw_packet() {
        packet.expect("a whole pcap record");
        n += 1;
    }
    n
}

pub(crate) fn tcpdump_lines(path: &Path) -> u64 {
    let out = Command::new("tcpdump")
        .args(["-nn", "-r"])
        .arg(path)
        .output()
        .expect("running tcpdump (cargo xtask setup installs it)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // A cut record makes tcpdump say "truncated dump file" and fail.
    assert!(out.status.success(), "tcpdump failed: {stderr}");
    assert!(!stderr.contains("truncated"), "{stderr}");
    String::from_utf8_lossy(&out.stdout).lines().count() as u64
}
