//! Verdict-table cases for frames that lie or stop short: headers cut at every layer,
//! IPv4 total and IPv6 payload lengths that run past the frame or fall short of the
//! headers, Ethernet padding (which is not a lie), and frames that are not IP at all.

use xdpsieve_testkit::frame::{
    ETH_HDR_LEN as ETH, ETH_P_8021AD as QINQ, ETH_P_8021Q as DOT1Q, ETH_P_ARP, ETH_P_IPV4,
    ETH_P_IPV6, Frame, IPV4_HDR_LEN as V4H, IPV6_HDR_LEN as V6H,
};
use xdpsieve_testkit::rng::Rng;

use crate::support::{HOST4, WATCHED4};
use crate::verdicts::{
    Case, DEFAULT, NOT_IP, case, dns4, dns6, dropped_by, hbh, hostile4, hostile6, v4,
};

/// Truncated frames, lying lengths, and frames that are not IP.
pub(crate) fn cases() -> Vec<Case> {
    vec![
        // Truncated frames.
        case(
            "ethernet header only, ipv4 ethertype",
            Frame::ethertype(ETH_P_IPV4, &[]),
            NOT_IP.malformed(),
        ),
        case(
            "ethernet header only, ipv6 ethertype",
            Frame::ethertype(ETH_P_IPV6, &[]),
            NOT_IP.malformed(),
        ),
        case(
            "ethernet header only, arp ethertype",
            Frame::ethertype(ETH_P_ARP, &[]),
            NOT_IP,
        ),
        case(
            "ipv4 header cut at 10 bytes, from the hostile net",
            hostile4().truncate(ETH + 10),
            NOT_IP.malformed(),
        ),
        case(
            "ipv4 header cut one byte short",
            dns4().truncate(ETH + V4H - 1),
            NOT_IP.malformed(),
        ),
        case(
            "ipv6 header cut at 30 bytes",
            dns6().truncate(ETH + 30),
            NOT_IP.malformed(),
        ),
        case(
            "ipv4 udp header cut to its ports, from the hostile net",
            hostile4().udp(53, 40000).truncate(ETH + V4H + 4),
            dropped_by(4).malformed().unclassifiable(),
        ),
        case(
            "ipv4 udp header cut to its ports, src port 53",
            dns4().truncate(ETH + V4H + 4),
            DEFAULT.malformed().unclassifiable(),
        ),
        case(
            "ipv4 udp header of 4 bytes inside a consistent total length",
            v4().l4(17, &[0, 53, 0x9c, 0x40]),
            DEFAULT.malformed().unclassifiable(),
        ),
        case(
            "ipv4 total length says udp is 4 bytes",
            dns4().total_len((V4H + 4) as u16),
            DEFAULT.malformed().unclassifiable(),
        ),
        case(
            "ipv4 tcp header of 8 bytes (ports present) inside a consistent total length",
            v4().l4(6, &[0x9c, 0x40, 0x17, 0x75, 0, 0, 0, 1]),
            DEFAULT.malformed().unclassifiable(),
        ),
        case(
            "ipv4 tcp header cut to 8 bytes, dst port 6005",
            v4().tcp(40000, 6005).truncate(ETH + V4H + 8),
            DEFAULT.malformed().unclassifiable(),
        ),
        case(
            "ipv4 icmp cut to 2 bytes, to the watched host",
            Frame::ipv4(HOST4, WATCHED4).icmp().truncate(ETH + V4H + 2),
            dropped_by(6).malformed(),
        ),
        case(
            "ipv4 udp protocol without any udp bytes",
            v4().l4(17, &[]),
            DEFAULT.malformed().unclassifiable(),
        ),
        case(
            "ipv6 udp header cut to its ports, src port 53",
            dns6().truncate(ETH + V6H + 4),
            DEFAULT.malformed().unclassifiable(),
        ),
        case(
            "ipv6 udp header cut to its ports, from the hostile prefix",
            hostile6().udp(53, 40000).truncate(ETH + V6H + 4),
            dropped_by(5).malformed().unclassifiable(),
        ),
        // Lying lengths.
        case(
            "ipv4 total length past the frame, from the hostile net",
            hostile4().total_len(1000),
            dropped_by(4).malformed().unclassifiable(),
        ),
        case(
            // The UDP header is all there, but the frame is malformed: port rules never match.
            "ipv4 total length past the frame, udp src port 53",
            dns4().total_len(1000),
            DEFAULT.malformed().unclassifiable(),
        ),
        case(
            "ipv4 total length 10 (< IHL*4), udp src port 53",
            dns4().total_len(10),
            DEFAULT.malformed().unclassifiable(),
        ),
        case(
            "ipv4 total length 0, udp src port 53",
            dns4().total_len(0),
            DEFAULT.malformed().unclassifiable(),
        ),
        case(
            "ipv4 total length 10 (< IHL*4), from the hostile net",
            hostile4().total_len(10),
            dropped_by(4).malformed().unclassifiable(),
        ),
        case(
            "ipv4 total length 23 with IHL 6, udp src port 53",
            dns4().nop_options(1).total_len(23),
            DEFAULT.malformed().unclassifiable(),
        ),
        case(
            "ipv4 then ethernet padding (not a lie)",
            dns4().trailer(18),
            dropped_by(2),
        ),
        case(
            "ipv6 then ethernet padding (not a lie)",
            dns6().trailer(10),
            dropped_by(2),
        ),
        case(
            // As above: a lying length makes the frame malformed, so port rules never match.
            "ipv6 payload length past the frame, udp src port 53",
            dns6().payload_len(1000),
            DEFAULT.malformed().unclassifiable(),
        ),
        case(
            "ipv6 payload length past the frame, from the hostile prefix",
            hostile6().payload_len(1000),
            dropped_by(5).malformed().unclassifiable(),
        ),
        case(
            "ipv6 payload length 4, udp src port 53",
            dns6().payload_len(4),
            DEFAULT.malformed().unclassifiable(),
        ),
        case(
            "ipv6 payload length 0 without hop-by-hop, udp src port 53",
            dns6().payload_len(0),
            DEFAULT.malformed().unclassifiable(),
        ),
        case(
            // parse.rs: "A zero payload length with a hop-by-hop header means a jumbogram; we do
            // not follow it and take the frame's own length as the bound instead."
            "ipv6 jumbogram-style payload length 0 + hop-by-hop, udp src port 53",
            dns6().ext(hbh()).payload_len(0),
            dropped_by(2),
        ),
        // Not IP at all.
        case("arp", Frame::arp(), NOT_IP),
        case("lldp (chassis, port, ttl, end)", Frame::lldp(), NOT_IP),
        case(
            "ipv4 ethertype, 40 zero bytes",
            Frame::ethertype(ETH_P_IPV4, &[0; 40]),
            NOT_IP.malformed(),
        ),
        case(
            "ipv4 ethertype, 40 0xff bytes",
            Frame::ethertype(ETH_P_IPV4, &[0xff; 40]),
            NOT_IP.malformed(),
        ),
        case("14 zero bytes", vec![0; ETH], NOT_IP),
    ]
}

/// Random bytes: a seed whose ethertype is not IP or VLAN, so the expectation is fixed.
pub(crate) fn random_case() -> Case {
    let mut rng = Rng::new(0x5eed_0001);
    let random = loop {
        let bytes = rng.bytes(96);
        let ethertype = u16::from_be_bytes([bytes[12], bytes[13]]);
        if ![ETH_P_IPV4, ETH_P_IPV6, DOT1Q, QINQ].contains(&ethertype) {
            break bytes;
        }
    };
    case("96 random bytes", random, NOT_IP)
}
