//! Hostile clients against `--metrics`: the real binary runs in a namespace the test creates,
//! attached to its veth with a drop rule and serving metrics on that namespace's loopback.
//! The clients (absurd Content-Length, huge headers, garbage, a header dribbler, 1000 idle
//! connections, a reader that never reads) work from a thread that entered the namespace.
//! Afterwards the process must be alive, `/metrics` must answer with the counters, and the
//! firewall must still drop what its rule drops, at a real socket behind it.
//!
//! Needs root; under `CI` it fails rather than skips when it cannot run.

mod clients;

use std::{
    net::{Shutdown, SocketAddr, TcpStream, UdpSocket},
    process::Stdio,
    time::{Duration, Instant},
};

use xdpsieve::observe::metrics::{Limits, NICENESS};
use xdpsieve_netns::VethPair;
use xdpsieve_testkit::child;
use xdpsieve_testkit::gate::root_or_skip;

use clients::{
    connect, header_dribbler_is_cut_off, one_shot_hostile_requests, open_idle, scrape_within,
    slow_reader_was_dropped, start_slow_reader,
};

const BINARY: &str = env!("CARGO_BIN_EXE_xdpsieve");
const METRICS: &str = "127.0.0.1:9471";
const DROPPED_PORT: u16 = 7001;
const ALLOWED_PORT: u16 = 7002;

/// The limits `--metrics` serves with.
fn limits() -> Limits {
    Limits::default()
}
const IDLE_CONNECTIONS: usize = 1000;
const FILLER_PORTS: std::ops::Range<u16> = 8000..8060;

/// `xdpsieve run` in the firewall namespace, killed (by PID) on drop if still running.
struct Firewall(child::Firewall);

