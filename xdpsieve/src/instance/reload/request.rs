//! `xdpsieve reload` from another shell: a live recorder is asked with SIGHUP and its
//! outcome waited for in its description; a firewall whose recorder is gone is reloaded
//! here, on its pinned state, once this command owns its interfaces (see
//! [`crate::instance::pins::owner`]: a run taking it over, a stop or another reload is
//! never raced). Either way the command learns whether the new rules are in force, and
//! exits non-zero with the reason when they are not.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use super::{record_failure, reload};
use crate::{
    instance::description::{self, Meta},
    instance::pins::{self, owner::Verb},
    instance::recipe::{ReloadOutcome, Reloader, unix_ns},
};

/// How long to wait for a stop, another reload or a run taking over that holds one of the
/// interfaces.
const WAIT_FOR_OWNER: Duration = Duration::from_secs(40);

/// How long to wait for a live recorder's outcome: a load of 1024 rules and large sets
/// through the verifier takes seconds on a busy machine, not minutes.
const WAIT: Duration = Duration::from_secs(120);

/// The interface to reload: the one given, else the only instance's.
fn interface(given: Option<&str>) -> Result<String> {
    if let Some(iface) = given {
        return Ok(iface.to_string());
    }
    let mut owners: Vec<(u32, u64, String)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir(pins::meta_dir()) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            if let Some(meta) = description::read(&path)
                && let Some(first) = meta.interfaces.first()
                && !owners
                    .iter()
                    .any(|o| (o.0, o.1) == (meta.pid, meta.pid_start))
            {
                owners.push((meta.pid, meta.pid_start, first.name.clone()));
            }
        }
    }
    match owners.as_slice() {
        [] => bail!("no xdpsieve firewall in this network namespace"),
        [(_, _, iface)] => Ok(iface.clone()),
        _ => {
            let names: Vec<&str> = owners.iter().map(|o| o.2.as_str()).collect();
            bail!(
                "several xdpsieve instances run here ({}); say which with -i IFACE",
                names.join(", ")
            )
        }
    }
}

/// Reloads the rules of the instance on `iface` (or the only one) and returns the
/// outcome, failed or not; `Err` only when no reload could be asked for at all.
pub fn request(iface: Option<&str>) -> Result<ReloadOutcome> {
    let iface = interface(iface)?;
    pins::check_existing(&iface)?;
    let path = pins::meta_path(&iface);
    let meta = description::read(&path).with_context(|| {
        format!(
            "no xdpsieve firewall on {iface} in this network namespace (no {})",
            path.display()
        )
    })?;
    // When the recorder dies before answering, reload on the pinned state.
    if meta.is_live()
        && let Some(outcome) = ask_recorder(&meta, &path)?
    {
        return Ok(outcome);
    }
    if !pins::link_in_force(&iface) {
        bail!("the firewall on {iface} is not in force (its recorder is gone and its link too)");
    }
    // Owner of every interface of the instance (they share its maps), or of none. A run
    // that holds one is taking the firewall over: once it is live, it is asked instead.
    let deadline = Instant::now() + WAIT_FOR_OWNER;
    let _owners = loop {
        let taken: Result<Vec<_>> = meta
            .interfaces
            .iter()
            .map(|i| pins::take_owner(&i.name, Verb::Reload, Duration::ZERO))
            .collect();
        let busy = match taken {
            Ok(owners) => break owners,
            Err(busy) => busy,
        };
        if let Some(current) = description::read(&path).filter(Meta::is_live)
            && let Some(outcome) = ask_recorder(&current, &path)?
        {
            return Ok(outcome);
        }
        if Instant::now() >= deadline {
            return Err(busy);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // Read again as the owner: a reload just done changed the generation and the rules.
    let meta = description::read(&path).unwrap_or(meta);
    if meta.is_live() {
        bail!(
            "an xdpsieve run (pid {}) took the firewall on {iface} over meanwhile; run \
             `xdpsieve reload` again",
            meta.pid
        );
    }
    let started_ns = unix_ns();
    Ok(match reload(&meta, Reloader::Reload) {
        Ok(done) => *done
            .meta
            .reload
            .last
            .context("the outcome was not recorded")?,
        Err(e) => record_failure(&meta, started_ns, &e, Reloader::Reload),
    })
}

/// SIGHUP to the live recorder, then waits for an outcome that started after it; None
/// when the recorder died meanwhile.
fn ask_recorder(meta: &Meta, path: &std::path::Path) -> Result<Option<ReloadOutcome>> {
    let asked = unix_ns();
    let pid = libc::pid_t::try_from(meta.pid).context("the recorder's pid")?;
    // SAFETY: a signal to the process the description names, whose start time matched.
    if unsafe { libc::kill(pid, libc::SIGHUP) } != 0 {
        let hint = crate::configure::privileges::signal_hint(meta.pid);
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("sending SIGHUP to xdpsieve pid {pid}{hint}"));
    }
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        let Some(current) = description::read(path) else {
            if !meta.is_live() {
                return Ok(None); // it stopped
            }
            continue; // being replaced
        };
        if let Some(outcome) = &current.reload.last
            && outcome.started_unix_ns >= asked
        {
            return Ok(Some((**outcome).clone()));
        }
        if !current.is_live() || current.pid != meta.pid {
            return Ok(None);
        }
    }
    bail!(
        "xdpsieve pid {pid} did not report a reload within {} s; see its stderr and \
         `xdpsieve status`",
        WAIT.as_secs()
    )
}
