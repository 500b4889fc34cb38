//! Least privilege: `xdpsieve run` as an unprivileged user (a numeric uid with no passwd
//! entry, as `setpriv` allows) with exactly the unit's capabilities, read from
//! `AmbientCapabilities=` of dist/xdpsieve.service so the test and the unit cannot drift
//! apart, under `--no-new-privs` and a bounding set of the same capabilities. It filters (a
//! flood to a dropped port delivers nothing at a real socket behind the firewall, an
//! allowed port delivers), captures into its directory (a file `tcpdump -r` reads),
//! reloads (`xdpsieve reload` run the same way, as `ExecReload=` runs it; a bad reload
//! exits non-zero and the old rules stay), and stops (a stop removes the firewall; with
//! `keep_on_stop` it stays, and the next start as the same user takes it over).
//!
//! The world is the unit's: xdpsieve's own mount namespace with a bpffs of mode 0700 (as
//! systemd mounts it) prepared by the unit's own `ExecStartPre=` (run as root, the user's
//! name replaced by the numeric id), and a /run/xdpsieve of the user's, mode 0700, as
//! `RuntimeDirectory=` makes it; root's `xdpsieve status` trusts that user's pins. On a
//! world-writable bpffs where another user made
//! /sys/fs/bpf/xdpsieve first, the service neither gets it from `ExecStartPre=` nor
//! trusts it: it pins in a directory of its own.

use std::{
    os::unix::fs::{MetadataExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use xdpsieve_netns::{VethOptions, VethPair};
use xdpsieve_testkit::{
    child::Firewall,
    fwnet::{ALLOWED_PORT, DROPPED_PORT, Net},
    gate::root_or_skip,
    tempdir::TempDir,
    tool::{stdout_of, text},
    udp::received,
};

use crate::{BINARY, unit_value};

/// The service's user and group: no passwd entry, no capabilities of its own.
const UID: u32 = 64_917;
/// Another unprivileged user, for the pin directory it must not be given.
const OTHER_UID: u32 = 64_918;

/// The unit's capabilities as setpriv spells them: `+bpf,+net_admin,...`.
fn unit_caps() -> String {
    let caps: Vec<String> = unit_value("AmbientCapabilities")
        .split_whitespace()
        .map(|c| {
            let name = c.strip_prefix("CAP_").unwrap_or(c).to_lowercase();
            format!("+{name}")
        })
        .collect();
    assert!(!caps.is_empty(), "the unit grants no capability");
    caps.join(",")
}

/// A service's world: the namespaces, xdpsieve's own mounts, and its directory (captures
/// and configuration, the user's, as `StateDirectory=` makes it).
struct Service {
    net: Net,
    dir: TempDir,
    caps: String,
}

impl Service {
    /// The world with bpffs of mode `bpffs_mode`; `before_unit` runs (as root) in it just
    /// before the unit's `ExecStartPre=`.
    fn create(tag: &str, bpffs_mode: &str, before_unit: impl FnOnce(&Net)) -> Service {
        Service::create_with(tag, bpffs_mode, &VethOptions::default(), before_unit)
    }

    /// As [`Service::create`], with the veth pair shaped by `options`.
    fn create_with(
        tag: &str,
        bpffs_mode: &str,
        options: &VethOptions,
        before_unit: impl FnOnce(&Net),
    ) -> Service {
        let mut net = Net::create_with(BINARY, tag, options);
        net.own_mounts(bpffs_mode);
        before_unit(&net);
        let pre = unit_value("ExecStartPre");
        let pre = pre
            .strip_prefix('+')
            .expect("ExecStartPre= runs with full privileges");
        let pre = pre.replace("xdpsieve:xdpsieve", &format!("{UID}:{UID}"));
        stdout_of(
            net.command("sh").args(["-c", &pre]),
            "the unit's ExecStartPre=",
        );
        stdout_of(
            net.command("install")
                .args(["-d", "-m", "0700", "-o", &UID.to_string(), "-g"])
                .args([&UID.to_string(), "/run/xdpsieve"]),
            "RuntimeDirectory=",
        );
        let dir = TempDir::new(tag);
        std::os::unix::fs::chown(dir.path(), Some(UID), Some(UID)).expect("chown");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o750))
            .expect("chmod");
        Service {
            net,
            dir,
            caps: unit_caps(),
        }
    }

    /// `xdpsieve ARGS` as the service's user with `caps` only, in its namespaces.
    fn command_with(&self, caps: &str, args: &[&str]) -> Command {
        let mut command = self.net.command("setpriv");
        command
            .arg(format!("--reuid={UID}"))
            .arg(format!("--regid={UID}"))
            .arg("--clear-groups")
            .arg(format!("--inh-caps=-all{caps}"))
            .arg(format!("--ambient-caps=-all{caps}"))
            .arg(format!("--bounding-set=-all{caps}"))
            .args(["--no-new-privs", "--", BINARY])
            .args(args)
            .stdin(Stdio::null());
        command
    }

    /// `xdpsieve ARGS` as the service runs it, to completion.
    fn xdpsieve(&self, args: &[&str]) -> Output {
        self.command_with(&format!(",{}", self.caps), args)
            .output()
            .expect("running setpriv")
    }

    /// The unit's `ExecReload=` for the configuration `config`, as the service's user.
    fn exec_reload(&self, config: &Path) -> Output {
        let line = unit_value("ExecReload");
        let mut words = line.split_whitespace();
        assert_eq!(words.next(), Some("/usr/bin/xdpsieve"), "ExecReload={line}");
        let config = config.display().to_string();
        let args: Vec<&str> = words
            .map(|w| {
                if w == "/etc/xdpsieve/xdpsieve.toml" {
                    config.as_str()
                } else {
                    w
                }
            })
            .collect();
        self.xdpsieve(&args)
    }

    /// Writes the configuration file: fw0, captures into the service's directory, drops
    /// UDP to `ports`, keeps the firewall on stop if `keep`.
    fn configure(&self, ports: &[u16], keep: bool) -> PathBuf {
        let mut toml = format!(
            "interfaces = [\"{}\"]\nkeep_on_stop = {keep}\n[capture]\nfile = \"{}\"\n",
            VethPair::FW_IF,
            self.dir.file("drops.pcap").display()
        );
        for port in ports {
            toml += &format!(
                "[[rule]]\nname = \"drop-{port}\"\naction = \"drop\"\nprotocol = \"udp\"\n\
                 dst_port = {port}\n"
            );
        }
        let file = self.dir.file("xdpsieve.toml");
        std::fs::write(&file, toml).expect("writing the configuration");
        file
    }

    /// `xdpsieve run --config FILE` as the service, waited on until live.
    fn start(&self, config: &Path) -> Firewall {
        let config = config.display().to_string();
        let command = self.command_with(&format!(",{}", self.caps), &["run", "--config", &config]);
        let mut run = Firewall::spawn_command(command, Stdio::null());
        run.wait_until(|| {
            let out = self.xdpsieve(&["status", "--json"]);
            String::from_utf8_lossy(&out.stdout).contains("\"live\": true")
        });
        run
    }

    /// The owner of `path` as seen in xdpsieve's mount namespace.
    fn owner(&self, path: &str) -> Option<u32> {
        let out = self
            .net
            .command("stat")
            .args(["-c", "%u", path])
            .output()
            .expect("stat");
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    }
}

