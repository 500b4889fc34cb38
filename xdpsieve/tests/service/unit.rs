//! The unit file itself: `systemd-analyze verify` accepts it (with a control that shows
//! the check reads what it is given), and it says what the service relies on, the parts
//! the other tests of this binary exercise.
//!
//! `verify` insists that `ExecStart=` and the other commands exist and are executable; the
//! unit names the installed `/usr/bin/xdpsieve`, which a checkout does not have, so a copy
//! naming the build under test is verified, nothing else changed. Man pages are not
//! checked here (`--man=no`): they belong to the package, and its tests render them.

use std::process::Command;

use xdpsieve_testkit::{tempdir::TempDir, tool::text};

use crate::{BINARY, UNIT, unit_text, unit_value, unit_values};

/// `systemd-analyze verify --man=no FILE`: whether it passed with nothing to say, and what
/// it said. `None` when systemd-analyze is not installed and this is not CI.
fn verify(file: &std::path::Path) -> Option<(bool, String)> {
    let out = match Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(file)
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "systemd-analyze cannot run ({e}); CI must have it (apt-get install systemd)"
            );
            eprintln!("skipping: systemd-analyze cannot run: {e}");
            return None;
        }
    };
    let (stdout, stderr) = text(&out);
    let said = format!("{stdout}{stderr}");
    // Unknown keys and unparsable values are warnings with exit status 0: any output fails.
    Some((out.status.success() && said.trim().is_empty(), said))
}

#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    let tmp = TempDir::new("svc-unit");
    let unit = unit_text();
    assert!(
        unit.contains("/usr/bin/xdpsieve "),
        "{UNIT} names no /usr/bin/xdpsieve"
    );
    let copy = tmp.file("xdpsieve.service");
    std::fs::write(&copy, unit.replace("/usr/bin/xdpsieve", BINARY)).expect("writing");
    // Control: the same check on a copy with a misspelled key and a wrong signal fails.
    let spoiled = tmp.file("spoiled.service");
    std::fs::write(
        &spoiled,
        unit.replace("/usr/bin/xdpsieve", BINARY)
            .replace("NotifyAccess=", "NotifyAcess=")
            .replace("RestartKillSignal=SIGQUIT", "RestartKillSignal=SIGQUITE"),
    )
    .expect("writing");
    let Some((ok, said)) = verify(&spoiled) else {
        return;
    };
    assert!(
        !ok,
        "the control passed: verify does not catch a misspelled key"
    );
    assert!(
        said.contains("NotifyAcess") && said.contains("SIGQUITE"),
        "{said}"
    );

    let (ok, said) = verify(&copy).expect("ran once");
    assert!(ok, "systemd-analyze verify refused {UNIT}:\n{said}");
}

#[test]
fn the_unit_says_what_the_service_relies_on() {
    for (key, value) in [
        ("Type", "notify"),
        ("NotifyAccess", "main"),
        (
            "ExecStart",
            "/usr/bin/xdpsieve run --config /etc/xdpsieve/xdpsieve.toml",
        ),
        (
            "ExecReload",
            "/usr/bin/xdpsieve reload --config /etc/xdpsieve/xdpsieve.toml",
        ),
        ("KillSignal", "SIGTERM"),
        ("RestartKillSignal", "SIGQUIT"),
        ("Restart", "on-failure"),
        ("User", "xdpsieve"),
        ("Group", "xdpsieve"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("RuntimeDirectory", "xdpsieve"),
        // /run/xdpsieve says where the pins are; the next run needs it after a stop.
        ("RuntimeDirectoryPreserve", "yes"),
        ("StateDirectory", "xdpsieve"),
        // A late interface at boot fails starts until it is there: never stop retrying.
        ("StartLimitIntervalSec", "0"),
    ] {
        assert_eq!(unit_value(key), value, "{UNIT}: {key}=");
    }
    assert!(
        !unit_values("WatchdogSec").is_empty(),
        "{UNIT}: no WatchdogSec="
    );
    let set = |key: &str| {
        let mut caps: Vec<String> = unit_value(key)
            .split_whitespace()
            .map(str::to_string)
            .collect();
        caps.sort();
        caps
    };
    assert_eq!(
        set("AmbientCapabilities"),
        set("CapabilityBoundingSet"),
        "{UNIT}: the bounding set is not the ambient set"
    );
    assert!(
        !set("AmbientCapabilities").contains(&"CAP_SYS_ADMIN".to_string()),
        "CAP_SYS_ADMIN is not needed"
    );
    assert!(
        unit_values("ReadWritePaths")
            .iter()
            .any(|v| v.split_whitespace().any(|p| p == "/sys/fs/bpf")),
        "{UNIT}: bpffs is not writable"
    );
}
