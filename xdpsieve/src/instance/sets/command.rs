//! One `xdpsieve set` command, from a parsed [`SetPlan`] to the lines it prints, and the
//! recorder's expiry tick.

use std::{
    fmt::Write as _,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use serde::Serialize;
use xdpsieve_common::{SetEntry, sets::ENTRY_FREE};

use super::{
    Generation, SignalsHeld, boottime_ns,
    commit::Editor,
    edit::origin_name,
    program_in_force, save,
    text::{self, show, show_left},
};
use crate::{
    base::text::escape,
    configure::sets::{kernel::entry_prefix, trie::TriePrefix},
    instance::description::{self, Meta},
    instance::pins,
};

/// What to do to a set.
#[derive(Debug)]
pub enum SetOp {
    Add { timeout: Option<Duration> },
    Del,
    List { json: bool },
    Flush,
}

/// One `xdpsieve set` command, parsed.
#[derive(Debug)]
pub struct SetPlan {
    pub op: SetOp,
    /// The set's name (a leading `@` is accepted).
    pub set: String,
    /// Prefixes typed on the command line (add, del).
    pub prefixes: Vec<String>,
    /// A list in the set-file format (add, del).
    pub from_file: Option<PathBuf>,
    /// Also write the change into the set's file.
    pub save: bool,
    /// The instance's interface; needed only when several instances run.
    pub interface: Option<String>,
}

/// The instance a set command acts on: one of its interfaces and its description.
pub struct Instance {
    pub iface: String,
    pub meta: Meta,
}

/// The instance on `iface`, or the only one in force in this network namespace.
pub fn choose_instance(iface: Option<&str>) -> Result<Instance> {
    if let Some(iface) = iface {
        pins::check_existing(iface)?;
        let meta = description::read(&pins::meta_path(iface))
            .with_context(|| format!("no xdpsieve runs on {iface} (in this network namespace)"))?;
        return Ok(Instance {
            iface: iface.to_string(),
            meta,
        });
    }
    let mut names: Vec<String> = std::fs::read_dir(pins::meta_dir())
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| Some(e.file_name().to_str()?.strip_suffix(".json")?.to_string()))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    // One instance filters on all its interfaces and describes itself once per interface.
    let mut instances: Vec<(u32, u64, Vec<String>, Meta)> = Vec::new();
    for name in names {
        let Some(meta) = description::read(&pins::meta_path(&name)) else {
            continue;
        };
        if !meta.is_live() && !pins::link_in_force(&name) {
            continue;
        }
        match instances
            .iter_mut()
            .find(|i| i.0 == meta.pid && i.1 == meta.pid_start)
        {
            Some(i) => i.2.push(name),
            None => instances.push((meta.pid, meta.pid_start, vec![name], meta)),
        }
    }
    match instances.len() {
        0 => bail!("no xdpsieve firewall is in force in this network namespace"),
        1 => {
            let (_, _, mut names, meta) = instances.remove(0);
            Ok(Instance {
                iface: names.remove(0),
                meta,
            })
        }
        _ => {
            let list: Vec<String> = instances
                .iter()
                .map(|i| escape(&i.2.join(",")).into_owned())
                .collect();
            bail!(
                "several xdpsieve instances run here (on {}): say which with -i IFACE",
                list.join("; ")
            )
        }
    }
}

impl Instance {
    /// The index of set `name` in the generation.
    fn set_index(&self, name: &str) -> Result<u16> {
        let name = name.strip_prefix('@').unwrap_or(name);
        match self.meta.sets.iter().position(|s| s.name == name) {
            Some(i) => Ok(i as u16),
            None if self.meta.sets.is_empty() => bail!(
                "the firewall on {} has no sets: its rule file declares none ([[set]])",
                escape(&self.iface)
            ),
            None => {
                let names: Vec<String> = self
                    .meta
                    .sets
                    .iter()
                    .map(|s| escape(&s.name).into_owned())
                    .collect();
                bail!(
                    "no set named `{}` on {}; its sets are: {}",
                    escape(name),
                    escape(&self.iface),
                    names.join(", ")
                )
            }
        }
    }
}

/// The prefixes of a plan: the command line's (exact) then the file's (host bits masked,
/// with a warning on stderr).
fn plan_prefixes(plan: &SetPlan) -> Result<Vec<TriePrefix>> {
    let mut prefixes = plan
        .prefixes
        .iter()
        .map(|p| text::parse_exact(p).map_err(anyhow::Error::msg))
        .collect::<Result<Vec<_>>>()?;
    if let Some(file) = &plan.from_file {
        let (list, warnings) = text::read_list(file)?;
        for w in warnings {
            crate::base::log::warning(format_args!("xdpsieve: warning: {}", escape(&w)));
        }
        prefixes.extend(list);
    }
    if prefixes.is_empty() {
        bail!("no prefixes given: name some after the set, or give --from-file FILE");
    }
    Ok(prefixes)
}

