//! A rotating capture written to real files, with the time and the packets given by the
//! test: every file stands alone in a third-party reader, and the packets of all files are
//! exactly the packets written, each once, in order.

use std::{fs, path::PathBuf, time::Duration};

use pcap_file::{
    pcap::PcapReader,
    pcapng::{Block, PcapNgReader},
};

use xdpsieve_testkit::tempdir::TempDir as Dir;

use super::*;
use crate::write::capture::Packet;

fn interfaces() -> Vec<Interface> {
    vec![Interface {
        ifindex: 3,
        name: "veth-fw".into(),
    }]
}

/// Writes `count` numbered packets of `size` bytes, one per `step` of time from t=1000 s,
/// through a rotator; returns the names of the files in the order they were opened, the
/// packets written and those no longer on disk (overwritten, removed for room).
fn write_rotating(
    dir: &Dir,
    format: Format,
    plan: RotationPlan,
    count: u32,
    size: usize,
    step: Duration,
) -> (Vec<PathBuf>, u64, (u64, u64)) {
    let name = if plan.period.is_some() {
        "cap-%s"
    } else {
        "cap"
    };
    let pattern = dir.file(name).to_string_lossy().into_owned();
    let ring = plan.files.map(|_| new_ring());
    let room = ring.clone();
    let open: Opener<Sink> = Box::new(move |p| Sink::create_in_ring(p, room.clone()));
    let start = Duration::from_secs(1000);
    let (mut rotator, mut writer) = Rotator::with_opener(
        (plan, format, 64),
        &pattern,
        &interfaces(),
        start,
        ring,
        open,
    )
    .unwrap();
    let mut opened = vec![rotator.current().to_path_buf()];
    let mut now = start;
    for n in 0..count {
        let mut data = vec![0u8; size];
        data[..4].copy_from_slice(&n.to_be_bytes());
        now += step;
        if !rotator.before_packet(&mut writer, now) {
            break;
        }
        if rotator.current() != opened.last().unwrap() {
            opened.push(rotator.current().to_path_buf());
        }
        writer.write(&Packet {
            timestamp: now,
            ifindex: 3,
            rx_queue: 0,
            orig_len: size as u32,
            verdict: 1,
            comment: "",
            data: &data,
        });
        rotator.wrote(3);
    }
    rotator.finish(&mut writer, now, Duration::from_secs(5));
    let written = rotator.written_before() + writer.written();
    (opened, written, rotator.packets_gone())
}

/// The packet numbers in a pcap file.
fn pcap_numbers(path: &PathBuf) -> Vec<u32> {
    let bytes = fs::read(path).unwrap();
    let mut r = PcapReader::new(&bytes[..]).unwrap();
    let mut numbers = Vec::new();
    while let Some(p) = r.next_raw_packet() {
        let p = p.unwrap();
        numbers.push(u32::from_be_bytes(p.data[..4].try_into().unwrap()));
    }
    numbers
}

/// The packet numbers in a pcapng file, and the `usrdeliv` of its statistics blocks.
fn pcapng_numbers(path: &PathBuf) -> (Vec<u32>, Vec<u64>) {
    let bytes = fs::read(path).unwrap();
    // The reader takes the section header first, or fails.
    let mut r = PcapNgReader::new(&bytes[..]).unwrap();
    let (mut numbers, mut delivered) = (Vec::new(), Vec::new());
    let mut first = true;
    while let Some(block) = r.next_block() {
        let block = block.unwrap();
        if first {
            assert!(matches!(block, Block::InterfaceDescription(_)), "{path:?}");
            first = false;
        }
        match block {
            Block::EnhancedPacket(epb) => {
                numbers.push(u32::from_be_bytes(epb.data[..4].try_into().unwrap()));
            }
            Block::InterfaceStatistics(isb) => {
                use pcap_file::pcapng::blocks::interface_statistics::InterfaceStatisticsOption;
                delivered.extend(isb.options.iter().filter_map(|o| match o {
                    InterfaceStatisticsOption::IsbUsrDeliv(n) => Some(*n),
                    _ => None,
                }));
            }
            _ => {}
        }
    }
    assert_eq!(r.interfaces().len(), 1, "{path:?}: {:?}", r.interfaces());
    (numbers, delivered)
}

#[test]
fn pcap_files_by_size_stand_alone_and_hold_every_packet_once() {
    let dir = Dir::new("rot-pcap-size");
    let plan = RotationPlan {
        size: Some(2000),
        period: None,
        files: None,
        command: None,
    };
    let (files, written, gone) = write_rotating(&dir, Format::Pcap, plan, 200, 100, Duration::ZERO);
    assert_eq!((written, gone), (200, (0, 0)));
    // 24 + n × (16 + 64) > 2000 first at n = 25: files of 25 packets.
    assert_eq!(files.len(), 8);
    assert!(files[0].ends_with("cap") && files[1].ends_with("cap1") && files[7].ends_with("cap7"));
    let all: Vec<u32> = files.iter().flat_map(pcap_numbers).collect();
    assert_eq!(all, (0..200).collect::<Vec<_>>());
    for f in &files {
        assert!(fs::metadata(f).unwrap().len() <= 2000 + 80);
    }
}

#[test]
fn pcapng_ring_keeps_the_newest_files_each_with_its_own_statistics() {
    let dir = Dir::new("rot-pcapng-ring");
    let plan = RotationPlan {
        size: Some(3000),
        period: None,
        files: Some(3),
        command: None,
    };
    let (files, written, gone) =
        write_rotating(&dir, Format::Pcapng, plan, 500, 60, Duration::ZERO);
    assert_eq!(written, 500);
    let mut names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["cap0", "cap1", "cap2"]);
    // The files left are the last three opened; their packets are the last ones written,
    // each once and in order, and each file's statistics count its own packets.
    let last3 = &files[files.len() - 3..];
    let mut numbers = Vec::new();
    for f in last3 {
        let (n, delivered) = pcapng_numbers(f);
        assert_eq!(delivered, [n.len() as u64], "{f:?}");
        numbers.extend(n);
    }
    let first = numbers[0];
    assert_eq!(numbers, (first..500).collect::<Vec<_>>());
    // The packets before those were in the files the ring wrote over: counted, each once.
    assert!(first > 0);
    assert_eq!(gone, (u64::from(first), 0));
}

#[test]
fn period_with_files_stops_and_counts_only_what_the_files_hold() {
    let dir = Dir::new("rot-period");
    let plan = RotationPlan {
        size: None,
        period: Some(Duration::from_secs(2)),
        files: Some(3),
        command: Some("true".into()),
    };
    let (files, written, gone) = write_rotating(
        &dir,
        Format::Pcap,
        plan,
        100,
        80,
        Duration::from_millis(500),
    );
    // Packets at 1000.5 .. : a file per 2 s, three files, then stop at t = 1006.
    assert_eq!(files.len(), 3);
    let all: Vec<u32> = files.iter().flat_map(pcap_numbers).collect();
    assert_eq!(all.len() as u64, written);
    assert_eq!(all, (0..written as u32).collect::<Vec<_>>());
    assert_eq!(written, 11);
    assert_eq!(gone, (0, 0));
}
