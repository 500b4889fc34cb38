//! The kernel memory a run holds: `--ring-size` goes to the rings of each stream the
//! program sends through (the capture rings, one per CPU, share it), and a ring nothing is
//! sent to is one page. Measured as the kernel accounts
//! it, the `memlock` of each ring buffer map in the process's `/proc/PID/fdinfo`. The ban
//! notices' ring (`NOTICE_RING_BYTES`) has a fixed size of its own.

use xdpsieve::configure::loader::capture_rings;
use xdpsieve_common::walk::NOTICE_RING_BYTES;
use xdpsieve_testkit::child::Firewall;
use xdpsieve_testkit::gate::{kernel_found, root_or_skip};
use xdpsieve_testkit::tempdir::TempDir;

use super::*;

/// `BPF_MAP_TYPE_RINGBUF`.
const RINGBUF: u64 = 27;

/// (max_entries, memlock) of each ring buffer map the process `pid` holds open (once per
/// map: it may hold several descriptors of one).
fn rings_of(pid: u32) -> Vec<(u64, u64)> {
    let mut rings = Vec::new();
    let dir = std::fs::read_dir(format!("/proc/{pid}/fdinfo")).expect("reading fdinfo");
    for entry in dir.flatten() {
        let Ok(info) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        let field = |key: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        if field("map_type:") == Some(RINGBUF) {
            rings.push((
                field("max_entries:").expect("max_entries"),
                field("memlock:").expect("memlock"),
                field("map_id:").expect("map_id"),
            ));
        }
    }
    rings.sort_unstable();
    rings.dedup_by_key(|ring| ring.2);
    rings
        .into_iter()
        .map(|(size, memlock, _)| (size, memlock))
        .collect()
}

/// Which stream a run sends records to.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Stream {
    Capture,
    Events,
}

/// The rings of a run with `args` and `--ring-size 256M`, sending only to `stream`. The
/// capture rings are one per possible CPU: sent to, they share the 256 MiB (each the
/// largest power of two in its share); not sent to, each is a page. The event ring is
/// 256 MiB when sent to, else a page. The memlock of a full-size ring shows this kernel
/// accounts a ring's pages there (the control); the unused ones must then lock little.
/// Kernels before 6.4 report no memlock for a ring buffer (its key and value sizes are
/// zero); there the test says so and checks the sizes alone.
fn rings_sized_for(net: &VethPair, stream: Stream, args: &[&str]) {
    const RING: u64 = 256 << 20;
    let mut all = vec!["--drop", "udp", "--ring-size", "256M"];
    all.extend_from_slice(args);
    let fw = Firewall::start(BINARY, net, &all);
    let rings = rings_of(fw.pid());
    let out = fw.stop(libc::SIGINT);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
    let cpus = capture_rings::cpus().expect("possible CPUs");
    let per_cpu = u64::from(capture_rings::ring_bytes_per_cpu(
        RING as u32,
        cpus,
        page as u32,
    ));
    assert!(
        per_cpu * u64::from(cpus) <= RING && per_cpu * u64::from(cpus) > RING / 2,
        "{cpus} CPUs share 256 MiB as {per_cpu} bytes each"
    );
    // The ban notices' ring has its own fixed size, whatever --ring-size says.
    let mut rings = rings;
    let notices = rings
        .iter()
        .position(|r| r.0 == u64::from(NOTICE_RING_BYTES))
        .unwrap_or_else(|| panic!("{args:?}: no ban notice ring: {rings:?}"));
    rings.remove(notices);
    let (capture_ring, event_ring) = match stream {
        Stream::Capture => (per_cpu, page),
        Stream::Events => (page, RING),
    };
    let mut expected: Vec<u64> = vec![capture_ring; cpus as usize];
    expected.push(event_ring);
    expected.sort_unstable();
    let sizes: Vec<u64> = rings.iter().map(|r| r.0).collect();
    assert_eq!(sizes, expected, "{stream:?} ({cpus} CPUs): {rings:?}");
    let used = if stream == Stream::Capture {
        per_cpu
    } else {
        RING
    };
    let full = rings.iter().filter(|r| r.0 == used && r.0 > page);
    let unused = rings.iter().filter(|r| !(r.0 == used && r.0 > page));
    if full.clone().any(|r| r.1 < r.0) {
        kernel_found(format_args!(
            "memlock in fdinfo does not show a ring buffer's pages ({rings:?}): checking the \
             sizes xdpsieve asked for only"
        ));
        return;
    }
    for ring in unused {
        assert!(
            ring.1 < 1 << 20,
            "{stream:?}: an unused ring locks {} bytes: {rings:?}",
            ring.1
        );
    }
}

#[test]
fn only_the_rings_a_run_sends_to_hold_the_ring_size() {
    if !root_or_skip() {
        return;
    }
    let tmp = TempDir::new("memory");
    let net = VethPair::create("memory", None).expect("namespaces");
    let capture = tmp.file("drops.pcap");
    let log = tmp.file("events.log");
    // Capture only: the event ring is a page.
    rings_sized_for(&net, Stream::Capture, &["-w", capture.to_str().unwrap()]);
    // The event log only: each capture ring is a page.
    rings_sized_for(
        &net,
        Stream::Events,
        &["--log", "dropped", "--log-file", log.to_str().unwrap()],
    );
}
