//! The sd_notify protocol, as systemd's end of `NOTIFY_SOCKET` sees it: a unix datagram
//! socket the test binds, and the real `xdpsieve run` in a veth sandbox told about it.

use std::{
    os::unix::net::UnixDatagram,
    path::Path,
    process::Stdio,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use xdpsieve_netns::VethPair;

use xdpsieve_testkit::{
    child::Firewall,
    fwnet::{DROPPED_PORT, Net},
    gate::root_or_skip,
    tempdir::TempDir,
    tool::text,
    udp::received,
};

use crate::BINARY;

/// systemd's end of `NOTIFY_SOCKET`: every datagram received, in order, on a thread until
/// dropped.
struct Listener {
    messages: Arc<Mutex<Vec<String>>>,
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Listener {
    fn bind(path: &Path) -> Listener {
        let socket = UnixDatagram::bind(path).expect("binding the notify socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        let messages = Arc::new(Mutex::new(Vec::new()));
        let done = Arc::new(AtomicBool::new(false));
        let thread = {
            let (messages, done) = (Arc::clone(&messages), Arc::clone(&done));
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 4096];
                while !done.load(Ordering::Relaxed) {
                    if let Ok(n) = socket.recv(&mut buf) {
                        let message = String::from_utf8_lossy(&buf[..n]).into_owned();
                        messages.lock().expect("lock").push(message);
                    }
                }
            })
        };
        Listener {
            messages,
            done,
            thread: Some(thread),
        }
    }

    fn messages(&self) -> Vec<String> {
        self.messages.lock().expect("lock").clone()
    }

    /// Waits up to `limit` for a message that `wanted` accepts, after the first `skip`.
    fn wait_for(&self, skip: usize, limit: Duration, wanted: impl Fn(&str) -> bool) -> usize {
        let deadline = Instant::now() + limit;
        loop {
            let messages = self.messages();
            if let Some(i) = messages.iter().skip(skip).position(|m| wanted(m)) {
                return skip + i;
            }
            assert!(
                Instant::now() < deadline,
                "no such notification within {limit:?}; got {messages:#?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Whether `message` holds the assignment `line` (messages are `KEY=VALUE` lines).
fn has(message: &str, line: &str) -> bool {
    message.lines().any(|l| l == line)
}

const RULES: &str = "[[rule]]\nname = \"flooded\"\naction = \"drop\"\nprotocol = \"udp\"\n";

/// `xdpsieve run -i fw0 --rules RULES` told to notify `socket`, with `env` besides.
fn start(net: &Net, socket: &Path, rules: &Path, env: &[(&str, &str)]) -> Firewall {
    let mut command = net.command(BINARY);
    command
        .env("NOTIFY_SOCKET", socket)
        .envs(env.iter().copied())
        .args(["run", "-i", VethPair::FW_IF, "--rules"])
        .arg(rules);
    let mut run = Firewall::spawn_command(command, Stdio::null());
    run.wait_until(|| xdpsieve_testkit::child::published(BINARY, &net.pair));
    run
}

#[test]
fn start_reload_and_stop_are_notified_in_order_and_the_watchdog_is_fed() {
    if !root_or_skip() {
        return;
    }
    let net = Net::create(BINARY, "notify");
    let (dropped, _allowed) = net.sockets();
    let tmp = TempDir::new("svc-notify");
    let rules = tmp.file("rules.toml");
    std::fs::write(&rules, format!("{RULES}dst_port = {DROPPED_PORT}\n")).unwrap();
    let socket = tmp.file("notify.sock");
    let listener = Listener::bind(&socket);
    // A watchdog of 0.4 s: fed every 0.2 s.
    let run = start(&net, &socket, &rules, &[("WATCHDOG_USEC", "400000")]);

    let ready = listener.wait_for(0, Duration::from_secs(20), |m| has(m, "READY=1"));
    assert!(
        listener.messages()[ready].contains("STATUS=xdpsieve: filtering on fw0 with 1 rules"),
        "{:?}",
        listener.messages()[ready]
    );
    // The live line, as --stats-interval prints it, every few seconds.
    let status = listener.wait_for(ready, Duration::from_secs(15), |m| {
        m.starts_with("STATUS=xdpsieve: ") && m.contains(" pkt/s (")
    });

    // A reload that goes through: `xdpsieve reload` waits for it and says so.
    std::fs::write(
        &rules,
        format!("{RULES}dst_port = {DROPPED_PORT}\n\n[[rule]]\nname = \"more\"\naction = \"drop\"\nprotocol = \"udp\"\ndst_port = 7999\n"),
    )
    .unwrap();
    let out = net.xdpsieve(&["reload", "-i", VethPair::FW_IF]);
    let (said, err) = text(&out);
    assert!(out.status.success(), "{said}{err}");
    assert!(said.contains("xdpsieve: reloaded:"), "{said}");
    let reloading = listener.wait_for(status, Duration::from_secs(5), |m| has(m, "RELOADING=1"));
    let reloaded = listener.wait_for(reloading, Duration::from_secs(20), |m| has(m, "READY=1"));
    assert!(listener.messages()[reloaded].contains("STATUS=xdpsieve: reloaded:"));

    // A reload that fails: the old rules stay, `xdpsieve reload` exits non-zero, and the
    // service is ready again all the same.
    std::fs::write(&rules, "[[rule]]\nname = \"broken\"\naction = \"maybe\"\n").unwrap();
    let out = net.xdpsieve(&["reload", "-i", VethPair::FW_IF]);
    let (said, err) = text(&out);
    assert!(
        !out.status.success(),
        "a failed reload succeeded: {said}{err}"
    );
    assert!(err.contains("reload failed"), "{err}");
    let failing = listener.wait_for(reloaded + 1, Duration::from_secs(5), |m| {
        has(m, "RELOADING=1")
    });
    let failed = listener.wait_for(failing, Duration::from_secs(20), |m| has(m, "READY=1"));
    assert!(
        listener.messages()[failed].contains("reload failed"),
        "{:?}",
        listener.messages()[failed]
    );
    net.send(DROPPED_PORT, 5);
    assert_eq!(
        received(&dropped),
        0,
        "the old rules went with the failed reload"
    );

    // Fed at its pace meanwhile (twice per timeout).
    std::thread::sleep(Duration::from_millis(600));
    let out = run.stop(libc::SIGTERM);
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let messages = listener.messages();
    let stopping = listener.wait_for(failed, Duration::from_secs(1), |m| has(m, "STOPPING=1"));
    assert_eq!(
        messages
            .iter()
            .position(|m| has(m, "READY=1") || has(m, "WATCHDOG=1")),
        Some(ready),
        "something before READY: {messages:#?}"
    );
    let fed: Vec<usize> = (ready..stopping)
        .filter(|&i| has(&messages[i], "WATCHDOG=1"))
        .collect();
    assert!(
        fed.len() >= 5,
        "the watchdog was fed {} times over the run: {messages:#?}",
        fed.len()
    );
    assert!(
        fed.iter().any(|&i| i > failed),
        "the watchdog stopped being fed: {messages:#?}"
    );
    assert!(
        !messages[stopping + 1..].iter().any(|m| has(m, "READY=1")),
        "{messages:#?}"
    );
    assert!(
        stderr.contains("packets seen by xdpsieve"),
        "no summary: {stderr}"
    );
}

#[test]
fn the_watchdog_of_another_pid_is_not_fed() {
    if !root_or_skip() {
        return;
    }
    let net = Net::create(BINARY, "wdpid");
    let tmp = TempDir::new("svc-wdpid");
    let rules = tmp.file("rules.toml");
    std::fs::write(&rules, format!("{RULES}dst_port = {DROPPED_PORT}\n")).unwrap();
    let socket = tmp.file("notify.sock");
    let listener = Listener::bind(&socket);
    // WATCHDOG_PID names PID 1, not xdpsieve: the watchdog is someone else's.
    let run = start(
        &net,
        &socket,
        &rules,
        &[("WATCHDOG_USEC", "100000"), ("WATCHDOG_PID", "1")],
    );
    listener.wait_for(0, Duration::from_secs(20), |m| has(m, "READY=1"));
    std::thread::sleep(Duration::from_millis(800));
    let out = run.stop(libc::SIGTERM);
    assert!(out.status.success());
    let messages = listener.messages();
    assert!(
        !messages.iter().any(|m| has(m, "WATCHDOG=1")),
        "{messages:#?}"
    );
    assert!(
        messages.iter().any(|m| has(m, "STOPPING=1")),
        "{messages:#?}"
    );
}
