//! The divergence check end to end: traffic that reaches the host past the program makes
//! the interface's rx_packets and the program's count part, and xdpsieve must say so.
//!
//! Each test first measures what the running kernel does (and prints it): whether packets
//! `bpf_redirect_peer` delivers past XDP count in rx_packets, and whether veth runs the
//! program on rx queues enabled after attach. Where the kernel cannot show the hazard, the
//! test says so and checks what it can: filtering holds and no false alarm is raised.

use std::time::{Duration, Instant};

use xdpsieve_netns::{VethOptions, VethPair};
use xdpsieve_testkit::gate::{kernel_found, root_or_skip};

use super::{
    DROPPED_PORT, Running, assert_filtered, bypass::Bypass, grow_queues, received, send, sockets,
    spread_sender, status, tool,
};

/// fw0's rx_packets, as `ip -s` reads it (what the divergence check compares).
fn rx_packets(net: &VethPair) -> u64 {
    let shown = net
        .fw
        .ip(&["-s", "-j", "link", "show", "dev", VethPair::FW_IF])
        .expect("ip -s link show");
    let links: serde_json::Value = serde_json::from_str(&shown).expect("ip's JSON");
    links[0]["stats64"]["rx"]["packets"]
        .as_u64()
        .unwrap_or_else(|| panic!("no rx packets in {shown}"))
}

/// Calls `send` (a burst of traffic) until stderr has a line with `text` (the divergence
/// check's window is 5 s); panics after 15 s.
fn send_until(fw: &Running, text: &str, mut send: impl FnMut()) {
    let start = Instant::now();
    while !fw.lines().iter().any(|l| l.contains(text)) {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "no line with `{text}` within 15 s of traffic: {}",
            fw.lines().join("\n")
        );
        send();
    }
}

#[test]
fn traffic_bypassing_the_program_is_reported_as_divergence() {
    if !root_or_skip() {
        return;
    }
    let net = VethPair::create("wdiv", None).expect("namespaces");
    // The control, before any program: the bypass reaches the socket, and the kernel counts
    // it in fw0's rx_packets (else no check on rx_packets can see it).
    let bypass = match Bypass::build(&net) {
        Ok(bypass) => Some(bypass),
        Err(why) => {
            kernel_found(format_args!(
                "no bpf_redirect_peer bypass can be built here ({why}): the divergence \
                 warning cannot be shown this way; checking filtering and no false alarm"
            ));
            None
        }
    };
    let visible = bypass.is_some() && {
        let (dropped, _passed) = sockets(&net);
        let before = rx_packets(&net);
        Bypass::send(&net, DROPPED_PORT, 100);
        let counted = rx_packets(&net) - before;
        assert_eq!(
            received(&dropped),
            100,
            "the bypass must reach the socket without a firewall"
        );
        if counted < 100 {
            kernel_found(format_args!(
                "packets redirected into fw0 by bpf_redirect_peer are not counted in \
                 its rx_packets ({counted} of 100): the divergence check cannot see this \
                 bypass here; checking filtering and no false alarm"
            ));
        } else {
            kernel_found(format_args!(
                "packets redirected into fw0 by bpf_redirect_peer reach its sockets \
                 past XDP and count in its rx_packets"
            ));
        }
        counted >= 100
    };

    let fw = Running::start(&net, &[], &[]);
    // Through fw0's receive path the rules hold, and the counts agree.
    assert_filtered(&net, 50);
    if !visible {
        // What the check does see stays consistent: a window of filtered traffic, no
        // warning (and whatever the bypass sends, if it exists, is beyond its sight).
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(6) {
            if bypass.is_some() {
                Bypass::send(&net, DROPPED_PORT, 50);
            }
            assert_filtered(&net, 50);
        }
        let (ok, stderr) = fw.stop();
        assert!(ok, "{stderr}");
        assert!(!stderr.contains("bypassing"), "{stderr}");
        return;
    }
    let (dropped, _passed) = sockets(&net);
    send_until(&fw, "bypassing the firewall", || {
        Bypass::send(&net, DROPPED_PORT, 100);
    });
    // The socket shows why the warning matters: what the rules drop arrived.
    assert!(
        received(&dropped) > 0,
        "expected the bypass to reach the socket"
    );
    let shown = status(&net);
    assert!(shown.contains("health: diverging:"), "{shown}");
    drop(bypass);
    let (ok, stderr) = fw.stop();
    assert!(ok, "{stderr}");
}

/// Per-queue packets the XDP program ran on (veth's `rx_queue_N_xdp_packets`).
fn xdp_packets_per_queue(net: &VethPair) -> Vec<u64> {
    let stats = tool(net, "ethtool", &["-S", VethPair::FW_IF]);
    let mut queues = Vec::new();
    for line in stats.lines() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix("rx_queue_") else {
            continue;
        };
        let Some((queue, count)) = rest.split_once("_xdp_packets:") else {
            continue;
        };
        let (Ok(queue), Ok(count)) = (queue.parse::<usize>(), count.trim().parse::<u64>()) else {
            continue;
        };
        if queues.len() <= queue {
            queues.resize(queue + 1, 0);
        }
        queues[queue] = count;
    }
    queues
}

#[test]
fn queues_left_without_the_program_are_reported_as_divergence() {
    if !root_or_skip() {
        return;
    }
    let options = VethOptions {
        rx_queues: Some((1, 4)),
        ..VethOptions::default()
    };
    let net = VethPair::create_with("wqdiv", &options).expect("namespaces");
    // The fix the watcher would make is off: the queues stay as the kernel leaves them.
    let fw = Running::start(&net, &[], &[("XDPSIEVE_TEST_NO_QUEUE_REATTACH", "1")]);
    grow_queues(&net);
    fw.wait_for(
        "fw0 has 4 rx queues now (was 1) and re-attaching failed",
        Duration::from_secs(3),
    );
    assert!(status(&net).contains("health: queues without program"));
    spread_sender(&net);
    // The measurement: does every queue, old and new, run the program?
    let (dropped, _passed) = sockets(&net);
    let before = xdp_packets_per_queue(&net);
    send(&net, DROPPED_PORT, 400);
    let through = received(&dropped);
    let after = xdp_packets_per_queue(&net);
    let ran: Vec<u64> = (0..4)
        .map(|q| after.get(q).copied().unwrap_or(0) - before.get(q).copied().unwrap_or(0))
        .collect();
    if through == 0 {
        kernel_found(format_args!(
            "veth runs the XDP program on rx queues enabled later with `ethtool -L` \
             (packets per queue {ran:?}): growing them opens no bypass here"
        ));
        // What can be shown: every queue filters, and a window of traffic on all of them
        // raises no false alarm.
        assert!(
            ran.iter().all(|&n| n > 0),
            "not every queue ran it: {ran:?}"
        );
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(6) {
            send(&net, DROPPED_PORT, 100);
        }
        assert_eq!(
            received(&dropped),
            0,
            "datagrams to the dropped port arrived"
        );
        let (ok, stderr) = fw.stop();
        assert!(ok, "{stderr}");
        assert!(!stderr.contains("bypassing"), "{stderr}");
        return;
    }
    kernel_found(format_args!(
        "veth leaves rx queues enabled later with `ethtool -L` without the XDP \
         program ({through} of 400 datagrams to the dropped port got through; packets per \
         queue {ran:?})"
    ));
    send_until(&fw, "bypassing the firewall", || {
        send(&net, DROPPED_PORT, 100);
    });
    let shown = status(&net);
    assert!(shown.contains("health: diverging:"), "{shown}");
    let (ok, stderr) = fw.stop();
    assert!(ok, "{stderr}");
}
