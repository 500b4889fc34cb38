//! What the capture files hold: drops written to pcap (read back by the pcap-file crate and
//! by tcpdump), the capture filter choosing what is recorded but never what is dropped,
//! pcapng's verdict, rule and interface options read by tshark, a pcap stream on standard
//! output that stops after `-c`, jumbo frames kept whole with their true length, several
//! interfaces in one file, and the interface statistics a pcapng file ends with.

use pcap_file::pcapng::{Block, PcapNgReader};
use xdpsieve_testkit::child::{Firewall, xdp_attached};
use xdpsieve_testkit::gate::root_or_skip;
use xdpsieve_testkit::tempdir::TempDir;
use xdpsieve_testkit::tool::tool;
use xdpsieve_testkit::udp::received;

use super::*;

/// UDP source port of an Ethernet + IPv4/IPv6 (no options, no extension headers) frame.
fn udp_src_port(frame: &[u8]) -> u16 {
    let l4 = match u16::from_be_bytes([frame[12], frame[13]]) {
        0x0800 => 14 + usize::from(frame[14] & 0x0f) * 4,
        0x86dd => 14 + 40,
        other => panic!("unexpected ethertype {other:#x}"),
    };
    u16::from_be_bytes([frame[l4], frame[l4 + 1]])
}

#[test]
fn drops_dns_responses_and_captures_them_as_pcap() {
    if !root_or_skip() {
        return;
    }
    let tmp = TempDir::new("pcap");
    let capture = tmp.file("dropped.pcap");
    let net = VethPair::create("pcap", None).expect("namespaces");
    let (client4, client6) = client_sockets(&net);
    let fw = Firewall::start(
        BINARY,
        &net,
        &["--drop", "udp src port 53", "-w", capture.to_str().unwrap()],
    );

    const N: u16 = 50;
    send_dns_and_other(&net, N, 0);
    let (got4, got6) = (received(&client4), received(&client6));
    let out = fw.stop(libc::SIGINT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "xdpsieve failed: {stderr}");

    // Attached through a bpf_link in native mode: no fallback warnings.
    assert!(!stderr.contains("warning"), "{stderr}");
    // Only the non-DNS datagrams got through.
    assert_eq!((got4, got6), (u64::from(N), 0), "{stderr}");
    let s = parse_summary(&stderr);
    assert_eq!(s.seen, s.passed + s.dropped, "{stderr}");
    assert_eq!(s.dropped, 2 * u64::from(N), "{stderr}");
    assert_eq!(s.captured + s.lost, s.dropped, "{stderr}");
    assert_eq!(s.lost, 0, "{stderr}");

    let packets = read_pcap(&capture);
    assert_eq!(packets.len() as u64, s.captured);
    for (orig_len, data) in &packets {
        assert_eq!(*orig_len as usize, data.len());
        assert_eq!(udp_src_port(data), 53);
    }
    // A real client reads the same file.
    let text = tool("tcpdump", &["-nn", "-r", capture.to_str().unwrap()]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), packets.len(), "{text}");
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("192.0.2.1.53 > 192.0.2.2.40000"))
            .count(),
        usize::from(N)
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("2001:db8::1.53 > 2001:db8::2.40000"))
            .count(),
        usize::from(N)
    );
    assert!(lines.iter().all(|l| l.contains("A 192.0.2.80")), "{text}");
}

/// A capture filter after the options, as with tcpdump: every DNS response is still
/// dropped (checked at the sockets), only the IPv6 ones are captured, and the IPv4 ones are
/// counted as not selected, not as lost.
#[test]
fn capture_filter_selects_what_is_recorded_not_what_is_dropped() {
    if !root_or_skip() {
        return;
    }
    let tmp = TempDir::new("filter");
    let capture = tmp.file("dropped-v6.pcap");
    let net = VethPair::create("filter", None).expect("namespaces");
    let (client4, client6) = client_sockets(&net);
    let path = capture.to_str().unwrap();
    let fw = Firewall::start(
        BINARY,
        &net,
        &["--drop", "udp src port 53", "-w", path, "ip6", "and", "udp"],
    );
    const N: u16 = 30;
    send_dns_and_other(&net, N, 0);
    let (got4, got6) = (received(&client4), received(&client6));
    settle();
    let out = fw.stop(libc::SIGINT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "xdpsieve failed: {stderr}");
    assert!(stderr.contains("matching `ip6 and udp`"), "{stderr}");
    assert_eq!((got4, got6), (u64::from(N), 0), "{stderr}");
    let s = parse_summary(&stderr);
    assert_eq!(s.dropped, 2 * u64::from(N), "{stderr}");
    assert_eq!((s.captured, s.lost), (u64::from(N), 0), "{stderr}");
    assert!(
        stderr.contains(&format!("{N} packets not selected by the capture filter")),
        "{stderr}"
    );
    let text = tool("tcpdump", &["-nn", "-r", path]);
    assert_eq!(text.lines().count(), usize::from(N), "{text}");
    assert!(
        text.lines()
            .all(|l| l.contains("2001:db8::1.53 > 2001:db8::2.40000")),
        "{text}"
    );
}

