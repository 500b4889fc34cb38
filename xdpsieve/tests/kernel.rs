//! Kernel tests: the real XDP program, verified and loaded by this kernel, fed crafted frames
//! through `BPF_PROG_TEST_RUN`.
//!
//! The parser in `xdpsieve-ebpf` is only trustworthy if it holds up against the frames an
//! attacker would send: lying length fields, truncated headers, stacked VLAN tags, IPv4
//! options, IPv6 extension-header chains and fragments. Unit tests cannot run it (it only
//! builds for the BPF target) and end-to-end tests cannot send most of these frames through a
//! real stack, so here every frame is built byte by byte and its verdict, matching rule and
//! `malformed` count are checked one frame at a time. The capture path (ring records,
//! snap length, ring overflow) is checked the same way.
//!
//! Nothing is attached to an interface, so the tests run in parallel, each with its own
//! loaded program. They need root; under `CI` they fail rather than skip when they cannot run.

mod common;
use common::root_or_skip;

use std::net::Ipv6Addr;

use aya::programs::{TestRun, TestRunOptions};
use xdpsieve::{
    loader::{Firewall, Settings},
    record::{CaptureRecord, Verdict},
    rules::{Action, RuleSet},
    source::Source,
};
use xdpsieve_common::{Counters, MAX_SNAPLEN, capture, verdict};

use frame::{Ext, Frame};

const DROP: u32 = verdict::DROP as u32;
const PASS: u32 = verdict::PASS as u32;

// Documentation addresses only (RFC 5737, RFC 3849).
const HOST4: [u8; 4] = [192, 0, 2, 10];
const PEER4: [u8; 4] = [192, 0, 2, 20];
const RESOLVER4: [u8; 4] = [192, 0, 2, 53];
const WATCHED4: [u8; 4] = [192, 0, 2, 66];
const HOSTILE4: [u8; 4] = [198, 51, 100, 7];
const HOST6: [u8; 16] = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10).octets();
const PEER6: [u8; 16] = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x20).octets();
const WATCHED6: [u8; 16] = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x66).octets();
const HOSTILE6: [u8; 16] = Ipv6Addr::new(0x2001, 0xdb8, 0xbad, 0, 0, 0, 0, 7).octets();

// ---------------------------------------------------------------------------------------------
// Frame builder
// ---------------------------------------------------------------------------------------------

#[path = "common/frame.rs"]
mod frame;

// ---------------------------------------------------------------------------------------------
// Running the program
// ---------------------------------------------------------------------------------------------

fn load(settings: &Settings) -> Firewall {
    Firewall::load(settings).unwrap_or_else(|e| panic!("loading the XDP program: {e}"))
}

fn rule_set(rules: &[(Action, &str)]) -> RuleSet {
    let mut set = RuleSet::default();
    for (action, expr) in rules {
        set.push_expression(*action, expr)
            .unwrap_or_else(|e| panic!("rule `{expr}`: {e}"));
    }
    set
}

/// Runs `frame` through the program `repeat` times and returns its verdict.
fn run_repeat(fw: &mut Firewall, frame: &[u8], repeat: u32) -> u32 {
    let opts = TestRunOptions {
        data_in: Some(frame),
        repeat,
        ..TestRunOptions::new()
    };
    let verdict = fw
        .program()
        .expect("program")
        .test_run(opts)
        .unwrap_or_else(|e| panic!("test run of a {}-byte frame: {e}", frame.len()))
        .return_value;
    // Not ABORTED, and nothing but the two verdicts the program is written to return.
    assert!(
        verdict == DROP || verdict == PASS,
        "verdict {verdict} for frame {frame:02x?}"
    );
    verdict
}

fn verdict_name(verdict: u32) -> &'static str {
    match verdict {
        DROP => "DROP",
        PASS => "PASS",
        _ => "?",
    }
}

fn run(fw: &mut Firewall, frame: &[u8]) -> u32 {
    run_repeat(fw, frame, 1)
}

fn counters(fw: &Firewall) -> Counters {
    fw.counters().expect("reading counters")
}

/// A capture record copied out of the ring.
#[derive(Debug)]
struct Record {
    timestamp_ns: u64,
    ifindex: u32,
    rx_queue: u32,
    orig_len: u32,
    rule_id: u32,
    verdict: Verdict,
    malformed: bool,
    unclassifiable: bool,
    data: Vec<u8>,
}

/// Reads every capture record the source holds now.
fn drain(source: &mut Source) -> Vec<Record> {
    let mut records = Vec::new();
    source.drain(|bytes| {
        let r = CaptureRecord::decode(bytes).expect("decoding a capture record");
        records.push(Record {
            timestamp_ns: r.timestamp_tai_ns,
            ifindex: r.ifindex,
            rx_queue: r.rx_queue,
            orig_len: r.orig_len,
            rule_id: r.rule_id,
            verdict: r.verdict,
            malformed: r.malformed,
            unclassifiable: r.unclassifiable,
            data: r.data.to_vec(),
        });
    });
    records
}

fn clock_tai_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec to write into.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_TAI, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_TAI)");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

// ---------------------------------------------------------------------------------------------
// Verdicts
// ---------------------------------------------------------------------------------------------

/// The verdict-table rules. Ids are 1..=7 in this order, so a rule's id is also its slot in
/// `rule_hits`. The first rule shadows the second for one resolver, to show first match wins.
const TABLE_RULES: &[(Action, &str)] = &[
    (Action::Pass, "udp and src host 192.0.2.53 and src port 53"),
    (Action::Drop, "udp src port 53"),
    (Action::Drop, "tcp dst portrange 6000-6010"),
    (Action::Drop, "src net 198.51.100.0/24"),
    (Action::Drop, "src net 2001:db8:bad::/48"),
    (Action::Drop, "icmp and dst host 192.0.2.66"),
    (Action::Drop, "icmp6 and dst host 2001:db8::66"),
];

/// Which rule-hit slot a frame should move.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hit {
    /// Rule with this id (= slot).
    Rule(u32),
    /// No rule matched an IP packet: the default verdict (slot 0).
    Default,
    /// No IP header could be read: no slot moves, `non_ip` does.
    NotIp,
}

/// What one frame must do to the table firewall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Expect {
    verdict: u32,
    hit: Hit,
    malformed: bool,
    /// The program could not reach the L4 header the rules need.
    unclassifiable: bool,
}

impl Expect {
    const fn malformed(self) -> Expect {
        Expect {
            malformed: true,
            ..self
        }
    }

    const fn unclassifiable(self) -> Expect {
        Expect {
            unclassifiable: true,
            ..self
        }
    }
}

const fn dropped_by(rule: u32) -> Expect {
    Expect {
        verdict: DROP,
        hit: Hit::Rule(rule),
        malformed: false,
        unclassifiable: false,
    }
}

const fn passed_by(rule: u32) -> Expect {
    Expect {
        verdict: PASS,
        hit: Hit::Rule(rule),
        malformed: false,
        unclassifiable: false,
    }
}

/// No rule matched; the table's default verdict is pass.
const DEFAULT: Expect = Expect {
    verdict: PASS,
    hit: Hit::Default,
    malformed: false,
    unclassifiable: false,
};

/// Passed without looking at the rules.
const NOT_IP: Expect = Expect {
    verdict: PASS,
    hit: Hit::NotIp,
    malformed: false,
    unclassifiable: false,
};

