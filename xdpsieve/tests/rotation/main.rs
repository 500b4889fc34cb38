//! Rotating captures end to end: the real binary on a veth in namespaces the test creates,
//! numbered datagrams from a second namespace that a rule drops, and the files read back by
//! the pcap-file crate, tcpdump and tshark.
//!
//! - a ring of 3 files (`-C 1 -W 3`) over many rotations, `-z` on each finished file;
//! - `-G 1 -W 3`: three files a second apart, named by strftime, then the run ends;
//! - a small tmpfs that fills mid-run: `-W` makes room by removing the oldest file; one
//!   too small for the first file: nothing to remove, the capture alone stops, as any
//!   failed output does;
//! - `-C 1 -W 2` wrapping round: the summary counts the captured packets in the files it
//!   overwrote, as it counts those in files removed for room;
//! - `-C` with `-w -` is refused.
//!
//! Each packet carries its number, so "every packet once, none torn" is checked packet by
//! packet, and the sum over the files against the summary's count.

mod harness;

use std::{
    os::unix::fs::PermissionsExt as _,
    path::PathBuf,
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use xdpsieve_netns::VethPair;
use xdpsieve_testkit::gate::root_or_skip;
use xdpsieve_testkit::tempdir::TempDir;
use xdpsieve_testkit::tool::tool;

use harness::*;

#[test]
fn ring_of_three_over_many_rotations_runs_z_on_every_file() {
    if !root_or_skip() {
        return;
    }
    let work = TempDir::new("ring");
    let done = TempDir::new("ring-done");
    let script = mover_script(&work, done.path());
    let net = VethPair::create("rotring", None).expect("namespaces");
    let client = client_socket(&net);
    let pattern = work.file("cap.pcap");
    let fw = Firewall::start(
        &net,
        &[
            "-w",
            pattern.to_str().unwrap(),
            "-C",
            "1",
            "-W",
            "3",
            "-z",
            script.to_str().unwrap(),
        ],
    );
    // About 1,000 datagrams a second: a file a second, 9 files, so the ring wraps twice
    // and a name is reused two seconds after its file was handed to -z.
    const SENT: u32 = 8500;
    let sent = send_numbered(
        &net,
        SENT,
        Duration::from_millis(10),
        &AtomicBool::new(false),
    );
    assert_eq!(sent, SENT);
    std::thread::sleep(Duration::from_millis(300));
    let (numbered, other) = received(&client);
    let out = fw.stop();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains("-z:"),
        "every -z command ran and succeeded: {stderr}"
    );
    // The dropped flow never reached the socket; the passed one did.
    assert_eq!((numbered, other), (0, SENT as usize / 10), "{stderr}");

    let captured = summary_count(&stderr, "packets captured");
    assert_eq!(captured, u64::from(SENT), "{stderr}");
    // -z ran on each finished file, the last one included, with tcpdump's names.
    let names = std::fs::read_to_string(work.file("names.log")).expect("names log");
    let names: Vec<&str> = names.lines().collect();
    assert!(names.len() >= 8, "{names:?}");
    for (i, name) in names.iter().enumerate() {
        assert_eq!(
            *name,
            format!("{}{}", pattern.display(), i % 3),
            "{names:?}"
        );
    }
    // Nothing left in the ring's place: every file was handed on, and moved.
    assert_eq!(work.files().len(), 2, "{:?}", work.files()); // the script and its log
    let files = done.files();
    assert_eq!(files.len(), names.len());
    let mut all = Vec::new();
    for f in &files {
        let numbers = pcap_numbers(f);
        assert!(!numbers.is_empty(), "{f:?}");
        // Each file stands alone for tcpdump and tshark.
        let path = f.to_str().unwrap();
        assert_eq!(
            tool("tcpdump", &["-nn", "-r", path]).lines().count(),
            numbers.len()
        );
        assert_eq!(tool("tshark", &["-r", path]).lines().count(), numbers.len());
        // tcpdump's -C: a file is closed once it is past 1,000,000 bytes, so it holds at
        // most one packet past that.
        assert!(
            std::fs::metadata(f).unwrap().len() < 1_000_000 + 2 * 1100,
            "{f:?}"
        );
        all.extend(numbers);
    }
    assert_contiguous(&all, 0, SENT);
}

