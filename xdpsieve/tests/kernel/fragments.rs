//! Fragments: the verdict-table cases for IPv4 and IPv6 fragments (first, middle, last,
//! atomic, tiny and overlapping per RFC 1858), and the fragment tracking that gives later
//! fragments their first fragment's verdict and rule, with orphans and tiny fragments
//! counted.

use xdpsieve::{
    configure::loader::{Firewall, Settings},
    configure::rules::Action,
};
use xdpsieve_testkit::frame::{Ext, Frame};
use xdpsieve_testkit::gate::root_or_skip;

use crate::support::*;
use crate::verdicts::{Case, DEFAULT, TABLE_RULES, case, dns4, dropped_by, frag, hostile4, v4, v6};

/// The first `len` bytes of a TCP SYN 40000 -> `dst_port`.
fn tcp_head(dst_port: u16, len: usize) -> Vec<u8> {
    Frame::ipv4(PEER4, HOST4)
        .tcp(40000, dst_port)
        .l4_payload()
        .into_iter()
        .take(len)
        .collect()
}

/// IPv4 fragments, then first fragments in both families.
pub(crate) fn cases() -> Vec<Case> {
    vec![
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
    ]
}

/// A TCP first fragment of every length from the ports to past the flags.
pub(crate) fn first_fragment_length_cases() -> Vec<Case> {
    let mut cases = Vec::new();
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
    cases
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
