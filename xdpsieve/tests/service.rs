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
//! - `unit`: `systemd-analyze verify` accepts the unit files.
//! - `requirements`: the kernel-feature probe on this kernel.
//!
//! The tests that need root fail rather than skip under `CI` when they cannot run.

#[path = "common/child.rs"]
#[expect(
    dead_code,
    reason = "the child guard serves several test binaries; this one uses a part"
)]
mod child;
mod common;
#[path = "common/fwnet.rs"]
#[expect(
    dead_code,
    reason = "the namespaces' helpers serve several test binaries; this one uses a part"
)]
mod fwnet;
#[path = "common/tempdir.rs"]
mod tempdir;

#[path = "service/handover.rs"]
mod handover;
#[path = "service/journal.rs"]
mod journal;
#[path = "service/notify.rs"]
mod notify;

use std::process::Output;

/// Standard output and standard error of `out`, for messages.
fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