#[test]
fn period_of_one_second_makes_strftime_named_files_then_stops_at_w() {
    if !root_or_skip() {
        return;
    }
    let work = TempDir::new("period");
    let net = VethPair::create("rotper", None).expect("namespaces");
    let _client = client_socket(&net);
    let pattern = work.file("cap-%s.pcapng");
    let names = work.file("names.log");
    let script = work.file("names.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$1\" >> {}\n", names.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let fw = Firewall::start(
        &net,
        &[
            "-w",
            pattern.to_str().unwrap(),
            "--format",
            "pcapng",
            "-G",
            "1",
            "-W",
            "3",
            "-z",
            script.to_str().unwrap(),
        ],
    );
    // Traffic until the run ends by itself (bounded: 10 s at most).
    let stop = Arc::new(AtomicBool::new(false));
    let out = std::thread::scope(|scope| {
        let sender = scope.spawn(|| send_numbered(&net, 20_000, Duration::from_millis(50), &stop));
        let out = fw.wait_exit(Duration::from_secs(15));
        stop.store(true, Ordering::Relaxed);
        let _ = sender.join();
        out
    });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("-W 3 files of -G written"), "{stderr}");

    let files: Vec<PathBuf> = work
        .files()
        .into_iter()
        .filter(|f| f.extension().is_some_and(|e| e == "pcapng"))
        .collect();
    assert_eq!(files.len(), 3, "{files:?}");
    let seconds: Vec<u64> = files
        .iter()
        .map(|f| {
            let name = f.file_name().unwrap().to_str().unwrap();
            name["cap-".len()..name.len() - ".pcapng".len()]
                .parse()
                .expect("the %s of the name")
        })
        .collect();
    assert!(seconds.windows(2).all(|w| w[1] > w[0]), "{seconds:?}");
    let logged = std::fs::read_to_string(&names).expect("-z names");
    let logged: Vec<PathBuf> = logged.lines().map(PathBuf::from).collect();
    assert_eq!(logged, files, "-z ran on each file, in order");

    let mut all = Vec::new();
    for f in &files {
        let numbers = pcapng_numbers(f);
        let text = tool("tshark", &["-r", f.to_str().unwrap()]);
        assert_eq!(text.lines().count(), numbers.len(), "{f:?}");
        all.extend(numbers);
    }
    let captured = summary_count(&stderr, "packets captured");
    assert_eq!(all.len() as u64, captured, "{stderr}");
    assert_contiguous(&all, 0, all.len() as u32);
}

#[test]
fn full_disk_with_w_removes_the_oldest_file_and_keeps_capturing() {
    if !root_or_skip() {
        return;
    }
    // 3 MiB hold two files of 1 MB and most of a third; -W 10 never gets there.
    let disk = TempDir::tmpfs("tmpfs", "3m");
    let net = VethPair::create("rotfull", None).expect("namespaces");
    let client = client_socket(&net);
    let pattern = disk.file("cap.pcap");
    let fw = Firewall::start(
        &net,
        &["-w", pattern.to_str().unwrap(), "-C", "1", "-W", "10"],
    );
    const SENT: u32 = 7000;
    let sent = send_numbered(
        &net,
        SENT,
        Duration::from_millis(5),
        &AtomicBool::new(false),
    );
    assert_eq!(sent, SENT);
    std::thread::sleep(Duration::from_millis(300));
    let (numbered, other) = received(&client);
    let out = fw.stop();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("disk full: removed the oldest capture file"),
        "{stderr}"
    );
    assert!(!stderr.contains("stopped"), "the capture went on: {stderr}");
    // Still dropped at the socket, whatever the disk did.
    assert_eq!((numbered, other), (0, SENT as usize / 10), "{stderr}");
    // Counts exact: every packet written somewhere, none lost or unwritten.
    assert_eq!(
        summary_count(&stderr, "packets captured"),
        u64::from(SENT),
        "{stderr}"
    );
    assert!(!stderr.contains("not written"), "{stderr}");

    // What is left: the newest files, in ring order, whole, ending with the last packet.
    let files = disk.files();
    assert!((2..=3).contains(&files.len()), "{files:?}");
    let newest = files
        .iter()
        .max_by_key(|f| std::fs::metadata(f).unwrap().modified().unwrap())
        .unwrap()
        .clone();
    let mut ordered: Vec<(u32, Vec<u32>)> = files
        .iter()
        .map(|f| {
            let numbers = pcap_numbers(f);
            assert_eq!(
                tool("tcpdump", &["-nn", "-r", f.to_str().unwrap()])
                    .lines()
                    .count(),
                numbers.len()
            );
            (numbers[0], numbers)
        })
        .collect();
    ordered.sort();
    let all: Vec<u32> = ordered.into_iter().flat_map(|(_, n)| n).collect();
    let first = all[0];
    assert!(first > 0, "the oldest packets went with the oldest file");
    assert_contiguous(&all, first, SENT);
    assert_eq!(pcap_numbers(&newest).last(), Some(&(SENT - 1)));
    // The summary says how many captured packets went with the removed files: exactly
    // those before the first one left.
    assert_eq!(
        summary_count(
            &stderr,
            "their files were removed to make room on the full disk"
        ),
        u64::from(first),
        "{stderr}"
    );
}

