//! `xdpsieve status --top N` and `xdpsieve top` on a real firewall while DNS responses are
//! dropped: the dropping rule comes first with a drop rate, a timed set entry shows with its
//! time left, the same with the recorder killed (the firewall left in force); `top` draws
//! in a terminal (a pseudo-terminal the test opens) and quits on `q`, leaving the terminal
//! as it found it, and refuses without one.

use std::{
    io::Read as _,
    os::{
        fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
        unix::process::CommandExt as _,
    },
    sync::atomic::{AtomicBool, Ordering},
    thread,
};

use serde_json::Value;
use xdpsieve_testkit::{child::Guard, gate::root_or_skip, tempdir::TempDir, tool::tool_with};

use super::*;
use xdpsieve_testkit::child::Firewall;

const RULES: &str = r#"
[[set]]
name = "ban"
prefixes = ["203.0.113.0/24"]

[[rule]]
name = "drop-dns"
action = "drop"
protocol = "udp"
src_port = 53

[[rule]]
name = "drop-banned"
action = "drop"
src = "@ban"
"#;

/// Runs `during` while the peer sends DNS responses to the firewall (at most 60,000, for
/// at most 20 s), and returns what it returned.
fn with_dns_flowing<R: Send>(net: &VethPair, during: impl FnOnce() -> R + Send) -> R {
    let stop = AtomicBool::new(false);
    thread::scope(|scope| {
        let sender = scope.spawn(|| {
            net.peer
                .run(|| {
                    let dns = UdpSocket::bind(SocketAddr::new(VethPair::PEER_V4.into(), 53))?;
                    let deadline = Instant::now() + Duration::from_secs(20);
                    for i in 0..60_000u32 {
                        if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
                            break;
                        }
                        dns.send_to(&dns_response(i as u16), (VethPair::FW_V4, CLIENT_PORT))?;
                        if i % 10 == 9 {
                            thread::sleep(Duration::from_millis(2));
                        }
                    }
                    Ok::<_, std::io::Error>(())
                })
                .expect("entering the peer namespace")
                .expect("sending DNS responses");
        });
        let result = during();
        stop.store(true, Ordering::Relaxed);
        sender.join().expect("the sender thread");
        result
    })
}

/// `xdpsieve ARGS` in the firewall's namespace; its standard output.
fn xdpsieve(net: &VethPair, args: &[&str]) -> String {
    tool_with(net.fw.command(BINARY), "xdpsieve", args)
}

/// The `status --top 5` text and JSON of fw0, read while DNS responses are dropped.
fn top_while_dropping(net: &VethPair) -> (String, Value) {
    let (text, json) = with_dns_flowing(net, || {
        (
            xdpsieve(net, &["status", "--top", "5"]),
            xdpsieve(net, &["status", "-i", "fw0", "--top", "5", "--json"]),
        )
    });
    (
        text,
        serde_json::from_str(&json).expect("status --top --json"),
    )
}

/// The checks both with and without a recorder: the DNS rule first, dropping; the ban.
fn check_top(text: &str, json: &Value, recorder: bool) {
    let m = &json[0];
    assert_eq!(json.as_array().map(Vec::len), Some(1), "{json}");
    assert_eq!(m["interface"], "fw0");
    assert_eq!(m["recorder"], recorder, "{json}");
    let interval = m["interval_s"].as_f64().unwrap();
    assert!((0.9..10.0).contains(&interval), "{json}");
    assert_eq!(m["rules"][0]["name"], "drop-dns", "{json}");
    assert!(
        m["rules"][0]["dropped_pps"].as_f64().unwrap() > 10.0,
        "{json}"
    );
    assert!(
        m["traffic"]["dropped_pps"].as_f64().unwrap() > 10.0,
        "{json}"
    );
    assert_eq!(m["rules"][0]["would_drop_pps"], Value::Null);
    // The DNS source is held within a few dozen of its drops, then counted exactly.
    assert_eq!(m["sources_tracked"], true, "{json}");
    assert_eq!(
        m["sources"][0]["addr"],
        VethPair::PEER_V4.to_string(),
        "{json}"
    );
    assert!(
        m["sources"][0]["dropped_pps"].as_f64().unwrap() > 10.0,
        "{json}"
    );
    let ban = &m["bans"][0];
    assert_eq!(
        (&ban["set"], &ban["prefix"], &ban["origin"]),
        (&"ban".into(), &"198.51.100.7/32".into(), &"runtime".into()),
        "{json}"
    );
    let left = ban["expires_in_ms"].as_u64().unwrap();
    assert!((540_000..=600_000).contains(&left), "{json}");
    assert!(
        m["losses"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["key"] == "capture_lost"),
        "{json}"
    );

    assert!(text.starts_with("fw0: over "), "{text}");
    let state = if recorder {
        "recorder alive"
    } else {
        "no recorder (fail-static)"
    };
    assert!(text.lines().next().unwrap().ends_with(state), "{text}");
    // `  1 drop-dns  drop  DROP/S  PKT/S  BIT/S`, first of the rules, dropping.
    let dns: Vec<&str> = text
        .lines()
        .find(|l| l.contains("drop-dns"))
        .expect("the rule")
        .split_whitespace()
        .collect();
    assert_eq!(&dns[..3], ["1", "drop-dns", "drop"], "{text}");
    assert_ne!(dns[3], "0", "{text}");
    assert!(text.contains("timed set entries (1):"), "{text}");
    assert!(text.contains("198.51.100.7/32"), "{text}");
}

