//! Live differential test of the capture filter against tcpdump: the real `xdpsieve` binary
//! on a veth in a namespace the test creates, capturing every packet it passes through a
//! tcpdump expression (`--capture all --filter EXPR -w filtered.pcap`), while tcpdump on the
//! same interface, in the same run, writes everything that reached the stack to
//! `all.pcap`. The crafted frames of the offline test (VLAN and QinQ tags, IPv6 extension
//! headers, IPv4 and IPv6 fragments, ICMP types, TCP flags, non-IP frames, a frame cut in
//! its TCP header) are replayed raw from the peer namespace through an AF_PACKET socket.
//! For each expression, the packets of `filtered.pcap` must be, byte for byte, exactly
//! those `tcpdump -r all.pcap EXPR` lists.
//!
//! The CLI takes one filter per run, so each expression gets its own run of both captures
//! (about half a second each). Every crafted frame must arrive in `all.pcap` in each run:
//! none had to be left out (veth delivers tagged frames tagged to XDP, and libpcap puts
//! back the tag the stack took off, so both files hold the same bytes).
//!
//! Needs root and tcpdump (`cargo xtask setup`); under `CI` it fails rather than skips.

use std::{
    collections::BTreeMap,
    io::{BufRead as _, BufReader, Read as _},
    path::Path,
    process::{ChildStderr, Command, Stdio},
    time::{Duration, Instant},
};

use pcap_file::pcap::PcapReader;
use xdpsieve_netns::VethPair;
use xdpsieve_testkit::child::{Firewall, Guard, published};
use xdpsieve_testkit::gate::root_or_skip;
use xdpsieve_testkit::summary::summary_number;
use xdpsieve_testkit::tempdir::TempDir;
use xdpsieve_testkit::tool::stdout_of;

use crate::cases::{EXPRESSIONS, frames};

const BINARY: &str = env!("CARGO_BIN_EXE_xdpsieve");

/// A process this test started (killed by PID on drop if still running), stopped with
/// SIGINT: both programs finish their files on it.
struct Running {
    what: &'static str,
    guard: Guard,
    /// Reads stderr when it is not left on the child.
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Running {
    /// SIGINT, then waits; returns stderr.
    fn interrupt(mut self) -> String {
        self.guard.signal(libc::SIGINT).expect("signalling a child");
        let mut err = String::new();
        if let Some(mut stderr) = self.guard.child_mut().stderr.take() {
            let _ = stderr.read_to_string(&mut err);
        }
        if let Some(reader) = self.stderr.take() {
            err = reader.join().unwrap_or_default();
        }
        let status = self
            .guard
            .wait_output()
            .expect("waiting for a child")
            .status;
        assert!(status.success(), "{} failed ({status}): {err}", self.what);
        err
    }
}

/// tcpdump on the firewall's interface, inbound only (what the firewall passed), whole
/// frames, each written as it arrives; returns once its socket is listening.
fn start_tcpdump(net: &VethPair, file: &Path) -> Running {
    let mut child = net
        .fw
        .command("tcpdump")
        .args(["-i", VethPair::FW_IF, "-Q", "in", "-s", "0", "-U", "-n"])
        .arg("--immediate-mode")
        .arg("-w")
        .arg(file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting tcpdump (install it with `cargo xtask setup`)");
    let stderr: ChildStderr = child.stderr.take().expect("piped");
    let mut reader = BufReader::new(stderr);
    let mut line = String::new();
    // tcpdump says "listening on ..." once its capture is active.
    reader.read_line(&mut line).expect("reading tcpdump");
    assert!(line.contains("listening on"), "tcpdump: {line}");
    child.stderr = None;
    // Keep reading its stderr so its exit summary never blocks on a full pipe.
    let stderr = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = reader.read_to_string(&mut rest);
        rest
    });
    Running {
        what: "tcpdump",
        guard: Guard::new(child),
        stderr: Some(stderr),
    }
}

/// `xdpsieve run` capturing every packet (all pass: no rules) through `expression`; returns
/// once it is attached.
fn start_xdpsieve(net: &VethPair, expression: &str, file: &Path) -> Running {
    let file = file.to_str().expect("a UTF-8 scratch path");
    let args = ["--capture", "all", "--filter", expression, "-w", file];
    let mut fw = Firewall::spawn(net, BINARY, &args, Stdio::null());
    fw.wait_until(|| published(BINARY, net));
    Running {
        what: "xdpsieve",
        guard: fw.into_guard(),
        stderr: None,
    }
}

/// Sends each frame as it is (tags included) out of the peer's interface, paced so the
/// veth's backlog never overflows.
fn replay(net: &VethPair, frames: &[(&str, Vec<u8>)]) {
    xdpsieve_testkit::replay::replay(net, frames, 1, Duration::from_micros(300));
}

/// The packets of a pcap file, each as a count by its bytes.
fn packets(file: &Path) -> BTreeMap<Vec<u8>, usize> {
    let data = std::fs::read(file).unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
    let mut reader = PcapReader::new(&data[..])
        .unwrap_or_else(|e| panic!("{} is not a pcap file: {e}", file.display()));
    let mut out = BTreeMap::new();
    while let Some(packet) = reader.next_packet() {
        let packet = packet.unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert_eq!(
            packet.data.len(),
            packet.orig_len as usize,
            "{}: a packet was cut short",
            file.display()
        );
        *out.entry(packet.data.into_owned()).or_insert(0) += 1;
    }
    out
}

