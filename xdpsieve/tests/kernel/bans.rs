//! Ban notices (`LIMIT_NOTICES`): a key over the budget of a limit rule that bans is told
//! to userspace once per second at most, whatever the packets and the CPUs, and a notice
//! the ring cannot take is counted.

use std::{
    net::Ipv6Addr,
    os::fd::{AsFd as _, AsRawFd as _},
};

use xdpsieve::{
    configure::loader::{Firewall, Settings},
    configure::rules::RuleSet,
    read::notice,
};
use xdpsieve_common::{capture, walk::LimitNotice};
use xdpsieve_testkit::frame::Frame;
use xdpsieve_testkit::gate::root_or_skip;

use crate::support::*;

/// A set `banned`, its drop rule, and a limit rule (id 2) that bans into it.
fn banning(per: &str) -> Firewall {
    let text = format!(
        r#"
        [[set]]
        name = "banned"
        prefixes = []

        [[rule]]
        name = "drop-banned"
        action = "drop"
        src = "@banned"

        [[rule]]
        name = "flood"
        action = "limit"
        protocol = "udp"
        rate = "1/h"
        burst = 2
        per = "{per}"
        ban = "3s"
        ban_set = "banned"
        "#
    );
    load(&Settings {
        rules: RuleSet::from_toml(&text, "test").unwrap_or_else(|e| panic!("rules: {e}")),
        capture: capture::DROPPED,
        ..Settings::default()
    })
}

fn notices(source: &mut xdpsieve::read::source::Source) -> Vec<LimitNotice> {
    let mut out = Vec::new();
    source.drain(|bytes| out.push(notice::decode(bytes).expect("a notice")));
    out
}

/// 100,000 packets over the limit from one source, on every CPU at once: one notice,
/// with the key, the rule and what the bucket saw. A second source gets its own; a /24
/// key names the prefix.
#[test]
fn a_key_over_a_banning_limit_is_noticed_once_per_second() {
    if !root_or_skip() {
        return;
    }
    let mut fw = banning("src");
    let mut source = fw.take_notice_source().expect("notice source");
    let frame = Frame::ipv4(HOSTILE4, HOST4).udp(1, 53).build();
    let fd = fw
        .program()
        .expect("program")
        .fd()
        .expect("program fd")
        .as_fd()
        .as_raw_fd();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get().min(2));
    let started = std::time::Instant::now();
    std::thread::scope(|scope| {
        for cpu in 0..cpus {
            let frame = &frame;
            scope.spawn(move || {
                crate::walk::pin_to(cpu);
                xdpsieve_testkit::bpf::test_run(fd, frame, 50_000).expect("test run");
            });
        }
    });
    let took = started.elapsed();
    let got = notices(&mut source);
    let snap = fw.snapshot(2, 0).expect("counters");
    let extra = snap.rule_extra(2);
    println!(
        "{} runs on {cpus} CPUs in {took:?}: {} notices, over {}",
        50_000 * cpus,
        got.len(),
        extra.over_limit
    );
    assert!(
        took.as_secs_f64() < 1.0,
        "the runs took {took:?}: a second notice would be allowed, the test proves nothing"
    );
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!((extra.ban_notices, extra.ban_notices_lost), (1, 0));
    let n = got[0];
    assert_eq!(n.rule_id, 2);
    assert_eq!(n.generation, 1);
    assert_eq!(
        notice::key(&n),
        Some((std::net::IpAddr::from(HOSTILE4), 32))
    );
    assert!(
        n.seen >= 3,
        "the bucket saw the burst and the first over: {n:?}"
    );
    assert!(n.first_ns <= n.timestamp_ns);
    // Another source: its own notice; the first stays quiet.
    assert_eq!(
        run(&mut fw, &Frame::ipv4(PEER4, HOST4).udp(1, 53).build()),
        PASS
    );
    assert_eq!(
        run_repeat(&mut fw, &Frame::ipv4(PEER4, HOST4).udp(1, 53).build(), 10),
        DROP
    );
    assert_eq!(run_repeat(&mut fw, &frame, 10), DROP);
    let got = notices(&mut source);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        notice::key(&got[0]),
        Some((std::net::IpAddr::from(PEER4), 32))
    );
    // Nothing over the limit, nothing banned: the rule before decides nothing yet.
    assert_eq!(snap.rule(1).hits, 0);

    let mut fw = banning("src/24");
    let mut source = fw.take_notice_source().expect("notice source");
    assert_eq!(run_repeat(&mut fw, &frame, 5), DROP);
    let got = notices(&mut source);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        notice::key(&got[0]),
        Some((std::net::IpAddr::from([198, 51, 100, 0]), 24))
    );
}

/// More keys go over than the ring holds and nobody reads it: every notice is either in
/// the ring or counted lost, and the ring's share is what a reader then finds.
#[test]
fn notices_the_ring_cannot_take_are_counted() {
    if !root_or_skip() {
        return;
    }
    let mut fw = banning("src");
    let mut source = fw.take_notice_source().expect("notice source");
    let keys = 1500u16;
    for i in 0..keys {
        let src = Ipv6Addr::new(0x2001, 0xdb8, 0xbad, 0, 0, 0, 1, i).octets();
        assert_eq!(
            run_repeat(&mut fw, &Frame::ipv6(src, HOST6).udp(1, 53).build(), 3),
            DROP
        );
    }
    let extra = fw.snapshot(2, 0).expect("counters").rule_extra(2);
    let got = notices(&mut source);
    println!(
        "{keys} keys over: {} notices sent, {} lost; {} read",
        extra.ban_notices,
        extra.ban_notices_lost,
        got.len()
    );
    assert_eq!(extra.ban_notices + extra.ban_notices_lost, u64::from(keys));
    assert!(extra.ban_notices_lost > 0, "the ring should have filled");
    assert_eq!(got.len() as u64, extra.ban_notices);
}
