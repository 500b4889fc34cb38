//! The kernel memory a run holds: `--ring-size` goes to the ring of each stream the program
//! sends through, and a ring nothing is sent to is one page. Measured as the kernel accounts
//! it, the `memlock` of each ring buffer map in the process's `/proc/PID/fdinfo`. The ban
//! notices' ring (`NOTICE_RING_BYTES`) has a fixed size of its own.

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

/// The rings of a run with `args` and `--ring-size 256M`: one of the full size, whose
/// memlock shows this kernel accounts a ring's pages there (the control), and the other of
/// one page, with memlock to match. Kernels before 6.4 report no memlock for a ring buffer
/// (its key and value sizes are zero); there the test says so and checks the sizes alone.
fn one_full_ring(net: &VethPair, args: &[&str]) {
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
    // The ban notices' ring has its own fixed size, whatever --ring-size says.
    let mut rings = rings;
    let notices = rings
        .iter()
        .position(|r| r.0 == u64::from(NOTICE_RING_BYTES))
        .unwrap_or_else(|| panic!("{args:?}: no ban notice ring: {rings:?}"));
    rings.remove(notices);
    assert_eq!(rings.len(), 2, "{args:?}: {rings:?}");
    let (small, full) = (rings[0], rings[1]);
    assert_eq!(full.0, RING, "{args:?}: {rings:?}");
    assert_eq!(small.0, page, "{args:?}: the unused ring: {rings:?}");
    if full.1 < RING {
        kernel_found(format_args!(
            "memlock in fdinfo does not show a ring buffer's pages ({} bytes for 256 \
             MiB): checking the sizes xdpsieve asked for only",
            full.1
        ));
        return;
    }
    assert!(
        small.1 < 1 << 20,
        "{args:?}: the unused ring locks {} bytes: {rings:?}",
        small.1
    );
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
    one_full_ring(&net, &["-w", capture.to_str().unwrap()]);
    // The event log only: the capture ring is a page.
    one_full_ring(
        &net,
        &["--log", "dropped", "--log-file", log.to_str().unwrap()],
    );
}
