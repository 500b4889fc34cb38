//! Shared by the filter tests: the crafted frames (VLAN and QinQ tags, IPv6 extension
//! headers, IPv4 and IPv6 fragments, ICMP types, TCP flags, non-IP frames, a truncated frame)
//! and the tcpdump expressions run over them, covering every construct of the filter language.

use xdpsieve_testkit::frame::{Ext, Frame};

// Documentation addresses; the kernel tests use the same.
pub(crate) const A4: [u8; 4] = [192, 0, 2, 10];
pub(crate) const B4: [u8; 4] = [198, 51, 100, 7];
const C4: [u8; 4] = [203, 0, 113, 5];
const D4: [u8; 4] = [192, 0, 2, 66];
pub(crate) const A6: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];
pub(crate) const B6: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x20,
];
const BAD6: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0x0b, 0xad, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7,
];

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

/// A TCP header with `flags`, then `payload` bytes.
fn tcp(src: u16, dst: u16, flags: u8, payload: usize) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(src.to_be_bytes());
    b.extend(dst.to_be_bytes());
    b.extend(7u32.to_be_bytes());
    b.extend(9u32.to_be_bytes());
    b.extend([5 << 4, flags]);
    b.extend(8192u16.to_be_bytes());
    b.extend([0; 4]);
    b.resize(b.len() + payload, 0x5a);
    b
}

/// An ICMP (or ICMPv6) message of `kind` and `code`.
fn icmp(kind: u8, code: u8) -> Vec<u8> {
    vec![kind, code, 0, 0, 0x12, 0x34, 0, 1]
}

pub(crate) fn frames() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("udp 53 query", Frame::ipv4(A4, B4).udp(5353, 53).build()),
        ("udp 53 answer", Frame::ipv4(B4, A4).udp(53, 5353).build()),
        (
            "tcp syn 443",
            Frame::ipv4(A4, C4).l4(6, &tcp(40000, 443, SYN, 0)).build(),
        ),
        (
            "tcp syn-ack",
            Frame::ipv4(C4, A4)
                .l4(6, &tcp(443, 40000, SYN | ACK, 0))
                .build(),
        ),
        (
            "tcp ack 80",
            Frame::ipv4(A4, B4).l4(6, &tcp(40001, 80, ACK, 0)).build(),
        ),
        (
            "tcp fin 22",
            Frame::ipv4(B4, A4)
                .l4(6, &tcp(22, 40002, FIN | ACK, 0))
                .build(),
        ),
        (
            "tcp rst 8080",
            Frame::ipv4(A4, D4).l4(6, &tcp(40003, 8080, RST, 0)).build(),
        ),
        (
            "tcp psh 443 data",
            Frame::ipv4(A4, C4)
                .l4(6, &tcp(40000, 443, PSH | ACK, 300))
                .build(),
        ),
        ("icmp echo", Frame::ipv4(A4, B4).l4(1, &icmp(8, 0)).build()),
        (
            "icmp echo reply",
            Frame::ipv4(B4, A4).l4(1, &icmp(0, 0)).build(),
        ),
        (
            "icmp port unreachable",
            Frame::ipv4(D4, A4).l4(1, &icmp(3, 3)).build(),
        ),
        (
            "vlan udp 53",
            Frame::ipv4(A4, B4).udp(5353, 53).vlan(0x8100).build(),
        ),
        (
            "vlan tcp syn 443",
            Frame::ipv4(A4, C4)
                .l4(6, &tcp(40000, 443, SYN, 0))
                .vlan(0x8100)
                .build(),
        ),
        (
            "qinq udp 53",
            Frame::ipv4(A4, B4)
                .udp(5353, 53)
                .vlan(0x88a8)
                .vlan(0x8100)
                .build(),
        ),
        (
            "first fragment udp 53",
            Frame::ipv4(A4, B4)
                .udp(5353, 53)
                .payload(64)
                .fragment(0, true)
                .build(),
        ),
        (
            "later fragment",
            Frame::ipv4(A4, B4)
                .udp(5353, 53)
                .l4_bytes(&[0xa5; 40])
                .fragment(185, false)
                .build(),
        ),
        (
            "ip options tcp 443",
            Frame::ipv4(A4, C4)
                .nop_options(2)
                .l4(6, &tcp(40004, 443, SYN, 0))
                .build(),
        ),
        (
            "udp big",
            Frame::ipv4(A4, B4).udp(40000, 40001).payload(1000).build(),
        ),
        (
            "gre",
            Frame::ipv4(B4, C4).l4(47, &[0, 0, 0x08, 0x00]).build(),
        ),
        ("arp", Frame::arp().build()),
        ("lldp", Frame::lldp().build()),
        ("v6 udp 53", Frame::ipv6(A6, B6).udp(5353, 53).build()),
        (
            "v6 tcp syn 443",
            Frame::ipv6(A6, B6).l4(6, &tcp(40000, 443, SYN, 0)).build(),
        ),
        ("v6 echo", Frame::ipv6(A6, B6).l4(58, &icmp(128, 0)).build()),
        (
            "v6 neighbour solicitation",
            Frame::ipv6(B6, A6)
                .l4(58, &icmp(135, 0))
                .payload(16)
                .build(),
        ),
        (
            "v6 hop-by-hop tcp 443",
            Frame::ipv6(A6, B6)
                .ext(Ext::HopByHop { units: 0 })
                .l4(6, &tcp(40000, 443, SYN, 0))
                .build(),
        ),
        (
            "v6 first fragment udp 53",
            Frame::ipv6(A6, B6)
                .ext(Ext::Fragment {
                    offset: 0,
                    more: true,
                })
                .udp(5353, 53)
                .payload(32)
                .build(),
        ),
        (
            "v6 later fragment",
            Frame::ipv6(A6, B6)
                .ext(Ext::Fragment {
                    offset: 10,
                    more: false,
                })
                .udp(5353, 53)
                .l4_bytes(&[0xa5; 24])
                .build(),
        ),
        (
            "v6 routing dest-opts udp 53",
            Frame::ipv6(B6, A6)
                .ext(Ext::Routing)
                .ext(Ext::DestOpts { units: 1 })
                .udp(53, 5353)
                .build(),
        ),
        (
            "vlan v6 tcp 443",
            Frame::ipv6(A6, B6)
                .l4(6, &tcp(40000, 443, ACK, 0))
                .vlan(0x8100)
                .build(),
        ),
        (
            "v6 from bad net udp 123",
            Frame::ipv6(BAD6, A6).udp(123, 123).build(),
        ),
        (
            "tcp cut in its header",
            Frame::ipv4(A4, C4)
                .l4(6, &tcp(40000, 443, SYN, 0))
                .truncate(14 + 20 + 10)
                .build(),
        ),
        (
            "udp portrange",
            Frame::ipv4(D4, A4).udp(1234, 40005).build(),
        ),
        ("udp 123 ntp", Frame::ipv4(C4, A4).udp(123, 123).build()),
        (
            "tcp ack to 443",
            Frame::ipv4(A4, B4).l4(6, &tcp(40005, 443, ACK, 10)).build(),
        ),
        (
            "mdns multicast",
            Frame::ipv4(A4, [224, 0, 0, 251]).udp(5353, 5353).build(),
        ),
        ("broadcast arp", broadcast(Frame::arp().build())),
    ]
}