/// A flood to `port` for a moment; how many datagrams were sent.
fn flood(net: &Net, port: u16) -> u64 {
    let start = std::time::Instant::now();
    let done = AtomicBool::new(false);
    let sent = net.flood(
        port,
        &|| done.load(Ordering::Relaxed) || start.elapsed() > Duration::from_millis(700),
        500_000,
        Duration::from_secs(5),
    );
    assert!(sent > 1000, "the flood sent only {sent}");
    sent
}

#[test]
fn with_only_the_units_capabilities_it_filters_captures_reloads_and_stops() {
    if !root_or_skip() {
        return;
    }
    let service = Service::create("priv", "0700", |_| {});
    let net = &service.net;
    assert_eq!(
        service.owner("/sys/fs/bpf/xdpsieve"),
        Some(UID),
        "the unit's ExecStartPre= did not give the service its pin directory"
    );
    let config = service.configure(&[DROPPED_PORT], false);

    // Control: the same user without the capabilities cannot run it, so what follows is
    // the capabilities' doing, not root's.
    let out = service
        .command_with("", &["run", "--config", &config.display().to_string()])
        .output()
        .expect("running setpriv");
    let (_, err) = text(&out);
    assert!(!out.status.success(), "ran without capabilities: {err}");
    assert!(err.contains("needs root, or the capabilities"), "{err}");

    let (dropped, allowed) = net.sockets();
    let run = service.start(&config);
    // Root's status trusts the service's pins: /run/xdpsieve, which only root can make,
    // belongs to the service's user.
    let out = net.xdpsieve(&["status", "--json"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("\"live\": true"),
        "root's status does not see the service: {}",
        text(&out).1
    );
    let sent = flood(net, DROPPED_PORT);
    net.send(ALLOWED_PORT, 20);
    assert_eq!(
        received(&dropped),
        0,
        "{sent} datagrams flooded, some got through"
    );
    assert_eq!(received(&allowed), 20, "the allowed port lost datagrams");

    // A reload as ExecReload= runs it: the allowed port is dropped from now on.
    service.configure(&[DROPPED_PORT, ALLOWED_PORT], false);
    let out = service.exec_reload(&config);
    let (said, err) = text(&out);
    assert!(out.status.success(), "reload failed: {err}");
    assert!(said.contains("reloaded"), "{said}");
    net.send(ALLOWED_PORT, 20);
    assert_eq!(received(&allowed), 0, "the reloaded rules are not in force");
    // A bad file: reload exits non-zero and the rules in force stay.
    std::fs::write(&config, "interfaces = [\"fw0\"\n").expect("spoiling the file");
    let out = service.exec_reload(&config);
    let (_, err) = text(&out);
    assert!(!out.status.success(), "a bad reload succeeded: {err}");
    assert!(err.contains("reload failed"), "{err}");
    net.send(ALLOWED_PORT, 20);
    assert_eq!(received(&allowed), 0, "a failed reload changed the rules");

    // The stop systemctl stop makes (SIGTERM), without keep_on_stop: the firewall goes.
    let out = run.stop(libc::SIGTERM);
    let (_, err) = text(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(
        net.xdp_program(),
        None,
        "the stop left the program attached"
    );
    net.send(DROPPED_PORT, 5);
    assert_eq!(
        received(&dropped),
        5,
        "the port is still closed after the stop"
    );

    // The capture, in the service's directory, as tcpdump reads it.
    let capture = service.dir.file("drops.pcap");
    let meta = std::fs::metadata(&capture).expect("no capture file");
    assert_eq!(meta.uid(), UID, "the capture is not the service's");
    let packets = stdout_of(
        Command::new("tcpdump").args(["-n", "-r"]).arg(&capture),
        "tcpdump",
    );
    let to_dropped = packets
        .lines()
        .filter(|l| l.contains(&format!("> {}.{DROPPED_PORT}:", VethPair::FW_V4)))
        .count();
    assert!(to_dropped > 0, "no dropped datagram captured:\n{packets}");
}

#[test]
fn with_keep_on_stop_the_firewall_stays_and_the_next_start_takes_it_over() {
    if !root_or_skip() {
        return;
    }
    let service = Service::create("privkeep", "0700", |_| {});
    let net = &service.net;
    let config = service.configure(&[DROPPED_PORT], true);
    let (dropped, allowed) = net.sockets();
    let run = service.start(&config);
    let pid = run.pid();
    let program = net.xdp_program().expect("attached");
    let out = run.stop(libc::SIGTERM);
    assert!(out.status.success(), "{}", text(&out).1);
    assert_eq!(
        net.xdp_program(),
        Some(program),
        "keep_on_stop did not keep it"
    );
    flood(net, DROPPED_PORT);
    net.send(ALLOWED_PORT, 10);
    assert_eq!(
        received(&dropped),
        0,
        "the kept firewall let datagrams through"
    );
    assert_eq!(received(&allowed), 10);

    // The next start, as the same user, adopts the pins it left (and swaps its own program
    // onto their link: the program changes, the link stays).
    let run = service.start(&config);
    assert!(
        net.xdp_program().is_some(),
        "nothing attached after the takeover"
    );
    // status and stop need CAP_BPF alone (stop signals a run of its own user: no
    // CAP_KILL); `xdpsieve stop` removes even a kept firewall.
    let out = service
        .command_with(",+bpf", &["status", "--json"])
        .output()
        .expect("status");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("\"live\": true"),
        "status with CAP_BPF alone: {}",
        text(&out).1
    );
    let out = service
        .command_with(",+bpf", &["stop", "-i", VethPair::FW_IF])
        .output()
        .expect("stop");
    let (said, err) = text(&out);
    assert!(out.status.success(), "{err}");
    assert!(said.contains("stopped xdpsieve pid"), "{said}");
    let out = run.wait_exit(Duration::from_secs(10));
    let (_, err) = text(&out);
    assert!(
        err.contains(&format!("took over the firewall left on fw0 by pid {pid}")),
        "{err}"
    );
    assert_eq!(net.xdp_program(), None, "stop left the program");
    net.send(DROPPED_PORT, 5);
    assert_eq!(received(&dropped), 5);
}

#[test]
fn a_pin_directory_another_user_made_is_neither_given_to_the_service_nor_trusted() {
    if !root_or_skip() {
        return;
    }
    // A world-writable bpffs, where another user made /sys/fs/bpf/xdpsieve first.
    let service = Service::create("privother", "1777", |net| {
        let mut command = net.command("setpriv");
        command
            .arg(format!("--reuid={OTHER_UID}"))
            .arg(format!("--regid={OTHER_UID}"))
            .args(["--clear-groups", "--", "mkdir", "-m", "0700"])
            .arg("/sys/fs/bpf/xdpsieve");
        stdout_of(&mut command, "mkdir as another user");
    });
    let net = &service.net;
    assert_eq!(
        service.owner("/sys/fs/bpf/xdpsieve"),
        Some(OTHER_UID),
        "the unit's ExecStartPre= gave another user's directory to the service"
    );
    let config = service.configure(&[DROPPED_PORT], false);
    let (dropped, _) = net.sockets();
    let run = service.start(&config);
    flood(net, DROPPED_PORT);
    assert_eq!(received(&dropped), 0);
    let status = service.xdpsieve(&["status", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status --json");
    let pins = json[0]["pins"].as_str().unwrap_or_default().to_string();
    assert!(
        pins.starts_with("/sys/fs/bpf/xdpsieve-"),
        "pinned in {pins:?}, not a directory of its own: {json}"
    );
    let out = run.stop(libc::SIGTERM);
    let (_, err) = text(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("/sys/fs/bpf/xdpsieve is not xdpsieve's"),
        "no warning about the foreign directory: {err}"
    );
    assert_eq!(net.xdp_program(), None);
}

/// Each capability of the unit, measured: without it (and with xdpsieve's own early check
/// skipped, so the kernel answers) the run fails and nothing is attached; with all of them,
/// the same run starts (the control).
#[test]
fn the_kernel_refuses_the_run_without_each_of_the_units_capabilities() {
    if !root_or_skip() {
        return;
    }
    let service = Service::create("privneed", "0700", |_| {});
    let config = service.configure(&[DROPPED_PORT], false);
    let config = config.display().to_string();
    let all: Vec<&str> = service.caps.split(',').collect();
    for missing in &all {
        let caps: String = all
            .iter()
            .filter(|c| c != &missing)
            .map(|c| format!(",{c}"))
            .collect();
        let mut command = service.command_with(&caps, &["run", "--config", &config]);
        command.env("XDPSIEVE_SKIP_CAPABILITY_CHECK", "1");
        let out = command.output().expect("running setpriv");
        let (_, err) = text(&out);
        assert!(!out.status.success(), "ran without {missing}: {err}");
        assert_eq!(
            service.net.xdp_program(),
            None,
            "attached without {missing}"
        );
        let first = err.lines().next().unwrap_or("");
        eprintln!("without {missing}: {}", first.get(..160).unwrap_or(first));
    }
    let mut command =
        service.command_with(&format!(",{}", service.caps), &["run", "--config", &config]);
    command.env("XDPSIEVE_SKIP_CAPABILITY_CHECK", "1");
    let mut run = Firewall::spawn_command(command, Stdio::null());
    run.wait_until(|| service.net.xdp_program().is_some());
    let out = run.stop(libc::SIGTERM);
    assert!(out.status.success(), "{}", text(&out).1);
}

/// `set` as the service's user after the interface's rx queues grew: the watcher then
/// moves the link to the program's twin (see `configure::relink`), and the set commands,
/// which cannot list the kernel's programs without CAP_SYS_ADMIN, must still find the
/// program in force through its pins.
#[test]
fn set_commands_work_after_the_queues_grew() {
    if !root_or_skip() {
        return;
    }
    let options = VethOptions {
        rx_queues: Some((1, 4)),
        ..VethOptions::default()
    };
    let service = Service::create_with("privq", "0700", &options, |_| {});
    let net = &service.net;
    let config = service.configure(&[], false);
    let mut toml = std::fs::read_to_string(&config).expect("reading");
    toml += "[[set]]\nname = \"ban\"\nprefixes = [\"203.0.113.0/24\"]\n\
             [[rule]]\nname = \"banned\"\naction = \"drop\"\nsrc = \"@ban\"\n";
    std::fs::write(&config, toml).expect("writing");
    let run = service.start(&config);
    let before = net.xdp_program().expect("attached");
    net.pair
        .fw
        .set_channels(VethPair::FW_IF, &["rx", "4"])
        .expect("growing fw0's rx queues");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while net.xdp_program() == Some(before) {
        assert!(
            std::time::Instant::now() < deadline,
            "the watcher did not move the link to the twin"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = service.xdpsieve(&["set", "add", "ban", &VethPair::PEER_V4.to_string()]);
    let (said, err) = text(&out);
    assert!(out.status.success(), "set add after the queues grew: {err}");
    assert!(said.contains("added 1"), "{said}");
    let (dropped, _) = net.sockets();
    net.send(DROPPED_PORT, 20);
    assert_eq!(received(&dropped), 0, "the banned peer got through");
    let out = run.stop(libc::SIGTERM);
    assert!(out.status.success(), "{}", text(&out).1);
}
