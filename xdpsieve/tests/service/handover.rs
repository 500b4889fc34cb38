//! Restart without a window: the handover signal (SIGQUIT, the unit's
//! `RestartKillSignal=`) leaves the firewall in force and the next start takes it over, so
//! a flood to a dropped port across both delivers nothing at the socket behind the
//! firewall; the same across a binary swap, as a package upgrade does it (the old binary
//! runs from a file that is replaced before the new one starts).

use std::{
    path::Path,
    process::Stdio,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use xdpsieve_netns::VethPair;

use xdpsieve_testkit::{
    child::Firewall,
    fwnet::{ALLOWED_PORT, DROPPED_PORT, Net},
    gate::root_or_skip,
    tempdir::TempDir,
    tool::text,
    udp::received,
};

use crate::BINARY;

/// `PROGRAM run -i fw0 --drop RULE`, waited on until `status` shows it live.
fn start(net: &Net, program: &Path, rule: &str) -> Firewall {
    let mut command = net.command(&program.display().to_string());
    command.args(["run", "-i", VethPair::FW_IF, "--drop", rule]);
    let mut run = Firewall::spawn_command(command, Stdio::null());
    run.wait_until(|| xdpsieve_testkit::child::published(BINARY, &net.pair));
    run
}

/// A flood to the dropped port while `first` (running) gets SIGQUIT and `second` starts
/// once it has ended; nothing may reach the socket, and the second run must say it took
/// the firewall over and remove it at its stop.
fn flood_across_handover(net: &Net, first: &Path, second: &Path, before_second: impl Fn()) {
    const FLOOD_MAX: u64 = 3_000_000;
    const FLOOD_TIME: Duration = Duration::from_secs(30);
    let (dropped, allowed) = net.sockets();
    let rule = format!("udp dst port {DROPPED_PORT}");
    let old = start(net, first, &rule);
    let old_pid = old.pid();
    let program = net.xdp_program().expect("attached");
    let done = AtomicBool::new(false);
    let (sent, old_out, new) = std::thread::scope(|scope| {
        let flood = scope.spawn(|| {
            net.flood(
                DROPPED_PORT,
                &|| done.load(Ordering::Relaxed),
                FLOOD_MAX,
                FLOOD_TIME,
            )
        });
        std::thread::sleep(Duration::from_millis(200));
        // As systemd's restart job: the signal, the wait for the process to end, then
        // the new start.
        let old_out = old.stop(libc::SIGQUIT);
        assert_eq!(
            net.xdp_program(),
            Some(program),
            "the handed-over program went"
        );
        before_second();
        // The flood goes on with no recorder for a moment, as between a stop and a start.
        std::thread::sleep(Duration::from_millis(300));
        let new = start(net, second, &rule);
        std::thread::sleep(Duration::from_millis(300));
        done.store(true, Ordering::Relaxed);
        (flood.join().expect("flood thread"), old_out, new)
    });
    let (_, old_err) = text(&old_out);
    assert!(old_out.status.success(), "{old_err}");
    assert!(
        old_err.contains(
            "xdpsieve: handover (SIGQUIT): the firewall on fw0 stays in force without a recorder"
        ),
        "{old_err}"
    );
    assert!(
        old_err.contains("packets seen by xdpsieve"),
        "no summary: {old_err}"
    );
    eprintln!("flood: {sent} datagrams to the dropped port across the handover");
    assert!(sent > 1000, "the flood sent only {sent}");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(received(&dropped), 0, "a datagram got through the handover");
    net.send(ALLOWED_PORT, 10);
    assert_eq!(received(&allowed), 10);
    // The new run took the firewall over (no new attach) and removes it at its stop.
    let out = new.stop(libc::SIGTERM);
    let (_, err) = text(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "took over the firewall left on fw0 by pid {old_pid}, with no gap"
        )),
        "{err}"
    );
    assert_eq!(net.xdp_program(), None, "SIGTERM left the program");
}

#[test]
fn a_flood_across_the_handover_signal_and_the_next_start_delivers_nothing() {
    if !root_or_skip() {
        return;
    }
    let net = Net::create(BINARY, "handover");
    flood_across_handover(&net, Path::new(BINARY), Path::new(BINARY), || {});
}

#[test]
fn a_flood_across_a_binary_swap_delivers_nothing() {
    if !root_or_skip() {
        return;
    }
    let net = Net::create(BINARY, "swap");
    let tmp = TempDir::new("svc-swap");
    // The installed binary, as a package has it: the old one runs from it, the upgrade
    // replaces the file (a new inode, renamed over the old), the new one starts from it.
    let installed = tmp.file("xdpsieve");
    std::fs::copy(BINARY, &installed).expect("copying the binary");
    let upgrade = || {
        let staged = tmp.file("xdpsieve.dpkg-new");
        std::fs::copy(BINARY, &staged).expect("copying the binary");
        std::fs::rename(&staged, &installed).expect("replacing the binary");
    };
    flood_across_handover(&net, &installed, &installed, upgrade);
}
