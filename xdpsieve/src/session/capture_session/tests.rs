//! The recording side without a network: raw capture records (the ring's byte layout)
//! queued in memory, real files in a temporary directory, a real `-z` command. What is
//! checked is what the end-to-end tests cannot see from outside: that the final drain
//! comes before the closing statistics, that the last file is closed (statistics in it)
//! before its `-z` command runs, and that the counts equal the files.

use std::{fs, os::unix::fs::PermissionsExt as _, path::PathBuf};

use pcap_file::pcapng::{
    Block, PcapNgReader, blocks::interface_statistics::InterfaceStatisticsOption,
};
use xdpsieve_common::{CAPTURE_HEADER_LEN, CaptureHeader, Event, family, verdict};
use xdpsieve_testkit::tempdir::TempDir as Dir;

use super::*;
use crate::read::source::MemoryQueue;

const IFINDEX: u32 = 4;

fn interfaces() -> Vec<Interface> {
    vec![Interface {
        ifindex: IFINDEX,
        name: "veth-fw".into(),
    }]
}

/// A dropped packet's capture record as the program writes it: the header, then `size`
/// bytes that start with `number` (big-endian).
fn raw_record(number: u32, size: usize) -> Vec<u8> {
    let h = CaptureHeader {
        timestamp_ns: 1_000_000_000 + u64::from(number),
        ifindex: IFINDEX,
        rx_queue: 0,
        orig_len: size as u32,
        cap_len: size as u32,
        rule_id: 0,
        verdict: verdict::DROP,
        flags: 0,
        generation: 1,
        _pad: 0,
        shadow_rule_id: 0,
        _pad2: 0,
    };
    // SAFETY: CaptureHeader is repr(C) with explicit padding: every byte is initialised.
    let mut bytes =
        unsafe { std::slice::from_raw_parts((&raw const h).cast::<u8>(), CAPTURE_HEADER_LEN) }
            .to_vec();
    let mut data = vec![0u8; size];
    data[..4].copy_from_slice(&number.to_be_bytes());
    bytes.extend_from_slice(&data);
    bytes
}

fn plan(write: PathBuf, rotation: Option<RotationPlan>, count: Option<u64>) -> CapturePlan {
    CapturePlan {
        capture: true,
        write: Some(write.to_string_lossy().into_owned()),
        rotation,
        format: Format::Pcapng,
        file_snaplen: 262_144,
        count,
        logging: false,
        log_format: LogFormat::default(),
        log_file: None,
    }
}

/// A dropped IPv4 packet's event record from 192.0.2.1 to 198.51.100.7 port `port`.
fn raw_event(port: u16) -> Vec<u8> {
    let event = Event {
        timestamp_ns: 1_000_000_000,
        src: [u32::from_ne_bytes([192, 0, 2, 1]), 0, 0, 0],
        dst: [u32::from_ne_bytes([198, 51, 100, 7]), 0, 0, 0],
        ifindex: IFINDEX,
        rule_id: 0,
        frame_len: 60,
        src_port: 53,
        dst_port: port,
        vlan_id: 0,
        family: family::IPV4,
        protocol: 17,
        tcp_flags: 0,
        verdict: verdict::DROP,
        flags: 0,
        generation: 1,
        shadow_rule_id: 0,
        _pad: 0,
    };
    // SAFETY: Event is repr(C) without padding (its size is asserted in common).
    unsafe { std::slice::from_raw_parts((&raw const event).cast::<u8>(), size_of::<Event>()) }
        .to_vec()
}

/// A session on `plan` whose capture records come from the first queue returned, its
/// events from the second.
fn session_with_events(plan: CapturePlan) -> (CaptureSession, MemoryQueue, MemoryQueue) {
    session_with_probe(plan, None)
}

/// The same, with `probe` for a rotating capture's per-file counters.
fn session_with_probe(
    plan: CapturePlan,
    probe: Option<CounterProbe>,
) -> (CaptureSession, MemoryQueue, MemoryQueue) {
    let (capture, capture_queue) = Source::memory();
    let (events, event_queue) = Source::memory();
    let (mut capture, mut events) = (Some(capture), Some(events));
    let session = CaptureOutputs::open(plan, &interfaces())
        .unwrap()
        .into_session(
            |stream| match stream {
                Stream::Capture => Ok(capture.take().expect("asked once")),
                Stream::Events => Ok(events.take().expect("asked once")),
            },
            &RuleSet::default(),
            &interfaces(),
            1,
            probe,
        )
        .unwrap();
    (session, capture_queue, event_queue)
}

