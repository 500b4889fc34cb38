//! The unclassifiable policy: what happens to a packet whose L4 header the program cannot
//! reach (a chain past `MAX_IPV6_EXT_HEADERS`, a cut UDP header), under each kind of rule
//! and each `--unclassifiable` setting, and the flag its capture record carries.

use xdpsieve::{configure::loader::Settings, configure::rules::Action};
use xdpsieve_common::capture;
use xdpsieve_testkit::frame::{Ext, Frame};
use xdpsieve_testkit::gate::root_or_skip;

use crate::support::*;

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
