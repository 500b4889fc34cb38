//! Hostile clients against `--metrics`: the real binary runs in a namespace the test creates,
//! attached to its veth with a drop rule and serving metrics on that namespace's loopback.
//! The clients (absurd Content-Length, huge headers, garbage, a header dribbler, 1000 idle
//! connections, a reader that never reads) work from a thread that entered the namespace.
//! Afterwards the process must be alive, `/metrics` must answer with the counters, and the
//! firewall must still drop what its rule drops, at a real socket behind it.
//!
//! Needs root; under `CI` it fails rather than skips when it cannot run.

mod common;
use common::root_or_skip;

use std::{
    io::{ErrorKind, Read, Write},
    net::{Shutdown, SocketAddr, TcpStream, UdpSocket},
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use xdpsieve::netns::VethPair;

const BINARY: &str = env!("CARGO_BIN_EXE_xdpsieve");
const METRICS: &str = "127.0.0.1:9471";
const DROPPED_PORT: u16 = 7001;
const ALLOWED_PORT: u16 = 7002;
/// The server's limits (metrics::Limits::default()), as a client sees them.
const MAX_CONNECTIONS: usize = 64;
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(3);
const CONNECTION_LIFETIME_AND_GRACE: Duration = Duration::from_secs(11);
const IDLE_CONNECTIONS: usize = 1000;
const FILLER_PORTS: std::ops::Range<u16> = 8000..8060;

/// `xdpsieve run` in the firewall namespace, killed (by PID) on drop if still running.
struct Firewall {
    child: Option<Child>,
}

impl Firewall {
    fn start(net: &VethPair) -> Firewall {
        let child = net
            .fw
            .command(BINARY)
            .args(["run", "-i", VethPair::FW_IF])
            .args(["--drop", &format!("udp dst port {DROPPED_PORT}")])
            // Rules that never match, for a response larger than the server's buffers.
            .args(FILLER_PORTS.flat_map(|p| ["--pass".to_string(), format!("udp dst port {p}")]))
            .args(["--metrics", METRICS])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting xdpsieve");
        let mut fw = Firewall { child: Some(child) };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            assert!(fw.alive(), "xdpsieve exited before attaching");
            let status = net
                .fw
                .command(BINARY)
                .args(["status", "--json"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).contains("\"live\": true"))
                .unwrap_or(false);
            if status {
                return fw;
            }
            assert!(Instant::now() < deadline, "xdpsieve did not start in 20 s");
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    fn alive(&mut self) -> bool {
        let child = self.child.as_mut().expect("running");
        matches!(child.try_wait(), Ok(None))
    }

    /// SIGINT, then the exit status and stderr.
    fn stop(mut self) -> (std::process::ExitStatus, String) {
        let mut child = self.child.take().expect("running");
        // SAFETY: kill on the PID of a child we started and have not reaped.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let mut stderr = String::new();
        let _ = child
            .stderr
            .take()
            .map(|mut e| e.read_to_string(&mut stderr));
        (child.wait().expect("waiting for xdpsieve"), stderr)
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

/// A line of /proc/PID/status, as a number.
fn proc_status(pid: u32, field: &str) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("reading status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("reading fds")
        .count()
}

fn connect() -> std::io::Result<TcpStream> {
    let addr: SocketAddr = METRICS.parse().expect("address");
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    Ok(stream)
}

/// Reads until the server closes (EOF or reset) or `limit` passes; the bool says it closed.
fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return (got, true),
        }
    }
    (got, false)
}

/// Sends `request` (the server may cut it short) and returns what came back before the close.
fn exchange(request: &[u8]) -> String {
    let mut stream = connect().expect("connecting to the metrics port");
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    // A server that answers early and closes makes the rest of the write fail: expected.
    let _ = stream.write_all(request);
    let (got, closed) = read_until_closed(&mut stream, Duration::from_secs(8));
    let text = String::from_utf8_lossy(&got).into_owned();
    assert!(closed, "the server kept the connection open after: {text}");
    text
}

/// One scrape; the status code and the body.
fn scrape() -> std::io::Result<(u16, String)> {
    let mut stream = connect()?;
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: fw\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let code = response
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {response:?}")))?;
    Ok((code, response))
}

/// Scrapes until one answers, for at most `limit`; how long it took and the response.
fn scrape_within(limit: Duration) -> (Duration, String) {
    let start = Instant::now();
    loop {
        match scrape() {
            Ok((200, body)) => return (start.elapsed(), body),
            other => assert!(
                start.elapsed() < limit,
                "no scrape answered within {limit:?}: last {other:?}"
            ),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The status line of a response, for messages.
fn status_line(response: &str) -> &str {
    response.lines().next().unwrap_or("")
}

/// What a request that may be answered with a 4xx or just closed expects.
const CLOSED_OR_4XX: &str = "closed, or a 4xx";

fn one_shot_hostile_requests() {
    let cases: [(&str, Vec<u8>, &str); 7] = [
        (
            "Content-Length past u64's limit",
            b"GET /metrics HTTP/1.1\r\nHost: fw\r\nContent-Length: 18446744073709551615\r\n\r\n"
                .to_vec(),
            // hyper's parser refuses it (as 431: its "too large" error) before we see it.
            "HTTP/1.1 4",
        ),
        (
            "huge Content-Length, no body",
            b"GET /metrics HTTP/1.1\r\nHost: fw\r\nContent-Length: 18446744073709551613\r\n\r\n"
                .to_vec(),
            "HTTP/1.1 400",
        ),
        (
            "POST announcing a terabyte",
            b"POST /metrics HTTP/1.1\r\nHost: fw\r\nContent-Length: 1000000000000\r\n\r\nabc"
                .to_vec(),
            "HTTP/1.1 405",
        ),
        (
            "chunked body that never ends",
            [
                b"GET /metrics HTTP/1.1\r\nHost: fw\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
                b"ffffffff\r\n".repeat(1000),
            ]
            .concat(),
            "HTTP/1.1 400",
        ),
        (
            "1 MiB header",
            [
                b"GET /metrics HTTP/1.1\r\nHost: fw\r\nX-Big: ".to_vec(),
                vec![b'a'; 1 << 20],
                b"\r\n\r\n".to_vec(),
            ]
            .concat(),
            "HTTP/1.1 431",
        ),
        (
            "10,000 small headers",
            [
                b"GET /metrics HTTP/1.1\r\nHost: fw\r\n".to_vec(),
                b"X: y\r\n".repeat(10_000),
                b"\r\n".to_vec(),
            ]
            .concat(),
            "HTTP/1.1 431",
        ),
        (
            "an HTTP/2 preface",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
            // An HTTP/1-only hyper may close without an answer.
            CLOSED_OR_4XX,
        ),
    ];
    for (what, request, expected) in cases {
        let response = exchange(&request);
        let refused = if expected == CLOSED_OR_4XX {
            response.is_empty() || response.starts_with("HTTP/1.1 4")
        } else {
            response.starts_with(expected)
        };
        assert!(
            refused,
            "{what}: expected {expected:?}, got {:?}",
            status_line(&response)
        );
    }
    // Garbage: binary noise from a fixed-seed generator, then the same with CRLFs in it.
    let mut state: u32 = 0x2545_f491;
    let mut noise = vec![0u8; 64 * 1024];
    for byte in noise.iter_mut() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        *byte = state as u8;
    }
    let mut lines = noise.clone();
    for i in (0..lines.len()).step_by(37) {
        lines[i] = b'\n';
    }
    for (what, request) in [("noise", noise), ("noise with line breaks", lines)] {
        let response = exchange(&request);
        assert!(
            response.is_empty() || response.starts_with("HTTP/1.1 4"),
            "{what}: got {:?}",
            status_line(&response)
        );
    }
}

/// Sends a request head one byte every 300 ms: the server must close it at its header read
/// timeout, not wait for the client.
fn header_dribbler_is_cut_off() {
    let mut stream = connect().expect("connecting");
    stream.set_nonblocking(true).expect("nonblocking");
    let start = Instant::now();
    let head = b"GET /metrics HTTP/1.1\r\nHost: fw\r\nX-Slow: ".to_vec();
    let limit = HEADER_READ_TIMEOUT + Duration::from_secs(4);
    let mut buf = [0u8; 1024];
    let mut closed = false;
    for byte in head.iter().chain(std::iter::repeat(&b'z')) {
        if start.elapsed() > limit {
            break;
        }
        if stream.write(&[*byte]).is_err() {
            closed = true;
            break;
        }
        match stream.read(&mut buf) {
            Ok(_) => {
                closed = true;
                break;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let took = start.elapsed();
    assert!(
        closed,
        "a header dribbler was still connected after {took:?}"
    );
    assert!(
        took >= HEADER_READ_TIMEOUT - Duration::from_millis(500),
        "{took:?}"
    );
}

/// Pipelines thousands of scrapes and never reads the answers: the server blocks writing to
/// it, then must drop it at the end of the connection's lifetime.
fn start_slow_reader() -> TcpStream {
    let mut stream = connect().expect("connecting");
    stream
        .set_write_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let request = b"GET /metrics HTTP/1.1\r\nHost: fw\r\n\r\n".repeat(20_000);
    // The server stops reading once its writes block: a short write is the expected end.
    let _ = stream.write_all(&request);
    stream
}

fn slow_reader_was_dropped(mut stream: TcpStream) {
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let (got, closed) = read_until_closed(&mut stream, Duration::from_secs(10));
    assert!(
        closed,
        "the server still served a reader that never read, {} bytes buffered",
        got.len()
    );
    let answered = got.windows(15).filter(|w| w == b"HTTP/1.1 200 OK").count();
    assert!(
        answered < 20_000,
        "all 20,000 pipelined scrapes were answered"
    );
}

/// Opens up to `count` connections that send nothing, within 30 s.
fn open_idle(count: usize) -> Vec<TcpStream> {
    let start = Instant::now();
    let mut idle = Vec::with_capacity(count);
    for _ in 0..count {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "opening connections is too slow"
        );
        if let Ok(stream) = connect() {
            idle.push(stream);
        }
    }
    assert!(
        idle.len() >= count * 9 / 10,
        "only {} of {count} connections opened",
        idle.len()
    );
    idle
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
    let fresh = open_idle(MAX_CONNECTIONS);
    std::thread::sleep(Duration::from_millis(200));
    let (took, _) = scrape_within(HEADER_READ_TIMEOUT - Duration::from_secs(1));
    eprintln!("all {MAX_CONNECTIONS} slots idle: scrape in {took:?}");

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
        fds <= fds_before + MAX_CONNECTIONS + 8,
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
            let wait = CONNECTION_LIFETIME_AND_GRACE + Duration::from_secs(1);
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
