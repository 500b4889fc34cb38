//! The harness of the live set tests: namespaces with a rule file that declares sets, the
//! `xdpsieve` binary in them, and a flow of numbered datagrams to a socket behind the
//! firewall that tells which datagrams got through.

use std::{
    net::{SocketAddr, UdpSocket},
    path::Path,
    process::{Command, Output, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use xdpsieve_netns::VethPair;
use xdpsieve_testkit::child::Firewall;
use xdpsieve_testkit::tempdir::TempDir;
use xdpsieve_testkit::tool::stdout_of;

pub(crate) const BINARY: &str = env!("CARGO_BIN_EXE_xdpsieve");
pub(crate) const PORT: u16 = 7100;
/// The peer's address, the one the tests ban.
pub(crate) const PEER: &str = "192.0.2.1";

/// The namespaces and a rule file; on drop (even when the test fails) `xdpsieve stop`
/// before the namespaces go, so no firewall or pin outlives the test.
pub(crate) struct Net {
    pub pair: VethPair,
    pub tmp: TempDir,
}

const RULES: &str = r#"
[[set]]
name = "ban"
prefixes = ["203.0.113.0/24"]

[[set]]
name = "blocklist"
file = "block.netset"

[[rule]]
name = "drop-banned"
action = "drop"
src = "@ban"
log = true

[[rule]]
name = "drop-listed"
action = "drop"
src = "@blocklist"
"#;

impl Net {
    pub(crate) fn create(tag: &str) -> Net {
        Net::with_rules(tag, RULES)
    }

    /// As [`Net::create`], with the rule file `rules`.
    pub(crate) fn with_rules(tag: &str, rules: &str) -> Net {
        let tmp = TempDir::named(&format!("xdpsieve-sets-{}-{tag}", std::process::id()));
        std::fs::write(tmp.file("rules.toml"), rules).expect("rule file");
        std::fs::write(tmp.file("block.netset"), "# test list\n198.51.100.0/24\n")
            .expect("set file");
        Net {
            pair: VethPair::create(tag, None).expect("namespaces"),
            tmp,
        }
    }

    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut cmd = self.pair.fw.command(BINARY);
        cmd.args(args).stdin(Stdio::null());
        cmd
    }

    /// `xdpsieve ARGS` in the firewall's namespace, to completion.
    pub(crate) fn xdpsieve(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("running xdpsieve")
    }

    /// `xdpsieve ARGS`, which must succeed; its standard output.
    pub(crate) fn ok(&self, args: &[&str]) -> String {
        stdout_of(&mut self.command(args), "xdpsieve")
    }

    /// Starts `xdpsieve run` with the rule file, capturing drops and logging JSON events.
    pub(crate) fn start(&self) -> Run {
        self.start_on(VethPair::FW_IF)
    }

    /// As [`Net::start`], on `iface` of the firewall's namespace.
    pub(crate) fn start_on(&self, iface: &str) -> Run {
        let rules = self.tmp.file("rules.toml");
        let (capture, log) = (
            self.tmp.file(&format!("drops-{iface}.pcap")),
            self.tmp.file(&format!("events-{iface}.log")),
        );
        let command = self.command(&[
            "run",
            "-i",
            iface,
            "--rules",
            rules.to_str().unwrap(),
            "-w",
            capture.to_str().unwrap(),
            "--log-format",
            "json",
            "--log-file",
            log.to_str().unwrap(),
        ]);
        let mut run = Firewall::spawn_command(command, Stdio::null());
        run.wait_until(|| {
            let status = self.xdpsieve(&["status", "-i", iface, "--json"]);
            String::from_utf8_lossy(&status.stdout).contains("\"live\": true")
        });
        Run(run)
    }

    /// The JSON lines of the event log of a run on the firewall's interface.
    pub(crate) fn events(&self) -> Vec<serde_json::Value> {
        let path = self.tmp.file(&format!("events-{}.log", VethPair::FW_IF));
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    pub(crate) fn list(&self, set: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["set", "list", set, "--json"])).expect("list JSON")
    }

    pub(crate) fn status(&self) -> serde_json::Value {
        let out = self.ok(&["status", "-i", VethPair::FW_IF, "--json"]);
        let json: serde_json::Value = serde_json::from_str(&out).expect("status JSON");
        json[0].clone()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = self.xdpsieve(&["stop", "-i", VethPair::FW_IF]);
    }
}

/// A running `xdpsieve run`; killed (by PID) on drop if still running.
pub(crate) struct Run(Firewall);

impl Run {
    /// Sends `signal`; the exit status and output.
    pub(crate) fn signal(self, signal: i32) -> Output {
        self.0.stop(signal)
    }
}