/// A session on `plan` whose capture records come from the returned queue.
fn session(plan: CapturePlan) -> (CaptureSession, MemoryQueue) {
    let (session, capture, _) = session_with_events(plan);
    (session, capture)
}

/// A pcapng file's packet numbers, its statistics blocks' (`ifrecv`, `usrdeliv`), and
/// whether it ends with a statistics block.
fn read_pcapng(path: &std::path::Path) -> (Vec<u32>, Vec<(u64, u64)>, bool) {
    let bytes = fs::read(path).unwrap();
    let mut reader = PcapNgReader::new(&bytes[..]).unwrap();
    let (mut numbers, mut statistics, mut ends_with_statistics) = (Vec::new(), Vec::new(), false);
    while let Some(block) = reader.next_block() {
        let block = block.unwrap();
        ends_with_statistics = matches!(block, Block::InterfaceStatistics(_));
        match block {
            Block::EnhancedPacket(epb) => {
                numbers.push(u32::from_be_bytes(epb.data[..4].try_into().unwrap()));
            }
            Block::InterfaceStatistics(isb) => {
                let option = |want: fn(&InterfaceStatisticsOption<'_>) -> Option<u64>| {
                    isb.options.iter().find_map(want).unwrap_or(u64::MAX)
                };
                statistics.push((
                    option(|o| match o {
                        InterfaceStatisticsOption::IsbIfRecv(n) => Some(*n),
                        _ => None,
                    }),
                    option(|o| match o {
                        InterfaceStatisticsOption::IsbUsrDeliv(n) => Some(*n),
                        _ => None,
                    }),
                ));
            }
            _ => {}
        }
    }
    (numbers, statistics, ends_with_statistics)
}

#[test]
fn finish_drains_the_rest_before_the_closing_statistics() {
    let dir = Dir::new("sess-one");
    let file = dir.file("d.pcapng");
    let (mut session, queue) = session(plan(file.clone(), None, None));
    for n in 0..3 {
        queue.push(raw_record(n, 100));
    }
    assert_eq!(session.poll(Duration::from_millis(10)).unwrap(), 3);
    // Left in the source at the stop: only the final drain writes them.
    for n in 3..8 {
        queue.push(raw_record(n, 100));
    }
    queue.push(vec![1, 2, 3]); // shorter than a header: counted, never written
    let finished = session
        .finish(|| {
            assert!(
                queue.is_empty(),
                "closing counters read before the final drain"
            );
            let counters = InterfaceCounters {
                packets: 11,
                dropped: 8,
                captured: 8,
                ..InterfaceCounters::default()
            };
            Ok(vec![(IFINDEX, counters)])
        })
        .unwrap();
    assert_eq!(finished.written.written, 8);
    assert_eq!(finished.written.undecodable, 1);
    assert_eq!(finished.written.capture_not_written, 0);
    assert_eq!(finished.perf_lost, 0);
    let (numbers, statistics, closed) = read_pcapng(&file);
    assert_eq!(numbers, (0..8).collect::<Vec<_>>());
    assert!(closed, "the file ends with its statistics block");
    assert_eq!(statistics.len(), 1);
    assert_eq!(
        statistics[0].0, 11,
        "the closing counters are the interface's"
    );
}

