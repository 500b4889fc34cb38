//! Faults that must never turn filtering off nor pass in silence: a capture or log output
//! that fills up (a small tmpfs), a reader of `-w -` that goes away, `/dev/full`, and the
//! signals an operator sends (SIGHUP, SIGUSR1, SIGUSR2, SIGPIPE). The real binary on a veth
//! in namespaces the test creates, real traffic, a real socket behind the firewall, the
//! files read back by pcap-file and tcpdump.
//!
//! They need root; under `CI` they fail rather than skip when they cannot run.

mod harness;

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use pcap_file::pcapng::{Block, PcapNgReader};
use xdpsieve_netns::VethPair;
use xdpsieve_testkit::gate::root_or_skip;
use xdpsieve_testkit::tempdir::TempDir;
use xdpsieve_testkit::udp::received;

use harness::*;

#[test]
fn disk_full_capture_stops_the_capture_not_the_firewall() {
    if !root_or_skip() {
        return;
    }
    let disk = TempDir::tmpfs("diskfull", "256k");
    let capture = disk.file("dropped.pcap");
    let net = VethPair::create("fulldisk", None).expect("namespaces");
    let (dropped_socket, passed_socket) = sockets(&net);
    let mut fw = Firewall::start(
        &net,
        &[
            "-w",
            capture.to_str().unwrap(),
            "--metrics",
            "127.0.0.1:9471",
        ],
        Stdio::null(),
    );

    // 600 records of ~1 KiB: the 256 KiB file system fills a little under half way.
    let mut passed = flood(&net, 600, 1000);
    settle();
    assert!(fw.running(), "xdpsieve exited when the disk filled");
    // More traffic after the failure: still dropped, still counted.
    passed += flood(&net, 200, 1000);
    settle();
    assert!(fw.running(), "xdpsieve exited after the disk filled");
    // `status` and the metrics, from other processes, show what was not written: the
    // counts as published (at the failure, then about once a second), all in by now.
    std::thread::sleep(Duration::from_millis(1200));
    let status = in_namespace(&net, BINARY, &["status", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&status).expect("status JSON");
    let counters = &json[0]["counters"];
    let status_not_written = counters["capture_not_written"].as_u64().expect("count");
    assert!(status_not_written > 0, "{status}");
    assert!(counters["written"].as_u64().expect("count") > 0, "{status}");
    let text = in_namespace(&net, BINARY, &["status"]);
    assert!(
        text.contains(&format!(
            "{status_not_written} not written to the capture (output failed)"
        )),
        "{text}"
    );
    let metrics = in_namespace(
        &net,
        "curl",
        &["-sS", "--max-time", "10", "http://127.0.0.1:9471/metrics"],
    );
    assert!(
        metrics.contains(&format!(
            "xdpsieve_not_written_records_total{{output=\"capture\",reason=\"output_failed\"}} {status_not_written}"
        )),
        "{metrics}"
    );
    let stderr = stop_cleanly(fw, &dropped_socket);
    assert_eq!(received(&passed_socket), passed, "{stderr}");
    let stops = stop_lines(&stderr);
    assert_eq!(stops.len(), 1, "{stderr}");
    assert!(
        stops[0].contains(&format!(
            "capture to {} stopped: No space left on device",
            capture.display()
        )),
        "{stderr}"
    );
    let (dropped, captured, not_written, lost) = capture_counts(&stderr);
    assert_eq!(dropped, 800, "{stderr}");
    assert!(captured > 0 && not_written > 0, "{stderr}");
    assert_eq!(captured + not_written + lost, dropped, "{stderr}");
    assert_eq!(status_not_written, not_written, "{stderr}");
    assert!(!stderr.contains("past the -c count"), "{stderr}");
    // "captured" is what the file holds, and the file holds only whole records.
    assert_eq!(pcap_packets(&capture), captured, "{stderr}");
    assert_eq!(tcpdump_lines(&capture), captured, "{stderr}");
}

#[test]
fn disk_full_event_log_stops_the_log_not_the_firewall() {
    if !root_or_skip() {
        return;
    }
    let disk = TempDir::tmpfs("logfull", "64k");
    let log = disk.file("events.log");
    let net = VethPair::create("fulllog", None).expect("namespaces");
    let (dropped_socket, _passed_socket) = sockets(&net);
    let mut fw = Firewall::start(
        &net,
        &["--log", "dropped", "--log-file", log.to_str().unwrap()],
        Stdio::null(),
    );
    // Text lines of about 100 bytes: 64 KiB holds some 650.
    flood(&net, 1500, 64);
    settle();
    assert!(fw.running(), "xdpsieve exited when the disk filled");
    let stderr = stop_cleanly(fw, &dropped_socket);

    let stops = stop_lines(&stderr);
    assert_eq!(stops.len(), 1, "{stderr}");
    assert!(
        stops[0].contains("event log to") && stops[0].contains("No space left on device"),
        "{stderr}"
    );
    let (dropped, _, _, _) = capture_counts(&stderr);
    let logged = count(&stderr, "events logged");
    let not_written = count(&stderr, "events not written: log output failed");
    let lost = count(&stderr, "events lost: event buffer full");
    assert_eq!(dropped, 1500, "{stderr}");
    assert!(logged > 0 && not_written > 0, "{stderr}");
    assert_eq!(logged + not_written + lost, dropped, "{stderr}");
    // Whole lines only, as many as the summary says.
    let text = std::fs::read_to_string(&log).expect("reading the log");
    assert!(text.ends_with('\n'), "the log ends in a cut line");
    assert_eq!(text.lines().count() as u64, logged, "{stderr}");
    assert!(
        text.lines()
            .all(|l| l.contains(&format!("-> 192.0.2.2:{DROPPED_PORT}"))),
        "{text}"
    );
}

#[test]
fn a_reader_of_stdout_that_goes_away_stops_the_capture_not_the_firewall() {
    if !root_or_skip() {
        return;
    }
    let net = VethPair::create("headpipe", None).expect("namespaces");
    let (dropped_socket, _passed_socket) = sockets(&net);
    // The reader takes 100 bytes and exits, as `xdpsieve run -w - | head -c 100` would.
    let mut head = Command::new("head")
        .args(["-c", "100"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("starting head");
    let pipe = head.stdin.take().expect("head's stdin");
    let mut fw = Firewall::start(&net, &["-w", "-"], Stdio::from(pipe));
    flood(&net, 20, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    while head.try_wait().expect("head").is_none() {
        assert!(Instant::now() < deadline, "head did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Now the pipe has no reader: the next write fails with EPIPE.
    flood(&net, 100, 200);
    settle();
    assert!(fw.running(), "xdpsieve died with its reader");
    let stderr = stop_cleanly(fw, &dropped_socket);
    let stops = stop_lines(&stderr);
    assert_eq!(stops.len(), 1, "{stderr}");
    assert!(
        stops[0].contains("capture to standard output stopped: Broken pipe"),
        "{stderr}"
    );
    let (dropped, captured, not_written, lost) = capture_counts(&stderr);
    assert_eq!(dropped, 120, "{stderr}");
    assert!(not_written >= 100, "{stderr}");
    assert_eq!(captured + not_written + lost, dropped, "{stderr}");
}

#[test]
fn dev_full_as_the_capture_file() {
    if !root_or_skip() {
        return;
    }
    let scratch = TempDir::new("devfull");
    let log = scratch.file("events.log");
    let net = VethPair::create("devfull", None).expect("namespaces");
    let (dropped_socket, _passed_socket) = sockets(&net);
    // The event log, on a healthy disk, keeps working while the capture has failed.
    let mut fw = Firewall::start(
        &net,
        &[
            "-w",
            "/dev/full",
            "--log",
            "dropped",
            "--log-file",
            log.to_str().unwrap(),
        ],
        Stdio::null(),
    );
    flood(&net, 50, 100);
    settle();
    assert!(fw.running(), "xdpsieve exited on /dev/full");
    let stderr = stop_cleanly(fw, &dropped_socket);
    let stops = stop_lines(&stderr);
    assert_eq!(stops.len(), 1, "{stderr}");
    assert!(
        stops[0].contains("capture to /dev/full stopped: No space left on device"),
        "{stderr}"
    );
    let (dropped, captured, not_written, lost) = capture_counts(&stderr);
    assert_eq!((dropped, captured), (50, 0), "{stderr}");
    assert_eq!(not_written + lost, dropped, "{stderr}");
    let logged = count(&stderr, "events logged");
    assert_eq!(
        logged + count(&stderr, "events lost: event buffer full"),
        50,
        "{stderr}"
    );
    let text = std::fs::read_to_string(&log).expect("reading the log");
    assert_eq!(text.lines().count() as u64, logged, "{stderr}");
}

#[test]
fn hup_usr1_usr2_and_pipe_do_not_stop_it() {
    if !root_or_skip() {
        return;
    }
    let scratch = TempDir::new("signals");
    let capture = scratch.file("signals.pcapng");
    let net = VethPair::create("signals", None).expect("namespaces");
    let (dropped_socket, _passed_socket) = sockets(&net);
    let mut fw = Firewall::start(
        &net,
        &["--format", "pcapng", "-w", capture.to_str().unwrap()],
        Stdio::null(),
    );
    flood(&net, 10, 100);
    for signal in [libc::SIGHUP, libc::SIGUSR1, libc::SIGUSR2, libc::SIGPIPE] {
        fw.signal(signal);
        // The loop looks at its flags at least every 100 ms.
        std::thread::sleep(Duration::from_millis(300));
        assert!(fw.running(), "signal {signal} stopped xdpsieve");
        flood(&net, 10, 100);
    }
    settle();
    let stderr = stop_cleanly(fw, &dropped_socket);

    // SIGHUP reloads the rules (the same ones here): a new generation, counters carried.
    let hup = stderr
        .lines()
        .filter(|l| l.starts_with("xdpsieve: reloaded: generation 2 in force on "))
        .count();
    assert_eq!(hup, 1, "{stderr}");
    let status_lines = stderr
        .lines()
        .filter(|l| l.starts_with("xdpsieve: ") && l.contains("pkt/s"))
        .count();
    assert_eq!(status_lines, 2, "{stderr}");
    let (dropped, captured, _, lost) = capture_counts(&stderr);
    assert_eq!(dropped, 50, "{stderr}");
    assert_eq!(captured + lost, dropped, "{stderr}");

    // The file ends with its closing interface statistics block.
    let mut reader = PcapNgReader::new(std::fs::File::open(&capture).unwrap()).unwrap();
    let (mut last, mut packets) = (None, 0);
    while let Some(block) = reader.next_block() {
        let block = block.expect("a whole pcapng block");
        if matches!(block, Block::EnhancedPacket(_)) {
            packets += 1;
        }
        last = Some(block.into_owned());
    }
    assert!(
        matches!(last, Some(Block::InterfaceStatistics(_))),
        "the capture does not end with its statistics block"
    );
    assert_eq!(packets, captured);
}
