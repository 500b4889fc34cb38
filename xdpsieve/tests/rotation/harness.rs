//! The rotation tests' harness: scratch directories (a tmpfs when asked), the firewall
//! process, numbered datagrams and the socket behind the firewall, and readers that return
//! each capture file's packet numbers.

use std::{
    collections::BTreeSet,
    net::{SocketAddr, UdpSocket},
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::{Output, Stdio},
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use pcap_file::{
    pcap::PcapReader,
    pcapng::{Block, PcapNgReader, blocks::interface_statistics::InterfaceStatisticsOption},
};
use xdpsieve_netns::VethPair;

use xdpsieve_testkit::child;
use xdpsieve_testkit::tempdir::TempDir;

pub(crate) const BINARY: &str = env!("CARGO_BIN_EXE_xdpsieve");
pub(crate) const CLIENT_PORT: u16 = 40000;
/// UDP payload of each numbered datagram: about 1,060 bytes per pcap record.
pub(crate) const PAYLOAD: usize = 1000;
/// Ethernet + IPv4 + UDP: where the number starts in a captured frame.
pub(crate) const NUMBER_AT: usize = 42;

/// A running `xdpsieve run` with the rule whose drops these tests capture; killed (by PID) on
/// drop if still running.
pub(crate) struct Firewall(child::Firewall);

impl Firewall {
    pub(crate) fn start(net: &VethPair, args: &[&str]) -> Firewall {
        let mut all = vec!["--drop", "udp src port 53"];
        all.extend_from_slice(args);
        let mut fw = child::Firewall::spawn(net, BINARY, &all, Stdio::piped());
        fw.wait_until(|| child::published(BINARY, net));
        Firewall(fw)
    }

    pub(crate) fn stop(self) -> Output {
        self.0.stop(libc::SIGINT)
    }

    /// Waits (up to `limit`) for the run to end by itself.
    pub(crate) fn wait_exit(self, limit: Duration) -> Output {
        self.0.wait_exit(limit)
    }
}

/// Sends numbered datagrams from port 53 (the rule drops them) in batches of ten, each batch
/// followed by one datagram from port 5000 (passed) and a pause of `batch_every`, until
/// `count` are sent or `stop` is set, from one CPU. Returns how many numbered ones were sent.
pub(crate) fn send_numbered(
    net: &VethPair,
    count: u32,
    batch_every: Duration,
    stop: &AtomicBool,
) -> u32 {
    net.peer
        .run(|| {
            // The tests check the order of what reaches the files: one CPU, one ring.
            xdpsieve_testkit::udp::pin_to_one_cpu();
            let dns = UdpSocket::bind(SocketAddr::new(VethPair::PEER_V4.into(), 53))?;
            let other = UdpSocket::bind(SocketAddr::new(VethPair::PEER_V4.into(), 5000))?;
            let mut msg = vec![0u8; PAYLOAD];
            let mut sent = 0;
            while sent < count && !stop.load(Ordering::Relaxed) {
                for _ in 0..10 {
                    msg[..4].copy_from_slice(&sent.to_be_bytes());
                    dns.send_to(&msg, (VethPair::FW_V4, CLIENT_PORT))?;
                    sent += 1;
                }
                other.send_to(b"passed", (VethPair::FW_V4, CLIENT_PORT))?;
                std::thread::sleep(batch_every);
            }
            Ok::<_, std::io::Error>(sent)
        })
        .expect("entering namespace")
        .expect("sending")
}

/// The client's socket behind the firewall.
pub(crate) fn client_socket(net: &VethPair) -> UdpSocket {
    net.fw
        .run(|| {
            let s = UdpSocket::bind(SocketAddr::new(VethPair::FW_V4.into(), CLIENT_PORT))?;
            s.set_read_timeout(Some(Duration::from_millis(200)))?;
            // Room for every passed datagram of a test, read only at its end.
            let size: libc::c_int = 32 << 20;
            // SAFETY: setsockopt on our socket with a c_int value of the right size.
            unsafe {
                libc::setsockopt(
                    std::os::fd::AsRawFd::as_raw_fd(&s),
                    libc::SOL_SOCKET,
                    libc::SO_RCVBUFFORCE,
                    (&raw const size).cast(),
                    size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            Ok::<_, std::io::Error>(s)
        })
        .expect("entering namespace")
        .expect("binding the client socket")
}

/// Datagrams waiting at the socket: (numbered ones from port 53, others).
pub(crate) fn received(socket: &UdpSocket) -> (usize, usize) {
    let mut buf = vec![0u8; 65536];
    let (mut numbered, mut other) = (0, 0);
    while let Ok((n, from)) = socket.recv_from(&mut buf) {
        if from.port() == 53 {
            numbered += 1;
        } else {
            assert_eq!(&buf[..n], b"passed");
            other += 1;
        }
    }
    (numbered, other)
}

pub(crate) fn number(frame: &[u8]) -> u32 {
    u32::from_be_bytes(frame[NUMBER_AT..NUMBER_AT + 4].try_into().expect("4 bytes"))
}

/// The numbers in a pcap file (a whole file, or the reader fails).
pub(crate) fn pcap_numbers(path: &Path) -> Vec<u32> {
    let bytes = std::fs::read(path).expect("reading capture");
    let mut r = PcapReader::new(&bytes[..]).expect("pcap header");
    let mut numbers = Vec::new();
    while let Some(p) = r.next_raw_packet() {
        let p = p.unwrap_or_else(|e| panic!("{path:?}: {e}"));
        assert_eq!(p.data.len(), PAYLOAD + NUMBER_AT, "{path:?}: torn record");
        numbers.push(number(&p.data));
    }
    numbers
}

/// The numbers in a pcapng file, checking it ends with a statistics block that counts them.
pub(crate) fn pcapng_numbers(path: &Path) -> Vec<u32> {
    let bytes = std::fs::read(path).expect("reading capture");
    let mut r = PcapNgReader::new(&bytes[..]).expect("section header");
    let (mut numbers, mut last_delivered) = (Vec::new(), None);
    while let Some(block) = r.next_block() {
        match block.unwrap_or_else(|e| panic!("{path:?}: {e}")) {
            Block::EnhancedPacket(epb) => {
                numbers.push(number(&epb.data));
                last_delivered = None;
            }
            Block::InterfaceStatistics(isb) => {
                last_delivered = isb.options.iter().find_map(|o| match o {
                    InterfaceStatisticsOption::IsbUsrDeliv(n) => Some(*n),
                    _ => None,
                });
            }
            _ => {}
        }
    }
    assert_eq!(
        last_delivered,
        Some(numbers.len() as u64),
        "{path:?} must end with its own statistics"
    );
    numbers
}

/// A number from the summary line that ends with `tail` (e.g. "packets captured").
pub(crate) fn summary_count(stderr: &str, tail: &str) -> u64 {
    stderr
        .lines()
        .find(|l| l.trim_end().ends_with(tail))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Every number from `first` to `last - 1` exactly once, in order.
pub(crate) fn assert_contiguous(numbers: &[u32], first: u32, last: u32) {
    let expected: Vec<u32> = (first..last).collect();
    assert!(
        numbers == expected.as_slice(),
        "packets {first}..{last} once each, in order: got {} packets, {} distinct, first {:?}, last {:?}",
        numbers.len(),
        numbers.iter().collect::<BTreeSet<_>>().len(),
        numbers.first(),
        numbers.last()
    );
}

/// A `-z` script: logs the file's name, then moves it to `done` with a sequence-ordered
/// name (the ring reuses the name two rotations later).
pub(crate) fn mover_script(dir: &TempDir, done: &Path) -> PathBuf {
    let script = dir.file("mover.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$1\" >> {log}\nmv \"$1\" \"{done}/$(date +%s%N)-$(basename \"$1\")\"\n",
            log = dir.file("names.log").display(),
            done = done.display()
        ),
    )
    .expect("writing the -z script");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    script
}