#[test]
fn rotates_by_size_and_runs_z_on_each_file_once_closed() {
    let dir = Dir::new("sess-rotate");
    let copies = dir.file("z");
    fs::create_dir(&copies).unwrap();
    // -z: a copy of each file as the command found it.
    let script = dir.file("copy.sh");
    fs::write(
        &script,
        format!("#!/bin/sh\ncp \"$1\" '{}'/\n", copies.display()),
    )
    .unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let rotation = RotationPlan {
        size: Some(20_000),
        period: None,
        files: None,
        command: Some(script.to_string_lossy().into_owned()),
    };
    let (mut session, queue) = session(plan(dir.file("d.pcapng"), Some(rotation), None));
    let total = 500;
    for n in 0..total {
        queue.push(raw_record(n, 200));
        if n % 50 == 49 {
            session.poll(Duration::from_millis(10)).unwrap();
            session.housekeeping();
        }
    }
    let finished = session
        // Ignored: a rotating capture closes each file with its own packets' counts.
        .finish(|| Ok(vec![(IFINDEX, InterfaceCounters::default())]))
        .unwrap();
    assert_eq!(finished.written.written, u64::from(total));
    assert_eq!(finished.written.capture_not_written, 0);

    // tcpdump's names: d.pcapng, d.pcapng1, d.pcapng2, ...
    let mut files: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("d.pcapng"))
        .collect();
    files.sort_by_key(|name| (name.len(), name.clone()));
    assert!(files.len() >= 4, "{files:?}");
    let mut all = Vec::new();
    for name in &files {
        let path = dir.file(name);
        let (numbers, statistics, closed) = read_pcapng(&path);
        assert!(closed, "{name} ends with its statistics block");
        let delivered: Vec<u64> = statistics.iter().map(|&(_, usrdeliv)| usrdeliv).collect();
        assert_eq!(
            delivered,
            vec![numbers.len() as u64],
            "{name}: its own packets in its statistics"
        );
        // The command ran on the finished file: its copy is the whole file, the
        // last one's included (closed before its command started).
        assert_eq!(
            fs::read(copies.join(name)).unwrap(),
            fs::read(&path).unwrap(),
            "-z saw {name} before it was closed"
        );
        all.extend(numbers);
    }
    assert_eq!(
        all,
        (0..total).collect::<Vec<_>>(),
        "every packet once, in order"
    );
}

#[test]
fn count_stops_the_capture_and_counts_the_rest_past_it() {
    let dir = Dir::new("sess-count");
    let file = dir.file("d.pcapng");
    let (mut session, queue) = session(plan(file.clone(), None, Some(3)));
    assert!(!session.limit_reached());
    for n in 0..5 {
        queue.push(raw_record(n, 60));
    }
    session.poll(Duration::from_millis(10)).unwrap();
    assert!(session.limit_reached());
    assert_eq!(session.failed_outputs(), 0);
    let finished = session
        .finish(|| Ok(vec![(IFINDEX, InterfaceCounters::default())]))
        .unwrap();
    assert_eq!(finished.written.written, 3);
    assert_eq!(finished.written.past_count, 2);
    assert_eq!(read_pcapng(&file).0, vec![0, 1, 2]);
}

#[test]
fn an_error_reading_the_closing_counters_ends_before_the_closing_blocks() {
    let dir = Dir::new("sess-closing-error");
    let file = dir.file("d.pcapng");
    let (mut session, queue) = session(plan(file.clone(), None, None));
    queue.push(raw_record(0, 60));
    session.poll(Duration::from_millis(10)).unwrap();
    let error = session.finish(|| bail!("counters unreadable")).err();
    assert!(error.is_some_and(|e| e.to_string().contains("counters unreadable")));
    let (numbers, statistics, _) = read_pcapng(&file);
    assert_eq!(numbers, vec![0]);
    assert!(statistics.is_empty());
}

#[test]
fn capture_and_event_log_drain_to_the_end_and_count_alike() {
    let dir = Dir::new("sess-both");
    let (file, log) = (dir.file("d.pcapng"), dir.file("events.log"));
    let plan = CapturePlan {
        logging: true,
        log_file: Some(log.clone()),
        ..plan(file.clone(), None, None)
    };
    let (mut session, captures, events) = session_with_events(plan);
    for n in 0..4 {
        captures.push(raw_record(n, 80));
        events.push(raw_event(1000 + n as u16));
    }
    assert_eq!(session.poll(Duration::from_millis(10)).unwrap(), 8);
    events.push(raw_event(2000)); // only the final drain writes it
    events.push(vec![0; 8]); // shorter than an event
    let finished = session
        .finish(|| Ok(vec![(IFINDEX, InterfaceCounters::default())]))
        .unwrap();
    assert_eq!(finished.written.written, 4);
    assert_eq!(finished.written.logged, 5);
    assert_eq!(finished.written.undecodable, 1);
    assert_eq!(finished.written.log_not_written, 0);
    let lines = fs::read_to_string(&log).unwrap();
    assert_eq!(lines.lines().count(), 5, "{lines}");
    assert!(lines.lines().all(|l| l.contains("192.0.2.1")), "{lines}");
    assert_eq!(read_pcapng(&file).0, vec![0, 1, 2, 3]);
}

