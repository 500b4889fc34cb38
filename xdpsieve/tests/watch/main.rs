//! The watcher end to end: the real `xdpsieve` binary on a veth in a namespace the test
//! creates, the interface deleted and created again, its program detached with bpftool,
//! its rx queues grown with ethtool, and real datagrams to real sockets behind the firewall
//! to show what the rules drop stays dropped, and that the divergence check notices
//! traffic that reaches the host past the program.
//!
//! Two kernel behaviours decide what can be shown, and the tests measure both before they
//! judge (see `tests/README.md`): whether veth runs the program on rx queues enabled after
//! attach (kernels differ), and whether packets that `bpf_redirect_peer` delivers past XDP
//! count in the interface's rx_packets (recent kernels). Each prints what it found.
//!
//! They need root; under `CI` they fail rather than skip when they cannot run.

mod bypass;
mod divergence;

use std::{
    io::{BufRead as _, BufReader},
    net::{SocketAddr, UdpSocket},
    path::Path,
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use xdpsieve_netns::{VethOptions, VethPair};
use xdpsieve_testkit::gate::root_or_skip;
use xdpsieve_testkit::tempdir::TempDir;
use xdpsieve_testkit::tool::tool_with;

const BINARY: &str = env!("CARGO_BIN_EXE_xdpsieve");
/// The rules drop datagrams to this port...
const DROPPED_PORT: u16 = 7777;
/// ...and pass these, which proves traffic flows at all.
const PASSED_PORT: u16 = 7778;

/// A running `xdpsieve run` whose stderr is collected line by line as it comes.
struct Running {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Running {
    fn start(net: &VethPair, extra: &[&str], env: &[(&str, &str)]) -> Running {
        let mut child = net
            .fw
            .command(BINARY)
            .args(["run", "-i", VethPair::FW_IF, "--drop"])
            .arg(format!("udp dst port {DROPPED_PORT}"))
            .args(extra)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting xdpsieve");
        let stderr = child.stderr.take().expect("piped stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().expect("lines").push(line);
            }
        });
        let running = Running { child, lines };
        running.wait_for("xdpsieve: filtering on", Duration::from_secs(20));
        // Published for `xdpsieve status` just before the watcher starts.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !status(net).contains("health:") {
            assert!(Instant::now() < deadline, "no health in status");
            std::thread::sleep(Duration::from_millis(25));
        }
        running
    }

    /// Waits for a stderr line containing `text`; returns it and how long it took.
    fn wait_for(&self, text: &str, timeout: Duration) -> (String, Duration) {
        let start = Instant::now();
        loop {
            if let Some(line) = self.lines().into_iter().find(|l| l.contains(text)) {
                return (line, start.elapsed());
            }
            assert!(
                start.elapsed() < timeout,
                "no line with `{text}` within {timeout:?}; stderr so far:\n{}",
                self.lines().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("lines").clone()
    }

    /// SIGINT, then the exit status and the whole stderr.
    fn stop(mut self) -> (bool, String) {
        // SAFETY: kill on the PID of a child we started and have not reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let status = self.child.wait().expect("waiting for xdpsieve");
        // The reader thread ends with the pipe; give it a moment to take the last lines.
        std::thread::sleep(Duration::from_millis(100));
        (status.success(), self.lines().join("\n"))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // Killed by PID if a failed assertion left it running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn status(net: &VethPair) -> String {
    let out = net
        .fw
        .command(BINARY)
        .arg("status")
        .output()
        .expect("xdpsieve status");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Sockets on the dropped and the passed port, in the firewall's namespace.
fn sockets(net: &VethPair) -> (UdpSocket, UdpSocket) {
    net.fw
        .run(|| {
            let bind = |port| -> std::io::Result<UdpSocket> {
                let s = UdpSocket::bind(SocketAddr::new(VethPair::FW_V4.into(), port))?;
                s.set_read_timeout(Some(Duration::from_millis(200)))?;
                Ok(s)
            };
            Ok::<_, std::io::Error>((bind(DROPPED_PORT)?, bind(PASSED_PORT)?))
        })
        .expect("entering namespace")
        .expect("binding sockets")
}

fn received(socket: &UdpSocket) -> usize {
    let mut buf = [0u8; 2048];
    let mut n = 0;
    while socket.recv(&mut buf).is_ok() {
        n += 1;
    }
    n
}

/// Sends `count` datagrams to `port`, each from a new source port: the peer's transmit
/// queue (and so veth's receiving queue) is chosen by the flow hash, so they spread over
/// every queue the pair has.
fn send(net: &VethPair, port: u16, count: u16) {
    send_quietly(net, port, count);
    // Frames in flight on a busy machine.
    std::thread::sleep(Duration::from_millis(300));
}

/// [`send`] without waiting for the frames to arrive.
fn send_quietly(net: &VethPair, port: u16, count: u16) {
    net.peer
        .run(|| {
            for i in 0..count {
                let s = UdpSocket::bind(SocketAddr::new(VethPair::PEER_V4.into(), 0))?;
                s.send_to(&i.to_be_bytes(), (VethPair::FW_V4, port))?;
                if i % 32 == 31 {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
            Ok::<_, std::io::Error>(())
        })
        .expect("entering namespace")
        .expect("sending");
}

/// The dropped port gets nothing and the passed port everything.
fn assert_filtered(net: &VethPair, count: u16) {
    let (dropped, passed) = sockets(net);
    send(net, DROPPED_PORT, count);
    send(net, PASSED_PORT, count);
    assert_eq!(
        received(&dropped),
        0,
        "datagrams to the dropped port arrived"
    );
    assert_eq!(
        received(&passed),
        usize::from(count),
        "passed datagrams lost"
    );
}

fn tool(net: &VethPair, program: &str, args: &[&str]) -> String {
    tool_with(net.fw.command(program), program, args)
}

#[test]
fn deleted_interface_is_reported_and_reattached_when_it_comes_back() {
    if !root_or_skip() {
        return;
    }
    let net = VethPair::create("wdel", None).expect("namespaces");
    let fw = Running::start(&net, &[], &[]);
    assert_filtered(&net, 20);

    // Deleting the peer takes fw0 with it.
    net.peer
        .ip(&["link", "del", VethPair::PEER_IF])
        .expect("deleting the veth");
    let (_, took) = fw.wait_for(
        "WARNING: fw0 was deleted; filtering stopped on it",
        Duration::from_secs(3),
    );
    assert!(took < Duration::from_secs(2), "noticed after {took:?}");
    assert!(status(&net).contains("health: interface gone"));

    net.add_link(&VethOptions::default())
        .expect("creating the veth again");
    let (line, _) = fw.wait_for("fw0 is back (ifindex", Duration::from_secs(3));
    assert!(line.ends_with("re-attached"), "{line}");
    let shown = status(&net);
    assert!(shown.contains("health: filtering"), "{shown}");
    // Sent after the message: the rules hold on the new interface.
    assert_filtered(&net, 20);

    let (ok, stderr) = fw.stop();
    assert!(ok, "{stderr}");
    assert!(!stderr.contains("bypassing"), "{stderr}");
}

/// The XDP link on fw0: (link id, program id), from bpftool's view of every link.
fn xdp_link(net: &VethPair) -> (u64, u64) {
    let shown = net
        .fw
        .ip(&["-d", "link", "show", "dev", VethPair::FW_IF])
        .expect("ip link show");
    let program: u64 = shown
        .split_whitespace()
        .skip_while(|w| *w != "prog/xdp")
        .nth(2)
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no XDP program on fw0: {shown}"));
    let links: serde_json::Value =
        serde_json::from_str(&tool(net, "bpftool", &["-j", "link", "show"])).expect("bpftool");
    let link = links
        .as_array()
        .into_iter()
        .flatten()
        .find(|l| l["type"] == "xdp" && l["prog_id"].as_u64() == Some(program))
        .and_then(|l| l["id"].as_u64())
        .unwrap_or_else(|| panic!("no XDP link runs program {program}: {links}"));
    (link, program)
}

#[test]
fn detach_from_outside_is_reported_and_shown_in_status_and_metrics() {
    if !root_or_skip() {
        return;
    }
    let net = VethPair::create("wdet", None).expect("namespaces");
    let fw = Running::start(&net, &["--metrics", "127.0.0.1:9470"], &[]);
    let (link, _) = xdp_link(&net);
    // What an operator does to a bpf_link attachment (`ip link set xdp off` cannot).
    tool(
        &net,
        "bpftool",
        &["link", "detach", "id", &link.to_string()],
    );
    let (_, took) = fw.wait_for(
        "the XDP program on fw0 was detached from outside: fw0 is NOT filtered by xdpsieve",
        Duration::from_secs(3),
    );
    assert!(took < Duration::from_secs(2), "noticed after {took:?}");
    let shown = status(&net);
    assert!(shown.contains("health: detached from outside"), "{shown}");
    let metrics = tool(&net, "curl", &["-s", "http://127.0.0.1:9470/metrics"]);
    assert!(
        metrics.contains(
            "xdpsieve_interface_filtering{interface=\"fw0\",state=\"detached_from_outside\"} 0"
        ),
        "{metrics}"
    );
    // Not fought over: xdpsieve leaves the interface alone and says so once.
    std::thread::sleep(Duration::from_millis(1500));
    let (ok, stderr) = fw.stop();
    assert!(ok, "{stderr}");
    assert_eq!(
        stderr.matches("detached from outside").count(),
        1,
        "{stderr}"
    );
    assert!(!xdp_attached_any(&net), "xdpsieve attached again by itself");
}

fn xdp_attached_any(net: &VethPair) -> bool {
    net.fw
        .ip(&["-d", "link", "show", "dev", VethPair::FW_IF])
        .map(|out| out.contains("prog/xdp"))
        .unwrap_or(false)
}

/// The veth with one rx queue of four, grown to four while xdpsieve runs.
fn grow_queues(net: &VethPair) {
    // fw0 first: with XDP on it, its rx queues must cover the peer's tx queues.
    net.fw
        .set_channels(VethPair::FW_IF, &["rx", "4"])
        .expect("growing fw0's rx queues");
}

fn spread_sender(net: &VethPair) {
    net.peer
        .set_channels(VethPair::PEER_IF, &["tx", "4"])
        .expect("growing peer0's tx queues");
}

/// The receive queues of the captured packets, per tshark (pcapng `epb_queue`).
fn captured_queues(capture: &Path) -> std::collections::BTreeSet<u32> {
    let path = capture.to_str().expect("utf-8 path");
    let args = ["-r", path, "-T", "fields", "-e", "frame.interface_queue"];
    tool_with(Command::new("tshark"), "tshark", &args)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

#[test]
fn grown_queues_are_reattached_and_every_queue_filters() {
    if !root_or_skip() {
        return;
    }
    let options = VethOptions {
        rx_queues: Some((1, 4)),
        ..VethOptions::default()
    };
    let net = VethPair::create_with("wq", &options).expect("namespaces");
    let scratch = TempDir::new("watch-queues");
    let capture = scratch.file("drops.pcapng");
    let fw = Running::start(
        &net,
        &[
            "--format",
            "pcapng",
            "-w",
            capture.to_str().expect("utf-8 path"),
        ],
        &[],
    );
    // Datagrams to the dropped port all the while the link moves to the twin program: the
    // move must leave no moment without the program on the queue they use (queue 0, as
    // the peer has one tx queue until `spread_sender`).
    let (dropped, _passed) = sockets(&net);
    let stop = AtomicBool::new(false);
    let sent = std::thread::scope(|scope| {
        let sender = scope.spawn(|| {
            let mut sent = 0u32;
            while !stop.load(Ordering::Relaxed) && sent < 100_000 {
                send_quietly(&net, DROPPED_PORT, 50);
                sent += 50;
            }
            sent
        });
        grow_queues(&net);
        // How soon is the watcher's poll period, not a bound to assert on a shared, busy
        // machine (it once took 2.05 s under the full suite); what must hold is that
        // nothing to the dropped port arrived meanwhile, checked below.
        let (_, took) = fw.wait_for(
            "fw0 has 4 rx queues now (was 1); re-attached so every queue runs the firewall",
            Duration::from_secs(20),
        );
        eprintln!("the watcher noticed the new queues after {took:?}");
        std::thread::sleep(Duration::from_millis(200));
        stop.store(true, Ordering::Relaxed);
        sender.join().expect("sender")
    });
    assert!(sent > 0);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        received(&dropped),
        0,
        "datagrams to the dropped port arrived while the program moved"
    );
    drop((dropped, _passed));
    spread_sender(&net);
    assert_filtered(&net, 200);
    let (ok, stderr) = fw.stop();
    assert!(ok, "{stderr}");
    assert!(!stderr.contains("bypassing"), "{stderr}");
    let queues = captured_queues(&capture);
    assert_eq!(
        queues,
        (0..4).collect(),
        "the dropped datagrams did not arrive on every queue"
    );
}
