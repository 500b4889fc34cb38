//! Packets built from arbitrary bytes, written by the pcap and pcapng writers and read back
//! with the pcap-file crate: the reader must see every packet, with its timestamp, bytes
//! (cut at the snaplen), original length, interface, verdict, queue and comment.
//!
//! Input layout: one byte of settings (format, snaplen), then per packet a 16-byte header
//! (seconds, nanoseconds, ifindex, queue, original length, verdict, comment length, data
//! length) followed by the comment and the data. Sizes stay within what the recorder
//! produces: data up to MAX_SNAPLEN, comments up to 255 bytes.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use pcap_file::{
    pcap::PcapReader,
    pcapng::{Block, PcapNgReader, blocks::enhanced_packet::EnhancedPacketOption},
};
use xdpsieve::write::capture::{CaptureWriter, Format, Interface, Packet};

/// Reads fixed-size fields off the front of the input.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

struct Owned {
    timestamp: Duration,
    ifindex: u32,
    rx_queue: u32,
    orig_len: u32,
    verdict: u8,
    comment: String,
    data: Vec<u8>,
}

fn packets(input: &mut Input<'_>) -> Vec<Owned> {
    let mut out = Vec::new();
    while out.len() < 64 {
        let (Some(secs), Some(nanos), Some(ifindex), Some(rx_queue), Some(orig_len)) = (
            input.u32(),
            input.u32(),
            input.u8(),
            input.u8(),
            input.u16(),
        ) else {
            break;
        };
        let (Some(verdict), Some(comment_len), Some(data_len)) =
            (input.u8(), input.u8(), input.u16())
        else {
            break;
        };
        let comment = String::from_utf8_lossy(input.take(comment_len.into()).unwrap_or_default());
        let data_len = usize::from(data_len).min(xdpsieve_common::MAX_SNAPLEN as usize);
        let data = input.take(data_len.min(input.0.len())).unwrap_or_default();
        out.push(Owned {
            timestamp: Duration::new(secs.into(), nanos % 1_000_000_000),
            ifindex: u32::from(ifindex % 4) + 1,
            rx_queue: rx_queue.into(),
            orig_len: orig_len.into(),
            verdict,
            comment: comment.into_owned(),
            data: data.to_vec(),
        });
    }
    out
}

fuzz_target!(|bytes: &[u8]| {
    let mut input = Input(bytes);
    let Some(settings) = input.u8() else {
        return;
    };
    let format = if settings & 1 == 0 {
        Format::Pcap
    } else {
        Format::Pcapng
    };
    let snaplen = [64, 128, 1500, xdpsieve_common::MAX_SNAPLEN][usize::from(settings >> 1 & 3)];
    let packets = packets(&mut input);
    // Interfaces 1 and 2 are announced; 3 and 4 are described when first seen.
    let interfaces = [
        Interface {
            ifindex: 1,
            name: "veth-a".into(),
        },
        Interface {
            ifindex: 2,
            name: "veth-b".into(),
        },
    ];
    let mut writer = CaptureWriter::new(format, Vec::new(), snaplen, &interfaces);
    for p in &packets {
        writer
            .write(&Packet {
                timestamp: p.timestamp,
                ifindex: p.ifindex,
                rx_queue: p.rx_queue,
                orig_len: p.orig_len,
                verdict: p.verdict,
                comment: &p.comment,
                data: &p.data,
            });
    }
    writer.flush().expect("writing to memory");
    let file = writer.into_inner();
    let cut = |p: &Owned| p.data.len().min(snaplen as usize);
    let orig = |p: &Owned| p.orig_len.max(cut(p) as u32);
    match format {
        Format::Pcap => {
            let mut reader = PcapReader::new(&file[..]).expect("pcap header");
            for p in &packets {
                // The raw reader: pcap-file's checked one refuses orig_len > snaplen.
                let r = reader
                    .next_raw_packet()
                    .expect("a packet")
                    .expect("readable");
                assert_eq!(r.ts_sec, p.timestamp.as_secs() as u32);
                assert_eq!(r.ts_frac, p.timestamp.subsec_nanos());
                assert_eq!(&*r.data, &p.data[..cut(p)]);
                assert_eq!((r.incl_len, r.orig_len), (cut(p) as u32, orig(p)));
            }
            assert!(reader.next_raw_packet().is_none(), "no trailing data");
        }
        Format::Pcapng => {
            let mut reader = PcapNgReader::new(&file[..]).expect("section header");
            let mut epbs = Vec::new();
            while let Some(block) = reader.next_block() {
                if let Block::EnhancedPacket(epb) = block.expect("a readable block") {
                    epbs.push(epb.into_owned());
                }
            }
            assert_eq!(epbs.len(), packets.len());
            let names: Vec<String> = reader
                .interfaces()
                .iter()
                .map(|idb| format!("{:?}", idb.options))
                .collect();
            for (p, e) in packets.iter().zip(&epbs) {
                assert_eq!(e.timestamp, p.timestamp);
                assert_eq!(&*e.data, &p.data[..cut(p)]);
                assert_eq!(e.original_len, orig(p));
                let name = &names[e.interface_id as usize];
                let expected = match p.ifindex {
                    1 => "veth-a".to_string(),
                    2 => "veth-b".to_string(),
                    n => format!("ifindex{n}"),
                };
                assert!(name.contains(&format!("\"{expected}\"")), "{name}");
                let comment = e.options.iter().find_map(|o| match o {
                    EnhancedPacketOption::Comment(c) => Some(c.to_string()),
                    _ => None,
                });
                assert_eq!(comment, (!p.comment.is_empty()).then(|| p.comment.clone()));
                let verdict = e.options.iter().find_map(|o| match o {
                    EnhancedPacketOption::Unknown(u) if u.code == 7 => Some(u.value.to_vec()),
                    _ => None,
                });
                let mut expected_verdict = vec![2u8];
                expected_verdict.extend_from_slice(&u64::from(p.verdict).to_ne_bytes());
                assert_eq!(verdict, Some(expected_verdict));
            }
        }
    }
});
