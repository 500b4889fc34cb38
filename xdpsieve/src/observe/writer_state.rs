//! Userspace counts for `xdpsieve status` and the metrics: what the recorder and the event
//! log wrote, and what they could not ([`WriterStats`]).
//!
//! `status` reads the program's counters from pinned maps, but these counts live in the
//! running process. They reach other processes through a small JSON state file next to
//! the instance's description, `/run/xdpsieve/.../<iface>.writers`, rewritten about once a
//! second and at once when an output fails, through a temporary file and a rename, so a
//! reader always sees a whole file. A file rather than a pinned array map the recorder
//! writes: a map would put a userspace-only struct across the kernel boundary and into the
//! eBPF object for a program that never touches it, while the file is read exactly like the
//! description beside it. It is removed on exit; one left by a killed instance names that
//! instance's PID and start time, so it is never mistaken for a live one's.

use std::{fs, io, path::PathBuf};

use serde_json::{Map, Value};

use crate::{
    base::counters::{self, WRITER, WriterStats},
    instance::description::Meta,
    instance::pins::meta_path,
};

fn state_path(iface: &str) -> PathBuf {
    meta_path(iface).with_extension("writers")
}

/// This instance's state files (one per interface); removed on drop.
pub struct WriterState {
    paths: Vec<PathBuf>,
    pid: u32,
    pid_start: u64,
    last: Option<WriterStats>,
}

impl WriterState {
    pub fn new(meta: &Meta) -> WriterState {
        WriterState {
            paths: meta
                .interfaces
                .iter()
                .map(|i| state_path(&i.name))
                .collect(),
            pid: meta.pid,
            pid_start: meta.pid_start,
            last: None,
        }
    }

    /// Rewrites the files when the counts changed.
    pub fn update(&mut self, stats: &WriterStats) -> io::Result<()> {
        if self.last.as_ref() == Some(stats) {
            return Ok(());
        }
        let mut object: Map<String, Value> = counters::entries(WRITER, stats)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.into()))
            .collect();
        object.insert("pid".into(), self.pid.into());
        object.insert("pid_start".into(), self.pid_start.into());
        let bytes = serde_json::to_vec(&object).map_err(io::Error::other)?;
        for path in &self.paths {
            let tmp = path.with_extension("writers.tmp");
            fs::write(&tmp, &bytes)?;
            fs::rename(&tmp, path)?;
        }
        self.last = Some(*stats);
        Ok(())
    }
}

impl Drop for WriterState {
    fn drop(&mut self) {
        for path in &self.paths {
            let _ = fs::remove_file(path);
        }
    }
}

/// The counts the instance described by `meta` last published for `iface`, if it is the
/// one that wrote them.
pub fn read(iface: &str, meta: &Meta) -> Option<WriterStats> {
    let object: Map<String, Value> =
        serde_json::from_slice(&fs::read(state_path(iface)).ok()?).ok()?;
    let owner = (
        object.get("pid").and_then(Value::as_u64),
        object.get("pid_start").and_then(Value::as_u64),
    );
    if owner != (Some(u64::from(meta.pid)), Some(meta.pid_start)) {
        return None;
    }
    Some(counters::from_entries(WRITER, &object))
}
