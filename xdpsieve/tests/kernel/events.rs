//! The event log: events the real program produced, decoded over both transports (ring
//! buffer and perf), full perf buffers counting the events they lose, and the records of a
//! stream no writer reads counted instead of sent.

use xdpsieve::{
    configure::loader::{Firewall, Settings},
    configure::rules::Action,
};
use xdpsieve_common::{capture, verdict};
use xdpsieve_testkit::frame::Frame;
use xdpsieve_testkit::gate::root_or_skip;

use crate::support::*;

/// Events the real program produced, decoded, over both transports: the fields the veth
/// tests cannot reach (VLAN id, TCP flags, ICMP type and code, non-IP frames).
#[test]
fn events_decode_from_the_real_program() {
    if !root_or_skip() {
        return;
    }
    use xdpsieve::configure::loader::Transport;
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
        source.drain(|bytes| events.push(xdpsieve::read::event::decode(bytes).expect("event")));
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

/// With perf buffers full, every event is either read or counted lost by the program (the
/// perf buffers' own lost-sample reports describe the same events, never more).
#[test]
fn full_perf_buffer_counts_lost_events() {
    if !root_or_skip() {
        return;
    }
    use xdpsieve::configure::loader::Transport;
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

/// A stream the run writes nowhere (a reload gave a rule `log = true` in a run without an
/// event log): the program sends none of its records and counts each with that reason,
/// while the stream that is written goes on. Published again with a writer, it flows.
#[test]
fn records_of_a_stream_no_writer_reads_are_counted_not_sent() {
    if !root_or_skip() {
        return;
    }
    let mut rules = rule_set(&[(Action::Drop, "udp src port 53")]);
    rules.rules[0].log = true;
    let settings = Settings {
        rules,
        capture: capture::DROPPED,
        log: 0,
        ring_bytes: 1 << 16,
        ..Settings::default()
    };
    let mut fw = load(&settings);
    let mut events = fw.take_event_source().expect("event source");
    let mut captures = fw.take_capture_source().expect("capture source");
    let frame = Frame::ipv4(PEER4, HOST4).udp(53, 40000).build();
    let mut read = |fw: &mut Firewall, sent: u32| {
        assert_eq!(run_repeat(fw, &frame, sent), DROP);
        let (mut e, mut c) = (0u64, 0u64);
        events.drain(|_| e += 1);
        captures.drain(|_| c += 1);
        (e, c)
    };
    // Control: nothing published, every stream is sent.
    assert_eq!(read(&mut fw, 4), (4, 4));
    fw.publish_writers(true, false).expect("publishing");
    assert_eq!(read(&mut fw, 10), (0, 10));
    let c = counters(&fw);
    assert_eq!((c.events, c.event_lost, c.event_no_writer), (4, 0, 10));
    assert_eq!(
        (c.captured, c.capture_lost, c.capture_no_writer),
        (14, 0, 0)
    );
    assert_eq!(fw.published_writers(), Some(0b011));
    fw.publish_writers(true, true).expect("publishing");
    assert_eq!(read(&mut fw, 5), (5, 5));
    fw.publish_writers(false, false).expect("publishing");
    assert_eq!(read(&mut fw, 3), (0, 0));
    let c = counters(&fw);
    // Every record the program meant to send: sent, or counted with its reason.
    assert_eq!((c.events, c.event_no_writer), (9, 13), "{c:?}");
    assert_eq!((c.captured, c.capture_no_writer), (19, 3), "{c:?}");
    assert_eq!(c.dropped, 22);
}