/// One entry as `set list` shows it.
#[derive(Debug, Serialize, PartialEq)]
pub struct Listed {
    pub prefix: String,
    /// `file` (from the rule file or its set file) or `runtime` (`set add`).
    pub origin: &'static str,
    /// Milliseconds until the entry is removed; absent: never.
    pub expires_in_ms: Option<u64>,
}

#[derive(Serialize)]
struct ListOutput<'a> {
    interface: &'a str,
    set: &'a str,
    count: usize,
    entries: Vec<Listed>,
}

fn listed(entries: &[SetEntry], set: u16, now: u64) -> Vec<Listed> {
    let mut out: Vec<(TriePrefix, Listed)> = entries
        .iter()
        .filter(|e| e.state != ENTRY_FREE && e.set == set)
        .map(|e| {
            let p = entry_prefix(e);
            let item = Listed {
                prefix: show(&p),
                origin: origin_name(e),
                expires_in_ms: (e.expires_ns != 0)
                    .then(|| e.expires_ns.saturating_sub(now) / 1_000_000),
            };
            (p, item)
        })
        .collect();
    out.sort_by_key(|a| a.0);
    out.into_iter().map(|(_, l)| l).collect()
}

/// Applies a change (not `list`) under the lock; returns what it did, for the operator.
fn apply(
    op: &SetOp,
    editor: &mut Editor<'_>,
    set: u16,
    prefixes: &[TriePrefix],
    now: u64,
    name: &str,
) -> Result<String> {
    let mut out = String::new();
    match op {
        SetOp::Add { timeout } => {
            let expires = timeout.map_or(0, |t| now + t.as_nanos() as u64);
            let added = editor.add(set, name, prefixes, expires)?;
            let _ = write!(out, "added {}", added.added);
            if added.renewed > 0 {
                let _ = write!(out, ", renewed {} already there", added.renewed);
            }
            if added.from_file > 0 {
                let _ = write!(
                    out,
                    ", {} already in the set's file (left as they are)",
                    added.from_file
                );
            }
            if let Some(t) = timeout {
                let _ = write!(out, "; they expire in {}", show_left(t.as_nanos() as u64));
            }
        }
        SetOp::Del => {
            let removed = editor.remove(set, prefixes, name)?;
            let _ = write!(out, "removed {removed}");
        }
        SetOp::Flush => {
            let removed = editor.flush(set, name)?;
            let _ = write!(out, "flushed {removed} entries");
        }
        SetOp::List { .. } => {}
    }
    Ok(out)
}

/// Runs one set command; returns what to print on standard output.
pub fn run(plan: &SetPlan) -> Result<String> {
    let instance = choose_instance(plan.interface.as_deref())?;
    let set = instance.set_index(&plan.set)?;
    let name = escape(&instance.meta.sets[usize::from(set)].name);
    let iface = escape(&instance.iface);
    let save_file = if plan.save {
        if matches!(plan.op, SetOp::Add { timeout: Some(_) }) {
            bail!(
                "--save with --timeout: a set file holds no timeouts, so the entry would come \
                 back without one after a restart; leave out one of them"
            );
        }
        match &instance.meta.sets[usize::from(set)].file {
            Some(file) => Some(file.clone()),
            None => bail!(
                "set {name} is given inline in the rule file (prefixes = [...]), so --save has \
                 no set file to write; change the rule file yourself, or move the set to a file"
            ),
        }
    } else {
        None
    };
    let prefixes = match plan.op {
        SetOp::Add { .. } | SetOp::Del => plan_prefixes(plan)?,
        SetOp::List { .. } | SetOp::Flush => Vec::new(),
    };
    let signals = SignalsHeld::new();
    let mut locked = Generation::lock(&instance.iface)?;
    let started = Instant::now();
    let now = boottime_ns();
    let mut editor = Editor::new(&mut locked.generation)?;
    // Its own change: what is overdue goes whether or not this command's change is made.
    let expired = editor.expire(now)?;
    // `--save` is part of the change: the file's new version is written aside first and
    // put in place only if the change is made, all under the lock.
    let pending = match &save_file {
        Some(file) => {
            let edit = match plan.op {
                SetOp::Add { .. } => save::Edit::Add(&prefixes),
                _ => save::Edit::Remove(&prefixes),
            };
            Some(save::prepare(file, &edit).with_context(|| {
                format!("set {name} was not changed: --save cannot write its file")
            })?)
        }
        None => None,
    };
    let changed = apply(&plan.op, &mut editor, set, &prefixes, now, &name)?;
    let saved = match (pending, &save_file) {
        (Some(pending), Some(file)) => Some(pending.commit().with_context(|| {
            format!(
                "the change is in force, but saving it to {} failed: a restart will not keep it",
                crate::base::text::escape_path(file)
            )
        })?),
        _ => None,
    };
    let took = started.elapsed();
    let mut out = format!("set {name} on {iface}: {changed}");
    if let SetOp::List { json } = plan.op {
        let entries = listed(locked.generation.used_entries(), set, now);
        if json {
            let output = ListOutput {
                interface: &instance.iface,
                set: &instance.meta.sets[usize::from(set)].name,
                count: entries.len(),
                entries,
            };
            return Ok(serde_json::to_string_pretty(&output)?);
        }
        let timed = entries.iter().filter(|e| e.expires_in_ms.is_some()).count();
        let _ = writeln!(out, "{} entries ({timed} with a timeout)", entries.len());
        for e in &entries {
            let left = e.expires_in_ms.map_or_else(
                || "no expiry".to_string(),
                |ms| format!("expires in {}", show_left(ms * 1_000_000)),
            );
            let _ = writeln!(out, "  {:<44} {:<8} {left}", e.prefix, e.origin);
        }
        return Ok(out.trim_end().to_string());
    }
    drop(locked);
    drop(signals);
    // The change itself, under the lock (not reading the input or starting the process).
    let _ = write!(out, " (took {:.1} ms)", took.as_secs_f64() * 1e3);
    if !expired.is_empty() {
        let _ = write!(out, " ({} expired entries removed first)", expired.len());
    }
    if let (Some(file), Some(lines)) = (save_file, saved) {
        let shown = crate::base::text::escape_path(&file);
        let _ = write!(out, "; saved to {shown} ({lines} lines)");
    }
    Ok(out)
}

