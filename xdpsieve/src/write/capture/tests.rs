//! Round trips through the pcap-file crate's readers: what we write is what a third-party
//! parser reads back.

use std::time::Duration;

use pcap_file::{
    pcap::PcapReader,
    pcapng::{
        Block, PcapNgReader,
        blocks::{
            enhanced_packet::EnhancedPacketOption,
            interface_description::InterfaceDescriptionOption,
        },
    },
};

use super::*;

fn interfaces() -> Vec<Interface> {
    vec![
        Interface {
            ifindex: 7,
            name: "veth-a".into(),
        },
        Interface {
            ifindex: 9,
            name: "veth-b".into(),
        },
    ]
}

fn packets(payload: &[u8]) -> Vec<Packet<'_>> {
    vec![
        Packet {
            timestamp: Duration::new(1_700_000_000, 123_456_789),
            ifindex: 7,
            rx_queue: 1,
            orig_len: payload.len() as u32,
            verdict: 1,
            comment: "rule=block-dns id=1",
            data: payload,
        },
        Packet {
            timestamp: Duration::new(1_700_000_001, 5),
            ifindex: 9,
            rx_queue: 0,
            orig_len: 9000, // captured only in part
            verdict: 2,
            comment: "",
            data: &payload[..3],
        },
    ]
}

#[test]
fn pcap_round_trip() {
    let payload: Vec<u8> = (0..61u8).collect();
    let mut w = CaptureWriter::new(Format::Pcap, Vec::new(), 16384, &interfaces());
    for p in packets(&payload) {
        w.write(&p);
    }
    let bytes = w.into_inner();
    let mut r = PcapReader::new(&bytes[..]).unwrap();
    assert_eq!(r.header().snaplen, 16384);
    assert_eq!(
        r.header().ts_resolution,
        pcap_file::TsResolution::NanoSecond
    );
    assert_eq!(r.header().datalink, pcap_file::DataLink::ETHERNET);
    let first = r.next_packet().unwrap().unwrap();
    assert_eq!(first.timestamp, Duration::new(1_700_000_000, 123_456_789));
    assert_eq!((first.orig_len, &*first.data), (61, &payload[..]));
    let second = r.next_packet().unwrap().unwrap();
    assert_eq!((second.orig_len, &*second.data), (9000, &payload[..3]));
    assert!(r.next_packet().is_none());
}

#[test]
fn pcap_truncates_to_snaplen() {
    let payload = [0xabu8; 100];
    let mut w = CaptureWriter::new(Format::Pcap, Vec::new(), 64, &[]);
    w.write(&packets(&payload)[0]);
    let bytes = w.into_inner();
    let mut r = PcapReader::new(&bytes[..]).unwrap();
    // pcap-file 2.0 rejects orig_len > snaplen in its checked reader, although libpcap
    // writes exactly that for every truncated packet; its raw reader does not check.
    let p = r.next_raw_packet().unwrap().unwrap();
    assert_eq!((p.data.len(), p.incl_len, p.orig_len), (64, 64, 100));
}

#[test]
fn pcapng_round_trip_with_verdict_queue_and_comment() {
    let payload: Vec<u8> = (0..61u8).collect();
    let mut w = CaptureWriter::new(Format::Pcapng, Vec::new(), 16384, &interfaces());
    for p in packets(&payload) {
        w.write(&p);
    }
    // An interface nobody announced still gets described before its packet.
    let mut late = packets(&payload)[0];
    late.ifindex = 42;
    w.write(&late);
    let bytes = w.into_inner();

    let mut r = PcapNgReader::new(&bytes[..]).unwrap();
    let mut epbs = Vec::new();
    while let Some(block) = r.next_block() {
        if let Block::EnhancedPacket(epb) = block.unwrap() {
            epbs.push(epb.into_owned());
        }
    }
    let names: Vec<String> = r
        .interfaces()
        .iter()
        .map(|idb| {
            assert!(
                idb.options
                    .contains(&InterfaceDescriptionOption::IfTsResol(9))
            );
            idb.options
                .iter()
                .find_map(|o| match o {
                    InterfaceDescriptionOption::IfName(n) => Some(n.to_string()),
                    _ => None,
                })
                .unwrap()
        })
        .collect();
    assert_eq!(names, ["veth-a", "veth-b", "ifindex42"]);
    assert_eq!(epbs.len(), 3);
    assert_eq!(epbs[0].interface_id, 0);
    assert_eq!(epbs[1].interface_id, 1);
    assert_eq!(epbs[2].interface_id, 2);
    assert_eq!(epbs[0].timestamp, Duration::new(1_700_000_000, 123_456_789));
    assert_eq!((&*epbs[0].data, epbs[0].original_len), (&payload[..], 61));
    assert_eq!((epbs[1].data.len(), epbs[1].original_len), (3, 9000));

    let verdict = |opts: &[EnhancedPacketOption<'_>]| {
        opts.iter().find_map(|o| match o {
            EnhancedPacketOption::Unknown(u) if u.code == 7 => Some(u.value.to_vec()),
            _ => None,
        })
    };
    let mut expected = vec![2u8];
    expected.extend_from_slice(&1u64.to_ne_bytes());
    assert_eq!(verdict(&epbs[0].options), Some(expected));
    assert!(
        epbs[0]
            .options
            .contains(&EnhancedPacketOption::Comment("rule=block-dns id=1".into()))
    );
    assert!(
        !epbs[1]
            .options
            .iter()
            .any(|o| matches!(o, EnhancedPacketOption::Comment(_)))
    );
}
