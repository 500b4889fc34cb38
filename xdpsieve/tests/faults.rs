//! Faults that must never turn filtering off nor pass in silence: a capture or log output
//! that fills up (a small tmpfs), a reader of `-w -` that goes away, `/dev/full`, and the
//! signals an operator sends (SIGHUP, SIGUSR1, SIGUSR2, SIGPIPE). The real binary on a veth
//! in namespaces the test creates, real traffic, a real socket behind the firewall, the
//! files read back by pcap-file and tcpdump.
//!
//! They need root; under `CI` they fail rather than skip when they cannot run.

mod common;
use common::root_or_skip;

use std::{
    io::Read as _,
    net::{SocketAddr, UdpSocket},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use pcap_file::{
    pcap::PcapReader,
    pcapng::{Block, PcapNgReader},
};
use xdpsieve::netns::VethPair;

const BINARY: &str = env!("CARGO_BIN_EXE_xdpsieve");
/// The port the firewall drops; a socket listens on it behind the firewall.
const DROPPED_PORT: u16 = 40001;
/// A port the firewall passes, to see that the firewall still works both ways.
const PASSED_PORT: u16 = 40002;

/// A scratch directory removed on drop; with `tmpfs`, a small tmpfs mounted on it (and
/// unmounted on drop) so that writes fill it.
struct Scratch {
    dir: PathBuf,
    mounted: bool,
}

impl Scratch {
    fn new(tag: &str, tmpfs_size: Option<&str>) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("xdpsieve-faults-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating scratch dir");
        let mut scratch = Scratch {
            dir,
            mounted: false,
        };
        if let Some(size) = tmpfs_size {
            let status = Command::new("mount")
                .args([
                    "-t",
                    "tmpfs",
                    "-o",
                    &format!("size={size}"),
                    "xdpsieve-test",
                ])
                .arg(&scratch.dir)
                .status()
                .expect("running mount");
            assert!(status.success(), "mounting a tmpfs on {:?}", scratch.dir);
            scratch.mounted = true;
        }
        scratch
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg(&self.dir).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A running `xdpsieve run`; killed (by PID) on drop if still running.
struct Firewall {
    child: Option<Child>,
}

impl Firewall {
    fn start(net: &VethPair, args: &[&str], stdout: Stdio) -> Firewall {
        let child = net
            .fw
            .command(BINARY)
            .arg("run")
            .args(["-i", VethPair::FW_IF, "--drop"])
            .arg(format!("udp dst port {DROPPED_PORT}"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting xdpsieve");
        let mut fw = Firewall { child: Some(child) };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            assert!(Instant::now() < deadline, "xdpsieve did not attach in 20 s");
            assert!(fw.running(), "xdpsieve exited before attaching");
            let attached = net
                .fw
                .ip(&["-d", "link", "show", "dev", VethPair::FW_IF])
                .is_ok_and(|out| out.contains("prog/xdp"));
            let published = net
                .fw
                .command(BINARY)
                .args(["status", "--json"])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("\"live\": true"));
            if attached && published {
                return fw;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn running(&mut self) -> bool {
        let child = self.child.as_mut().expect("started");
        match child.try_wait().expect("try_wait") {
            None => true,
            Some(status) => {
                let mut err = String::new();
                let _ = child.stderr.take().map(|mut e| e.read_to_string(&mut err));
                eprintln!("xdpsieve exited ({status}): {err}");
                false
            }
        }
    }

    fn signal(&self, signal: i32) {
        let pid = self.child.as_ref().expect("started").id() as i32;
        // SAFETY: kill on the PID of a child we started and have not reaped.
        unsafe { libc::kill(pid, signal) };
    }

    /// SIGINT, then the exit status and output.
    fn stop(mut self) -> Output {
        self.signal(libc::SIGINT);
        let child = self.child.take().expect("started");
        child.wait_with_output().expect("waiting for xdpsieve")
    }
}

impl Drop for Firewall {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sockets behind the firewall on the dropped and the passed port.
fn sockets(net: &VethPair) -> (UdpSocket, UdpSocket) {
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
                        (&size as *const libc::c_int).cast(),
                        size_of::<libc::c_int>() as libc::socklen_t,
                    )
                };
            }
            Ok::<_, std::io::Error>((dropped, passed))
        })
        .expect("entering namespace")
        .expect("binding sockets")
}

fn received(socket: &UdpSocket) -> u64 {
    let mut buf = vec![0u8; 65536];
    let mut n = 0;
    while socket.recv(&mut buf).is_ok() {
        n += 1;
    }
    n
}

/// Sends `count` datagrams of `size` bytes to the dropped port and one to the passed port
/// every tenth, from the peer namespace. Bounded: `count` sends, a 100 µs pause per ten.
fn flood(net: &VethPair, count: u64, size: usize) -> u64 {
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
fn settle() {
    std::thread::sleep(Duration::from_millis(300));
}

/// Runs `program ARGS` in the firewall's namespace; its standard output.
fn in_namespace(net: &VethPair, program: &str, args: &[&str]) -> String {
    let out = net
        .fw
        .command(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program} (cargo xtask setup installs it): {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The number before `words` on the summary line containing them (0 when no such line).
fn count(stderr: &str, words: &str) -> u64 {
    stderr
        .lines()
        .find(|l| l.contains(words))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// (dropped, captured, not written, lost) from the exit summary.
fn capture_counts(stderr: &str) -> (u64, u64, u64, u64) {
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

fn stop_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains(" stopped: ") && l.contains("filtering goes on"))
        .collect()
}

fn pcap_packets(path: &Path) -> u64 {
    let mut reader = PcapReader::new(std::fs::File::open(path).expect("capture")).expect("header");
    let mut n = 0;
    while let Some(packet) = reader.next_raw_packet() {
        packet.expect("a whole pcap record");
        n += 1;
    }
    n
}

fn tcpdump_lines(path: &Path) -> u64 {
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

#[test]
fn disk_full_capture_stops_the_capture_not_the_firewall() {
    if !root_or_skip() {
        return;
    }
    let disk = Scratch::new("diskfull", Some("256k"));
    let capture = disk.file("dropped.pcap");
    let net = VethPair::create("fulldisk", None).expect("namespaces");
    let (dropped_socket, passed_socket) = sockets(&net);
    let mut fw = Firewall::start(
        &net,
        &[
            "-w",
            capture.to_str().unwrap(),
            "--metrics",
            "127.0.0.1:9471",
        ],
        Stdio::null(),
    );

    // 600 records of ~1 KiB: the 256 KiB file system fills a little under half way.
    let mut passed = flood(&net, 600, 1000);
    settle();
    assert!(fw.running(), "xdpsieve exited when the disk filled");
    // More traffic after the failure: still dropped, still counted.
    passed += flood(&net, 200, 1000);
    settle();
    assert!(fw.running(), "xdpsieve exited after the disk filled");
    // `status` and the metrics, from other processes, show what was not written: the
    // counts as published (at the failure, then about once a second), all in by now.
    std::thread::sleep(Duration::from_millis(1200));
    let status = in_namespace(&net, BINARY, &["status", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&status).expect("status JSON");
    let counters = &json[0]["counters"];
    let status_not_written = counters["capture_not_written"].as_u64().expect("count");
    assert!(status_not_written > 0, "{status}");
    assert!(counters["written"].as_u64().expect("count") > 0, "{status}");
    let text = in_namespace(&net, BINARY, &["status"]);
    assert!(
        text.contains(&format!(
            "{status_not_written} not written to the capture (output failed)"
        )),
        "{text}"
    );
    let metrics = in_namespace(
        &net,
        "curl",
        &["-sS", "--max-time", "10", "http://127.0.0.1:9471/metrics"],
    );
    assert!(
        metrics.contains(&format!(
            "xdpsieve_not_written_records_total{{output=\"capture\",reason=\"output_failed\"}} {status_not_written}"
        )),
        "{metrics}"
    );
    let out = fw.stop();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");

    assert_eq!(
        received(&dropped_socket),
        0,
        "a dropped datagram got through"
    );
    assert_eq!(received(&passed_socket), passed, "{stderr}");
    let stops = stop_lines(&stderr);
    assert_eq!(stops.len(), 1, "{stderr}");
    assert!(
        stops[0].contains(&format!(
            "capture to {} stopped: No space left on device",
            capture.display()
        )),
        "{stderr}"
    );
    let (dropped, captured, not_written, lost) = capture_counts(&stderr);
    assert_eq!(dropped, 800, "{stderr}");
    assert!(captured > 0 && not_written > 0, "{stderr}");
    assert_eq!(captured + not_written + lost, dropped, "{stderr}");
    assert_eq!(status_not_written, not_written, "{stderr}");
    assert!(!stderr.contains("past the -c count"), "{stderr}");
    // "captured" is what the file holds, and the file holds only whole records.
    assert_eq!(pcap_packets(&capture), captured, "{stderr}");
    assert_eq!(tcpdump_lines(&capture), captured, "{stderr}");
}

#[test]
fn disk_full_event_log_stops_the_log_not_the_firewall() {
    if !root_or_skip() {
        return;
    }
    let disk = Scratch::new("logfull", Some("64k"));
    let log = disk.file("events.log");
    let net = VethPair::create("fulllog", None).expect("namespaces");
    let (dropped_socket, _passed_socket) = sockets(&net);
    let mut fw = Firewall::start(
        &net,
        &["--log", "dropped", "--log-file", log.to_str().unwrap()],
        Stdio::null(),
    );
    // Text lines of about 100 bytes: 64 KiB holds some 650.
    flood(&net, 1500, 64);
    settle();
    assert!(fw.running(), "xdpsieve exited when the disk filled");
    let out = fw.stop();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        received(&dropped_socket),
        0,
        "a dropped datagram got through"
    );

    let stops = stop_lines(&stderr);
    assert_eq!(stops.len(), 1, "{stderr}");
    assert!(
        stops[0].contains("event log to") && stops[0].contains("No space left on device"),
        "{stderr}"
    );
    let (dropped, _, _, _) = capture_counts(&stderr);
    let logged = count(&stderr, "events logged");
    let not_written = count(&stderr, "events not written: log output failed");
    let lost = count(&stderr, "events lost: event buffer full");
    assert_eq!(dropped, 1500, "{stderr}");
    assert!(logged > 0 && not_written > 0, "{stderr}");
    assert_eq!(logged + not_written + lost, dropped, "{stderr}");
    // Whole lines only, as many as the summary says.
    let text = std::fs::read_to_string(&log).expect("reading the log");
    assert!(text.ends_with('\n'), "the log ends in a cut line");
    assert_eq!(text.lines().count() as u64, logged, "{stderr}");
    assert!(
        text.lines()
            .all(|l| l.contains(&format!("-> 192.0.2.2:{DROPPED_PORT}"))),
        "{text}"
    );
}

#[test]
fn a_reader_of_stdout_that_goes_away_stops_the_capture_not_the_firewall() {
    if !root_or_skip() {
        return;
    }
    let net = VethPair::create("headpipe", None).expect("namespaces");
    let (dropped_socket, _passed_socket) = sockets(&net);
    // The reader takes 100 bytes and exits, as `xdpsieve run -w - | head -c 100` would.
    let mut head = Command::new("head")
        .args(["-c", "100"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("starting head");
    let pipe = head.stdin.take().expect("head's stdin");
    let mut fw = Firewall::start(&net, &["-w", "-"], Stdio::from(pipe));
    flood(&net, 20, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    while head.try_wait().expect("head").is_none() {
        assert!(Instant::now() < deadline, "head did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Now the pipe has no reader: the next write fails with EPIPE.
    flood(&net, 100, 200);
    settle();
    assert!(fw.running(), "xdpsieve died with its reader");
    let out = fw.stop();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        received(&dropped_socket),
        0,
        "a dropped datagram got through"
    );
    let stops = stop_lines(&stderr);
    assert_eq!(stops.len(), 1, "{stderr}");
    assert!(
        stops[0].contains("capture to standard output stopped: Broken pipe"),
        "{stderr}"
    );
    let (dropped, captured, not_written, lost) = capture_counts(&stderr);
    assert_eq!(dropped, 120, "{stderr}");
    assert!(not_written >= 100, "{stderr}");
    assert_eq!(captured + not_written + lost, dropped, "{stderr}");
}

#[test]
fn dev_full_as_the_capture_file() {
    if !root_or_skip() {
        return;
    }
    let scratch = Scratch::new("devfull", None);
    let log = scratch.file("events.log");
    let net = VethPair::create("devfull", None).expect("namespaces");
    let (dropped_socket, _passed_socket) = sockets(&net);
    // The event log, on a healthy disk, keeps working while the capture has failed.
    let mut fw = Firewall::start(
        &net,
        &[
            "-w",
            "/dev/full",
            "--log",
            "dropped",
            "--log-file",
            log.to_str().unwrap(),
        ],
        Stdio::null(),
    );
    flood(&net, 50, 100);
    settle();
    assert!(fw.running(), "xdpsieve exited on /dev/full");
    let out = fw.stop();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        received(&dropped_socket),
        0,
        "a dropped datagram got through"
    );
    let stops = stop_lines(&stderr);
    assert_eq!(stops.len(), 1, "{stderr}");
    assert!(
        stops[0].contains("capture to /dev/full stopped: No space left on device"),
        "{stderr}"
    );
    let (dropped, captured, not_written, lost) = capture_counts(&stderr);
    assert_eq!((dropped, captured), (50, 0), "{stderr}");
    assert_eq!(not_written + lost, dropped, "{stderr}");
    let logged = count(&stderr, "events logged");
    assert_eq!(
        logged + count(&stderr, "events lost: event buffer full"),
        50,
        "{stderr}"
    );
    let text = std::fs::read_to_string(&log).expect("reading the log");
    assert_eq!(text.lines().count() as u64, logged, "{stderr}");
}

#[test]
fn hup_usr1_usr2_and_pipe_do_not_stop_it() {
    if !root_or_skip() {
        return;
    }
    let scratch = Scratch::new("signals", None);
    let capture = scratch.file("signals.pcapng");
    let net = VethPair::create("signals", None).expect("namespaces");
    let (dropped_socket, _passed_socket) = sockets(&net);
    let mut fw = Firewall::start(
        &net,
        &["--format", "pcapng", "-w", capture.to_str().unwrap()],
        Stdio::null(),
    );
    flood(&net, 10, 100);
    for signal in [libc::SIGHUP, libc::SIGUSR1, libc::SIGUSR2, libc::SIGPIPE] {
        fw.signal(signal);
        // The loop looks at its flags at least every 100 ms.
        std::thread::sleep(Duration::from_millis(300));
        assert!(fw.running(), "signal {signal} stopped xdpsieve");
        flood(&net, 10, 100);
    }
    settle();
    let out = fw.stop();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        received(&dropped_socket),
        0,
        "a dropped datagram got through"
    );

    let hup = stderr
        .lines()
        .filter(|l| {
            l.contains("SIGHUP: reload is not supported yet; still filtering with the rules loaded at start")
        })
        .count();
    assert_eq!(hup, 1, "{stderr}");
    let status_lines = stderr
        .lines()
        .filter(|l| l.starts_with("xdpsieve: ") && l.contains("pkt/s"))
        .count();
    assert_eq!(status_lines, 2, "{stderr}");
    let (dropped, captured, _, lost) = capture_counts(&stderr);
    assert_eq!(dropped, 50, "{stderr}");
    assert_eq!(captured + lost, dropped, "{stderr}");

    // The file ends with its closing interface statistics block.
    let mut reader = PcapNgReader::new(std::fs::File::open(&capture).unwrap()).unwrap();
    let (mut last, mut packets) = (None, 0);
    while let Some(block) = reader.next_block() {
        let block = block.expect("a whole pcapng block");
        if matches!(block, Block::EnhancedPacket(_)) {
            packets += 1;
        }
        last = Some(block.into_owned());
    }
    assert!(
        matches!(last, Some(Block::InterfaceStatistics(_))),
        "the capture does not end with its statistics block"
    );
    assert_eq!(packets, captured);
}