#[test]
fn status_top_lists_the_dropping_rule_and_the_bans_with_and_without_a_recorder() {
    if !root_or_skip() {
        return;
    }
    let net = VethPair::create("top", None).expect("namespaces");
    let tmp = TempDir::new("top");
    let rules = tmp.file("rules.toml");
    std::fs::write(&rules, RULES).expect("rule file");
    let fw = Firewall::start(BINARY, &net, &["--rules", rules.to_str().unwrap()]);
    xdpsieve(
        &net,
        &["set", "add", "ban", "198.51.100.7", "--timeout", "10m"],
    );
    let (text, json) = top_while_dropping(&net);
    check_top(&text, &json, true);

    // The recorder killed, the firewall stays in force: the view reads it the same way.
    let out = fw.stop(libc::SIGKILL);
    assert!(!out.status.success());
    let (text, json) = top_while_dropping(&net);
    check_top(&text, &json, false);
    xdpsieve(&net, &["stop", "-i", "fw0"]);
    assert!(xdpsieve(&net, &["status", "--top", "5"]).contains("no xdpsieve firewall"));
}

#[test]
fn top_refuses_without_a_terminal_and_points_to_status_top() {
    if !root_or_skip() {
        return;
    }
    let out = Command::new(BINARY)
        .args(["top", "-i", "fw0"])
        .stdin(Stdio::null())
        .output()
        .expect("running xdpsieve top");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("is not one"), "{err}");
    assert!(err.contains("xdpsieve status --top N"), "{err}");
}

/// Runs `command` on a new 100x30 pseudo-terminal (its controlling terminal), types `keys`
/// after `wait`, and returns whether it succeeded and all it wrote, within 15 s.
fn in_a_terminal(mut command: Command, wait: Duration, keys: &[u8]) -> (bool, Vec<u8>) {
    let (mut master, mut slave) = (0, 0);
    let size = libc::winsize {
        ws_row: 30,
        ws_col: 100,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty writes two descriptors into the integers given; no name, default
    // terminal settings.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just opened and are owned here only.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let end = |fd: &OwnedFd| Stdio::from(fd.try_clone().expect("dup"));
    command
        .stdin(end(&slave))
        .stdout(end(&slave))
        .stderr(end(&slave));
    // SAFETY: setsid and ioctl are async-signal-safe; the child makes the terminal on its
    // standard input its controlling one, as a login shell's would be.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = Guard::spawn(&mut command).expect("starting in a terminal");
    drop(slave);
    let mut master = std::fs::File::from(master);
    let mut output = Vec::new();
    let (start, mut typed) = (Instant::now(), false);
    let mut buf = [0u8; 65536];
    while start.elapsed() < Duration::from_secs(15) {
        if !typed && start.elapsed() >= wait {
            std::io::Write::write_all(&mut master, keys).expect("typing");
            typed = true;
        }
        let mut poll = libc::pollfd {
            fd: master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd, valid for the call.
        if unsafe { libc::poll(&mut poll, 1, 100) } > 0 {
            match master.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => output.extend_from_slice(&buf[..n]),
            }
        } else if typed && child.try_wait().expect("waiting").is_some() {
            break;
        }
    }
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting") {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "top did not quit"
        );
        thread::sleep(Duration::from_millis(50));
    };
    (status.success(), output)
}

#[test]
fn top_draws_the_dropping_rule_in_a_terminal_and_quits_on_q() {
    if !root_or_skip() {
        return;
    }
    let net = VethPair::create("toptty", None).expect("namespaces");
    let tmp = TempDir::new("toptty");
    let rules = tmp.file("rules.toml");
    std::fs::write(&rules, RULES).expect("rule file");
    let fw = Firewall::start(BINARY, &net, &["--rules", rules.to_str().unwrap()]);
    let mut command = net.fw.command(BINARY);
    command.args(["top", "--interval", "0.5"]);
    let (ok, output) = with_dns_flowing(&net, || {
        in_a_terminal(command, Duration::from_millis(2500), b"q")
    });
    let text = String::from_utf8_lossy(&output);
    assert!(ok, "{text}");
    for drawn in [
        "xdpsieve top",
        "drop-dns",
        "timed set entries (0)",
        "losses:",
    ] {
        assert!(text.contains(drawn), "{drawn} not drawn: {text}");
    }
    // Entered the alternate screen and left it, cursor shown again.
    assert!(text.contains("\x1b[?1049h"), "{text}");
    assert!(text.contains("\x1b[?1049l\x1b[?25h"), "{text}");
    let out = fw.stop(libc::SIGINT);
    assert!(out.status.success());
}