/// Datagrams from the peer to the socket behind the firewall, numbered, one a
/// millisecond, until dropped; what arrived, with when.
pub(crate) struct Flow {
    next: Arc<AtomicU64>,
    arrived: Arc<Mutex<Vec<(u64, Instant)>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Flow {
    pub(crate) fn start(net: &Net) -> Flow {
        let receiver = net
            .pair
            .fw
            .run(|| UdpSocket::bind(SocketAddr::new(VethPair::FW_V4.into(), PORT)))
            .expect("namespace")
            .expect("binding the socket behind the firewall");
        receiver
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let sender = net
            .pair
            .peer
            .run(|| UdpSocket::bind(SocketAddr::new(VethPair::PEER_V4.into(), 0)))
            .expect("namespace")
            .expect("binding the sender");
        let (next, arrived, stop) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(Mutex::new(Vec::new())),
            Arc::new(AtomicBool::new(false)),
        );
        let send = {
            let (next, stop) = (Arc::clone(&next), Arc::clone(&stop));
            std::thread::spawn(move || {
                // Bounded: at most ten minutes' worth, whatever happens to the test.
                for _ in 0..600_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let seq = next.load(Ordering::SeqCst);
                    let _ = sender.send_to(&seq.to_be_bytes(), (VethPair::FW_V4, PORT));
                    next.store(seq + 1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
        };
        let receive = {
            let (arrived, stop) = (Arc::clone(&arrived), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut buf = [0u8; 64];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(8) = receiver.recv(&mut buf) {
                        let seq = u64::from_be_bytes(buf[..8].try_into().unwrap());
                        arrived.lock().unwrap().push((seq, Instant::now()));
                    }
                }
            })
        };
        let flow = Flow {
            next,
            arrived,
            stop,
            threads: vec![send, receive],
        };
        assert!(
            flow.arrival_after(flow.mark(), Duration::from_secs(5))
                .is_some(),
            "no datagram reached the socket before any ban"
        );
        flow
    }

    /// The number of the next datagram to be sent.
    pub(crate) fn mark(&self) -> u64 {
        self.next.load(Ordering::SeqCst)
    }

    /// Datagrams numbered `from` or later that arrived.
    pub(crate) fn arrived_since(&self, from: u64) -> Vec<(u64, Instant)> {
        self.arrived
            .lock()
            .unwrap()
            .iter()
            .copied()
            .filter(|(seq, _)| *seq >= from)
            .collect()
    }

    /// When the first datagram numbered `from` or later arrived, waiting up to `wait`.
    pub(crate) fn arrival_after(&self, from: u64, wait: Duration) -> Option<Instant> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(first) = self.arrived_since(from).first() {
                return Some(first.1);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Checks that nothing numbered `from` or later arrives within `wait`.
    pub(crate) fn assert_blocked_from(&self, from: u64, wait: Duration, what: &str) {
        std::thread::sleep(wait);
        let through = self.arrived_since(from);
        let sent = self.mark() - from;
        assert!(
            through.is_empty(),
            "{what}: {} of {sent} datagrams sent after the change reached the socket (first: {:?})",
            through.len(),
            through.first().map(|a| a.0)
        );
        assert!(sent > wait.as_millis() as u64 / 4, "the flow stalled");
    }

    /// Checks that every datagram numbered `from` to now arrives.
    pub(crate) fn assert_all_pass_from(&self, from: u64, what: &str) {
        let until = self.mark();
        std::thread::sleep(Duration::from_millis(300));
        let got = self
            .arrived_since(from)
            .iter()
            .filter(|(seq, _)| *seq < until)
            .count() as u64;
        assert_eq!(got, until - from, "{what}: datagrams lost after the change");
    }
}

impl Drop for Flow {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// UDP datagrams from `src` to PORT in a capture file.
pub(crate) fn captured_from(path: &Path, src: [u8; 4]) -> usize {
    let file = std::fs::File::open(path).expect("opening the capture");
    let mut reader = pcap_file::pcap::PcapReader::new(file).expect("pcap header");
    let mut n = 0;
    while let Some(p) = reader.next_raw_packet() {
        let data = p.expect("pcap packet").data;
        let is_v4_udp = data.len() >= 38 && data[12..14] == [0x08, 0x00] && data[23] == 17;
        if is_v4_udp && data[26..30] == src && u16::from_be_bytes([data[36], data[37]]) == PORT {
            n += 1;
        }
    }
    n
}

/// UDP datagrams from `src` to PORT in a capture file whose timestamp is before
/// `before_ns` (ns since the epoch, as the event log's `time_ns`), compared at the
/// capture's microseconds: a pcap timestamp is truncated to them.
pub(crate) fn captured_from_before(path: &Path, src: [u8; 4], before_ns: u64) -> usize {
    let file = std::fs::File::open(path).expect("opening the capture");
    let mut reader = pcap_file::pcap::PcapReader::new(file).expect("pcap header");
    let mut n = 0;
    while let Some(p) = reader.next_packet() {
        let p = p.expect("pcap packet");
        let data = &p.data;
        let is_v4_udp = data.len() >= 38 && data[12..14] == [0x08, 0x00] && data[23] == 17;
        if is_v4_udp
            && data[26..30] == src
            && u16::from_be_bytes([data[36], data[37]]) == PORT
            && p.timestamp.as_micros() < u128::from(before_ns / 1000)
        {
            n += 1;
        }
    }
    n
}
