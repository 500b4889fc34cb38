//! The capture path: ring records that match the frames byte for byte with `CLOCK_TAI`
//! stamps, snap length, jumbo frames through XDP multi-buffer, a full ring that counts
//! what it loses, and a ring per CPU that fills on its own.

use xdpsieve::{
    configure::loader::{Settings, capture_rings},
    configure::rules::Action,
    read::record::Verdict,
};
use xdpsieve_common::{MAX_SNAPLEN, capture};
use xdpsieve_testkit::frame::{Ext, Frame};
use xdpsieve_testkit::gate::{kernel_found, root_or_skip};

use crate::support::*;

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

/// The CPUs this thread may run on.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: an all-zero cpu_set_t is a valid empty set; sched_getaffinity fills it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: set is a valid cpu_set_t of the size passed.
    let rc = unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) };
    assert_eq!(rc, 0, "sched_getaffinity");
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: cpu is below CPU_SETSIZE.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect()
}

/// Lets this thread run on `cpus` only: `BPF_PROG_TEST_RUN` runs the program on the CPU
/// it is called from.
fn pin_to(cpus: &[usize]) {
    // SAFETY: an all-zero cpu_set_t is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus {
        // SAFETY: cpu came from `allowed_cpus`, below CPU_SETSIZE.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: set is a valid cpu_set_t of the size passed.
    let rc = unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) };
    assert_eq!(rc, 0, "sched_setaffinity to {cpus:?}");
}

#[test]
fn a_full_ring_on_one_cpu_leaves_the_others_capturing() {
    if !root_or_skip() {
        return;
    }
    let cpus = allowed_cpus();
    let [first, second, ..] = cpus[..] else {
        kernel_found(format_args!(
            "this test may run on one CPU only ({cpus:?}): rings per CPU are not compared"
        ));
        return;
    };
    // A page per CPU.
    let possible = capture_rings::cpus().expect("possible CPUs");
    let settings = Settings {
        rules: rule_set(&[(Action::Drop, "udp src port 53")]),
        capture: capture::DROPPED,
        ring_bytes: (4096 * possible).next_power_of_two(),
        ..Settings::default()
    };
    let mut fw = load(&settings);
    let mut ring = fw.take_capture_source().expect("capture source");
    let frame = Frame::ipv4(PEER4, HOST4)
        .udp(53, 40000)
        .pad_to(1500)
        .build();
    // The first CPU fills its ring and loses the rest.
    pin_to(&[first]);
    for _ in 0..20 {
        assert_eq!(run(&mut fw, &frame), DROP);
    }
    let full = counters(&fw);
    assert!(
        full.capture_lost > 0,
        "a page cannot hold 20 1500-byte records: {full:?}"
    );
    // The second CPU's ring is its own: its record fits.
    pin_to(&[second]);
    assert_eq!(run(&mut fw, &frame), DROP);
    let after = counters(&fw);
    assert_eq!(after.captured, full.captured + 1, "{after:?}");
    assert_eq!(after.capture_lost, full.capture_lost, "{after:?}");
    assert_eq!(drain(&mut ring).len() as u64, after.captured, "{after:?}");
    // Back to every CPU the thread had.
    pin_to(&cpus);
}
