//! The firewall is fail-static: the real `xdpsieve` binary on a veth in namespaces the test
//! creates, killed in the ways a process dies, with real UDP sockets bound behind the
//! firewall to show that what the rules drop stays dropped, that a takeover under a flood
//! lets nothing through, and that only an explicit stop removes the firewall, leaving no
//! pins, no program and no description behind.
//!
//! They need root; under `CI` they fail rather than skip when they cannot run.

use std::{
    os::unix::fs::PermissionsExt as _,
    path::PathBuf,
    process::Command,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use xdpsieve_netns::VethPair;
use xdpsieve_testkit::fwnet::{ALLOWED_PORT, DROPPED_PORT, Net, READER_TIMEOUT, capture_file};
use xdpsieve_testkit::gate::root_or_skip;
use xdpsieve_testkit::udp::received;

/// The build under test.
const BINARY: &str = env!("CARGO_BIN_EXE_xdpsieve");

/// Kills `run` with `signal` and checks the firewall stays in force: the dropped port gets
/// nothing, the allowed port everything, status shows no recorder and counts the records
/// nobody read; then `stop` removes it all.
fn killed_recorder_leaves_drops_in_force(tag: &str, signal: i32) {
    let net = Net::create(BINARY, tag);
    let (dropped, allowed) = net.sockets();
    let capture = capture_file(tag);
    let run = net.start(
        &["--drop", &format!("udp dst port {DROPPED_PORT}")],
        &capture,
    );
    let pid = run.pid();
    let program = net.xdp_program().expect("attached");
    let out = run.signal(signal);
    assert!(!out.status.success());
    std::thread::sleep(READER_TIMEOUT);

    assert_eq!(
        net.xdp_program(),
        Some(program),
        "the program changed or went"
    );
    let sent = net.send(DROPPED_PORT, 50);
    net.send(ALLOWED_PORT, 20);
    assert_eq!(received(&dropped), 0, "the dropped port was reachable");
    assert_eq!(received(&allowed), 20, "the allowed port lost datagrams");

    let s = net.status_json();
    assert_eq!(s["live"], false, "{s}");
    assert_eq!(s["in_force"], true, "{s}");
    assert_eq!(s["pid"], pid, "{s}");
    assert_eq!(s["counters"]["dropped"], sent, "{s}");
    assert_eq!(s["counters"]["no_reader"], sent, "{s}");
    let text = String::from_utf8_lossy(&net.xdpsieve(&["status"]).stdout).into_owned();
    assert!(
        text.contains(&format!("running without a recorder (pid {pid} died)"))
            && text.contains(&format!("{sent} lost for want of a reader")),
        "{text}"
    );

    // Only an explicit stop removes it, and it leaves nothing behind.
    let out = net.xdpsieve(&["stop", "-i", VethPair::FW_IF]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains(&format!("removed the firewall left on fw0 by pid {pid}")),
        "{said}"
    );
    assert_eq!(net.xdp_program(), None, "program still attached after stop");
    let (pins, meta) = net.pin_paths();
    assert!(!pins.exists(), "{} left behind", pins.display());
    assert!(!meta.exists(), "{} left behind", meta.display());
    let deadline = Instant::now() + Duration::from_secs(5);
    while aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .any(|p| p.id() == program)
    {
        assert!(Instant::now() < deadline, "program {program} still loaded");
        std::thread::sleep(Duration::from_millis(50));
    }
    net.send(DROPPED_PORT, 5);
    assert_eq!(received(&dropped), 5, "the port is open again after stop");
    let _ = std::fs::remove_file(capture);
}

#[test]
fn sigkill_leaves_the_drops_in_force_until_stop() {
    if root_or_skip() {
        killed_recorder_leaves_drops_in_force("kill", libc::SIGKILL);
    }
}

#[test]
fn abort_leaves_the_drops_in_force_until_stop() {
    if root_or_skip() {
        killed_recorder_leaves_drops_in_force("abort", libc::SIGABRT);
    }
}

/// Packets dropped per the exit summary ("N packets seen by xdpsieve (D dropped, ...").
fn summary_dropped(stderr: &str) -> u64 {
    stderr
        .lines()
        .find_map(|l| {
            let rest = l.split_once("packets seen by xdpsieve (")?.1;
            rest.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no summary in {stderr}"))
}

#[test]
fn takeover_under_a_flood_lets_nothing_through_and_counters_carry_on() {
    if !root_or_skip() {
        return;
    }
    const FLOOD_MAX: u64 = 3_000_000;
    const FLOOD_TIME: Duration = Duration::from_secs(20);
    let net = Net::create(BINARY, "takeover");
    let (dropped, allowed) = net.sockets();
    let capture = capture_file("takeover");
    let rule = format!("udp dst port {DROPPED_PORT}");
    let first = net.start(&["--drop", &rule], &capture);
    let first_pid = first.pid();
    assert!(!first.signal(libc::SIGKILL).status.success());
    let before = net.send(DROPPED_PORT, 30);

    let done = AtomicBool::new(false);
    let (flood_sent, second) = std::thread::scope(|scope| {
        let flood = scope.spawn(|| {
            net.flood(
                DROPPED_PORT,
                &|| done.load(Ordering::Relaxed),
                FLOOD_MAX,
                FLOOD_TIME,
            )
        });
        std::thread::sleep(Duration::from_millis(200));
        let second = net.start(&["--drop", &rule], &capture);
        std::thread::sleep(Duration::from_millis(300));
        done.store(true, Ordering::Relaxed);
        (flood.join().expect("flood thread"), second)
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(flood_sent > 1000, "the flood sent only {flood_sent}");
    assert_eq!(received(&dropped), 0, "a datagram got through the handover");
    net.send(ALLOWED_PORT, 10);
    assert_eq!(received(&allowed), 10);

    // The counters carry on from the old firewall's; the copy after the swap may miss a
    // packet counted in the same microseconds (see xdpsieve::instance::takeover).
    let total = before + flood_sent;
    eprintln!("flood: {flood_sent} datagrams to the dropped port during the handover");
    let s = net.status_json();
    assert_eq!(s["live"], true, "{s}");
    assert_eq!(s["pid"], second.pid(), "{s}");
    let counted = s["counters"]["dropped"].as_u64().expect("dropped");
    eprintln!("dropped: {counted} counted of {total} sent");
    assert!(
        counted <= total && counted + total / 100 >= total,
        "{counted} counted of {total} dropped"
    );
    let out = second.signal(libc::SIGINT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "took over the firewall left on fw0 by pid {first_pid}"
        )),
        "{stderr}"
    );
    assert!(summary_dropped(&stderr) >= counted, "{stderr}");
    assert_eq!(
        net.xdp_program(),
        None,
        "program still attached after SIGINT"
    );
    assert!(!net.pin_paths().0.exists());
    let _ = std::fs::remove_file(capture);
}

#[test]
fn stop_ends_a_live_recorder_as_sigint_does() {
    if !root_or_skip() {
        return;
    }
    let net = Net::create(BINARY, "stop");
    let (dropped, _allowed) = net.sockets();
    let capture = capture_file("stop");
    let rule = format!("udp dst port {DROPPED_PORT}");
    let run = net.start(&["--drop", &rule], &capture);
    let pid = run.pid();
    net.send(DROPPED_PORT, 10);
    std::thread::sleep(Duration::from_millis(300));
    let out = net.xdpsieve(&["stop", "-i", VethPair::FW_IF]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains(&format!("stopped xdpsieve pid {pid} on fw0")),
        "{said}"
    );
    // The recorder ended as on Ctrl-C: success, summary, all ten captured.
    let out = run.wait();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(summary_dropped(&stderr), 10, "{stderr}");
    assert!(stderr.contains("10 packets captured"), "{stderr}");
    assert_eq!(net.xdp_program(), None);
    let (pins, meta) = net.pin_paths();
    assert!(!pins.exists() && !meta.exists());
    let out = net.xdpsieve(&["stop", "-i", VethPair::FW_IF]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("no xdpsieve firewall on fw0"),
        "{err}"
    );
    net.send(DROPPED_PORT, 3);
    assert_eq!(received(&dropped), 3);

    // SIGINT to the foreground run: as before, a summary and no pins.
    let run = net.start(&["--drop", &rule], &capture);
    let out = run.signal(libc::SIGINT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.contains("packets seen by xdpsieve"),
        "{stderr}"
    );
    assert_eq!(net.xdp_program(), None);
    assert!(!pins.exists() && !meta.exists());
    let _ = std::fs::remove_file(capture);
}

#[test]
fn pin_directory_writable_by_others_or_owned_by_another_user_is_refused() {
    if !root_or_skip() {
        return;
    }
    let net = Net::create(BINARY, "perm");
    let (pins, _) = net.pin_paths();
    std::fs::create_dir_all(&pins).expect("creating the pin directory");
    // Something planted in it (a map where the link goes), as the check is there for. An
    // empty directory is not even a firewall left behind: any run's sweep (another test's,
    // running meanwhile) removes it, and this run would then make its own and filter,
    // never ending.
    let planted = Command::new("bpftool")
        .args(["map", "create"])
        .arg(pins.join("link"))
        .args([
            "type", "array", "key", "4", "value", "4", "entries", "1", "name", "planted",
        ])
        .status()
        .expect("running bpftool");
    assert!(planted.success(), "bpftool could not plant a map");
    let capture = capture_file("perm");
    let run = |net: &Net| {
        net.xdpsieve(&[
            "run",
            "-i",
            VethPair::FW_IF,
            "--drop",
            "udp",
            "-w",
            &capture,
        ])
    };

    std::fs::set_permissions(&pins, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = run(&net);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("group or others may write to it"),
        "{err}"
    );
    assert_eq!(net.xdp_program(), None, "attached despite the refusal");

    std::fs::set_permissions(&pins, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(&pins, Some(65534), Some(65534)).unwrap();
    let out = run(&net);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("belongs to uid 65534"),
        "{err}"
    );
    assert_eq!(net.xdp_program(), None, "attached despite the refusal");
    std::fs::remove_dir_all(&pins).expect("removing the test's pin directory");
    let _ = std::fs::remove_file(capture);
}

#[test]
fn status_without_root_says_it_needs_root() {
    if !root_or_skip() {
        return;
    }
    // nobody, without capabilities (setpriv from util-linux).
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--",
        ])
        .arg(BINARY)
        .arg("status")
        .output()
        .expect("running setpriv");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("status needs root (it reads pinned BPF maps)"),
        "{err}"
    );
}