#[test]
fn pcapng_carries_xdp_verdict_rule_and_interface() {
    if !root_or_skip() {
        return;
    }
    let tmp = TempDir::new("pcapng");
    let capture = tmp.file("all.pcapng");
    let net = VethPair::create("ng", None).expect("namespaces");
    let (_c4, _c6) = client_sockets(&net);
    let fw = Firewall::start(
        BINARY,
        &net,
        &[
            "--drop",
            "udp src port 53",
            "--capture",
            "all",
            "--format",
            "pcapng",
            "-w",
            capture.to_str().unwrap(),
        ],
    );
    send_dns_and_other(&net, 10, 0);
    settle();
    let out = fw.stop(libc::SIGTERM);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let s = parse_summary(&stderr);
    assert_eq!(s.captured, s.seen, "capturing all: {stderr}");

    // The pcap-file crate reads every block.
    let mut reader = PcapNgReader::new(std::fs::File::open(&capture).unwrap()).unwrap();
    let mut epbs = 0;
    while let Some(block) = reader.next_block() {
        if let Block::EnhancedPacket(_) = block.expect("pcapng block") {
            epbs += 1;
        }
    }
    assert_eq!(epbs, s.captured);

    // tshark decodes the standard verdict option and our comment.
    let text = tool(
        "tshark",
        &[
            "-r",
            capture.to_str().unwrap(),
            "-T",
            "fields",
            "-E",
            "separator=|",
            "-e",
            "frame.verdict.ebpf_xdp",
            "-e",
            "frame.interface_name",
            "-e",
            "udp.srcport",
            "-e",
            "frame.comment",
        ],
    );
    let mut dropped = 0;
    for line in text.lines() {
        let fields: Vec<&str> = line.split('|').collect();
        assert_eq!(fields[1], VethPair::FW_IF, "{line}");
        if fields[2] == "53" {
            assert_eq!(fields[0], "1", "XDP_DROP expected: {line}");
            assert_eq!(fields[3], "rule=drop udp src port 53 id=1", "{line}");
            dropped += 1;
        } else {
            assert_eq!(fields[0], "2", "XDP_PASS expected: {line}");
            assert_eq!(fields[3], "rule=default id=0", "{line}");
        }
    }
    assert_eq!(dropped, 20);
    assert_eq!(text.lines().count() as u64, s.captured);
    // Only packets matching the filter are shown by the display filter on the verdict.
    let drops = tool(
        "tshark",
        &[
            "-r",
            capture.to_str().unwrap(),
            "-Y",
            "frame.verdict.ebpf_xdp == 1",
        ],
    );
    assert_eq!(drops.lines().count(), 20, "{drops}");
}

#[test]
fn streams_to_stdout_and_stops_after_count() {
    if !root_or_skip() {
        return;
    }
    let net = VethPair::create("stdout", None).expect("namespaces");
    let (_c4, _c6) = client_sockets(&net);
    let fw = Firewall::start(
        BINARY,
        &net,
        &["--drop", "udp src port 53", "-w", "-", "-c", "5"],
    );
    send_dns_and_other(&net, 20, 0);
    // -c makes it exit by itself.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut fw = fw;
    let child = fw.child_mut();
    while child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "xdpsieve did not exit after -c 5"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = fw.stop(0);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let mut reader = PcapReader::new(&out.stdout[..]).expect("pcap on stdout");
    let mut n = 0;
    while let Some(p) = reader.next_raw_packet() {
        assert_eq!(udp_src_port(&p.unwrap().data), 53);
        n += 1;
    }
    assert_eq!(n, 5);
    let s = parse_summary(&stderr);
    assert_eq!(s.captured, 5, "{stderr}");
    // Whatever arrived after the fifth packet is reported, not silently discarded.
    assert_eq!(s.captured + s.lost + s.past_count, s.dropped, "{stderr}");
    assert!(!xdp_attached(&net), "program left attached after exit");
}

#[test]
fn jumbo_frames_captured_with_true_length() {
    if !root_or_skip() {
        return;
    }
    let tmp = TempDir::new("jumbo");
    let full = tmp.file("full.pcap");
    let net = VethPair::create("jumbo", Some(9000)).expect("namespaces");
    let (_c4, _c6) = client_sockets(&net);
    // 8000 bytes of DNS payload: the frame spans several pages (xdp.frags).
    let fw = Firewall::start(
        BINARY,
        &net,
        &["--drop", "udp src port 53", "-w", full.to_str().unwrap()],
    );
    send_dns_and_other(&net, 3, 8000);
    let out = fw.stop(libc::SIGINT);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let packets = read_pcap(&full);
    assert_eq!(packets.len(), 6);
    for (orig_len, data) in &packets {
        assert!(*orig_len > 8000, "orig_len {orig_len}");
        assert_eq!(data.len(), *orig_len as usize, "whole frame captured");
        // The last byte is the payload's padding, read across fragments.
        assert_eq!(data.last(), Some(&0));
    }

    let cut = tmp.file("cut.pcap");
    let fw = Firewall::start(
        BINARY,
        &net,
        &[
            "--drop",
            "udp src port 53",
            "-s",
            "1500",
            "-w",
            cut.to_str().unwrap(),
        ],
    );
    send_dns_and_other(&net, 3, 8000);
    let out = fw.stop(libc::SIGINT);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let packets = read_pcap(&cut);
    assert_eq!(packets.len(), 6);
    for (orig_len, data) in &packets {
        assert_eq!(data.len(), 1500);
        assert!(*orig_len > 8000);
    }
    let text = tool("tcpdump", &["-nn", "-r", cut.to_str().unwrap()]);
    assert_eq!(text.lines().count(), 6, "{text}");
}