/// `frame` sent to the Ethernet broadcast address.
fn broadcast(mut frame: Vec<u8>) -> Vec<u8> {
    frame[..6].fill(0xff);
    frame
}

pub(crate) const EXPRESSIONS: &[&str] = &[
    "udp",
    "tcp",
    "icmp",
    "ip",
    "ip6",
    "arp",
    "udp port 53",
    "udp dst port 53",
    "udp src port 53",
    "tcp port 443",
    "port 443",
    "tcp dst port 443 or tcp src port 443",
    "host 192.0.2.10",
    "src host 192.0.2.10",
    "dst host 198.51.100.7",
    "net 192.0.2.0/24",
    "dst net 203.0.113.0/24",
    "not net 192.0.2.0/24",
    "host 2001:db8::10",
    "ip6 net 2001:db8::/32",
    "src net 2001:db8:bad::/48",
    "portrange 40000-40010",
    "tcp portrange 1-1024",
    "udp dst portrange 100-200",
    "tcp and port 443 and host 203.0.113.5",
    "tcp port 443 and host 198.51.100.7",
    "udp or icmp",
    "not udp",
    "not (tcp or udp)",
    "(tcp or udp) and not port 53",
    "udp and (port 53 or port 123)",
    "tcp[tcpflags] & tcp-syn != 0",
    "tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn",
    "tcp[tcpflags] & (tcp-fin|tcp-rst) != 0",
    "tcp[tcpflags] == tcp-ack",
    "tcp[13] & 8 != 0",
    "tcp[12] >> 4 == 5",
    "icmp[icmptype] == icmp-echo",
    "icmp[icmptype] == icmp-echoreply",
    "icmp[icmptype] != icmp-echo and icmp[icmptype] != icmp-echoreply",
    "icmp[0] == 3 and icmp[1] == 3",
    "icmp6",
    "ip6 and icmp6",
    "icmp6 and ip6[40] == 135",
    "vlan",
    "vlan 100",
    "vlan and udp port 53",
    "vlan 100 and vlan 101",
    "vlan and ip6",
    "vlan and tcp port 443",
    "len > 100",
    "greater 200",
    "less 64",
    "len <= 60",
    "ip[6:2] & 0x1fff != 0",
    "ip[6] & 0x20 != 0",
    "ip[0] & 0xf > 5",
    "ip[2:2] > 500",
    "ip[9] == 47",
    "ip proto gre",
    "proto 47",
    "ip6 proto 17",
    "ip6 and tcp",
    "ip6 and udp port 53",
    "ip6 protochain 6",
    "ip6 protochain 17",
    "ip6[6] == 0",
    "ip6[6] == 44",
    "ether proto 0x88cc",
    "ether src 02:00:00:00:00:02",
    "ether dst 02:00:00:00:00:01 and not arp",
    "ether[12:2] == 0x8100",
    "ether broadcast",
    "ip multicast or ip6 multicast",
    "ip host 192.0.2.10 and not ip6",
    "ip[2:2] - ((ip[0] & 0xf) << 2) > 100",
    "(tcp[0:2] + tcp[2:2]) % 7 == 4",
    "udp[4:2] * 2 > 100",
    "ip[8] / 2 == 32",
    "ip[1] ^ 0xff == 0xff",
    "udp[0:2] - udp[2:2] == 0",
    "not ip and not ip6",
    "tcp or (udp and not port 53) or icmp6",
];
