//! Network namespaces are told apart by their own identity, however they are reached: two
//! namespaces outside /run/netns (as container runtimes and `unshare --net=FILE` keep
//! theirs) with an interface of the same name keep their own firewalls, and a firewall
//! whose recorder died in a namespace that still exists is not swept away by a run
//! elsewhere. What a namespace that is gone left behind is removed (its link is defunct).

use std::time::{Duration, Instant};

use xdpsieve_testkit::fwnet::{ALLOWED_PORT, DROPPED_PORT, Net, capture_file, exists};
use xdpsieve_testkit::gate::root_or_skip;
use xdpsieve_testkit::udp::received;

use crate::BINARY;

#[test]
fn two_namespaces_outside_run_netns_keep_their_own_firewalls() {
    if !root_or_skip() {
        return;
    }
    let mut a = Net::create(BINARY, "nsa");
    a.hold_elsewhere();
    let mut b = Net::create(BINARY, "nsb");
    b.hold_elsewhere();
    let (a_dropped, _) = a.sockets();
    let (_, b_dropped) = b.sockets();
    let capture = capture_file("nsab");
    let first = a.start(
        &["--drop", &format!("udp dst port {DROPPED_PORT}")],
        &capture,
    );
    let first_pid = first.pid();
    assert!(!first.signal(libc::SIGKILL).status.success());
    // b drops the other port: if it took a's firewall over, a's port would open.
    let second = b.start(
        &["--drop", &format!("udp dst port {ALLOWED_PORT}")],
        &capture,
    );
    a.send(DROPPED_PORT, 50);
    b.send(ALLOWED_PORT, 20);
    assert_eq!(received(&a_dropped), 0, "a's firewall no longer drops");
    assert_eq!(received(&b_dropped), 0, "b's firewall does not drop");
    let s = a.status_json();
    assert_eq!(
        (&s["live"], &s["in_force"], &s["pid"]),
        (&false.into(), &true.into(), &first_pid.into()),
        "{s}"
    );
    let s = b.status_json();
    assert_eq!(
        (&s["live"], &s["pid"]),
        (&true.into(), &second.pid().into()),
        "{s}"
    );

    // A stop in b stops b's firewall only.
    let out = b.xdpsieve(&["stop", "-i", "fw0"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = second.wait();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("took over"),
        "b took a's firewall over: {stderr}"
    );
    a.send(DROPPED_PORT, 20);
    assert_eq!(received(&a_dropped), 0, "b's stop removed a's firewall");
    assert!(a.xdp_program().is_some());
    let _ = std::fs::remove_file(capture);
}

#[test]
fn a_living_namespaces_firewall_is_not_swept_away_by_a_run_elsewhere() {
    if !root_or_skip() {
        return;
    }
    let mut a = Net::create(BINARY, "living");
    let (a_dropped, _) = a.sockets();
    let capture = capture_file("living");
    let rule = format!("udp dst port {DROPPED_PORT}");
    let first = a.start(&["--drop", &rule], &capture);
    assert!(!first.signal(libc::SIGKILL).status.success());
    // Only a bind mount outside /run/netns keeps a's namespace now: no name, no process.
    a.hold_elsewhere();
    let b = Net::create(BINARY, "elsewhere");
    let run = b.start(&["--drop", &rule], &capture);
    a.send(DROPPED_PORT, 50);
    assert_eq!(received(&a_dropped), 0, "a's firewall was swept away");
    let s = a.status_json();
    assert_eq!(s["in_force"], true, "{s}");
    let out = run.signal(libc::SIGINT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("removed"), "{stderr}");
    let _ = std::fs::remove_file(capture);
}

#[test]
fn what_a_namespace_that_is_gone_left_behind_is_removed_by_the_next_run() {
    if !root_or_skip() {
        return;
    }
    let capture = capture_file("gone");
    let rule = format!("udp dst port {DROPPED_PORT}");
    // b first: a's namespace identity must not be reused for b's.
    let b = Net::create(BINARY, "survivor");
    let a = Net::create(BINARY, "gone");
    let first = a.start(&["--drop", &rule], &capture);
    let first_pid = first.pid();
    assert!(!first.signal(libc::SIGKILL).status.success());
    let (pins, meta) = a.pin_paths();
    assert!(exists(&pins) && exists(&meta));
    a.vanish();
    // The namespace's cleanup runs in the kernel's own time: wait until its link is
    // defunct (its veth deleted).
    let link = pins.join("link");
    let deadline = Instant::now() + Duration::from_secs(20);
    while xdpsieve::configure::relink::pinned_link_ifindex(&link).ok() != Some(Some(0)) {
        assert!(
            Instant::now() < deadline,
            "the link of a namespace gone is not defunct"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let run = b.start(&["--drop", &rule], &capture);
    // (A namespace made since may have a's identity, and pins of its own there.)
    assert_ne!(
        xdpsieve::configure::relink::pinned_link_ifindex(&link).ok(),
        Some(Some(0)),
        "the defunct link was left behind"
    );
    let described = std::fs::read_to_string(&meta).unwrap_or_default();
    assert!(
        !described.contains(&format!("\"pid\": {first_pid},")),
        "{} left behind: {described}",
        meta.display()
    );
    let out = run.signal(libc::SIGINT);
    assert!(out.status.success());
    let _ = std::fs::remove_file(capture);
}