impl Firewall {
    fn start(net: &VethPair) -> Firewall {
        let mut args = vec!["--drop".to_string(), format!("udp dst port {DROPPED_PORT}")];
        // Rules that never match, for a response larger than the server's buffers.
        args.extend(FILLER_PORTS.flat_map(|p| ["--pass".to_string(), format!("udp dst port {p}")]));
        args.extend(["--metrics".to_string(), METRICS.to_string()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut fw = child::Firewall::spawn(net, BINARY, &args, Stdio::null());
        fw.wait_until(|| child::published(BINARY, net));
        Firewall(fw)
    }

    fn pid(&self) -> u32 {
        self.0.pid()
    }

    fn alive(&mut self) -> bool {
        matches!(self.0.child_mut().try_wait(), Ok(None))
    }

    /// SIGINT if it still runs, then its exit status and stderr.
    fn stop(mut self) -> (std::process::ExitStatus, String) {
        // Once reaped (try_wait saw it exit) its PID may belong to another process.
        if self.alive() {
            self.0.signal(libc::SIGINT);
        }
        let out = self.0.wait_output();
        (
            out.status,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// A line of /proc/PID/status, as a number.
fn proc_status(pid: u32, field: &str) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("reading status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// The niceness of `pid`'s thread named `name`.
fn thread_niceness(pid: u32, name: &str) -> i32 {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("reading tasks");
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).expect("task stat");
        // After the parenthesised name: state is field 3, nice field 19.
        let after_name = stat.rsplit_once(')').expect("stat format").1;
        return after_name
            .split_whitespace()
            .nth(19 - 3)
            .and_then(|n| n.parse().ok())
            .expect("nice field");
    }
    panic!("no thread {name} in process {pid}");
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("reading fds")
        .count()
}

/// Fills the server's connection slots with idle connections, then holds
/// `IDLE_CONNECTIONS` more, and checks that a scrape still gets through and that the
/// process's threads and descriptors stay bounded.
fn idle_flood(pid: u32, threads_before: usize, fds_before: usize) {
    // The test's own descriptors: 1000 sockets need more than the usual 1024 soft limit.
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on a valid struct; only our own soft limit changes.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_cur.max(4096).min(limit.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
    // Every slot taken by a fresh idle connection: the server must evict one for the
    // scrape rather than make it wait for their header timeout.
    let slots = limits().max_connections;
    let fresh = open_idle(slots);
    std::thread::sleep(Duration::from_millis(200));
    let (took, _) = scrape_within(limits().header_read_timeout - Duration::from_secs(1));
    eprintln!("all {slots} slots idle: scrape in {took:?}");

    let flood_start = Instant::now();
    let idle = open_idle(IDLE_CONNECTIONS);
    let flood_took = flood_start.elapsed();
    // The listen backlog (128) may drop a SYN during the flood: one retransmit is 1 s.
    let (took, response) = scrape_within(Duration::from_secs(5));
    // Sampled after the scrape, which the server accepted after all the others.
    let threads = proc_status(pid, "Threads:");
    let fds = open_fds(pid);
    assert!(response.contains("xdpsieve_packets_total"), "{response}");
    assert!(
        threads <= threads_before,
        "threads grew from {threads_before} to {threads} with {} connections",
        idle.len()
    );
    assert!(
        fds <= fds_before + slots + 8,
        "descriptors grew from {fds_before} to {fds}"
    );
    eprintln!(
        "{} idle connections opened in {flood_took:?}: {threads} threads, {fds} fds (from \
         {fds_before}), scrape in {took:?}",
        idle.len()
    );
    for stream in fresh.iter().chain(&idle) {
        let _ = stream.shutdown(Shutdown::Both);
    }
}

/// Sends `count` datagrams to each port from the peer; how many each socket received.
fn udp_through_firewall(net: &VethPair, count: usize) -> (usize, usize) {
    let (dropped, allowed) = net
        .fw
        .run(|| {
            let bind = |port| -> std::io::Result<UdpSocket> {
                let s = UdpSocket::bind(SocketAddr::new(VethPair::FW_V4.into(), port))?;
                s.set_read_timeout(Some(Duration::from_millis(300)))?;
                Ok(s)
            };
            Ok::<_, std::io::Error>((bind(DROPPED_PORT)?, bind(ALLOWED_PORT)?))
        })
        .expect("entering namespace")
        .expect("binding sockets behind the firewall");
    net.peer
        .run(|| {
            let s = UdpSocket::bind(SocketAddr::new(VethPair::PEER_V4.into(), 0))?;
            for _ in 0..count {
                s.send_to(b"must not arrive", (VethPair::FW_V4, DROPPED_PORT))?;
                s.send_to(b"may arrive", (VethPair::FW_V4, ALLOWED_PORT))?;
                std::thread::sleep(Duration::from_millis(2));
            }
            Ok::<_, std::io::Error>(())
        })
        .expect("entering namespace")
        .expect("sending");
    let received = |socket: &UdpSocket| {
        let mut buf = [0u8; 2048];
        let mut n = 0;
        while n < count * 2 && socket.recv(&mut buf).is_ok() {
            n += 1;
        }
        n
    };
    (received(&dropped), received(&allowed))
}

#[test]
fn hostile_metrics_clients_hurt_neither_the_endpoint_nor_the_firewall() {
    if !root_or_skip() {
        return;
    }
    let net = VethPair::create("mhostile", None).expect("namespaces");
    let mut fw = Firewall::start(&net);
    let pid = fw.pid();
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).expect("comm");
    assert_eq!(
        comm.trim(),
        "xdpsieve",
        "nsenter should exec xdpsieve in place"
    );
    assert_eq!(thread_niceness(pid, "metrics"), NICENESS);

    net.fw
        .run(|| {
            scrape_within(Duration::from_secs(5));
            let threads_before = proc_status(pid, "Threads:");
            let fds_before = open_fds(pid);
            one_shot_hostile_requests();
            let slow = start_slow_reader();
            let slow_since = Instant::now();
            idle_flood(pid, threads_before, fds_before);
            header_dribbler_is_cut_off();
            let wait =
                limits().connection_lifetime + limits().shutdown_grace + Duration::from_secs(1);
            if let Some(left) = wait.checked_sub(slow_since.elapsed()) {
                std::thread::sleep(left);
            }
            slow_reader_was_dropped(slow);
            assert!(
                proc_status(pid, "Threads:") <= threads_before,
                "threads did not come back"
            );
        })
        .expect("entering namespace");
    assert!(fw.alive(), "xdpsieve died under hostile metrics clients");

    let (dropped, allowed) = udp_through_firewall(&net, 20);
    assert_eq!(dropped, 0, "datagrams to the dropped port got through");
    assert!(allowed > 0, "nothing reached the allowed port");

    let (_, response) = net
        .fw
        .run(|| scrape_within(Duration::from_secs(5)))
        .expect("entering namespace");
    assert!(
        response.contains("xdpsieve_packets_total{verdict=\"drop\"} 20"),
        "{response}"
    );
    assert!(response.trim_end().ends_with("# EOF"), "{response}");
    assert!(
        response.len() > 16 * 1024,
        "the response should outgrow the server's 16 KiB buffer, it has {} bytes",
        response.len()
    );

    // Stopping is prompt even with connections open, one of them stuck writing.
    let held = net
        .fw
        .run(|| {
            let mut held: Vec<TcpStream> = (0..10).filter_map(|_| connect().ok()).collect();
            held.push(start_slow_reader());
            held
        })
        .expect("entering namespace");
    let stopping = Instant::now();
    let (status, stderr) = fw.stop();
    let took = stopping.elapsed();
    assert!(status.success(), "{stderr}");
    assert!(
        took < Duration::from_secs(3),
        "stopping took {took:?} with {} metrics connections open",
        held.len()
    );
}

#[test]
fn a_metrics_port_in_use_is_refused_with_a_clear_message() {
    if !root_or_skip() {
        return;
    }
    let net = VethPair::create("minuse", None).expect("namespaces");
    let _holder = net
        .fw
        .run(|| std::net::TcpListener::bind(METRICS))
        .expect("entering namespace")
        .expect("taking the metrics port first");
    let args = ["--drop", "udp", "--metrics", METRICS];
    let mut fw = Firewall(child::Firewall::spawn(&net, BINARY, &args, Stdio::null()));
    let deadline = Instant::now() + Duration::from_secs(20);
    while fw.alive() {
        assert!(Instant::now() < deadline, "xdpsieve kept running");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, stderr) = fw.stop();
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot listen for metrics on {METRICS}: address in use"
        )),
        "{stderr}"
    );
    // It exits without leaving its program attached.
    let link = net
        .fw
        .ip(&["-d", "link", "show", "dev", VethPair::FW_IF])
        .expect("ip link");
    assert!(!link.contains("prog/xdp"), "{link}");
}