impl From<Frame> for Vec<u8> {
    fn from(frame: Frame) -> Vec<u8> {
        frame.build()
    }
}

struct Case {
    name: String,
    frame: Vec<u8>,
    expect: Expect,
}

fn case(name: impl Into<String>, frame: impl Into<Vec<u8>>, expect: Expect) -> Case {
    Case {
        name: name.into(),
        frame: frame.into(),
        expect,
    }
}

/// The first `len` bytes of a TCP SYN 40000 -> `dst_port`.
fn tcp_head(dst_port: u16, len: usize) -> Vec<u8> {
    Frame::ipv4(PEER4, HOST4)
        .tcp(40000, dst_port)
        .l4_payload()
        .into_iter()
        .take(len)
        .collect()
}

/// Every case is meaningful against [`TABLE_RULES`]: a frame that must not match a port
/// rule carries the port that rule looks for, in the bytes where a careless parser would
/// read it.
fn verdict_cases() -> Vec<Case> {
    use frame::{
        ETH_HDR_LEN as ETH, ETH_P_8021AD as QINQ, ETH_P_8021Q as DOT1Q, ETH_P_ARP, ETH_P_IPV4,
        ETH_P_IPV6, IPV4_HDR_LEN as V4H, IPV6_HDR_LEN as V6H,
    };
    use xdpsieve_common::MAX_IPV6_EXT_HEADERS;
    let v4 = || Frame::ipv4(PEER4, HOST4);
    let v6 = || Frame::ipv6(PEER6, HOST6);
    let hostile4 = || Frame::ipv4(HOSTILE4, HOST4);
    let hostile6 = || Frame::ipv6(HOSTILE6, HOST6);
    let dns4 = || v4().udp(53, 40000);
    let dns6 = || v6().udp(53, 40000);
    let hbh = Ext::HopByHop { units: 0 };
    let opts = |units| Ext::DestOpts { units };
    let frag = |offset, more| Ext::Fragment { offset, more };
    let chain = |f: Frame, n| (0..n).fold(f, |f, _| f.ext(opts(0)));

    let mut cases = vec![
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
        // IPv6 extension headers.
        case(
            "ipv6 hop-by-hop + dest-opts + routing + udp src port 53",
            dns6().ext(hbh.clone()).ext(opts(0)).ext(Ext::Routing),
            dropped_by(2),
        ),
        case(
            "ipv6 16-byte dest-opts + AH + udp src port 53",
            dns6().ext(opts(1)).ext(Ext::Ah { len: 4 }),
            dropped_by(2),
        ),
        case(
            "ipv6 2 KiB hop-by-hop + tcp dst port 6001",
            v6().tcp(40000, 6001).ext(Ext::HopByHop { units: 255 }),
            dropped_by(3),
        ),
        case(
            "ipv6 first fragment udp src port 53",
            dns6().ext(frag(0, true)).ident(101),
            dropped_by(2),
        ),
        case(
            "ipv6 atomic fragment udp src port 53",
            dns6().ext(frag(0, false)),
            dropped_by(2),
        ),
        case(
            "ipv6 last fragment that looks like udp src port 53",
            dns6().ext(frag(185, false)).ident(102),
            DEFAULT,
        ),
        case(
            "ipv6 middle fragment (offset 16) that looks like tcp dst port 6005",
            v6().tcp(40000, 6005).ext(frag(2, true)).ident(103),
            DEFAULT,
        ),
        case(
            "ipv6 hop-by-hop + non-first fragment that looks like udp src port 53",
            dns6().ext(hbh.clone()).ext(frag(185, true)).ident(104),
            DEFAULT,
        ),
        case(
            "ipv6 non-first fragment from the hostile prefix",
            hostile6().ext(frag(185, false)).ident(105),
            dropped_by(5),
        ),
        case(
            // A non-first fragment's bytes are payload, not headers: a second fragment header
            // in them must not turn the frame back into a first fragment.
            "ipv6 non-first fragment whose payload forges a first-fragment header + udp src 53",
            dns6().ext(frag(185, true)).ext(frag(0, true)).ident(106),
            DEFAULT,
        ),
        case(
            "ipv6 exactly 8 extension headers + udp src port 53",
            chain(dns6(), 8),
            dropped_by(2),
        ),
        case(
            "ipv6 9 extension headers + udp src port 53",
            chain(dns6(), 9),
            dropped_by(2),
        ),
        case(
            "ipv6 9 extension headers from the hostile prefix",
            chain(hostile6(), 9),
            dropped_by(5),
        ),
        // Long chains: Linux walks any number; the program walks MAX_IPV6_EXT_HEADERS, the
        // first FAST_IPV6_EXT_HEADERS with direct reads and the rest through a helper.
        case(
            "ipv6 40 extension headers + udp src port 53",
            chain(dns6(), 40),
            dropped_by(2),
        ),
        case(
            "ipv6 40 extension headers + tcp dst port 6005 (flags read by the helper)",
            chain(v6().tcp(40000, 6005), 40),
            dropped_by(3),
        ),
        case(
            "ipv6 MAX_IPV6_EXT_HEADERS extension headers + udp src port 53",
            chain(dns6(), MAX_IPV6_EXT_HEADERS),
            dropped_by(2),
        ),
        case(
            "ipv6 MAX_IPV6_EXT_HEADERS + 1 extension headers + udp src port 53",
            chain(dns6(), MAX_IPV6_EXT_HEADERS + 1),
            DEFAULT.unclassifiable(),
        ),
        case(
            "ipv6 MAX_IPV6_EXT_HEADERS + 1 extension headers from the hostile prefix",
            chain(hostile6(), MAX_IPV6_EXT_HEADERS + 1),
            dropped_by(5).unclassifiable(),
        ),
        case(
            "ipv6 40 extension headers cut in the 30th",
            chain(dns6(), 40).truncate(ETH + V6H + 29 * 8 + 3),
            DEFAULT.malformed().unclassifiable(),
        ),
        case(
            "ipv6 20 headers with a first-fragment header 15th + udp src port 53",
            chain(chain(dns6(), 14).ext(frag(0, true)), 5).ident(113),
            dropped_by(2),
        ),
        case(
            "ipv6 20 headers with a later-fragment header 15th that look like udp src port 53",
            chain(chain(dns6(), 14).ext(frag(185, true)), 5).ident(114),
            DEFAULT,
        ),
        case(
            "ipv6 second extension header cut after one byte",
            dns6()
                .ext(hbh.clone())
                .ext(opts(1))
                .truncate(ETH + V6H + 8 + 1),
            DEFAULT.malformed().unclassifiable(),
        ),
        case(
            "ipv6 dest-opts length runs 2 KiB past the frame",
            dns6().ext(Ext::Raw {
                number: 60,
                bytes: vec![0, 255, 1, 4, 0, 0, 0, 0],
            }),
            DEFAULT.malformed().unclassifiable(),
        ),
        case(
            "ipv6 AH length runs past the frame",
            dns6().ext(Ext::Raw {
                number: 51,
                bytes: vec![0, 200, 0, 0, 0, 0, 1, 0],
            }),
            DEFAULT.malformed().unclassifiable(),
        ),
        // IPv4 fragments.
        case(
            "ipv4 first fragment (MF) udp src port 53",
            dns4().fragment(0, true).ident(107),
            dropped_by(2),
        ),
        case(
            "ipv4 DF udp src port 53",
            dns4().dont_fragment(),
            dropped_by(2),
        ),
        case(
            "ipv4 last fragment that looks like udp src port 53",
            dns4().fragment(185, false).ident(108),
            DEFAULT,
        ),
        case(
            "ipv4 middle fragment (offset 1, MF) that looks like udp src port 53",
            dns4().fragment(1, true).ident(109),
            DEFAULT,
        ),
        case(
            "ipv4 largest fragment offset, looks like tcp dst port 6005",
            v4().tcp(40000, 6005).fragment(0x1fff, false).ident(110),
            DEFAULT,
        ),
        case(
            "ipv4 non-first fragment from the hostile net",
            hostile4().fragment(185, false).ident(111),
            dropped_by(4),
        ),
        case(
            "ipv4 non-first fragment of icmp to the watched host",
            Frame::ipv4(HOST4, WATCHED4)
                .icmp()
                .fragment(185, false)
                .ident(112),
            dropped_by(6),
        ),
        // First fragments: ports count once their 4 bytes are there; a TCP first fragment
        // without its flags is RFC 1858's tiny fragment.
        case(
            "ipv4 udp first fragment with 4 bytes, src port 53",
            dns4()
                .fragment(0, true)
                .l4_bytes(&[0, 53, 0x9c, 0x40])
                .ident(115),
            dropped_by(2),
        ),
        case(
            "ipv4 udp first fragment with 3 bytes",
            dns4().fragment(0, true).l4_bytes(&[0, 53, 0x9c]).ident(116),
            DEFAULT.malformed().unclassifiable(),
        ),
        case(
            "ipv4 tcp first fragment with 8 bytes to port 80 (tiny)",
            v4().tcp(40000, 80)
                .fragment(0, true)
                .l4_bytes(&tcp_head(80, 8))
                .ident(117),
            DEFAULT.unclassifiable(),
        ),
        case(
            "ipv6 tcp first fragment with 8 bytes to port 80 (tiny)",
            v6().ext(frag(0, true))
                .tcp(40000, 80)
                .l4_bytes(&tcp_head(80, 8))
                .ident(118),
            DEFAULT.unclassifiable(),
        ),
        case(
            "ipv4 tcp fragment at offset 8 bytes (RFC 1858 overlap)",
            v4().tcp(40000, 80).fragment(1, true).ident(119),
            DEFAULT.unclassifiable(),
        ),
        case(
            "ipv6 tcp fragment at offset 8 bytes (RFC 1858 overlap)",
            v6().tcp(40000, 80).ext(frag(1, true)).ident(120),
            DEFAULT.unclassifiable(),
        ),
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
            dns6().ext(hbh.clone()).payload_len(0),
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
    ];

    for ihl in [6, 10, 15] {
        let frame = dns4().nop_options(ihl - 5);
        cases.push(case(
            format!("ipv4 IHL {ihl} udp src port 53"),
            frame,
            dropped_by(2),
        ));
    }

    for len in 4..=20 {
        // Ports 40000 -> 6005 match rule 3 from the fourth byte on; below 14 bytes the
        // flags are missing: tiny.
        let frame = v4()
            .tcp(40000, 6005)
            .fragment(0, true)
            .l4_bytes(&tcp_head(6005, len))
            .ident(200 + len as u32);
        let expect = if len < 14 {
            dropped_by(3).unclassifiable()
        } else {
            dropped_by(3)
        };
        cases.push(case(
            format!("ipv4 tcp first fragment with {len} bytes, dst port 6005"),
            frame,
            expect,
        ));
    }

    // Random bytes: a seed whose ethertype is not IP or VLAN, so the expectation is fixed.
    let mut rng = frame::Rng::new(0x5eed_0001);
    let random = loop {
        let bytes = rng.bytes(96);
        let ethertype = u16::from_be_bytes([bytes[12], bytes[13]]);
        if ![ETH_P_IPV4, ETH_P_IPV6, DOT1Q, QINQ].contains(&ethertype) {
            break bytes;
        }
    };
    cases.push(case("96 random bytes", random, NOT_IP));
    cases
}

