//! `xdpsieve stop -i IFACE`: the explicit end of a firewall, from any shell in the same
//! network namespace.
//!
//! A firewall stays in force until the operator removes it (see [`crate::pins`]). If a live
//! recorder owns the interface, it is asked to stop (SIGTERM) as if the operator had pressed
//! Ctrl-C in its terminal: it detaches, drains, writes its summary and removes its pins,
//! and this waits for it. If the recorder is gone (the firewall was left behind), this
//! removes the link's pin, which detaches the program, and then the other pins and the
//! description.

use std::{
    fs,
    time::{Duration, Instant},
};

use anyhow::{Result, bail};

use crate::{
    pins::{self, LINK_PIN},
    status::{Meta, pinned_snapshot, process_start},
};

/// How long a live recorder gets to finish (drain, summary) after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Stops the firewall on `iface` and returns what was done, for the operator.
pub fn stop(iface: &str) -> Result<String> {
    pins::check_existing(iface)?;
    let dir = pins::pin_dir(iface);
    let meta_file = pins::meta_path(iface);
    let meta = pins::read_meta(&meta_file);
    let mut report = Vec::new();
    if let Some(meta) = meta.as_ref().filter(|m| m.is_live()) {
        report.push(stop_recorder(iface, meta)?);
    }
    let link = dir.join(LINK_PIN);
    if link.exists() {
        let counts = meta
            .as_ref()
            .and_then(|m| pinned_snapshot(iface, m).ok())
            .map(|snap| {
                format!(
                    " It had dropped {} packets; {} packets' records were lost for want of a \
                     reader.",
                    snap.counters.dropped, snap.counters.no_reader
                )
            })
            .unwrap_or_default();
        // The pin is the link's last reference once its recorder is gone: removing it
        // detaches the program.
        fs::remove_file(&link).map_err(|e| {
            anyhow::anyhow!(
                "removing {}: {e}; the firewall on {iface} is still in force",
                link.display()
            )
        })?;
        pins::remove(iface);
        let owner = meta.as_ref().map_or_else(
            || "an unknown instance".to_string(),
            |m| format!("pid {}", m.pid),
        );
        report.push(format!(
            "removed the firewall left on {iface} by {owner}: the program is detached and its \
             pins are gone.{counts}"
        ));
    } else if report.is_empty() {
        if meta.is_none() && !dir.exists() {
            bail!(
                "no xdpsieve firewall on {iface} in this network namespace (nothing under {}); \
                 if `ip -d link show dev {iface}` shows an XDP program, another tool owns it",
                dir.display()
            );
        }
        pins::remove(iface);
        report.push(format!(
            "nothing was in force on {iface}; removed the stale pins{}",
            meta.map(|m| format!(" left by pid {}", m.pid))
                .unwrap_or_default()
        ));
    }
    Ok(report.join("\n"))
}

/// Asks the live recorder to stop and waits until it has.
fn stop_recorder(iface: &str, meta: &Meta) -> Result<String> {
    let pid = meta.pid;
    let Ok(raw_pid) = i32::try_from(pid) else {
        bail!("the description of {iface} names pid {pid}, which is not a valid pid");
    };
    // SAFETY: kill with a pid whose start time matched a moment ago (is_live).
    if unsafe { libc::kill(raw_pid, libc::SIGTERM) } != 0 {
        bail!(
            "could not signal xdpsieve pid {pid} on {iface}: {}",
            std::io::Error::last_os_error()
        );
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    while process_start(pid) == Some(meta.pid_start) {
        if Instant::now() > deadline {
            bail!(
                "xdpsieve pid {pid} on {iface} did not stop within {} s of SIGTERM; it is still \
                 running and filtering. Try again, or `kill -KILL {pid}` and then `xdpsieve stop \
                 -i {iface}` to remove the firewall it leaves",
                STOP_TIMEOUT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let others: Vec<&str> = meta
        .interfaces
        .iter()
        .map(|i| i.name.as_str())
        .filter(|n| *n != iface)
        .collect();
    let also = if others.is_empty() {
        String::new()
    } else {
        format!(
            " It also filtered on {}: stopped there too.",
            others.join(", ")
        )
    };
    Ok(format!(
        "stopped xdpsieve pid {pid} on {iface}: it detached, wrote its summary and removed its \
         pins.{also}"
    ))
}
