//! Reloading the whole rule set without a gap: the real `xdpsieve` binary on a veth in
//! namespaces the test creates, real UDP sockets behind the firewall, traffic flowing
//! while the rules change. Two rule files drop disjoint port ranges, and a port both drop:
//! across 50 reloads that port's socket receives nothing, every logged event names a rule
//! of the generation that judged it (both files number their rules from 1), and the
//! counters carry over. SIGHUP does what `reload` does; a broken rule file leaves the old
//! rules in force; a firewall whose recorder was SIGKILLed is reloaded on its pinned state
//! and then taken over by a new run; with perf buffers the records of both generations
//! reach the same files.
//!
//! They need root; under `CI` they fail rather than skip when they cannot run.

use std::{
    net::{SocketAddr, UdpSocket},
    path::{Path, PathBuf},
    process::{Output, Stdio},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use pcap_file::pcapng::{Block, PcapNgReader, blocks::enhanced_packet::EnhancedPacketOption};
use xdpsieve_netns::VethPair;
use xdpsieve_testkit::child::Firewall;
use xdpsieve_testkit::gate::root_or_skip;
use xdpsieve_testkit::tempdir::TempDir;
use xdpsieve_testkit::tool::tool_with;
use xdpsieve_testkit::udp::received;

const BINARY: &str = env!("CARGO_BIN_EXE_xdpsieve");
/// Dropped by file A only (1000-1099), by file B only (2000-2099), by both, by neither.
const PORT_A: u16 = 1050;
const PORT_B: u16 = 2050;
const PORT_BOTH: u16 = 5000;
const PORT_OPEN: u16 = 6000;
const PORTS: [u16; 4] = [PORT_A, PORT_B, PORT_BOTH, PORT_OPEN];

/// File A: `a-range` (id 1) and `both` (id 2). File B: `b-range` (id 1) and `both` (id 2).
/// Generation 1 (the start) and every odd one is A.
const FILE_A: &str = r#"
[[rule]]
name = "a-range"
action = "drop"
protocol = "udp"
dst_port = "1000-1099"
log = true

[[rule]]
name = "both"
action = "drop"
protocol = "udp"
dst_port = 5000
log = true
"#;

const FILE_B: &str = r#"
[[rule]]
name = "b-range"
action = "drop"
protocol = "udp"
dst_port = "2000-2099"
log = true

[[rule]]
name = "both"
action = "drop"
protocol = "udp"
dst_port = 5000
log = true
"#;

/// Which ports rule `name` of the file of `generation` drops; None when that file has no
/// such rule.
fn rule_ports(generation: u64, name: &str) -> Option<std::ops::RangeInclusive<u16>> {
    match (generation % 2 == 1, name) {
        (true, "a-range") => Some(1000..=1099),
        (false, "b-range") => Some(2000..=2099),
        (_, "both") => Some(5000..=5000),
        _ => None,
    }
}

/// Namespaces, a scratch directory and, on drop (even when the test fails), `xdpsieve
/// stop` before they go, so no firewall or pin outlives the test.
struct Net {
    pair: VethPair,
    dir: TempDir,
}

impl Net {
    fn create(tag: &str) -> Net {
        Net {
            pair: VethPair::create(tag, None).expect("namespaces"),
            dir: TempDir::new(&format!("reload-{tag}")),
        }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.file(name)
    }

    /// Replaces the rule file whole (a rename), as an editor or a deploy tool would.
    fn write_rules(&self, text: &str) {
        let tmp = self.file("rules.toml.tmp");
        std::fs::write(&tmp, text).expect("writing rules");
        std::fs::rename(&tmp, self.file("rules.toml")).expect("replacing rules");
    }

    fn xdpsieve(&self, args: &[&str]) -> Output {
        self.pair
            .fw
            .command(BINARY)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("running xdpsieve")
    }

    /// `xdpsieve run` on fw0 with the rule file, logging events as JSON to `events.json`,
    /// capturing drops to `dropped.pcapng`, with `extra` arguments.
    fn start(&self, extra: &[&str]) -> Run {
        let rules = self.file("rules.toml");
        let log = self.file("events.json");
        let capture = self.file("dropped.pcapng");
        let path = |p: &PathBuf| p.to_str().expect("a UTF-8 scratch path").to_string();
        let (rules, log, capture) = (path(&rules), path(&log), path(&capture));
        let mut args = vec![
            "--rules",
            &rules,
            "--log-format",
            "json",
            "--log-file",
            &log,
        ];
        args.extend_from_slice(&["--format", "pcapng", "-w", &capture]);
        args.extend_from_slice(extra);
        let mut run = Firewall::spawn(&self.pair, BINARY, &args, Stdio::null());
        run.wait_until(|| self.status().get("live") == Some(&serde_json::Value::Bool(true)));
        Run(run)
    }

    /// `status --json` of fw0 (null when there is none).
    fn status(&self) -> serde_json::Value {
        let out = self.xdpsieve(&["status", "-i", VethPair::FW_IF, "--json"]);
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .map(|v| v[0].clone())
            .unwrap_or_default()
    }

    /// `xdpsieve reload`: (success, stdout, stderr).
    fn reload(&self) -> (bool, String, String) {
        let out = self.xdpsieve(&["reload", "-i", VethPair::FW_IF]);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// A UDP socket behind the firewall on each of [`PORTS`].
    fn sockets(&self) -> Vec<UdpSocket> {
        self.pair
            .fw
            .run(|| {
                PORTS
                    .iter()
                    .map(|&port| {
                        let s = UdpSocket::bind(SocketAddr::new(VethPair::FW_V4.into(), port))?;
                        s.set_read_timeout(Some(Duration::from_millis(100)))?;
                        Ok(s)
                    })
                    .collect::<std::io::Result<Vec<_>>>()
            })
            .expect("entering namespace")
            .expect("binding sockets")
    }

    /// Sends `rounds` datagrams to each of [`PORTS`] from the peer, paced, until `stop`;
    /// returns how many went to each.
    fn traffic(&self, rounds: u64, stop: &AtomicBool) -> [u64; 4] {
        self.pair
            .peer
            .run(|| {
                let s = UdpSocket::bind(SocketAddr::new(VethPair::PEER_V4.into(), 0))?;
                let mut sent = [0u64; 4];
                for _ in 0..rounds {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    for (i, &port) in PORTS.iter().enumerate() {
                        s.send_to(b"reload", (VethPair::FW_V4, port))?;
                        sent[i] += 1;
                    }
                    std::thread::sleep(Duration::from_micros(500));
                }
                Ok::<_, std::io::Error>(sent)
            })
            .expect("entering namespace")
            .expect("sending")
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = self.xdpsieve(&["stop", "-i", VethPair::FW_IF]);
    }
}

/// A running `xdpsieve run`; killed (by PID) on drop if still running.
struct Run(Firewall);

impl Run {
    fn signal(&mut self, signal: i32) {
        self.0.signal(signal);
    }

    /// SIGTERM, then the exit status and stderr.
    fn stop(self) -> (bool, String) {
        let out = self.0.stop(libc::SIGTERM);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// SIGKILL, and reaped (as on drop).
    fn kill(self) {
        drop(self);
    }
}

/// Counts datagrams on `socket` until `stop` and a read timeout.
fn receive_until(socket: &UdpSocket, stop: &AtomicBool) -> u64 {
    let mut buf = [0u8; 2048];
    let mut n = 0;
    loop {
        match socket.recv(&mut buf) {
            Ok(_) => n += 1,
            Err(_) if stop.load(Ordering::Relaxed) => return n,
            Err(_) => {}
        }
    }
}

fn generation(status: &serde_json::Value) -> u64 {
    status["reload"]["generation"].as_u64().unwrap_or(0)
}

/// Hits of rule `id` in a status (`rule_hits` is a list of [id, hits]).
fn hits(status: &serde_json::Value, id: u64) -> u64 {
    status["counters"]["rule_hits"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p[0].as_u64() == Some(id))
        .and_then(|p| p[1].as_u64())
        .unwrap_or(0)
}

/// Sends one datagram to each of [`PORTS`] and says which sockets got it.
fn reachable(net: &Net, sockets: &[UdpSocket]) -> Vec<bool> {
    for s in sockets {
        received(s);
    }
    let stop = AtomicBool::new(false);
    net.traffic(1, &stop);
    std::thread::sleep(Duration::from_millis(100));
    sockets.iter().map(|s| received(s) > 0).collect()
}

/// A scrape of `--metrics 127.0.0.1:9470`, with curl in the firewall's namespace.
fn metrics(net: &Net) -> String {
    let args = ["-sS", "--max-time", "10", "http://127.0.0.1:9470/metrics"];
    tool_with(net.pair.fw.command("curl"), "curl", &args)
}

/// Every logged event, checked against the rules of the generation that judged it; returns
/// how many there are and the highest generation seen.
fn check_events(log: &Path) -> (u64, u64) {
    let text = std::fs::read_to_string(log).expect("event log");
    let (mut events, mut highest) = (0, 0);
    for line in text.lines() {
        let event: serde_json::Value = serde_json::from_str(line).expect("a JSON event");
        let generation = event["generation"].as_u64().expect("generation");
        let rule = event["rule"].as_str().expect("rule");
        let port = event["dst_port"].as_u64().expect("dst_port") as u16;
        assert!(generation >= 1, "an event of an unknown generation: {line}");
        let ports = rule_ports(generation, rule).unwrap_or_else(|| {
            panic!("rule {rule} is not a rule of generation {generation}: {line}")
        });
        assert!(
            ports.contains(&port),
            "rule {rule} does not drop port {port}: {line}"
        );
        assert_eq!(event["verdict"], "DROP", "{line}");
        events += 1;
        highest = highest.max(generation);
    }
    (events, highest)
}

/// Every captured packet, checked against the rules of the generation its comment names
/// (`rule=NAME id=N`, with ` generation=G` after a reload); returns how many there are.
fn check_capture(path: &Path) -> u64 {
    let mut reader =
        PcapNgReader::new(std::fs::File::open(path).expect("capture")).expect("pcapng");
    let mut packets = 0;
    while let Some(block) = reader.next_block() {
        let Block::EnhancedPacket(epb) = block.expect("a whole block") else {
            continue;
        };
        let comment = epb
            .options
            .iter()
            .find_map(|o| match o {
                EnhancedPacketOption::Comment(c) => Some(c.to_string()),
                _ => None,
            })
            .expect("a rule comment");
        let field = |key: &str| {
            comment
                .split(' ')
                .find_map(|w| w.strip_prefix(key).map(str::to_string))
        };
        let name = field("rule=").expect("rule=");
        let generation: u64 = field("generation=").map_or(1, |g| g.parse().expect("a number"));
        // Ethernet (14) + IPv4 without options (20), then the UDP destination port.
        let port = u16::from_be_bytes([epb.data[36], epb.data[37]]);
        let ports = rule_ports(generation, &name)
            .unwrap_or_else(|| panic!("{name} is not a rule of generation {generation}"));
        assert!(ports.contains(&port), "{comment}: port {port}");
        packets += 1;
    }
    packets
}

#[test]
fn fifty_reloads_under_load_keep_the_common_port_closed_and_name_each_rule_by_its_generation() {
    if !root_or_skip() {
        return;
    }
    const RELOADS: u64 = 50;
    let net = Net::create("rl-fifty");
    net.write_rules(FILE_A);
    let sockets = net.sockets();
    let run = net.start(&[]);
    let stop = AtomicBool::new(false);
    let stop_receiving = AtomicBool::new(false);
    let mut took_ms: Vec<(f64, f64, f64)> = Vec::new();
    let (sent, got) = std::thread::scope(|scope| {
        // The sockets are read as the datagrams come, so none overflows.
        let receivers: Vec<_> = sockets
            .iter()
            .map(|s| scope.spawn(|| receive_until(s, &stop_receiving)))
            .collect();
        // At most 2 minutes of traffic: 4 datagrams every ~0.5 ms.
        let traffic = scope.spawn(|| net.traffic(240_000, &stop));
        std::thread::sleep(Duration::from_millis(200));
        for n in 0..RELOADS {
            let next = if n % 2 == 0 { FILE_B } else { FILE_A };
            net.write_rules(next);
            let (ok, stdout, stderr) = net.reload();
            assert!(ok, "reload {n} failed: {stderr}");
            assert!(
                stdout.contains(&format!("generation {} in force on fw0", n + 2)),
                "{stdout}"
            );
            let last = &net.status()["reload"]["last"];
            let ms = |key: &str| last[key].as_f64().unwrap_or(0.0);
            took_ms.push((ms("took_ms"), ms("load_ms"), ms("swap_ms")));
        }
        std::thread::sleep(Duration::from_millis(200));
        stop.store(true, Ordering::Relaxed);
        let sent = traffic.join().expect("traffic thread");
        // Let the last datagrams and records arrive.
        std::thread::sleep(Duration::from_millis(500));
        stop_receiving.store(true, Ordering::Relaxed);
        let got: Vec<u64> = receivers
            .into_iter()
            .map(|r| r.join().expect("receiver thread"))
            .collect();
        (sent, got)
    });
    assert_eq!(
        got[2], 0,
        "the port both rule sets drop received {} datagrams",
        got[2]
    );
    assert_eq!(got[3], sent[3], "the open port lost datagrams");
    assert!(got[0] < sent[0] && got[1] < sent[1], "{got:?} of {sent:?}");

    let status = net.status();
    assert_eq!(generation(&status), RELOADS + 1, "{status}");
    assert_eq!(status["live"], true, "{status}");
    // Counters carried over: `both` keeps its name through every reload, so its hits are
    // the datagrams to its port, but for a hit the program counted in the microseconds of
    // a reload's top-up (see `instance::reload`: at most a few over 50 reloads). The
    // totals, shared by every generation, count every drop the log shows, exactly.
    let both = hits(&status, 2);
    assert!(
        both <= sent[2] && sent[2] - both <= 5,
        "{both} of {}: {status}",
        sent[2]
    );
    let counters = &status["counters"];
    let dropped = counters["dropped"].as_u64().unwrap();
    assert_eq!(counters["event_lost"], 0, "{status}");
    assert_eq!(counters["no_reader"], 0, "{status}");
    let (logged, highest) = check_events(&net.file("events.json"));
    assert_eq!(logged, dropped, "every drop is logged once");
    assert_eq!(highest, RELOADS + 1);
    assert_eq!(
        dropped,
        sent[0] + sent[1] + sent[2] - got[0] - got[1],
        "drops are every datagram that did not reach its socket"
    );
    let (ok, stderr) = run.stop();
    assert!(ok, "{stderr}");
    assert_eq!(counters["capture_lost"], 0, "{status}");
    assert_eq!(
        check_capture(&net.file("dropped.pcapng")),
        dropped,
        "every drop is captured"
    );
    eprintln!("{}", reload_times(&took_ms));
}

/// The reload times (total, load, swap in ms) as one line: median and max of each.
fn reload_times(times: &[(f64, f64, f64)]) -> String {
    let stats = |pick: fn(&(f64, f64, f64)) -> f64| {
        let mut v: Vec<f64> = times.iter().map(pick).collect();
        v.sort_by(f64::total_cmp);
        format!(
            "median {:.1} ms, max {:.1} ms",
            v[v.len() / 2],
            v[v.len() - 1]
        )
    };
    format!(
        "reload time under traffic over {} reloads ({} build of xdpsieve): {} in all; rules \
         read and program loaded and verified: {}; counters copied and links swapped: {}",
        times.len(),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        stats(|t| t.0),
        stats(|t| t.1),
        stats(|t| t.2)
    )
}

#[test]
fn sighup_reloads_and_a_broken_file_leaves_the_old_rules_in_force() {
    if !root_or_skip() {
        return;
    }
    let net = Net::create("rl-hup");
    net.write_rules(FILE_A);
    let sockets = net.sockets();
    let mut run = net.start(&["--metrics", "127.0.0.1:9470"]);
    assert!(metrics(&net).contains("xdpsieve_rule_generation 1\n"));
    // Two port rules: compiled, and status says so.
    let matching = |status: &serde_json::Value| status["reload"]["matching"].clone();
    let status = net.status();
    assert!(
        matching(&status)
            .as_str()
            .is_some_and(|m| m.starts_with("compiled to ")),
        "{status}"
    );
    assert_eq!(reachable(&net, &sockets), [false, true, false, true]);

    // SIGHUP does what `reload` does.
    net.write_rules(FILE_B);
    run.signal(libc::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(60);
    while generation(&net.status()) != 2 {
        assert!(
            Instant::now() < deadline,
            "SIGHUP did not reload: {}",
            net.status()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = net.status();
    assert_eq!(status["reload"]["last"]["ok"], true, "{status}");
    assert_eq!(status["reload"]["last"]["by"], "recorder", "{status}");
    assert_eq!(status["rules"][0]["name"], "b-range", "{status}");
    let body = metrics(&net);
    assert!(body.contains("xdpsieve_rule_generation 2\n"), "{body}");
    assert!(body.contains("rule=\"b-range\""), "{body}");
    assert_eq!(reachable(&net, &sockets), [true, false, false, true]);

    // A broken rule file: reload exits non-zero with the reason and nothing changes.
    net.write_rules("[[rule]]\naction = \"dorp\"\n");
    let (ok, _, stderr) = net.reload();
    assert!(!ok, "a broken rule file reloaded");
    assert!(stderr.contains("unknown action `dorp`"), "{stderr}");
    assert!(
        stderr.contains("still filtering with generation 2"),
        "{stderr}"
    );
    let status = net.status();
    assert_eq!(generation(&status), 2, "{status}");
    assert_eq!(status["reload"]["last"]["ok"], false, "{status}");
    let text = net.xdpsieve(&["status", "-i", VethPair::FW_IF]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("rules: generation 2, loaded ")
            && text.contains(", compiled to ")
            && text.contains(": FAILED: reading the rules"),
        "{text}"
    );
    assert!(
        matching(&status)
            .as_str()
            .is_some_and(|m| m.starts_with("compiled to ")),
        "{status}"
    );
    assert_eq!(reachable(&net, &sockets), [true, false, false, true]);

    // A missing rule file too.
    std::fs::remove_file(net.file("rules.toml")).expect("removing the rules");
    let (ok, _, stderr) = net.reload();
    assert!(!ok && stderr.contains("rules.toml"), "{stderr}");
    assert_eq!(reachable(&net, &sockets), [true, false, false, true]);
    let (ok, stderr) = run.stop();
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("xdpsieve: reloaded: generation 2 in force on fw0"),
        "{stderr}"
    );
    assert!(
        stderr.contains("xdpsieve: reload failed; still filtering with generation 2"),
        "{stderr}"
    );
}

#[test]
fn reload_works_on_the_pinned_state_when_the_recorder_was_killed() {
    if !root_or_skip() {
        return;
    }
    let net = Net::create("rl-kill");
    net.write_rules(FILE_A);
    let sockets = net.sockets();
    let run = net.start(&[]);
    assert_eq!(reachable(&net, &sockets), [false, true, false, true]);
    run.kill();
    let before = net.status();
    assert_eq!(before["live"], false, "{before}");
    assert_eq!(before["in_force"], true, "{before}");
    let both_before = hits(&before, 2);

    net.write_rules(FILE_B);
    let (ok, stdout, stderr) = net.reload();
    assert!(ok, "{stderr}");
    assert!(stdout.contains("generation 2 in force on fw0"), "{stdout}");
    let status = net.status();
    assert_eq!(status["live"], false, "{status}");
    assert_eq!(status["reload"]["last"]["by"], "reload", "{status}");
    assert_eq!(reachable(&net, &sockets), [true, false, false, true]);
    // `both` kept its counts and counted on.
    assert_eq!(hits(&net.status(), 2), both_before + 1);

    // And a broken file changes nothing there either.
    net.write_rules("not toml [");
    let (ok, _, stderr) = net.reload();
    assert!(!ok, "{stderr}");
    assert_eq!(generation(&net.status()), 2);
    assert_eq!(reachable(&net, &sockets), [true, false, false, true]);

    // A new run takes the reloaded firewall over: the next generation, `both` counting on.
    let both_before = hits(&net.status(), 2);
    net.write_rules(FILE_A);
    let run = net.start(&[]);
    let status = net.status();
    assert_eq!(generation(&status), 3, "{status}");
    assert_eq!(status["rules"][0]["name"], "a-range", "{status}");
    assert_eq!(reachable(&net, &sockets), [false, true, false, true]);
    assert_eq!(hits(&net.status(), 2), both_before + 1);
    let (ok, stderr) = run.stop();
    assert!(
        ok && stderr.contains("took over the firewall left on fw0"),
        "{stderr}"
    );
}

#[test]
fn with_perf_buffers_the_new_rules_write_into_the_same_buffers() {
    if !root_or_skip() {
        return;
    }
    let net = Net::create("rl-perf");
    net.write_rules(FILE_A);
    let sockets = net.sockets();
    let run = net.start(&["--transport", "perf"]);
    assert_eq!(reachable(&net, &sockets), [false, true, false, true]);
    net.write_rules(FILE_B);
    let (ok, stdout, stderr) = net.reload();
    assert!(ok && stdout.contains("generation 2 in force"), "{stderr}");
    assert_eq!(reachable(&net, &sockets), [true, false, false, true]);
    std::thread::sleep(Duration::from_millis(300));
    let status = net.status();
    let dropped = status["counters"]["dropped"].as_u64().unwrap();
    assert_eq!(dropped, 4, "{status}");
    let (ok, stderr) = run.stop();
    assert!(ok, "{stderr}");
    // Both generations' records reached the same log and capture through the perf buffers
    // the first program's reader opened.
    assert_eq!(check_events(&net.file("events.json")), (4, 2));
    assert_eq!(check_capture(&net.file("dropped.pcapng")), 4);
}

/// SIGHUP and, at once, SIGTERM: the run carries out the reload before it stops (and says
/// so), so the rules of its last moments, and of its summary, are those asked for last.
#[test]
fn a_stop_right_after_sighup_waits_for_the_reload() {
    if !root_or_skip() {
        return;
    }
    let net = Net::create("rl-hupstop");
    net.write_rules(FILE_A);
    let mut run = net.start(&[]);
    net.write_rules(FILE_B);
    run.signal(libc::SIGHUP);
    let (ok, stderr) = run.stop();
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("xdpsieve: reloaded: generation 2"),
        "the reload was not carried out: {stderr}"
    );
    let first_rule = stderr
        .lines()
        .find(|l| l.trim_start().starts_with("rule ") && l.contains(" 1 "))
        .unwrap_or_default();
    assert!(
        first_rule.contains("b-range"),
        "the summary's first rule is not the new file's: {stderr}"
    );
}
