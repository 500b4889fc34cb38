//! `keep_on_stop`: SIGTERM to a run that keeps its firewall leaves it in force as a crash
//! would (pinned, counting what it cannot record), the next run takes it over, and a flood
//! to a dropped port across both delivers nothing at the socket behind the firewall;
//! `xdpsieve stop` still removes a kept firewall.

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use xdpsieve_netns::VethPair;
use xdpsieve_testkit::{
    fwnet::{ALLOWED_PORT, DROPPED_PORT, Net, capture_file},
    gate::root_or_skip,
    tempdir::TempDir,
    udp::received,
};

use crate::{run_config, text};

#[test]
fn a_flood_across_a_kept_stop_and_the_takeover_delivers_nothing() {
    if !root_or_skip() {
        return;
    }
    const FLOOD_MAX: u64 = 3_000_000;
    const FLOOD_TIME: Duration = Duration::from_secs(30);
    let net = Net::create(crate::BINARY, "keep");
    let (dropped, allowed) = net.sockets();
    let tmp = TempDir::new("cfg-keep");
    let file = tmp.file("xdpsieve.toml");
    let rule = format!("udp dst port {DROPPED_PORT}");
    // The first run keeps its firewall by its file, the second by its flag.
    std::fs::write(
        &file,
        format!(
            "interfaces = [\"{}\"]\nkeep_on_stop = true\n[capture]\nfile = \"drops.pcap\"\n\
             [[rule]]\nname = \"flooded\"\naction = \"drop\"\nprotocol = \"udp\"\n\
             dst_port = {DROPPED_PORT}\n",
            VethPair::FW_IF
        ),
    )
    .unwrap();
    let first = run_config(&net, &file, &[]);
    let first_pid = first.pid();
    let program = net.xdp_program().expect("attached");
    let capture = capture_file("keep");

    let done = AtomicBool::new(false);
    let (flood_sent, first_out, no_reader, second) = std::thread::scope(|scope| {
        let flood = scope.spawn(|| {
            net.flood(
                DROPPED_PORT,
                &|| done.load(Ordering::Relaxed),
                FLOOD_MAX,
                FLOOD_TIME,
            )
        });
        std::thread::sleep(Duration::from_millis(200));
        let first_out = first.signal(libc::SIGTERM);
        // Kept as a crash keeps it, and counted as one: what it cannot record is lost for
        // want of a reader at once, not after the heartbeat's two seconds.
        std::thread::sleep(Duration::from_millis(300));
        let status = net.status_json();
        assert_eq!(
            (&status["live"], &status["in_force"]),
            (&false.into(), &true.into()),
            "{status}"
        );
        assert_eq!(net.xdp_program(), Some(program), "the kept program went");
        let no_reader = status["counters"]["no_reader"].as_u64().unwrap_or(0);
        let second = net.start(&["--keep-on-stop", "--drop", &rule], &capture);
        std::thread::sleep(Duration::from_millis(300));
        done.store(true, Ordering::Relaxed);
        (
            flood.join().expect("flood thread"),
            first_out,
            no_reader,
            second,
        )
    });
    std::thread::sleep(Duration::from_millis(300));
    let (_, first_err) = text(&first_out);
    assert!(first_out.status.success(), "{first_err}");
    assert!(
        first_err.contains(
            "xdpsieve: keep_on_stop: the firewall on fw0 stays in force without a recorder"
        ),
        "{first_err}"
    );
    assert!(
        first_err.contains("packets seen by xdpsieve"),
        "no summary: {first_err}"
    );
    eprintln!("flood: {flood_sent} datagrams to the dropped port across the stop and takeover");
    assert!(flood_sent > 1000, "the flood sent only {flood_sent}");
    assert_eq!(
        received(&dropped),
        0,
        "a datagram got through the stop or the takeover"
    );
    assert!(
        no_reader > 0,
        "nothing counted as lost for want of a reader: {no_reader}"
    );
    net.send(ALLOWED_PORT, 10);
    assert_eq!(received(&allowed), 10);

    // The second run said it took over, and kept the firewall again at its stop.
    let out = second.signal(libc::SIGTERM);
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "took over the firewall left on fw0 by pid {first_pid}"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("keep_on_stop: the firewall on fw0 stays"),
        "{stderr}"
    );
    net.send(DROPPED_PORT, 20);
    assert_eq!(
        received(&dropped),
        0,
        "the kept firewall let datagrams through"
    );

    // `xdpsieve stop` removes a kept firewall, saying what happened.
    let third = net.start(&["--keep-on-stop", "--drop", &rule], &capture);
    let third_pid = third.pid();
    let out = net.xdpsieve(&["stop", "-i", VethPair::FW_IF]);
    let (said, err) = text(&out);
    assert!(out.status.success(), "{said}{err}");
    assert!(
        said.contains(&format!(
            "stopped xdpsieve pid {third_pid} on fw0: it wrote its summary and left the firewall \
             in force (keep_on_stop)"
        )),
        "{said}"
    );
    assert!(
        said.contains(&format!(
            "removed the firewall left on fw0 by pid {third_pid}"
        )),
        "{said}"
    );
    assert!(third.wait().status.success());
    assert_eq!(net.xdp_program(), None, "the program stayed after stop");
    let (pins, meta) = net.pin_paths();
    assert!(!pins.exists() && !meta.exists(), "stop left pins behind");
    net.send(DROPPED_PORT, 3);
    assert_eq!(received(&dropped), 3, "the port is open again after stop");
    let _ = std::fs::remove_file(capture);
}