#[test]
fn several_interfaces_in_one_capture() {
    if !root_or_skip() {
        return;
    }
    let tmp = TempDir::new("multi");
    let capture = tmp.file("multi.pcapng");
    let net = VethPair::create("multi", None).expect("namespaces");
    // A second link from the firewall namespace to a second peer, on 198.51.100.0/24.
    let peer2 = xdpsieve_netns::Netns::create("multi-peer2").expect("namespace");
    net.fw
        .ip(&[
            "link",
            "add",
            "fw1",
            "type",
            "veth",
            "peer",
            "name",
            "peer1",
            "netns",
            peer2.name(),
        ])
        .unwrap();
    net.fw
        .ip(&["addr", "add", "198.51.100.2/24", "dev", "fw1"])
        .unwrap();
    net.fw.ip(&["link", "set", "fw1", "up"]).unwrap();
    peer2
        .ip(&["addr", "add", "198.51.100.1/24", "dev", "peer1"])
        .unwrap();
    peer2.ip(&["link", "set", "peer1", "up"]).unwrap();

    let fw = Firewall::start(
        BINARY,
        &net,
        &[
            "-i",
            "fw1",
            "--drop",
            "udp src port 53",
            "--format",
            "pcapng",
            "-w",
            capture.to_str().unwrap(),
        ],
    );
    send_dns_and_other(&net, 4, 0);
    peer2
        .run(|| {
            let s = UdpSocket::bind("198.51.100.1:53")?;
            for i in 0..4 {
                s.send_to(&dns_response(i), "198.51.100.2:40000")?;
            }
            Ok::<_, std::io::Error>(())
        })
        .unwrap()
        .unwrap();
    let out = fw.stop(libc::SIGINT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("fw0 (native), fw1 (native)"), "{stderr}");
    let text = tool(
        "tshark",
        &[
            "-r",
            capture.to_str().unwrap(),
            "-T",
            "fields",
            "-e",
            "frame.interface_name",
        ],
    );
    assert_eq!(text.lines().filter(|l| *l == "fw0").count(), 8, "{text}");
    assert_eq!(text.lines().filter(|l| *l == "fw1").count(), 4, "{text}");
}

#[test]
fn pcapng_ends_with_interface_statistics() {
    if !root_or_skip() {
        return;
    }
    let tmp = TempDir::new("isb");
    let capture = tmp.file("isb.pcapng");
    let net = VethPair::create("isb", None).expect("namespaces");
    let (_c4, _c6) = client_sockets(&net);
    let fw = Firewall::start(
        BINARY,
        &net,
        &[
            "--drop",
            "udp src port 53",
            "--format",
            "pcapng",
            "-w",
            capture.to_str().unwrap(),
        ],
    );
    send_dns_and_other(&net, 5, 0);
    settle();
    let out = fw.stop(libc::SIGINT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let s = parse_summary(&stderr);

    use pcap_file::pcapng::blocks::{
        interface_statistics::InterfaceStatisticsOption as Isb, section_header::SectionHeaderOption,
    };
    let mut reader = PcapNgReader::new(std::fs::File::open(&capture).unwrap()).unwrap();
    assert!(reader.section().options.iter().any(
        |o| matches!(o, SectionHeaderOption::UserApplication(a) if a.starts_with("xdpsieve "))
    ));
    let mut isb = None;
    while let Some(block) = reader.next_block() {
        if let Block::InterfaceStatistics(b) = block.unwrap() {
            isb = Some(b.into_owned());
        }
    }
    let isb = isb.expect("an interface statistics block");
    let (mut recv, mut drop, mut os_drop, mut delivered) = (None, None, None, None);
    for option in &isb.options {
        match option {
            Isb::IsbIfRecv(v) => recv = Some(*v),
            Isb::IsbIfDrop(v) => drop = Some(*v),
            Isb::IsbOsDrop(v) => os_drop = Some(*v),
            Isb::IsbUsrDeliv(v) => delivered = Some(*v),
            _ => {}
        }
    }
    assert_eq!(recv, Some(s.seen));
    assert_eq!(drop, Some(s.dropped));
    assert_eq!(os_drop, Some(s.lost));
    assert_eq!(delivered, Some(s.captured));
    // Wireshark's own reader sees the block too.
    let info = tool("capinfos", &["-I", capture.to_str().unwrap()]);
    assert!(info.contains("Number of stat entries = 1"), "{info}");
}