#[test]
fn a_ring_of_two_files_counts_the_captured_packets_it_overwrote() {
    if !root_or_skip() {
        return;
    }
    let work = TempDir::new("overwrite");
    let net = VethPair::create("rotover", None).expect("namespaces");
    let _client = client_socket(&net);
    let pattern = work.file("cap.pcap");
    let fw = Firewall::start(
        &net,
        &["-w", pattern.to_str().unwrap(), "-C", "1", "-W", "2"],
    );
    // About 1,000 datagrams (1 MB) a second: 4 or 5 files, so the ring of two wraps.
    const SENT: u32 = 4500;
    let sent = send_numbered(
        &net,
        SENT,
        Duration::from_millis(10),
        &AtomicBool::new(false),
    );
    assert_eq!(sent, SENT);
    std::thread::sleep(Duration::from_millis(300));
    let out = fw.stop();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        summary_count(&stderr, "packets captured"),
        u64::from(SENT),
        "{stderr}"
    );
    let overwritten = summary_count(&stderr, "the -W ring of files overwrote their files");
    assert!(overwritten > 0, "{stderr}");
    // The two files hold the newest packets; the older ones are the overwritten, each
    // counted once: on disk + overwritten = captured.
    let files = work.files();
    assert_eq!(files.len(), 2, "{files:?}");
    let mut left: Vec<u32> = files.iter().flat_map(|f| pcap_numbers(f)).collect();
    left.sort_unstable();
    assert_contiguous(&left, overwritten as u32, SENT);
}

#[test]
fn rotation_is_refused_on_standard_output_and_w_without_rotation() {
    let run = |args: &[&str]| {
        let out = Command::new(BINARY)
            .args(["run", "-i", "lo", "--drop", "udp src port 53"])
            .args(args)
            .output()
            .expect("running xdpsieve");
        assert!(!out.status.success(), "{args:?} must be refused");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(run(&["-w", "-", "-C", "1"]).contains("standard output (-w -) is no file"));
    assert!(run(&["-w", "-", "-G", "60"]).contains("standard output (-w -) is no file"));
    assert!(run(&["-w", "x.pcap", "-W", "3"]).contains("give -C MB or -G SECS"));
    assert!(run(&["-w", "x.pcap", "-z", "gzip"]).contains("give -C MB or -G SECS"));
    assert!(run(&["-C", "1"]).contains("give -w FILE"));
    assert!(run(&["-w", "x.pcap", "-C", "0"]).contains("-C"));
}

#[test]
fn full_disk_with_nothing_left_to_remove_stops_the_capture_only() {
    if !root_or_skip() {
        return;
    }
    // 1 MiB cannot hold the first file of 2 MB: there is no finished file to remove.
    let disk = TempDir::tmpfs("tmpfs-small", "1m");
    let net = VethPair::create("rotnone", None).expect("namespaces");
    let client = client_socket(&net);
    let pattern = disk.file("cap.pcap");
    let fw = Firewall::start(
        &net,
        &["-w", pattern.to_str().unwrap(), "-C", "2", "-W", "3"],
    );
    const SENT: u32 = 2000;
    send_numbered(
        &net,
        SENT,
        Duration::from_millis(5),
        &AtomicBool::new(false),
    );
    std::thread::sleep(Duration::from_millis(300));
    let (numbered, other) = received(&client);
    let out = fw.stop();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // The fail-static rules: one line naming the file, filtering untouched, counts exact.
    let stopped: Vec<&str> = stderr.lines().filter(|l| l.contains("stopped")).collect();
    assert_eq!(stopped.len(), 1, "{stderr}");
    assert!(
        stopped[0].contains("cap.pcap0 stopped: No space left on device"),
        "{stderr}"
    );
    assert!(!stderr.contains("removed the oldest"), "{stderr}");
    assert_eq!((numbered, other), (0, SENT as usize / 10), "{stderr}");
    let captured = summary_count(&stderr, "packets captured");
    let not_written = summary_count(&stderr, "packets not written: capture output failed");
    assert_eq!(captured + not_written, u64::from(SENT), "{stderr}");
    assert!(not_written > 0, "{stderr}");
    let numbers = pcap_numbers(&disk.file("cap.pcap0"));
    assert_eq!(numbers.len() as u64, captured);
    assert_contiguous(&numbers, 0, captured as u32);
}
