//! xdpsieve as a systemd service, without systemd (PID 1 here is not systemd): what the
//! unit relies on, each part with the real binary in a veth sandbox.
//!
//! - `notify`: the sd_notify protocol on a `NOTIFY_SOCKET` the test listens on: READY,
//!   STATUS, RELOADING, READY, WATCHDOG and STOPPING in that order across a start, a reload
//!   (and a failed one, for which `xdpsieve reload`, the unit's `ExecReload=`, fails) and a
//!   stop; the watchdog honours `WATCHDOG_PID`.
//! - `handover`: a flood to a dropped port across the handover signal (the unit's
//!   `RestartKillSignal=`) and the next start, with the same binary and across a binary
//!   swap, delivers nothing at the socket behind the firewall.
//! - `journal`: with `JOURNAL_STREAM` naming standard error, every line carries its `<N>`.
//! - `privilege`: `xdpsieve run` as an unprivileged user with exactly the unit's
//!   capabilities, in the unit's view of bpffs, filters, captures, reloads and stops.
//! - `reload`: the unit's `ExecReload=` (`reload --config FILE`) finds its firewall among
//!   several in one namespace.
//! - `unit`: `systemd-analyze verify` accepts the unit file, which says what the service
//!   relies on.
//!
//! The tests that need root fail rather than skip under `CI` when they cannot run.

mod handover;
mod journal;
mod notify;
mod privilege;
mod reload;
mod unit;

/// The build under test.
const BINARY: &str = env!("CARGO_BIN_EXE_xdpsieve");

/// The unit file as the repository ships it.
const UNIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../dist/xdpsieve.service");

/// The unit file's text.
fn unit_text() -> String {
    std::fs::read_to_string(UNIT).unwrap_or_else(|e| panic!("reading {UNIT}: {e}"))
}

/// The values of `key` in the unit file, in order (comments and other keys skipped).
fn unit_values(key: &str) -> Vec<String> {
    unit_text()
        .lines()
        .filter(|l| !l.trim_start().starts_with(['#', ';']))
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim().to_string())
        .collect()
}

/// The one value of `key` in the unit file.
fn unit_value(key: &str) -> String {
    match unit_values(key).as_slice() {
        [one] => one.clone(),
        other => panic!("{UNIT}: {key}= should be set once, found {other:?}"),
    }
}