#[test]
fn another_tools_bpf_link_gets_advice_that_works_for_links() {
    if !root_or_skip() {
        return;
    }
    use xdpsieve::configure::loader::{AttachMode, Firewall, Settings};
    let net = Net::create(BINARY, "other");
    // Another tool: the same program, attached through a bpf_link pinned elsewhere.
    let dir = PathBuf::from(format!(
        "/sys/fs/bpf/xdpsieve-failstatic-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("creating a bpffs directory");
    let link = dir.join("link");
    let mut other = net
        .pair
        .fw
        .run(|| {
            let mut fw = Firewall::load(&Settings::default())?;
            fw.attach(VethPair::FW_IF, AttachMode::Skb, &link)?;
            Ok::<_, xdpsieve::configure::loader::LoaderError>(fw)
        })
        .expect("entering namespace")
        .expect("attaching the other tool's program");
    let capture = capture_file("other");
    let out = net.xdpsieve(&[
        "run",
        "-i",
        VethPair::FW_IF,
        "--drop",
        "udp",
        "-w",
        &capture,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    other.detach_all();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!out.status.success());
    assert!(
        err.contains("fw0 already has an XDP program attached")
            && err.contains("NOT removed by `ip link set dev fw0 xdp off`")
            && err.contains("bpftool link detach id"),
        "{err}"
    );
    assert!(!net.pin_paths().0.exists(), "the refused run left pins");
    let _ = std::fs::remove_file(capture);
}

#[test]
fn help_says_how_to_remove_a_firewall_left_behind() {
    for (command, expected) in [
        ("run", "stays in force"),
        ("run", "xdpsieve stop -i IFACE"),
        ("stop", "removes the pinned link"),
        (
            "stop",
            "does not remove a firewall attached through a bpf_link",
        ),
    ] {
        let out = Command::new(BINARY)
            .args([command, "--help"])
            .output()
            .expect("running xdpsieve --help");
        let text = String::from_utf8_lossy(&out.stdout).replace('\n', " ");
        assert!(text.contains(expected), "{command} --help: {text}");
    }
}

#[test]
fn records_left_in_the_ring_of_a_killed_recorder_are_counted_not_lost_silently() {
    if !root_or_skip() {
        return;
    }
    let net = Net::create(BINARY, "unread");
    let (dropped, _allowed) = net.sockets();
    let capture = capture_file("unread");
    let rule = format!("udp dst port {DROPPED_PORT}");
    let first = net.start(&["--drop", &rule], &capture);
    // Stopped, it reads nothing; its heartbeat is still fresh, so the program keeps sending
    // records into the ring; then it dies with them unread.
    // SAFETY: kill on the PID of a child we started.
    unsafe { libc::kill(first.pid() as i32, libc::SIGSTOP) };
    let queued = net.send(DROPPED_PORT, 25);
    assert!(!first.signal(libc::SIGKILL).status.success());
    assert_eq!(received(&dropped), 0);

    let s = net.status_json();
    assert_eq!(
        (s["live"].as_bool(), s["in_force"].as_bool()),
        (Some(false), Some(true))
    );
    assert_eq!(s["unread_in_rings"], queued, "{s}");
    let text = String::from_utf8_lossy(&net.xdpsieve(&["status"]).stdout).into_owned();
    assert!(
        text.contains(&format!("{queued} records left unread in its rings")),
        "{text}"
    );

    // Taking over counts them as lost for want of a reader.
    let second = net.start(&["--drop", &rule], &capture);
    let s = net.status_json();
    assert_eq!(s["counters"]["no_reader"], queued, "{s}");
    let out = second.signal(libc::SIGINT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("({queued} of them left unread in its rings)")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{queued} packets not recorded: no recorder was reading"
        )),
        "{stderr}"
    );
    let _ = std::fs::remove_file(capture);
}

#[test]
fn a_defunct_pinned_link_is_cleared_not_taken_over() {
    if !root_or_skip() {
        return;
    }
    let net = Net::create(BINARY, "defunct");
    let capture = capture_file("defunct");
    let rule = format!("udp dst port {DROPPED_PORT}");
    let first = net.start(&["--drop", &rule], &capture);
    assert!(!first.signal(libc::SIGKILL).status.success());
    // The interface goes and comes back: the pinned link is defunct (it filters nothing),
    // so it is not a firewall in force and must not stop a new run.
    net.pair
        .fw
        .ip(&["link", "del", VethPair::FW_IF])
        .expect("deleting the veth");
    net.pair
        .add_link(&xdpsieve_netns::VethOptions::default())
        .expect("creating the veth again");
    let s = net.status_json();
    assert_eq!(s["in_force"], false, "{s}");
    let (dropped, allowed) = net.sockets();
    let second = net.start(&["--drop", &rule], &capture);
    net.send(DROPPED_PORT, 20);
    net.send(ALLOWED_PORT, 10);
    assert_eq!(received(&dropped), 0, "the new run does not filter");
    assert_eq!(received(&allowed), 10);
    let out = second.signal(libc::SIGINT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("removing a defunct firewall pinned for fw0"),
        "{stderr}"
    );
    let _ = std::fs::remove_file(capture);
}