/// Runs `tcpdump -r all EXPR -w selected`: the packets it lists, as they were.
fn tcpdump_selects(all: &Path, expression: &str, selected: &Path) -> BTreeMap<Vec<u8>, usize> {
    let mut tcpdump = Command::new("tcpdump");
    tcpdump
        .arg("-r")
        .arg(all)
        .arg("-w")
        .arg(selected)
        .arg(expression);
    stdout_of(&mut tcpdump, "tcpdump");
    packets(selected)
}

#[test]
fn live_capture_filter_selects_what_tcpdump_selects() {
    if !root_or_skip() {
        return;
    }
    let started = Instant::now();
    let frames = frames();
    let crafted: BTreeMap<&[u8], &str> = frames.iter().map(|(n, f)| (&f[..], *n)).collect();
    assert_eq!(
        crafted.len(),
        frames.len(),
        "two crafted frames are the same"
    );
    assert!(EXPRESSIONS.len() >= 60);

    let net = VethPair::create("fltlive", None).expect("creating namespaces and veth");
    // The peer's own stack stays silent (no router solicitations, no MLD reports), so that
    // the only traffic is what the test sends.
    for (ns, iface) in [(&net.peer, VethPair::PEER_IF), (&net.fw, VethPair::FW_IF)] {
        let status = ns
            .command("sysctl")
            .args(["-q", "-w", &format!("net.ipv6.conf.{iface}.disable_ipv6=1")])
            .status()
            .expect("running sysctl");
        assert!(status.success(), "disabling IPv6 on {iface}");
    }
    let dir = TempDir::named(&format!("xdpsieve-filter-live-{}", std::process::id()));
    let (all, filtered, selected) = (
        dir.file("all.pcap"),
        dir.file("filtered.pcap"),
        dir.file("selected.pcap"),
    );

    let name = |bytes: &[u8]| crafted.get(bytes).copied().unwrap_or("(not crafted)");
    let mut failures = Vec::new();
    let mut retried = Vec::new();
    for expression in EXPRESSIONS {
        // A run where a crafted frame did not reach the stack exactly once (lost on the
        // veth or by tcpdump under load on a shared machine) says nothing about the filter:
        // it is run again, at most twice, and each retry is reported.
        let mut attempt = 0;
        let (everything, summary) = loop {
            attempt += 1;
            let tcpdump = start_tcpdump(&net, &all);
            let xdpsieve = start_xdpsieve(&net, expression, &filtered);
            replay(&net, &frames);
            // The last frame crosses the veth (NAPI on the receiving side) before the stop.
            std::thread::sleep(Duration::from_millis(100));
            let summary = xdpsieve.interrupt();
            let tcpdump_summary = tcpdump.interrupt();
            let everything = packets(&all);
            let missing: Vec<&str> = frames
                .iter()
                .filter(|(_, frame)| everything.get(frame).copied() != Some(1))
                .map(|(frame_name, _)| *frame_name)
                .collect();
            if missing.is_empty() {
                break (everything, summary);
            }
            let note = format!(
                "`{expression}` attempt {attempt}: {missing:?} not in all.pcap exactly once \
                 (tcpdump: {})",
                tcpdump_summary.trim().replace('\n', "; ")
            );
            eprintln!("{note}");
            assert!(attempt < 3, "{note}");
            retried.push(note);
        };
        let expected = tcpdump_selects(&all, expression, &selected);
        let got = packets(&filtered);
        // Both captures saw the same packets, and the summary accounts for the file.
        let number = |words: &str| {
            summary_number::<usize>(&summary, words)
                .unwrap_or_else(|| panic!("no `{words}` in the summary:\n{summary}"))
        };
        assert_eq!(
            number("packets seen by xdpsieve"),
            everything.values().sum::<usize>(),
            "`{expression}`: xdpsieve and tcpdump saw different traffic\n{summary}"
        );
        assert_eq!(
            number("packets captured"),
            got.values().sum::<usize>(),
            "`{expression}`: {summary}"
        );
        assert_eq!(number("packets lost"), 0, "`{expression}`: {summary}");
        if got != expected {
            let names = |set: &BTreeMap<Vec<u8>, usize>| {
                set.iter()
                    .map(|(bytes, count)| format!("{} x{count}", name(bytes)))
                    .collect::<Vec<_>>()
            };
            failures.push(format!(
                "`{expression}`: xdpsieve {:?}, tcpdump {:?}\n{summary}",
                names(&got),
                names(&expected)
            ));
        }
        eprintln!(
            "`{expression}`: {} of {} packets",
            expected.values().sum::<usize>(),
            everything.values().sum::<usize>()
        );
    }
    eprintln!("runs repeated for a frame lost before the stack: {retried:#?}");
    eprintln!(
        "{} expressions over {} frames in {:.1} s",
        EXPRESSIONS.len(),
        frames.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "differences:\n{}", failures.join("\n"));
}
