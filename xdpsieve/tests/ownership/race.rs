//! Many `xdpsieve run`s started at once on one interface: exactly one owns it; the others
//! are refused before they touch anything of it and say which pid holds it; the owner's
//! firewall is what `status` shows, and it stays in force when the owner is SIGKILLed
//! while a flood hits the dropped port.

use std::{
    process::Output,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use xdpsieve_testkit::child::Firewall;
use xdpsieve_testkit::fwnet::{ALLOWED_PORT, DROPPED_PORT, Net, capture_file};
use xdpsieve_testkit::gate::root_or_skip;
use xdpsieve_testkit::udp::received;

use crate::BINARY;

/// How many runs race for the interface.
const RUNS: usize = 8;

/// Waits until all but one of `runs` have exited; returns the one left (if exactly one
/// is) and each loser's pid and output.
fn losers_and_survivor(mut runs: Vec<Option<Firewall>>) -> (Option<Firewall>, Vec<(u32, Output)>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut losers = Vec::new();
    while losers.len() < runs.len() - 1 {
        assert!(
            Instant::now() < deadline,
            "{} of {} runs still running after 60 s",
            runs.len() - losers.len(),
            runs.len()
        );
        for slot in runs.iter_mut() {
            let ended = slot
                .as_mut()
                .is_some_and(|run| run.child_mut().try_wait().expect("try_wait").is_some());
            if ended && let Some(run) = slot.take() {
                losers.push((run.pid(), run.wait_output()));
            }
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    // A moment more: a late loser would show here.
    std::thread::sleep(Duration::from_millis(500));
    for slot in runs.iter_mut() {
        let ended = slot
            .as_mut()
            .is_some_and(|run| run.child_mut().try_wait().expect("try_wait").is_some());
        if ended && let Some(run) = slot.take() {
            losers.push((run.pid(), run.wait_output()));
        }
    }
    (runs.into_iter().flatten().next(), losers)
}

#[test]
fn concurrent_runs_leave_one_owner_whose_firewall_outlives_it() {
    if !root_or_skip() {
        return;
    }
    let net = Net::create(BINARY, "race");
    let (dropped, allowed) = net.sockets();
    let rule = format!("udp dst port {DROPPED_PORT}");
    let captures: Vec<String> = (0..RUNS)
        .map(|i| capture_file(&format!("race{i}")))
        .collect();
    let runs: Vec<Option<Firewall>> = captures
        .iter()
        .map(|capture| Some(net.spawn(&["--drop", &rule, "-w", capture])))
        .collect();
    let (survivor, losers) = losers_and_survivor(runs);
    let said: Vec<String> = losers
        .iter()
        .map(|(pid, out)| format!("pid {pid}: {}", String::from_utf8_lossy(&out.stderr)))
        .collect();
    let mut survivor = survivor.unwrap_or_else(|| panic!("no run is left: {said:#?}"));
    let pid = survivor.pid();
    survivor.wait_until(|| {
        let status = net.xdpsieve(&["status", "--json"]);
        String::from_utf8_lossy(&status.stdout).contains("\"live\": true")
    });
    // Every loser was refused, saying who holds the interface.
    for (out, text) in losers.iter().map(|l| &l.1).zip(&said) {
        assert!(!out.status.success(), "{text}");
        assert!(
            text.contains(&format!("xdpsieve pid {pid} holds fw0")),
            "a loser did not name the owner (pid {pid}): {text}"
        );
    }
    // The owner's firewall is the one in force and the one status shows.
    let s = net.status_json();
    assert_eq!(s["live"], true, "{s}");
    assert_eq!(s["pid"], pid, "{s}");
    net.send(DROPPED_PORT, 20);
    net.send(ALLOWED_PORT, 10);
    assert_eq!(received(&dropped), 0, "the dropped port was reachable");
    assert_eq!(received(&allowed), 10, "the allowed port lost datagrams");

    // SIGKILL of the owner in the middle of a flood: not one datagram gets through.
    let done = AtomicBool::new(false);
    let flooded = std::thread::scope(|scope| {
        let flood = scope.spawn(|| {
            net.flood(
                DROPPED_PORT,
                &|| done.load(Ordering::Relaxed),
                3_000_000,
                Duration::from_secs(20),
            )
        });
        std::thread::sleep(Duration::from_millis(300));
        survivor.signal(libc::SIGKILL);
        let _ = survivor.child_mut().wait();
        std::thread::sleep(Duration::from_millis(500));
        done.store(true, Ordering::Relaxed);
        flood.join().expect("flood thread")
    });
    assert!(flooded > 1000, "the flood sent only {flooded}");
    assert_eq!(
        received(&dropped),
        0,
        "a datagram got through after SIGKILL"
    );
    let s = net.status_json();
    assert_eq!(
        (&s["live"], &s["in_force"], &s["pid"]),
        (&false.into(), &true.into(), &pid.into()),
        "{s}"
    );
    let text = net.status_text();
    assert!(
        text.contains(&format!("running without a recorder (pid {pid} died)")),
        "{text}"
    );
    for capture in captures {
        let _ = std::fs::remove_file(capture);
    }
}
