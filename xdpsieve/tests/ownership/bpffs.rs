//! An unprivileged user and a world-writable bpffs: a directory planted where xdpsieve
//! keeps its pins does not keep the firewall from starting, and one xdpsieve made and
//! another user renamed does not hide it from `status` and `stop`. Each test runs xdpsieve
//! in a mount namespace of its own with a bpffs and a /run of its own (see
//! `Net::own_mounts`), so what the unprivileged user does there touches nothing else.

use xdpsieve_testkit::fwnet::{ALLOWED_PORT, DROPPED_PORT, Net, READER_TIMEOUT, capture_file};
use xdpsieve_testkit::gate::root_or_skip;
use xdpsieve_testkit::udp::received;

use crate::BINARY;

/// Starts a firewall in `net`, checks it filters, SIGKILLs it, checks it stays in force
/// and that `status` and `stop` find it; `between` runs while the recorder lives.
fn start_kill_and_stop(net: &Net, tag: &str, between: impl FnOnce(&Net)) {
    let (dropped, allowed) = net.sockets();
    let capture = capture_file(tag);
    let run = net.start(
        &["--drop", &format!("udp dst port {DROPPED_PORT}")],
        &capture,
    );
    let pid = run.pid();
    net.send(DROPPED_PORT, 20);
    net.send(ALLOWED_PORT, 10);
    assert_eq!(received(&dropped), 0, "the dropped port was reachable");
    assert_eq!(received(&allowed), 10);
    between(net);
    let s = net.status_json();
    assert_eq!((&s["live"], &s["pid"]), (&true.into(), &pid.into()), "{s}");

    assert!(!run.signal(libc::SIGKILL).status.success());
    std::thread::sleep(READER_TIMEOUT);
    net.send(DROPPED_PORT, 20);
    assert_eq!(received(&dropped), 0, "the firewall went with its recorder");
    let s = net.status_json();
    assert_eq!(
        (&s["live"], &s["in_force"]),
        (&false.into(), &true.into()),
        "{s}"
    );
    let out = net.xdpsieve(&["stop", "-i", "fw0"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && said.contains(&format!("removed the firewall left on fw0 by pid {pid}")),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(net.xdp_program(), None, "still attached after stop");
    net.send(DROPPED_PORT, 5);
    assert_eq!(received(&dropped), 5, "the port is open again after stop");
    let _ = std::fs::remove_file(capture);
}

#[test]
fn a_directory_another_user_planted_in_bpffs_does_not_keep_the_firewall_from_starting() {
    if !root_or_skip() {
        return;
    }
    let mut net = Net::create(BINARY, "planted");
    net.own_mounts("1777");
    let out = net.as_user("nobody", "mkdir", &["/sys/fs/bpf/xdpsieve"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    start_kill_and_stop(&net, "planted", |net| {
        // The pins are somewhere the planted directory has nothing to do with.
        let s = net.status_json();
        let pins = s["pins"]
            .as_str()
            .unwrap_or_else(|| panic!("no pins in {s}"));
        assert!(!pins.starts_with("/sys/fs/bpf/xdpsieve/"), "{pins}");
        // And the user cannot take them away.
        let root = pins.split('/').take(5).collect::<Vec<_>>().join("/");
        let out = net.as_user("nobody", "mv", &[&root, "/sys/fs/bpf/mine"]);
        assert!(!out.status.success(), "nobody renamed {root}");
    });
}

#[test]
fn xdpsieves_directory_renamed_by_another_user_is_still_found() {
    if !root_or_skip() {
        return;
    }
    let mut net = Net::create(BINARY, "renamed");
    // World-writable without the sticky bit: others may rename what is in it.
    net.own_mounts("0777");
    start_kill_and_stop(&net, "renamed", |net| {
        let out = net.as_user(
            "nobody",
            "sh",
            &[
                "-c",
                "mv /sys/fs/bpf/xdpsieve /sys/fs/bpf/moved && mkdir /sys/fs/bpf/xdpsieve",
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
}
