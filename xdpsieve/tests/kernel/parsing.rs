//! Verdict-table cases for the parser's ordinary paths: each protocol in both families,
//! direction and port ranges, VLAN tags (802.1Q, 802.1ad, stacked, too many), and the IPv4
//! header length with its options.

use xdpsieve_testkit::frame::{
    ETH_HDR_LEN as ETH, ETH_P_8021AD as QINQ, ETH_P_8021Q as DOT1Q, Frame,
};

use crate::support::{HOST4, HOST6, RESOLVER4, WATCHED4, WATCHED6};
use crate::verdicts::{
    Case, DEFAULT, NOT_IP, case, dns4, dns6, dropped_by, hostile4, hostile6, passed_by, v4, v6,
};

/// Protocols, VLAN tags and IPv4 header lengths.
pub(crate) fn cases() -> Vec<Case> {
    vec![
        // Each protocol, both families.
        case("ipv4 udp src port 53", dns4(), dropped_by(2)),
        case(
            "ipv4 udp src port 53 from the trusted resolver (first match wins)",
            Frame::ipv4(RESOLVER4, HOST4).udp(53, 40000),
            passed_by(1),
        ),
        case(
            "ipv4 udp dst port 53 (direction)",
            v4().udp(40000, 53),
            DEFAULT,
        ),
        case(
            "ipv4 tcp dst port 6000 (range start)",
            v4().tcp(40000, 6000),
            dropped_by(3),
        ),
        case(
            "ipv4 tcp dst port 6010 (range end)",
            v4().tcp(40000, 6010),
            dropped_by(3),
        ),
        case("ipv4 tcp dst port 5999", v4().tcp(40000, 5999), DEFAULT),
        case("ipv4 tcp dst port 6011", v4().tcp(40000, 6011), DEFAULT),
        case(
            "ipv4 tcp src port 6005 (direction)",
            v4().tcp(6005, 80),
            DEFAULT,
        ),
        case(
            "ipv4 tcp src port 53 (protocol)",
            v4().tcp(53, 40000),
            DEFAULT,
        ),
        case(
            "ipv4 tcp from the hostile net",
            hostile4().tcp(40000, 80),
            dropped_by(4),
        ),
        case(
            "ipv4 icmp to the watched host",
            Frame::ipv4(HOST4, WATCHED4).icmp(),
            dropped_by(6),
        ),
        case("ipv4 icmp elsewhere", v4().icmp(), DEFAULT),
        case(
            "ipv4 icmp from the hostile net",
            hostile4().icmp(),
            dropped_by(4),
        ),
        case(
            "ipv4 gre (no ports, not malformed)",
            v4().l4(47, &[0; 4]),
            DEFAULT,
        ),
        case("ipv6 udp src port 53", dns6(), dropped_by(2)),
        case(
            "ipv6 udp dst port 53 (direction)",
            v6().udp(40000, 53),
            DEFAULT,
        ),
        case(
            "ipv6 tcp dst port 6003",
            v6().tcp(40000, 6003),
            dropped_by(3),
        ),
        case("ipv6 tcp dst port 443", v6().tcp(40000, 443), DEFAULT),
        case(
            "ipv6 tcp from the hostile prefix",
            hostile6().tcp(40000, 443),
            dropped_by(5),
        ),
        case(
            "ipv6 icmp6 to the watched host",
            Frame::ipv6(HOST6, WATCHED6).icmp6(),
            dropped_by(7),
        ),
        case("ipv6 icmp6 elsewhere", v6().icmp6(), DEFAULT),
        case("ipv6 no next header (59)", v6().l4(59, &[]), DEFAULT),
        // VLAN tags.
        case(
            "802.1Q ipv4 udp src port 53",
            dns4().vlan(DOT1Q),
            dropped_by(2),
        ),
        case(
            "802.1ad ipv4 udp src port 53",
            dns4().vlan(QINQ),
            dropped_by(2),
        ),
        case(
            "802.1ad+802.1Q ipv4 udp src port 53",
            dns4().vlan(QINQ).vlan(DOT1Q),
            dropped_by(2),
        ),
        case(
            "802.1ad+802.1Q ipv6 tcp dst port 6000",
            v6().tcp(40000, 6000).vlan(QINQ).vlan(DOT1Q),
            dropped_by(3),
        ),
        case(
            "802.1Q+802.1Q ipv4 udp, no rule",
            v4().vlan(DOT1Q).vlan(DOT1Q),
            DEFAULT,
        ),
        case(
            "three tags hide udp src port 53",
            dns4().vlan(QINQ).vlan(DOT1Q).vlan(DOT1Q),
            NOT_IP.malformed(),
        ),
        case(
            "802.1Q tag cut after its TCI",
            dns4().vlan(DOT1Q).truncate(ETH + 2),
            NOT_IP.malformed(),
        ),
        case("802.1Q arp", Frame::arp().vlan(DOT1Q), NOT_IP),
        // IPv4 header length and options.
        case(
            "ipv4 options that look like ports 53 -> 53 (IHL 6)",
            v4().options(&[0, 53, 0, 53]),
            DEFAULT,
        ),
        case(
            "ipv4 IHL 15 tcp dst port 6005",
            v4().nop_options(10).tcp(40000, 6005),
            dropped_by(3),
        ),
        case(
            "ipv4 IHL 4 hides udp src port 53",
            dns4().ihl(4),
            NOT_IP.malformed(),
        ),
        case(
            "ipv4 IHL 0 from the hostile net",
            hostile4().ihl(0),
            NOT_IP.malformed(),
        ),
        case(
            "ipv4 ethertype, version 6",
            dns4().version(6),
            NOT_IP.malformed(),
        ),
        case(
            "ipv4 ethertype, version 0",
            dns4().version(0),
            NOT_IP.malformed(),
        ),
        case(
            "ipv6 ethertype, version 4",
            dns6().version(4),
            NOT_IP.malformed(),
        ),
        case(
            "ipv4 IHL 15 but 20 header bytes, from the hostile net",
            hostile4().ihl(15),
            dropped_by(4).malformed().unclassifiable(),
        ),
        case(
            "ipv4 IHL 15 but 20 header bytes, udp src port 53",
            dns4().ihl(15),
            DEFAULT.malformed().unclassifiable(),
        ),
    ]
}

/// IPv4 options of several lengths, up to the largest header (IHL 15).
pub(crate) fn ihl_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for ihl in [6, 10, 15] {
        let frame = dns4().nop_options(ihl - 5);
        cases.push(case(
            format!("ipv4 IHL {ihl} udp src port 53"),
            frame,
            dropped_by(2),
        ));
    }
    cases
}
