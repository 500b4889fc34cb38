//! Rotating captures end to end: the real binary on a veth in namespaces the test creates,
//! numbered datagrams from a second namespace that a rule drops, and the files read back by
//! the pcap-file crate, tcpdump and tshark.
//!
//! - a ring of 3 files (`-C 1 -W 3`) over many rotations, `-z` on each finished file;
//! - `-G 1 -W 3`: three files a second apart, named by strftime, then the run ends;
//! - a small tmpfs that fills mid-run: `-W` makes room by removing the oldest file;
//! - `-C` with `-w -` is refused.
//!
//! Each packet carries its number, so "every packet once, none torn" is checked packet by
//! packet, and the sum over the files against the summary's count.

mod common;
use common::root_or_skip;

use std::{
    collections::BTreeSet,
    io::Read as _,
    net::{SocketAddr, UdpSocket},
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use pcap_file::{
    pcap::PcapReader,
    pcapng::{Block, PcapNgReader, blocks::interface_statistics::InterfaceStatisticsOption},
};
use xdpsieve::netns::VethPair;

const BINARY: &str = env!("CARGO_BIN_EXE_xdpsieve");
const CLIENT_PORT: u16 = 40000;
/// UDP payload of each numbered datagram: about 1,060 bytes per pcap record.
const PAYLOAD: usize = 1000;
/// Ethernet + IPv4 + UDP: where the number starts in a captured frame.
const NUMBER_AT: usize = 42;

/// A scratch directory removed on drop (unmounted first when it is a tmpfs).
struct TempDir {
    path: PathBuf,
    mounted: bool,
}

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("xdpsieve-rot-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("creating temp dir");
        TempDir {
            path,
            mounted: false,
        }
    }

    /// A tmpfs of `size` (e.g. "3m") mounted on a fresh directory.
    fn tmpfs(tag: &str, size: &str) -> TempDir {
        let mut dir = TempDir::new(tag);
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir.path)
            .status()
            .expect("running mount");
        assert!(status.success(), "mounting a tmpfs on {:?}", dir.path);
        dir.mounted = true;
        dir
    }

    fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// The regular files, sorted by name.
    fn files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.path)
            .expect("listing")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        files
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg(&self.path).status();
        }
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A running `xdpsieve run`; killed (by PID) on drop if still running.
struct Firewall {
    child: Option<Child>,
}

