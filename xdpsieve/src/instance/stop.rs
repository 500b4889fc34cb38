//! `xdpsieve stop -i IFACE`: the explicit end of a firewall, from any shell in the same
//! network namespace.
//!
//! A firewall stays in force until the operator removes it (see [`crate::instance::pins`]).
//! If a live recorder owns the interface, it is asked to stop (SIGTERM) as if the operator
//! had pressed Ctrl-C in its terminal: it detaches, drains, writes its summary and removes
//! its pins, and this waits for it; a recorder that keeps its firewall at a stop
//! (`keep_on_stop`) leaves it behind, and this goes on to remove it as such. If the
//! recorder is gone (the firewall was left behind), this removes the link's pin, which
//! detaches the program, and then the other pins and the description. Either way the end is done by the interface's owner
//! ([`crate::instance::pins::owner`]): the recorder, or this command once it holds the
//! interface's lock, so a run starting or taking over meanwhile is never cut short.

use std::{
    fs,
    time::{Duration, Instant},
};

use anyhow::{Result, bail};

use crate::{
    instance::description::{self, process_start},
    instance::pins::{self, LINK_PIN, owner::Verb},
};

/// How long a live recorder gets to finish (drain, summary) after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Stops the firewall on `iface` and returns what was done, for the operator.
pub fn stop(iface: &str) -> Result<String> {
    pins::check_existing(iface)?;
    let mut report = Vec::new();
    let deadline = Instant::now() + STOP_TIMEOUT;
    let owner = loop {
        let busy = match pins::try_owner(iface, Verb::Stop)? {
            Ok(owner) => break owner,
            Err(busy) => busy,
        };
        // Held by a run (recording, or starting: a signal handler ends either as Ctrl-C
        // does): ask it to stop and wait for it. Only one run is stopped: one that took
        // the interface since is someone else's doing. Held by another verb: wait for it.
        match busy.holder.as_ref().filter(|h| h.verb == "run") {
            Some(holder) if report.is_empty() => {
                let meta = description::read(&pins::meta_path(iface))
                    .filter(|m| (m.pid, m.pid_start) == (holder.pid, holder.start));
                let others: Vec<String> = meta
                    .iter()
                    .flat_map(|m| m.interfaces.iter().map(|i| i.name.clone()))
                    .collect();
                report.push(stop_recorder(iface, holder.pid, holder.start, &others)?);
            }
            Some(holder) => {
                report.push(format!(
                    "xdpsieve pid {} has started on {iface} since; it stays",
                    holder.pid
                ));
                return Ok(report.join("\n"));
            }
            None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            None => bail!("{busy}"),
        }
    };
    let dir = pins::pin_dir(iface);
    let meta_file = pins::meta_path(iface);
    let meta = description::read(&meta_file);
    // A recorder of an older xdpsieve takes no lock: it can be alive here.
    if let Some(meta) = meta.as_ref().filter(|m| m.is_live()) {
        drop(owner);
        let names: Vec<String> = meta.interfaces.iter().map(|i| i.name.clone()).collect();
        report.push(stop_recorder(iface, meta.pid, meta.pid_start, &names)?);
        return Ok(report.join("\n"));
    }
    let link = dir.join(LINK_PIN);
    if link.exists() {
        let counts = meta
            .as_ref()
            .and_then(|m| pins::snapshot(iface, m).ok())
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
        pins::remove(&owner);
        let owner = meta.as_ref().map_or_else(
            || "an unknown instance".to_string(),
            |m| format!("pid {}", m.pid),
        );
        report.push(format!(
            "removed the firewall left on {iface} by {owner}: the program is detached and its \
             pins are gone.{counts}"
        ));
    } else {
        let nothing = meta.is_none() && !dir.exists();
        // Whatever is left (the lock file at least) goes: nothing is in force.
        pins::remove(&owner);
        if report.is_empty() {
            if nothing {
                bail!(
                    "no xdpsieve firewall on {iface} in this network namespace (nothing under \
                     {}); if `ip -d link show dev {iface}` shows an XDP program, another tool \
                     owns it",
                    dir.display()
                );
            }
            report.push(format!(
                "nothing was in force on {iface}; removed the stale pins{}",
                meta.map(|m| format!(" left by pid {}", m.pid))
                    .unwrap_or_default()
            ));
        }
    }
    Ok(report.join("\n"))
}

/// Asks the live recorder `pid` (started at `start`) to stop and waits until it has;
/// `interfaces` are those it filters, as far as its description says.
fn stop_recorder(iface: &str, pid: u32, start: u64, interfaces: &[String]) -> Result<String> {
    let Ok(raw_pid) = i32::try_from(pid) else {
        bail!("the description of {iface} names pid {pid}, which is not a valid pid");
    };
    // SAFETY: kill with a pid whose start time matched a moment ago.
    if unsafe { libc::kill(raw_pid, libc::SIGTERM) } != 0 {
        bail!(
            "could not signal xdpsieve pid {pid} on {iface}: {}{}",
            std::io::Error::last_os_error(),
            crate::configure::privileges::signal_hint(pid)
        );
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    while process_start(pid) == Some(start) {
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
    let others: Vec<&str> = interfaces
        .iter()
        .map(String::as_str)
        .filter(|n| *n != iface)
        .collect();
    // A run with keep_on_stop ends leaving its firewalls in force, as a crash does: this
    // one is removed next, as one left behind; the others stay.
    let kept = pins::pin_dir(iface).join(LINK_PIN).exists();
    let also = match (others.is_empty(), kept) {
        (true, _) => String::new(),
        (false, false) => format!(
            " It also filtered on {}: stopped there too.",
            others.join(", ")
        ),
        (false, true) => format!(
            " It also filtered on {0}: its firewall stays in force there (`xdpsieve stop -i \
             IFACE` removes it).",
            others.join(", ")
        ),
    };
    if kept {
        return Ok(format!(
            "stopped xdpsieve pid {pid} on {iface}: it wrote its summary and left the firewall \
             in force (keep_on_stop).{also}"
        ));
    }
    Ok(format!(
        "stopped xdpsieve pid {pid} on {iface}: it detached, wrote its summary and removed its \
         pins.{also}"
    ))
}