/// Expiry for the recorder's loop, called every ~100 ms. Cheap when nothing is due: two
/// syscalls to see the generation in force and one read of `SET_META`; the entry table
/// (32 MB for a million entries) is scanned only when `SET_META.changes` moved (someone
/// changed the sets) or when the earliest expiry seen in the last scan is due.
#[derive(Default)]
pub struct Expirer {
    open: Option<(u32, Generation)>,
    /// `SET_META.changes` at the last scan.
    scanned: Option<u32>,
    /// The earliest expiry the last scan found (0: none).
    next_due: u64,
}

impl Expirer {
    /// Removes the entries of the firewall on `iface` whose time has passed; returns how
    /// many.
    pub fn tick(&mut self, iface: &str) -> Result<usize> {
        let program = program_in_force(iface)?;
        if self.open.as_ref().is_none_or(|(p, _)| *p != program) {
            // None while a reload or takeover publishes its maps: the next tick.
            self.open = Generation::open_if_current(iface)?;
            self.scanned = None;
        }
        let Some((_, generation)) = &self.open else {
            return Ok(0);
        };
        let meta = generation.meta_map.get(&0, 0).context("reading SET_META")?;
        let now = boottime_ns();
        let due_known = self.next_due != 0 && self.next_due <= now;
        if meta.in_change != 0 {
            // A change under way, or one whose process died: taking the lock waits for the
            // first and repairs the second (`Generation::lock`).
            if Generation::try_lock(iface)?.is_some() {
                self.scanned = None;
            }
            return Ok(0);
        }
        if self.scanned == Some(meta.changes) && !due_known {
            return Ok(0);
        }
        // Read without the lock: a torn entry only delays its expiry to the next scan.
        let table = generation.entries.as_slice();
        let used = (meta.entries_used as usize).min(table.len());
        let mut due = false;
        self.next_due = 0;
        for e in table[..used]
            .iter()
            .filter(|e| e.state != ENTRY_FREE && e.expires_ns != 0)
        {
            if e.expires_ns <= now {
                due = true;
            } else if self.next_due == 0 || e.expires_ns < self.next_due {
                self.next_due = e.expires_ns;
            }
        }
        self.scanned = Some(meta.changes);
        if !due {
            return Ok(0);
        }
        let _signals = SignalsHeld::new();
        // Busy (a set command, a reload): its own expiry pass or the next tick does it.
        let Some(mut locked) = Generation::try_lock(iface)? else {
            self.scanned = None;
            return Ok(0);
        };
        let mut editor = Editor::new(&mut locked.generation)?;
        Ok(editor.expire(boottime_ns())?.len())
    }
}

#[cfg(test)]
mod tests {
    use xdpsieve_common::sets::ENTRY_RUNTIME;

    use super::*;
    use crate::configure::sets::kernel::new_entry;

    #[test]
    fn listing_sorts_and_tells_origin_and_time_left() {
        let p = |s: &str| text::parse_exact(s).unwrap();
        let entries = [
            new_entry(0, &p("203.0.113.0/24"), ENTRY_RUNTIME, 3_000_000_000),
            new_entry(1, &p("192.0.2.1"), ENTRY_RUNTIME, 0),
            new_entry(
                0,
                &p("198.51.100.0/24"),
                xdpsieve_common::sets::ENTRY_FILE,
                0,
            ),
        ];
        let got = listed(&entries, 0, 1_000_000_000);
        assert_eq!(
            got,
            vec![
                Listed {
                    prefix: "198.51.100.0/24".into(),
                    origin: "file",
                    expires_in_ms: None
                },
                Listed {
                    prefix: "203.0.113.0/24".into(),
                    origin: "runtime",
                    expires_in_ms: Some(2000)
                },
            ]
        );
    }
}