impl Firewall {
    fn start(net: &VethPair, args: &[&str]) -> Firewall {
        let child = net
            .fw
            .command(BINARY)
            .arg("run")
            .args(["-i", VethPair::FW_IF, "--drop", "udp src port 53"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting xdpsieve");
        let mut fw = Firewall { child: Some(child) };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let child = fw.child.as_mut().expect("running");
            if let Some(status) = child.try_wait().expect("try_wait") {
                let mut err = String::new();
                let _ = child.stderr.take().map(|mut e| e.read_to_string(&mut err));
                panic!("xdpsieve exited before attaching ({status}): {err}");
            }
            let published = net
                .fw
                .command(BINARY)
                .args(["status", "--json"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).contains("\"live\": true"))
                .unwrap_or(false);
            if published {
                return fw;
            }
            assert!(Instant::now() < deadline, "xdpsieve did not attach in 20 s");
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn stop(mut self) -> Output {
        let child = self.child.take().expect("running");
        // SAFETY: kill on the PID of a child we started and have not reaped.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        child.wait_with_output().expect("waiting for xdpsieve")
    }

    /// Waits (up to `limit`) for the run to end by itself.
    fn wait_exit(mut self, limit: Duration) -> Output {
        let deadline = Instant::now() + limit;
        let child = self.child.as_mut().expect("running");
        while child.try_wait().expect("try_wait").is_none() {
            assert!(Instant::now() < deadline, "xdpsieve did not end by itself");
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child
            .take()
            .expect("running")
            .wait_with_output()
            .expect("output")
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

/// Sends numbered datagrams from port 53 (dropped) and, every tenth, one from port 5000
/// (passed), about `per_second` of each batch of ten... until `count` or `stop`. Returns
/// how many numbered ones were sent.
fn send_numbered(net: &VethPair, count: u32, batch_every: Duration, stop: &AtomicBool) -> u32 {
    net.peer
        .run(|| {
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
fn client_socket(net: &VethPair) -> UdpSocket {
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
                    (&size as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            Ok::<_, std::io::Error>(s)
        })
        .expect("entering namespace")
        .expect("binding the client socket")
}

/// Datagrams waiting at the socket: (numbered ones from port 53, others).
fn received(socket: &UdpSocket) -> (usize, usize) {
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

fn number(frame: &[u8]) -> u32 {
    u32::from_be_bytes(frame[NUMBER_AT..NUMBER_AT + 4].try_into().expect("4 bytes"))
}

/// The numbers in a pcap file (a whole file, or the reader fails).
fn pcap_numbers(path: &Path) -> Vec<u32> {
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
fn pcapng_numbers(path: &Path) -> Vec<u32> {
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

/// A number from the summary line that ends with `tail` (e.g. "packets captured").
fn summary_count(stderr: &str, tail: &str) -> u64 {
    stderr
        .lines()
        .find(|l| l.trim_end().ends_with(tail))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Every number from `first` to `last - 1` exactly once, in order.
fn assert_contiguous(numbers: &[u32], first: u32, last: u32) {
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
fn mover_script(dir: &TempDir, done: &Path) -> PathBuf {
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

#[test]
fn ring_of_three_over_many_rotations_runs_z_on_every_file() {
    if !root_or_skip() {
        return;
    }
    let work = TempDir::new("ring");
    let done = TempDir::new("ring-done");
    let script = mover_script(&work, &done.path);
    let net = VethPair::create("rotring", None).expect("namespaces");
    let client = client_socket(&net);
    let pattern = work.file("cap.pcap");
    let fw = Firewall::start(
        &net,
        &[
            "-w",
            pattern.to_str().unwrap(),
            "-C",
            "1",
            "-W",
            "3",
            "-z",
            script.to_str().unwrap(),
        ],
    );
    // About 1,000 datagrams a second: a file a second, 9 files, so the ring wraps twice
    // and a name is reused two seconds after its file was handed to -z.
    const SENT: u32 = 8500;
    let sent = send_numbered(
        &net,
        SENT,
        Duration::from_millis(10),
        &AtomicBool::new(false),
    );
    assert_eq!(sent, SENT);
    std::thread::sleep(Duration::from_millis(300));
    let (numbered, other) = received(&client);
    let out = fw.stop();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains("-z:"),
        "every -z command ran and succeeded: {stderr}"
    );
    // The dropped flow never reached the socket; the passed one did.
    assert_eq!((numbered, other), (0, SENT as usize / 10), "{stderr}");

    let captured = summary_count(&stderr, "packets captured");
    assert_eq!(captured, u64::from(SENT), "{stderr}");
    // -z ran on each finished file, the last one included, with tcpdump's names.
    let names = std::fs::read_to_string(work.file("names.log")).expect("names log");
    let names: Vec<&str> = names.lines().collect();
    assert!(names.len() >= 8, "{names:?}");
    for (i, name) in names.iter().enumerate() {
        assert_eq!(
            *name,
            format!("{}{}", pattern.display(), i % 3),
            "{names:?}"
        );
    }
    // Nothing left in the ring's place: every file was handed on, and moved.
    assert_eq!(work.files().len(), 2, "{:?}", work.files()); // the script and its log
    let files = done.files();
    assert_eq!(files.len(), names.len());
    let mut all = Vec::new();
    for f in &files {
        let numbers = pcap_numbers(f);
        assert!(!numbers.is_empty(), "{f:?}");
        // Each file stands alone for tcpdump and tshark.
        let path = f.to_str().unwrap();
        assert_eq!(
            tool("tcpdump", &["-nn", "-r", path]).lines().count(),
            numbers.len()
        );
        assert_eq!(tool("tshark", &["-r", path]).lines().count(), numbers.len());
        // tcpdump's -C: a file is closed once it is past 1,000,000 bytes, so it holds at
        // most one packet past that.
        assert!(
            std::fs::metadata(f).unwrap().len() < 1_000_000 + 2 * 1100,
            "{f:?}"
        );
        all.extend(numbers);
    }
    assert_contiguous(&all, 0, SENT);
}

#[test]
fn period_of_one_second_makes_strftime_named_files_then_stops_at_w() {
    if !root_or_skip() {
        return;
    }
    let work = TempDir::new("period");
    let net = VethPair::create("rotper", None).expect("namespaces");
    let _client = client_socket(&net);
    let pattern = work.file("cap-%s.pcapng");
    let names = work.file("names.log");
    let script = work.file("names.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$1\" >> {}\n", names.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let fw = Firewall::start(
        &net,
        &[
            "-w",
            pattern.to_str().unwrap(),
            "--format",
            "pcapng",
            "-G",
            "1",
            "-W",
            "3",
            "-z",
            script.to_str().unwrap(),
        ],
    );
    // Traffic until the run ends by itself (bounded: 10 s at most).
    let stop = Arc::new(AtomicBool::new(false));
    let out = std::thread::scope(|scope| {
        let sender = scope.spawn(|| send_numbered(&net, 20_000, Duration::from_millis(50), &stop));
        let out = fw.wait_exit(Duration::from_secs(15));
        stop.store(true, Ordering::Relaxed);
        let _ = sender.join();
        out
    });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("-W 3 files of -G written"), "{stderr}");

    let files: Vec<PathBuf> = work
        .files()
        .into_iter()
        .filter(|f| f.extension().is_some_and(|e| e == "pcapng"))
        .collect();
    assert_eq!(files.len(), 3, "{files:?}");
    let seconds: Vec<u64> = files
        .iter()
        .map(|f| {
            let name = f.file_name().unwrap().to_str().unwrap();
            name["cap-".len()..name.len() - ".pcapng".len()]
                .parse()
                .expect("the %s of the name")
        })
        .collect();
    assert!(seconds.windows(2).all(|w| w[1] > w[0]), "{seconds:?}");
    let logged = std::fs::read_to_string(&names).expect("-z names");
    let logged: Vec<PathBuf> = logged.lines().map(PathBuf::from).collect();
    assert_eq!(logged, files, "-z ran on each file, in order");

    let mut all = Vec::new();
    for f in &files {
        let numbers = pcapng_numbers(f);
        let text = tool("tshark", &["-r", f.to_str().unwrap()]);
        assert_eq!(text.lines().count(), numbers.len(), "{f:?}");
        all.extend(numbers);
    }
    let captured = summary_count(&stderr, "packets captured");
    assert_eq!(all.len() as u64, captured, "{stderr}");
    assert_contiguous(&all, 0, all.len() as u32);
}

#[test]
fn full_disk_with_w_removes_the_oldest_file_and_keeps_capturing() {
    if !root_or_skip() {
        return;
    }
    // 3 MiB hold two files of 1 MB and most of a third; -W 10 never gets there.
    let disk = TempDir::tmpfs("tmpfs", "3m");
    let net = VethPair::create("rotfull", None).expect("namespaces");
    let client = client_socket(&net);
    let pattern = disk.file("cap.pcap");
    let fw = Firewall::start(
        &net,
        &["-w", pattern.to_str().unwrap(), "-C", "1", "-W", "10"],
    );
    const SENT: u32 = 7000;
    let sent = send_numbered(
        &net,
        SENT,
        Duration::from_millis(5),
        &AtomicBool::new(false),
    );
    assert_eq!(sent, SENT);
    std::thread::sleep(Duration::from_millis(300));
    let (numbered, other) = received(&client);
    let out = fw.stop();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("disk full: removed the oldest capture file"),
        "{stderr}"
    );
    assert!(!stderr.contains("stopped"), "the capture went on: {stderr}");
    // Still dropped at the socket, whatever the disk did.
    assert_eq!((numbered, other), (0, SENT as usize / 10), "{stderr}");
    // Counts exact: every packet written somewhere, none lost or unwritten.
    assert_eq!(
        summary_count(&stderr, "packets captured"),
        u64::from(SENT),
        "{stderr}"
    );
    assert!(!stderr.contains("not written"), "{stderr}");

    // What is left: the newest files, in ring order, whole, ending with the last packet.
    let files = disk.files();
    assert!((2..=3).contains(&files.len()), "{files:?}");
    let newest = files
        .iter()
        .max_by_key(|f| std::fs::metadata(f).unwrap().modified().unwrap())
        .unwrap()
        .clone();
    let mut ordered: Vec<(u32, Vec<u32>)> = files
        .iter()
        .map(|f| {
            let numbers = pcap_numbers(f);
            assert_eq!(
                tool("tcpdump", &["-nn", "-r", f.to_str().unwrap()])
                    .lines()
                    .count(),
                numbers.len()
            );
            (numbers[0], numbers)
        })
        .collect();
    ordered.sort();
    let all: Vec<u32> = ordered.into_iter().flat_map(|(_, n)| n).collect();
    let first = all[0];
    assert!(first > 0, "the oldest packets went with the oldest file");
    assert_contiguous(&all, first, SENT);
    assert_eq!(pcap_numbers(&newest).last(), Some(&(SENT - 1)));
}

#[test]
fn rotation_is_refused_on_standard_output_and_w_without_rotation() {
    let run = |args: &[&str]| {
        let out = Command::new(BINARY)
            .args(["run", "-i", "lo", "--drop", "udp src port 53"])
            .args(args)
            .output()
            .expect("running xdpsieve");
        assert!(!out.status.success(), "{args:?} must be refused");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(run(&["-w", "-", "-C", "1"]).contains("standard output (-w -) is no file"));
    assert!(run(&["-w", "-", "-G", "60"]).contains("standard output (-w -) is no file"));
    assert!(run(&["-w", "x.pcap", "-W", "3"]).contains("give -C MB or -G SECS"));
    assert!(run(&["-w", "x.pcap", "-z", "gzip"]).contains("give -C MB or -G SECS"));
    assert!(run(&["-C", "1"]).contains("give -w FILE"));
    assert!(run(&["-w", "x.pcap", "-C", "0"]).contains("-C"));
}
