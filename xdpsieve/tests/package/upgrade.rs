//! What the package's maintainer scripts ask of systemd, run as dpkg runs them: an upgrade
//! must be the handover (a restart, which the unit turns into SIGQUIT: the firewall stays
//! in force and the new binary takes it over), never a stop, which would remove the
//! firewall and leave the interface unfiltered until the new version starts; only a
//! removal stops the service, and an install starts nothing.
//!
//! PID 1 here is not systemd, so the scripts run in a private mount namespace with a tmpfs
//! over /run holding `/run/systemd/system` (what they test to see systemd), and with
//! `deb-systemd-invoke`, `deb-systemd-helper` and `systemctl` replaced by stand-ins that
//! only write down their arguments. The scripts come from the .deb itself (`dpkg-deb -e`);
//! nothing is installed.

use std::{fs, os::unix::fs::PermissionsExt as _, path::Path, process::Command};

use xdpsieve_testkit::{gate::root_or_skip, tempdir::TempDir};

use crate::deb::deb;

/// Runs the maintainer script `script` with `args` as dpkg would, systemd present but
/// stood in for; returns the systemd calls it made, one per line.
fn systemd_calls(control: &Path, fakes: &Path, script: &str, args: &[&str]) -> String {
    let log = fakes.join("calls");
    fs::write(&log, "").expect("clearing the log");
    // Only the part between cargo-deb's markers: the systemd snippets. The rest of
    // postinst and postrm (the user, /var/lib/xdpsieve, a purge) changes the machine.
    let text = fs::read_to_string(control.join(script)).expect("reading the script");
    let mut snippets = String::from("set -e\n");
    let mut inside = false;
    for line in text.lines() {
        if line.contains("Automatically added by cargo-deb") {
            inside = true;
        } else if line.contains("End automatically added section") {
            inside = false;
        } else if inside {
            snippets.push_str(line);
            snippets.push('\n');
        }
    }
    let snippet_file = fakes.join(format!("{script}.systemd"));
    fs::write(&snippet_file, snippets).expect("writing the snippets");
    let inner = format!(
        "mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/system && \
         PATH={fakes}:/usr/sbin:/usr/bin:/sbin:/bin sh {snippet} {args}",
        fakes = fakes.display(),
        snippet = snippet_file.display(),
        args = args.join(" ")
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &inner])
        .output()
        .expect("running unshare");
    assert!(
        out.status.success(),
        "{script} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    fs::read_to_string(&log).expect("reading the log")
}

#[test]
fn an_upgrade_hands_over_and_only_a_removal_stops_the_service() {
    if !root_or_skip() {
        return;
    }
    let tmp = TempDir::new("pkg-scripts");
    let control = tmp.file("control");
    let out = Command::new("dpkg-deb")
        .arg("-e")
        .arg(deb())
        .arg(&control)
        .output()
        .expect("running dpkg-deb");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fakes = tmp.file("fakes");
    fs::create_dir(&fakes).expect("making the stand-ins' directory");
    for tool in ["deb-systemd-invoke", "deb-systemd-helper", "systemctl"] {
        let path = fakes.join(tool);
        let log = fakes.join("calls");
        fs::write(
            &path,
            format!("#!/bin/sh\necho \"{tool} $*\" >> {}\n", log.display()),
        )
        .expect("writing a stand-in");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    // dpkg's calls for an upgrade: the installed version's prerm (this package's, at the
    // next upgrade) with `upgrade NEW`, then the new postinst with `configure OLD`.
    let prerm_upgrade = systemd_calls(&control, &fakes, "prerm", &["upgrade", "0.1.0-1"]);
    assert!(
        !prerm_upgrade.contains(" stop"),
        "the upgrade's prerm stops the service, which removes the firewall: {prerm_upgrade}"
    );
    let postinst_upgrade = systemd_calls(&control, &fakes, "postinst", &["configure", "0.0.9-1"]);
    assert!(
        postinst_upgrade.contains("deb-systemd-invoke try-restart xdpsieve.service")
            || postinst_upgrade.contains("deb-systemd-invoke restart xdpsieve.service"),
        "the upgrade does not restart (hand over) a running service: {postinst_upgrade}"
    );
    assert!(
        !postinst_upgrade.contains(" stop") && !postinst_upgrade.contains("invoke start"),
        "{postinst_upgrade}"
    );
    // The unit makes that restart the handover.
    let unit = fs::read_to_string(crate::deb::root_dir().join("dist/xdpsieve.service"))
        .expect("reading the unit");
    assert!(
        unit.lines()
            .any(|l| l.trim() == "RestartKillSignal=SIGQUIT")
    );

    // A first install starts nothing; a removal stops the service.
    let postinst_install = systemd_calls(&control, &fakes, "postinst", &["configure"]);
    assert!(
        !postinst_install.contains("invoke start") && !postinst_install.contains("restart"),
        "installing starts the service: {postinst_install}"
    );
    let prerm_remove = systemd_calls(&control, &fakes, "prerm", &["remove"]);
    assert!(
        prerm_remove.contains("deb-systemd-invoke stop xdpsieve.service"),
        "a removal does not stop the service: {prerm_remove}"
    );
}