#[test]
fn verdict_table() {
    if !root_or_skip() {
        return;
    }
    // Unclassifiable packets go to the rules here, so the table shows what the parser read
    // of them; `unclassifiable_policy` checks the default, which drops them.
    let settings = Settings {
        rules: rule_set(TABLE_RULES),
        unclassifiable: Some(Action::Pass),
        ..Settings::default()
    };
    let mut fw = load(&settings);
    let slots = TABLE_RULES.len();
    let cases = verdict_cases();

    let mut failures = Vec::new();
    let mut bytes_seen = 0u64;
    let mut bytes_dropped = 0u64;
    for c in &cases {
        assert!(c.frame.len() >= 14, "{}: test run needs 14 bytes", c.name);
        let before = counters(&fw);
        let hits_before = fw.rule_hits(slots).expect("rule hits");
        let verdict = run(&mut fw, &c.frame);
        let after = counters(&fw);
        let hits_after = fw.rule_hits(slots).expect("rule hits");

        bytes_seen += c.frame.len() as u64;
        if verdict == DROP {
            bytes_dropped += c.frame.len() as u64;
        }
        let moved: Vec<usize> = (0..=slots)
            .filter(|&s| hits_after[s] != hits_before[s])
            .collect();
        let hit = match (moved.as_slice(), after.non_ip - before.non_ip) {
            ([], 1) => Some(Hit::NotIp),
            ([0], 0) => Some(Hit::Default),
            ([slot], 0) => Some(Hit::Rule(*slot as u32)),
            _ => None,
        };
        let malformed = after.malformed - before.malformed;
        let expected_malformed = u64::from(c.expect.malformed);
        let unclassifiable = after.unclassifiable - before.unclassifiable;
        let expected_unclassifiable = u64::from(c.expect.unclassifiable);
        if verdict != c.expect.verdict
            || hit != Some(c.expect.hit)
            || malformed != expected_malformed
            || unclassifiable != expected_unclassifiable
        {
            failures.push(format!(
                "{}:\n    expected {} by {:?}, malformed +{expected_malformed}, \
                 unclassifiable +{expected_unclassifiable}\n    \
                 got      {} by {hit:?} (slots moved {moved:?}), malformed +{malformed}, \
                 unclassifiable +{unclassifiable}\n    \
                 frame {:02x?}",
                c.name,
                verdict_name(c.expect.verdict),
                c.expect.hit,
                verdict_name(verdict),
                c.frame
            ));
        }
        assert_eq!(after.seen, before.seen + 1, "{}: seen", c.name);
    }

    let total = counters(&fw);
    let runs = cases.len() as u64;
    assert_eq!(total.seen, runs, "every run is seen once");
    assert_eq!(total.seen, total.passed + total.dropped, "{total:?}");
    assert_eq!(total.bytes_seen, bytes_seen, "{total:?}");
    assert_eq!(total.bytes_dropped, bytes_dropped, "{total:?}");
    let hits: u64 = fw.rule_hits(slots).expect("rule hits").iter().sum();
    assert_eq!(
        hits + total.non_ip,
        total.seen,
        "each frame moves one slot or non_ip"
    );
    // Default settings capture every drop into an 8 MiB ring: nothing can be lost.
    assert_eq!(total.captured, total.dropped, "{total:?}");
    assert_eq!(total.capture_lost, 0, "{total:?}");

    // `repeat` runs the program that many times: the counters must see each one.
    let frame = Frame::ipv4(PEER4, HOST4).udp(53, 40000).build();
    assert_eq!(run_repeat(&mut fw, &frame, 1000), DROP);
    let after = counters(&fw);
    assert_eq!(after.seen, runs + 1000, "{after:?}");
    assert_eq!(after.dropped, total.dropped + 1000, "{after:?}");
    assert_eq!(after.seen, after.passed + after.dropped, "{after:?}");

    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// Mangled versions of every table frame, plus random frames behind IP and VLAN ethertypes:
/// whatever arrives, the program returns DROP or PASS and its counters add up.
#[test]
fn hostile_frames_never_abort() {
    if !root_or_skip() {
        return;
    }
    let settings = Settings {
        rules: rule_set(TABLE_RULES),
        capture: 0,
        ..Settings::default()
    };
    let mut fw = load(&settings);
    let mut rng = frame::Rng::new(0x0bad_f00d);
    let mut runs = 0u64;
    let bases: Vec<Vec<u8>> = verdict_cases().into_iter().map(|c| c.frame).collect();
    for base in &bases {
        for _ in 0..30 {
            let mut f = base.clone();
            match rng.below(3) {
                0 => {
                    for _ in 0..1 + rng.below(4) {
                        let i = rng.below(f.len());
                        f[i] = rng.next() as u8;
                    }
                }
                1 => f.truncate(14 + rng.below(f.len() - 13)),
                _ => {
                    let extra = 1 + rng.below(64);
                    f.extend(rng.bytes(extra));
                }
            }
            run(&mut fw, &f);
            runs += 1;
        }
    }
    let ethertypes = [0x0800, 0x86dd, 0x8100, 0x88a8];
    for _ in 0..2000 {
        let len = 14 + rng.below(200);
        let mut f = rng.bytes(len);
        let ethertype: u16 = ethertypes[rng.below(ethertypes.len())];
        f[12..14].copy_from_slice(&ethertype.to_be_bytes());
        // Usually a plausible version nibble, so the parser gets past the first check.
        if f.len() > 14 && rng.below(4) != 0 {
            f[14] = if ethertype == 0x86dd {
                0x60
            } else {
                0x40 | (rng.next() as u8 & 0x0f)
            };
        }
        run(&mut fw, &f);
        runs += 1;
    }
    let c = counters(&fw);
    assert_eq!(c.seen, runs, "{c:?}");
    assert_eq!(c.seen, c.passed + c.dropped, "{c:?}");
    let hits: u64 = fw
        .rule_hits(TABLE_RULES.len())
        .expect("rule hits")
        .iter()
        .sum();
    assert_eq!(hits + c.non_ip, c.seen, "{c:?}");
    assert_eq!(
        (c.captured, c.capture_lost),
        (0, 0),
        "capture is off: {c:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Capture
// ---------------------------------------------------------------------------------------------

#[test]
fn capture_records_match_the_frames() {
    if !root_or_skip() {
        return;
    }
    let settings = Settings {
        rules: rule_set(&[
            (Action::Drop, "udp src port 53"),
            (Action::Drop, "src net 198.51.100.0/24"),
        ]),
        capture: capture::DROPPED | capture::PASSED,
        ring_bytes: 1 << 20,
        ..Settings::default()
    };
    let mut fw = load(&settings);
    let mut ring = fw.take_capture_source().expect("capture source");

    // (frame, verdict, rule id, malformed)
    let sent = [
        (
            Frame::ipv4(PEER4, HOST4).udp(53, 40000).pad_to(64).build(),
            Verdict::Drop,
            1,
            false,
        ),
        (
            Frame::ipv4(HOSTILE4, HOST4)
                .tcp(40000, 443)
                .pad_to(1500)
                .build(),
            Verdict::Drop,
            2,
            false,
        ),
        (
            Frame::ipv4(PEER4, HOST4).udp(40000, 53).pad_to(200).build(),
            Verdict::Pass,
            0,
            false,
        ),
        (Frame::arp().build(), Verdict::Pass, 0, false),
        (
            Frame::ipv6(PEER6, HOST6)
                .udp(53, 40000)
                .pad_to(1500)
                .build(),
            Verdict::Drop,
            1,
            false,
        ),
        (
            // Its UDP header lies past the IP length's claim: unclassifiable, so dropped
            // before the rules (rule id 0) since a rule has a port condition.
            Frame::ipv4(HOSTILE4, HOST4).total_len(1400).build(),
            Verdict::Drop,
            0,
            true,
        ),
    ];
    assert_eq!(sent[0].0.len(), 64);
    assert_eq!(sent[1].0.len(), 1500);

    let start = clock_tai_ns();
    for (frame, verdict, _, _) in &sent {
        assert_eq!(run(&mut fw, frame), u32::from(verdict.raw()));
    }
    let end = clock_tai_ns();

    let records = drain(&mut ring);
    let c = counters(&fw);
    assert_eq!(records.len(), sent.len(), "{c:?}");
    assert_eq!(records.len() as u64, c.captured, "{c:?}");
    assert_eq!(c.capture_lost, 0, "{c:?}");

    for (i, (r, (frame, verdict, rule_id, malformed))) in records.iter().zip(&sent).enumerate() {
        assert_eq!(r.data, *frame, "record {i}: data");
        assert_eq!(r.orig_len as usize, frame.len(), "record {i}: orig_len");
        assert_eq!(r.verdict, *verdict, "record {i}: verdict");
        assert_eq!(r.rule_id, *rule_id, "record {i}: rule id");
        assert_eq!(r.malformed, *malformed, "record {i}: malformed flag");
        // The stamp is CLOCK_TAI (what the recorder converts from), not boot or monotonic
        // time; allow a little slack for the kernel's fast clock accessor.
        assert!(
            r.timestamp_ns + 1_000_000 >= start && r.timestamp_ns <= end + 1_000_000,
            "record {i}: timestamp {} outside [{start}, {end}]",
            r.timestamp_ns
        );
    }
    assert!(
        records
            .windows(2)
            .all(|w| w[0].timestamp_ns <= w[1].timestamp_ns),
        "timestamps go backwards: {:?}",
        records.iter().map(|r| r.timestamp_ns).collect::<Vec<_>>()
    );
    // Test runs come in on a fixed device (loopback) and queue; whatever they are, every
    // record must agree.
    assert!(
        records.iter().all(|r| r.ifindex == records[0].ifindex),
        "{records:?}"
    );
    assert!(
        records.iter().all(|r| r.rx_queue == records[0].rx_queue),
        "{records:?}"
    );
    assert_ne!(records[0].ifindex, 0, "ifindex");
}

#[test]
fn snaplen_truncates_but_keeps_the_true_length() {
    if !root_or_skip() {
        return;
    }
    let settings = Settings {
        rules: rule_set(&[(Action::Drop, "udp src port 53")]),
        capture: capture::DROPPED,
        snaplen: 64,
        ring_bytes: 1 << 16,
        ..Settings::default()
    };
    let mut fw = load(&settings);
    let mut ring = fw.take_capture_source().expect("capture source");

    let long = Frame::ipv4(PEER4, HOST4)
        .udp(53, 40000)
        .pad_to(1500)
        .build();
    let short = Frame::ipv4(PEER4, HOST4).udp(53, 40000).build(); // 42 bytes < snaplen
    let passed = Frame::ipv4(PEER4, HOST4)
        .udp(40000, 53)
        .pad_to(1500)
        .build();
    assert_eq!(run(&mut fw, &long), DROP);
    assert_eq!(run(&mut fw, &short), DROP);
    assert_eq!(run(&mut fw, &passed), PASS); // only drops are captured

    let records = drain(&mut ring);
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(records[0].data, long[..64]);
    assert_eq!(records[0].orig_len, 1500);
    assert_eq!(records[1].data, short);
    assert_eq!(records[1].orig_len as usize, short.len());
    let c = counters(&fw);
    assert_eq!((c.captured, c.capture_lost), (2, 0), "{c:?}");
}

/// Frames longer than a page reach the program as XDP multi-buffer (`xdp.frags`): the
/// verdict comes from the linear part, lengths and captures cover the whole frame.
#[test]
fn jumbo_frames_with_xdp_fragments() {
    if !root_or_skip() {
        return;
    }
    let settings = Settings {
        rules: rule_set(&[(Action::Drop, "udp src port 53")]),
        capture: capture::DROPPED,
        ring_bytes: 1 << 20,
        ..Settings::default()
    };
    let mut fw = load(&settings);
    let mut ring = fw.take_capture_source().expect("capture source");

    let jumbo = Frame::ipv4(PEER4, HOST4)
        .udp(53, 40000)
        .pad_to(9000)
        .build();
    let huge = Frame::ipv6(PEER6, HOST6)
        .udp(53, 40000)
        .pad_to(20000)
        .build();
    assert_eq!(run(&mut fw, &jumbo), DROP);
    assert_eq!(run(&mut fw, &huge), DROP);
    let c = counters(&fw);
    assert_eq!(c.malformed, 0, "the IP lengths cover the fragments: {c:?}");
    assert_eq!(c.bytes_seen, 29000, "{c:?}");

    let records = drain(&mut ring);
    assert_eq!(records.len(), 2, "{c:?}");
    assert_eq!(records[0].data, jumbo);
    assert_eq!(records[0].orig_len, 9000);
    assert_eq!(records[1].data, huge[..MAX_SNAPLEN as usize]);
    assert_eq!(records[1].orig_len, 20000);

    // An extension chain that pushes the UDP header past the linear part: the parser reads
    // it through the helper, so the port rule still sees it.
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if page == 4096 {
        let deep = Frame::ipv6(PEER6, HOST6)
            .udp(53, 40000)
            .ext(Ext::DestOpts { units: 255 })
            .ext(Ext::DestOpts { units: 255 })
            .pad_to(6000)
            .build();
        let before = counters(&fw);
        let hits_before = fw.rule_hits(1).expect("rule hits");
        assert_eq!(run(&mut fw, &deep), DROP);
        let after = counters(&fw);
        assert_eq!(fw.rule_hits(1).expect("rule hits")[1], hits_before[1] + 1);
        assert_eq!(after.malformed, before.malformed, "{after:?}");
        assert_eq!(after.unclassifiable, before.unclassifiable, "{after:?}");
        // A chain that itself runs past the linear part is walked by the helper too.
        let deeper = (0..3)
            .fold(Frame::ipv6(PEER6, HOST6).udp(53, 40000), |f, _| {
                f.ext(Ext::DestOpts { units: 255 })
            })
            .pad_to(9000)
            .build();
        assert_eq!(run(&mut fw, &deeper), DROP);
        assert_eq!(fw.rule_hits(1).expect("rule hits")[1], hits_before[1] + 2);
        assert_eq!(counters(&fw).unclassifiable, before.unclassifiable);
    }
}

#[test]
fn full_ring_counts_lost_records() {
    if !root_or_skip() {
        return;
    }
    const FRAMES: u64 = 200;
    let settings = Settings {
        rules: rule_set(&[(Action::Drop, "udp src port 53")]),
        capture: capture::DROPPED,
        ring_bytes: 4096,
        ..Settings::default()
    };
    let mut fw = load(&settings);
    let mut ring = fw.take_capture_source().expect("capture source");
    let frame = Frame::ipv4(PEER4, HOST4)
        .udp(53, 40000)
        .pad_to(1500)
        .build();
    for _ in 0..FRAMES {
        assert_eq!(run(&mut fw, &frame), DROP);
    }
    let c = counters(&fw);
    assert_eq!(c.captured + c.capture_lost, FRAMES, "{c:?}");
    assert!(
        c.capture_lost > 0,
        "a 4 KiB ring cannot hold 200 1500-byte records: {c:?}"
    );
    assert!(c.captured > 0, "the first records fit: {c:?}");
    let records = drain(&mut ring);
    assert_eq!(records.len() as u64, c.captured, "{c:?}");
    assert!(records.iter().all(|r| r.data == frame));

    // Once drained, the ring has room again.
    assert_eq!(run(&mut fw, &frame), DROP);
    let after = counters(&fw);
    assert_eq!(after.captured, c.captured + 1, "{after:?}");
    assert_eq!(drain(&mut ring).len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Rule sets
// ---------------------------------------------------------------------------------------------

#[test]
fn default_drop_with_pass_rules() {
    if !root_or_skip() {
        return;
    }
    let mut rules = rule_set(&[(Action::Pass, "udp dst port 53"), (Action::Pass, "icmp")]);
    rules.default_action = Action::Drop;
    let settings = Settings {
        rules,
        capture: capture::DROPPED,
        ..Settings::default()
    };
    let mut fw = load(&settings);
    let mut ring = fw.take_capture_source().expect("capture source");
    let v4 = || Frame::ipv4(HOST4, PEER4);
    let v6 = || Frame::ipv6(HOST6, PEER6);
    let query = || v4().udp(40000, 53);

    let cases = [
        ("dns query", query().build(), PASS),
        (
            "dns query over 802.1Q",
            query().vlan(frame::ETH_P_8021Q).build(),
            PASS,
        ),
        ("udp to another port", v4().udp(40000, 54).build(), DROP),
        ("tcp to port 53", v4().tcp(40000, 53).build(), DROP),
        ("icmp", v4().icmp().build(), PASS),
        (
            "icmp6 (the pass rule is icmp only)",
            v6().icmp6().build(),
            DROP,
        ),
        ("ipv6 dns query", v6().udp(40000, 53).build(), PASS),
        ("arp", Frame::arp().build(), PASS),
        (
            "arp over 802.1ad",
            Frame::arp().vlan(frame::ETH_P_8021AD).build(),
            PASS,
        ),
        // A port pass rule must not open the door to fragments or cut headers.
        (
            "ipv4 non-first fragment, looks like a query",
            query().fragment(185, false).build(),
            DROP,
        ),
        (
            "ipv6 non-first fragment, looks like a query",
            v6().udp(40000, 53)
                .ext(Ext::Fragment {
                    offset: 185,
                    more: false,
                })
                .build(),
            DROP,
        ),
        (
            "query with udp header cut",
            query().truncate(14 + 20 + 4).build(),
            DROP,
        ),
        // Fail-open, as documented: no readable IP header means pass even under default drop.
        ("ipv4 IHL 4", query().ihl(4).build(), PASS),
        (
            "three VLAN tags",
            v4().tcp(40000, 22)
                .vlan(0x88a8)
                .vlan(0x8100)
                .vlan(0x8100)
                .build(),
            PASS,
        ),
    ];
    let mut default_drops = 0;
    for (name, frame, expected) in &cases {
        assert_eq!(run(&mut fw, frame), *expected, "{name}");
        if *expected == DROP {
            default_drops += 1;
        }
    }
    let hits = fw.rule_hits(2).expect("rule hits");
    assert_eq!(hits[1], 3, "udp dst port 53 passes: {hits:?}");
    assert_eq!(hits[2], 1, "icmp passes: {hits:?}");
    assert_eq!(
        hits[0], default_drops,
        "the rest fall to the default: {hits:?}"
    );
    let records = drain(&mut ring);
    assert_eq!(records.len() as u64, default_drops);
    assert!(
        records
            .iter()
            .all(|r| r.rule_id == 0 && r.verdict == Verdict::Drop),
        "{records:?}"
    );
}

const TOML_RULES: &str = r#"
default = "pass"

[[rule]]
id = 42
name = "dns-responses"
action = "drop"
protocol = "udp"
src_port = 53

[[rule]]
name = "hostile-net"
action = "drop"
src = "198.51.100.0/24"
"#;

/// The same rules from a TOML file and from command-line expressions give the same verdicts,
/// and captures carry the file's rule ids.
#[test]
fn toml_rules_match_cli_rules() {
    if !root_or_skip() {
        return;
    }
    let toml = RuleSet::from_toml(TOML_RULES, "kernel-test.toml").expect("TOML rules");
    let cli = rule_set(&[
        (Action::Drop, "udp src port 53"),
        (Action::Drop, "src net 198.51.100.0/24"),
    ]);
    let load_with = |rules: &RuleSet| {
        load(&Settings {
            rules: rules.clone(),
            capture: capture::DROPPED,
            ring_bytes: 1 << 16,
            ..Settings::default()
        })
    };
    let mut from_toml = load_with(&toml);
    let mut from_cli = load_with(&cli);
    let mut toml_ring = from_toml.take_capture_source().expect("capture source");

    let frames = [
        (
            Frame::ipv4(PEER4, HOST4).udp(53, 40000).build(),
            DROP,
            Some("dns-responses"),
        ),
        (
            Frame::ipv4(HOSTILE4, HOST4).tcp(40000, 80).build(),
            DROP,
            Some("hostile-net"),
        ),
        (
            Frame::ipv6(PEER6, HOST6).udp(53, 40000).build(),
            DROP,
            Some("dns-responses"),
        ),
        (Frame::ipv4(PEER4, HOST4).udp(40000, 53).build(), PASS, None),
        (
            Frame::ipv4(PEER4, HOST4)
                .udp(53, 40000)
                .fragment(185, false)
                .build(),
            PASS,
            None,
        ),
    ];
    for (frame, expected, _) in &frames {
        assert_eq!(run(&mut from_toml, frame), *expected);
        assert_eq!(run(&mut from_cli, frame), *expected);
    }
    assert_eq!(
        from_toml.rule_hits(2).expect("rule hits"),
        from_cli.rule_hits(2).expect("rule hits")
    );
    let names: Vec<_> = drain(&mut toml_ring)
        .iter()
        .map(|r| toml.name_of(r.rule_id).map(str::to_owned))
        .collect();
    let expected: Vec<_> = frames
        .iter()
        .filter_map(|(_, _, name)| name.map(|n| Some(n.to_owned())))
        .collect();
    assert_eq!(names, expected, "captured rule ids name the file's rules");
}

/// Events the real program produced, decoded, over both transports: the fields the veth
/// tests cannot reach (VLAN id, TCP flags, ICMP type and code, non-IP frames).
#[test]
fn events_decode_from_the_real_program() {
    if !root_or_skip() {
        return;
    }
    use xdpsieve::source::Transport;
    use xdpsieve_common::{Event, family, record_flags};
    for transport in [Transport::RingBuf, Transport::Perf] {
        let settings = Settings {
            rules: rule_set(&[(Action::Drop, "tcp dst port 22")]),
            capture: 0,
            log: capture::DROPPED | capture::PASSED,
            transport,
            ring_bytes: 1 << 16,
            ..Settings::default()
        };
        let mut fw = load(&settings);
        let mut source = fw.take_event_source().expect("event source");
        let syn = Frame::ipv4(PEER4, HOST4)
            .vlan(0x8100)
            .tcp(40000, 22)
            .build();
        let ping = Frame::ipv6(PEER6, HOST6).icmp6().build();
        let arp = Frame::arp().build();
        assert_eq!(run(&mut fw, &syn), DROP);
        assert_eq!(run(&mut fw, &ping), PASS);
        assert_eq!(run(&mut fw, &arp), PASS);
        let mut events: Vec<Event> = Vec::new();
        source.drain(|bytes| events.push(xdpsieve::event::decode(bytes).expect("event")));
        assert_eq!(events.len(), 3, "{transport:?}");
        assert_eq!(counters(&fw).events, 3);

        let e = events[0];
        assert_eq!(
            (e.family, e.protocol, e.verdict, e.rule_id),
            (family::IPV4, 6, verdict::DROP, 1)
        );
        assert_eq!(
            (e.src[0].to_ne_bytes(), e.dst[0].to_ne_bytes()),
            (PEER4, HOST4)
        );
        assert_eq!((e.src_port, e.dst_port, e.tcp_flags), (40000, 22, 0x02));
        assert_eq!(e.flags & record_flags::HAS_VLAN, record_flags::HAS_VLAN);
        assert_eq!(e.vlan_id, 100);
        assert_eq!(e.frame_len as usize, syn.len());
        assert!(e.timestamp_ns > 0);

        let e = events[1];
        assert_eq!(
            (e.family, e.protocol, e.verdict, e.rule_id),
            (family::IPV6, 58, verdict::PASS, 0)
        );
        assert_eq!(
            e.flags & (record_flags::HAS_ICMP | record_flags::HAS_VLAN),
            record_flags::HAS_ICMP
        );
        assert_eq!(e.src_port, 128, "ICMPv6 echo request type");

        let e = events[2];
        assert_eq!((e.family, e.verdict), (family::NONE, verdict::PASS));
    }
}

/// The full rule table loads and keeps first-match order at both ends, across every word
/// of the rule bitmaps.
#[test]
fn full_rule_table_loads_and_first_match_wins() {
    if !root_or_skip() {
        return;
    }
    use xdpsieve_common::MAX_RULES;
    let mut rules = RuleSet::default();
    for i in 0..MAX_RULES - 1 {
        // Distinct ports: only the frame's own port matches.
        rules
            .push_expression(Action::Drop, &format!("tcp dst port {}", 10_000 + i))
            .expect("rule");
    }
    rules
        .push_expression(Action::Pass, "tcp")
        .expect("last rule");
    let settings = Settings {
        rules,
        capture: capture::DROPPED | capture::PASSED,
        log: capture::DROPPED | capture::PASSED,
        ..Settings::default()
    };
    let mut fw = load(&settings);
    let first = Frame::ipv4(PEER4, HOST4).tcp(40000, 10_000).build();
    let middle = Frame::ipv4(PEER4, HOST4)
        .tcp(40000, 10_000 + (MAX_RULES / 2) as u16)
        .build();
    let last_drop = Frame::ipv4(PEER4, HOST4)
        .tcp(40000, 10_000 + (MAX_RULES - 2) as u16)
        .build();
    let none = Frame::ipv4(PEER4, HOST4).tcp(40000, 9_999).build();
    assert_eq!(run(&mut fw, &first), DROP);
    assert_eq!(run(&mut fw, &middle), DROP);
    assert_eq!(run(&mut fw, &last_drop), DROP);
    // Matches only the catch-all `pass tcp` rule, the last of MAX_RULES.
    assert_eq!(run(&mut fw, &none), PASS);
    let hits = fw.rule_hits(MAX_RULES as usize).expect("rule hits");
    assert_eq!(hits[1], 1, "first rule");
    assert_eq!(hits[1 + (MAX_RULES / 2) as usize], 1, "middle rule");
    assert_eq!(hits[(MAX_RULES - 1) as usize], 1, "last drop rule");
    assert_eq!(hits[MAX_RULES as usize], 1, "catch-all");
}

/// With perf buffers full, every event is either read or counted lost by the program (the
/// perf buffers' own lost-sample reports describe the same events, never more).
#[test]
fn full_perf_buffer_counts_lost_events() {
    if !root_or_skip() {
        return;
    }
    use xdpsieve::source::Transport;
    let settings = Settings {
        rules: rule_set(&[(Action::Drop, "udp src port 53")]),
        capture: 0,
        log: capture::DROPPED,
        transport: Transport::Perf,
        // Shared out among the CPUs: one page each, about 50 events.
        ring_bytes: 4096,
        ..Settings::default()
    };
    let mut fw = load(&settings);
    let mut source = fw.take_event_source().expect("event source");
    let frame = Frame::ipv4(PEER4, HOST4).udp(53, 40000).build();
    const SENT: u32 = 500;
    assert_eq!(run_repeat(&mut fw, &frame, SENT), DROP);
    let mut read = 0u64;
    source.drain(|_| read += 1);
    let c = counters(&fw);
    assert_eq!(c.dropped, u64::from(SENT));
    assert!(c.event_lost > 0, "{c:?}");
    assert_eq!(c.events, read, "{c:?}");
    assert_eq!(read + c.event_lost, u64::from(SENT), "{c:?}");
    assert!(
        source.perf_lost() <= c.event_lost,
        "{} > {}",
        source.perf_lost(),
        c.event_lost
    );
}

// ---------------------------------------------------------------------------------------------
// Evasion: unclassifiable packets and fragments
// ---------------------------------------------------------------------------------------------

/// What one frame did to a firewall: its verdict, the rule-hit slot it moved, and how the
/// evasion counters moved.
#[derive(Debug, PartialEq, Eq)]
struct Step {
    verdict: u32,
    slot: usize,
    unclassifiable: u64,
    tiny: u64,
    followed: u64,
    orphans: u64,
}

fn step(fw: &mut Firewall, slots: usize, frame: &Frame) -> Step {
    let before = counters(fw);
    let hits_before = fw.rule_hits(slots).expect("rule hits");
    let verdict = run(fw, &frame.build());
    let after = counters(fw);
    let hits_after = fw.rule_hits(slots).expect("rule hits");
    let moved: Vec<usize> = (0..=slots)
        .filter(|&s| hits_after[s] != hits_before[s])
        .collect();
    assert_eq!(moved.len(), 1, "one slot moves per IP frame: {moved:?}");
    Step {
        verdict,
        slot: moved[0],
        unclassifiable: after.unclassifiable - before.unclassifiable,
        tiny: after.tiny_fragments - before.tiny_fragments,
        followed: after.fragments_followed - before.fragments_followed,
        orphans: after.fragment_orphans - before.fragment_orphans,
    }
}

const fn plain(verdict: u32, slot: usize) -> Step {
    Step {
        verdict,
        slot,
        unclassifiable: 0,
        tiny: 0,
        followed: 0,
        orphans: 0,
    }
}

const fn followed(verdict: u32, slot: usize) -> Step {
    Step {
        followed: 1,
        ..plain(verdict, slot)
    }
}

const fn orphan(verdict: u32, slot: usize) -> Step {
    Step {
        orphans: 1,
        ..plain(verdict, slot)
    }
}

const fn tiny(verdict: u32, slot: usize) -> Step {
    Step {
        unclassifiable: 1,
        tiny: 1,
        ..plain(verdict, slot)
    }
}

/// Later fragments take their first fragment's verdict and rule; orphans are judged by the
/// rules that need no ports; tiny TCP fragments are dropped. Against [`TABLE_RULES`], whose
/// port rules make unclassifiable packets drop by default.
#[test]
fn fragments_take_their_first_fragments_verdict() {
    if !root_or_skip() {
        return;
    }
    let settings = Settings {
        rules: rule_set(TABLE_RULES),
        ..Settings::default()
    };
    let mut fw = load(&settings);
    let n = TABLE_RULES.len();
    let v4 = || Frame::ipv4(PEER4, HOST4);
    let v6 = || Frame::ipv6(PEER6, HOST6);
    let frag6 = |offset, more| Ext::Fragment { offset, more };
    let mut failures = Vec::new();
    let mut check = |name: &str, frame: Frame, want: Step, fw: &mut Firewall| {
        let got = step(fw, n, &frame);
        if got != want {
            failures.push(format!("{name}:\n    want {want:?}\n    got  {got:?}"));
        }
    };

    // IPv4: a first fragment dropped by `udp src port 53`; its later fragments, which carry
    // no ports, are dropped by the same rule.
    let dns = || v4().udp(53, 40000).ident(1);
    check(
        "v4 first, src port 53",
        dns().fragment(0, true),
        plain(DROP, 2),
        &mut fw,
    );
    check(
        "v4 middle",
        dns().fragment(185, true),
        followed(DROP, 2),
        &mut fw,
    );
    check(
        "v4 last",
        dns().fragment(370, false),
        followed(DROP, 2),
        &mut fw,
    );
    // A passed first fragment: its later fragments pass with it.
    let other = || v4().udp(5000, 40000).ident(2);
    check(
        "v4 first, passed",
        other().fragment(0, true),
        plain(PASS, 0),
        &mut fw,
    );
    check(
        "v4 later, passed",
        other().fragment(185, false),
        followed(PASS, 0),
        &mut fw,
    );
    // The identification, addresses and protocol all key the datagram.
    check(
        "v4 later, other id",
        dns().ident(3).fragment(185, false),
        orphan(PASS, 0),
        &mut fw,
    );
    check(
        "v4 later, other source",
        Frame::ipv4(RESOLVER4, HOST4)
            .udp(53, 40000)
            .ident(1)
            .fragment(185, false),
        orphan(PASS, 0),
        &mut fw,
    );
    check(
        "v4 later, other protocol",
        v4().tcp(53, 40000).ident(1).fragment(185, false),
        orphan(PASS, 0),
        &mut fw,
    );
    check(
        "v4 orphan from the hostile net (address rules still apply)",
        Frame::ipv4(HOSTILE4, HOST4).ident(4).fragment(185, false),
        orphan(DROP, 4),
        &mut fw,
    );
    // RFC 1858: a tiny first fragment to a port no rule drops is dropped all the same, and
    // so are the fragments after it; so is a TCP fragment at offset 8.
    let syn = || v4().tcp(40000, 80).ident(5);
    check(
        "v4 tiny tcp first fragment (8 bytes)",
        syn().fragment(0, true).l4_bytes(&tcp_head(80, 8)),
        tiny(DROP, 0),
        &mut fw,
    );
    check(
        "v4 fragment after the tiny one",
        syn().fragment(2, false).l4_bytes(&[0; 8]),
        followed(DROP, 0),
        &mut fw,
    );
    check(
        "v4 tcp fragment at offset 8 bytes",
        v4().tcp(40000, 80)
            .ident(6)
            .fragment(1, false)
            .l4_bytes(&[0; 12]),
        tiny(DROP, 0),
        &mut fw,
    );
    check(
        "v4 tcp first fragment with the flags (16 bytes)",
        v4().tcp(40000, 80)
            .ident(7)
            .fragment(0, true)
            .l4_bytes(&tcp_head(80, 16)),
        plain(PASS, 0),
        &mut fw,
    );
    check(
        "v4 tcp fragment after it, at offset 16",
        v4().tcp(40000, 80)
            .ident(7)
            .fragment(2, false)
            .l4_bytes(&[0; 4]),
        followed(PASS, 0),
        &mut fw,
    );

    // IPv6: the same, keyed by the fragment header's 32-bit identification.
    let dns6 = || v6().udp(53, 40000).ident(0x1000_0001);
    check(
        "v6 first, src port 53",
        dns6().ext(frag6(0, true)),
        plain(DROP, 2),
        &mut fw,
    );
    check(
        "v6 last",
        dns6().ext(frag6(185, false)),
        followed(DROP, 2),
        &mut fw,
    );
    check(
        "v6 later, id differing above 16 bits",
        dns6().ident(0x2000_0001).ext(frag6(185, false)),
        orphan(PASS, 0),
        &mut fw,
    );
    check(
        "v6 tiny tcp first fragment",
        v6().ext(frag6(0, true))
            .tcp(40000, 80)
            .ident(8)
            .l4_bytes(&tcp_head(80, 12)),
        tiny(DROP, 0),
        &mut fw,
    );
    check(
        "v6 fragment after the tiny one",
        v6().ext(frag6(2, false))
            .tcp(40000, 80)
            .ident(8)
            .l4_bytes(&[0; 8]),
        followed(DROP, 0),
        &mut fw,
    );
    check(
        "v6 tcp fragment at offset 8 bytes",
        v6().ext(frag6(1, false))
            .tcp(40000, 80)
            .ident(9)
            .l4_bytes(&[0; 12]),
        tiny(DROP, 0),
        &mut fw,
    );
    check(
        "v6 first fragment behind 20 headers, src port 53",
        (0..20)
            .fold(v6(), |f, _| f.ext(Ext::DestOpts { units: 0 }))
            .ext(frag6(0, true))
            .udp(53, 40000)
            .ident(10),
        plain(DROP, 2),
        &mut fw,
    );
    check(
        "v6 later fragment of it",
        v6().ext(frag6(185, false)).udp(53, 40000).ident(10),
        followed(DROP, 2),
        &mut fw,
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Under a default drop, a pass rule's fragmented datagram must get through whole.
    let settings = Settings {
        rules: {
            let mut set = rule_set(&[(Action::Pass, "udp dst port 53")]);
            set.default_action = Action::Drop;
            set
        },
        ..Settings::default()
    };
    let mut fw = load(&settings);
    let query = || v4().udp(40000, 53).ident(11);
    assert_eq!(step(&mut fw, 1, &query().fragment(0, true)), plain(PASS, 1));
    assert_eq!(
        step(&mut fw, 1, &query().fragment(185, false)),
        followed(PASS, 1)
    );
    assert_eq!(
        step(&mut fw, 1, &query().ident(12).fragment(185, false)),
        orphan(DROP, 0)
    );
}

/// The unclassifiable verdict: drop by default when a rule has a protocol or port
/// condition, pass otherwise, and whatever `--unclassifiable` says; recorded with its flag.
#[test]
fn unclassifiable_policy() {
    if !root_or_skip() {
        return;
    }
    use xdpsieve_common::MAX_IPV6_EXT_HEADERS;
    let too_long =
        |f: Frame| (0..=MAX_IPV6_EXT_HEADERS).fold(f, |f, _| f.ext(Ext::DestOpts { units: 0 }));
    let chain = too_long(Frame::ipv6(PEER6, HOST6).udp(40000, 5000));
    let hostile_chain = too_long(Frame::ipv6(HOSTILE6, HOST6).udp(40000, 5000));
    let short_udp = Frame::ipv4(PEER4, HOST4).l4(17, &[0x9c, 0x40, 0x13, 0x88]);
    let unclassifiable = |verdict, slot| Step {
        unclassifiable: 1,
        ..plain(verdict, slot)
    };

    // (name, the one rule, --unclassifiable, the verdict in force)
    type PolicyCase = (&'static str, (Action, &'static str), Option<Action>, Action);
    let cases: [PolicyCase; 5] = [
        (
            "port rule, default",
            (Action::Drop, "udp dst port 53"),
            None,
            Action::Drop,
        ),
        (
            "protocol rule, default",
            (Action::Drop, "icmp"),
            None,
            Action::Drop,
        ),
        (
            "address rule, default",
            (Action::Drop, "src net 2001:db8:bad::/48"),
            None,
            Action::Pass,
        ),
        (
            "port rule, pass",
            (Action::Drop, "udp dst port 53"),
            Some(Action::Pass),
            Action::Pass,
        ),
        (
            "address rule, drop",
            (Action::Drop, "src net 2001:db8:bad::/48"),
            Some(Action::Drop),
            Action::Drop,
        ),
    ];
    for (name, rule, policy, expected) in cases {
        let settings = Settings {
            rules: rule_set(&[rule]),
            unclassifiable: policy,
            capture: capture::DROPPED | capture::PASSED,
            ring_bytes: 1 << 20,
            ..Settings::default()
        };
        assert_eq!(settings.unclassifiable_action(), expected, "{name}");
        let mut fw = load(&settings);
        let mut ring = fw.take_capture_source().expect("capture source");
        let want = u32::from(expected.verdict());
        assert_eq!(
            step(&mut fw, 1, &chain),
            unclassifiable(want, 0),
            "{name}: chain"
        );
        assert_eq!(
            step(&mut fw, 1, &short_udp),
            unclassifiable(want, 0),
            "{name}: short udp"
        );
        // Address rules judge the packet when the policy passes it.
        let hostile = step(&mut fw, 1, &hostile_chain);
        let hostile_want = if expected == Action::Drop || name.starts_with("address") {
            DROP
        } else {
            PASS
        };
        assert_eq!(hostile.verdict, hostile_want, "{name}: hostile chain");
        let records = drain(&mut ring);
        assert_eq!(records.len(), 3, "{name}: every packet captured");
        let flagged = records.iter().filter(|r| r.unclassifiable).count();
        assert_eq!(flagged, 3, "{name}: records flagged unclassifiable");
    }
}
