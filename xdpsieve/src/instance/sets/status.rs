//! What `xdpsieve status` shows of an instance's sets: the kernel memory of the set maps
//! (their value size times their entries, from the kernel's map info), the entries per
//! set, and how expiry happens when no recorder runs.

use std::fmt::Write as _;

use serde::Serialize;

use super::Generation;
use crate::{base::text::escape, instance::description::Meta};

/// What `status` shows of an instance's sets.
#[derive(Debug, Serialize)]
pub struct SetsStatus {
    /// Kernel memory of the set maps' values, in bytes (value size times entries).
    pub memory_bytes: u64,
    /// Per set: name, entries, entries with a timeout.
    pub sets: Vec<SetCount>,
    /// Entries with a timeout, over all sets.
    pub timed_entries: usize,
    /// Trie groups (1 KiB) in use, and how many `SET_NODES` holds.
    pub trie_groups_used: u32,
    pub trie_groups: u32,
    /// A set change is being written, or its process died part-way (the next set command,
    /// or the recorder, repairs it).
    pub change_unfinished: bool,
}

#[derive(Debug, Serialize)]
pub struct SetCount {
    pub name: String,
    pub entries: usize,
    pub timed: usize,
}

/// The sets of the firewall on `iface` (None when it has none or they cannot be read).
pub fn status_of(iface: &str, meta: &Meta) -> Option<SetsStatus> {
    if meta.sets.is_empty() {
        return None;
    }
    let generation = Generation::open(iface).ok()?;
    let counts = generation.counts();
    let sets: Vec<SetCount> = meta
        .sets
        .iter()
        .enumerate()
        .map(|(i, s)| SetCount {
            name: s.name.clone(),
            entries: counts.get(i).map_or(0, |c| c.0),
            timed: counts.get(i).map_or(0, |c| c.1),
        })
        .collect();
    Some(SetsStatus {
        memory_bytes: generation.memory_bytes,
        timed_entries: sets.iter().map(|s| s.timed).sum(),
        sets,
        trie_groups_used: generation.meta.groups_used,
        trie_groups: generation.nodes.as_slice().len() as u32,
        change_unfinished: generation.meta.in_change != 0,
    })
}

/// `status`'s lines about the sets; `live`: a recorder runs (and expires entries).
pub fn render_status(out: &mut String, sets: &SetsStatus, live: bool) {
    let list: Vec<String> = sets
        .sets
        .iter()
        .map(|s| {
            format!(
                "{} {} entries ({} timed)",
                escape(&s.name),
                s.entries,
                s.timed
            )
        })
        .collect();
    let _ = writeln!(
        out,
        "  sets: {:.1} MiB of kernel memory (trie: {} of {} groups in use); {}",
        sets.memory_bytes as f64 / (1 << 20) as f64,
        sets.trie_groups_used,
        sets.trie_groups,
        list.join(", ")
    );
    if sets.change_unfinished {
        let _ = writeln!(
            out,
            "  a set change is being written, or the process writing it died part-way: the \
             next `xdpsieve set` command (or the recorder, within 0.1 s) completes it"
        );
    }
    if !live && sets.timed_entries > 0 {
        let _ = writeln!(
            out,
            "  {} set entries have a timeout: with no recorder they expire only when an \
             `xdpsieve set` command or a new `xdpsieve run` touches the sets",
            sets.timed_entries
        );
    }
}