#[test]
fn a_ring_of_three_files_keeps_the_newest_packets() {
    let dir = Dir::new("sess-ring");
    let rotation = RotationPlan {
        size: Some(10_000),
        period: None,
        files: Some(3),
        command: None,
    };
    let (mut session, queue) = session(plan(dir.file("d.pcapng"), Some(rotation), None));
    let total = 600;
    for n in 0..total {
        queue.push(raw_record(n, 200));
        if n % 40 == 39 {
            session.poll(Duration::from_millis(10)).unwrap();
        }
    }
    let finished = session
        .finish(|| Ok(vec![(IFINDEX, InterfaceCounters::default())]))
        .unwrap();
    assert_eq!(finished.written.written, u64::from(total));
    let mut names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    // tcpdump's names with -W 3: d.pcapng0, d.pcapng1, d.pcapng2, overwritten in turn.
    assert_eq!(names, ["d.pcapng0", "d.pcapng1", "d.pcapng2"]);
    let mut kept = Vec::new();
    for name in &names {
        let (numbers, _, closed) = read_pcapng(&dir.file(name));
        assert!(closed, "{name} ends with its statistics block");
        kept.extend(numbers);
    }
    kept.sort_unstable();
    // The newest packets, each once, up to the last one written.
    let first = total - kept.len() as u32;
    assert_eq!(kept, (first..total).collect::<Vec<_>>());
}

#[test]
fn a_failed_output_stops_itself_and_counts_every_record_not_written() {
    // Writes to /dev/full fail with ENOSPC: the header already, before any record.
    let (mut session, queue) = session(plan("/dev/full".into(), None, None));
    assert_eq!(session.failed_outputs(), 1);
    for n in 0..5 {
        queue.push(raw_record(n, 60));
    }
    assert_eq!(session.poll(Duration::from_millis(10)).unwrap(), 5);
    let finished = session
        .finish(|| Ok(vec![(IFINDEX, InterfaceCounters::default())]))
        .unwrap();
    assert_eq!(finished.written.written, 0);
    assert_eq!(finished.written.capture_not_written, 5);
}

#[test]
fn each_rotated_file_gives_what_the_kernel_counted_while_it_was_open() {
    let dir = Dir::new("sess-probe");
    let rotation = RotationPlan {
        size: Some(20_000),
        period: None,
        files: None,
        command: None,
    };
    // Each reading of the counters finds 100 more packets, 7 more of them sampled out.
    let mut readings = 0u64;
    let probe: CounterProbe = Box::new(move || {
        readings += 1;
        let counters = InterfaceCounters {
            packets: 100 * readings,
            sampled_out: 7 * readings,
            ..InterfaceCounters::default()
        };
        Some(vec![(IFINDEX, counters)])
    });
    let plan = plan(dir.file("d.pcapng"), Some(rotation), None);
    let (mut session, queue, _) = session_with_probe(plan, Some(probe));
    for n in 0..300 {
        queue.push(raw_record(n, 200));
        if n % 50 == 49 {
            session.poll(Duration::from_millis(10)).unwrap();
        }
    }
    session
        .finish(|| Ok(vec![(IFINDEX, InterfaceCounters::default())]))
        .unwrap();
    let files: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(files.len() >= 3, "{files:?}");
    for file in files {
        let (numbers, statistics, closed) = read_pcapng(&file);
        assert!(closed, "{}", file.display());
        // Read when the file opened and when it closed: 100 packets between.
        assert_eq!(
            statistics,
            vec![(100, numbers.len() as u64)],
            "{}",
            file.display()
        );
        let bytes = fs::read(&file).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            text.contains("sampled out (by choice, not loss): 7"),
            "{}",
            file.display()
        );
    }
}
