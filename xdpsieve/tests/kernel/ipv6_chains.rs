//! Verdict-table cases for IPv6 extension-header chains: every header type, a 2 KiB
//! hop-by-hop, fragment headers inside chains, chains up to and past
//! `MAX_IPV6_EXT_HEADERS`, and chains cut short or whose length fields run past the frame.

use xdpsieve_common::MAX_IPV6_EXT_HEADERS;
use xdpsieve_testkit::frame::{ETH_HDR_LEN as ETH, Ext, IPV6_HDR_LEN as V6H};

use crate::verdicts::{
    Case, DEFAULT, case, chain, dns6, dropped_by, frag, hbh, hostile6, opts, v6,
};

/// IPv6 extension headers.
pub(crate) fn cases() -> Vec<Case> {
    vec![
        // IPv6 extension headers.
        case(
            "ipv6 hop-by-hop + dest-opts + routing + udp src port 53",
            dns6().ext(hbh()).ext(opts(0)).ext(Ext::Routing),
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
            dns6().ext(hbh()).ext(frag(185, true)).ident(104),
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
        // Long chains (what a kernel's stack delivers behind them differs, see
        // tests/README.md; BPF_PROG_TEST_RUN runs the program alone): the program walks
        // MAX_IPV6_EXT_HEADERS, the first FAST_IPV6_EXT_HEADERS with direct reads and the
        // rest through a helper.
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
            dns6().ext(hbh()).ext(opts(1)).truncate(ETH + V6H + 8 + 1),
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
    ]
}
