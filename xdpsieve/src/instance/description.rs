//! What a running instance says about itself ([`Meta`]), in
//! `/run/xdpsieve/netns-<dev>-<inode>/<iface>.json` (see [`crate::instance::pins`] for the
//! layout): its recorder's pid with the pid's start time (so a reused pid does not fool
//! anyone), its interfaces, its rules and sets as `status`, the metrics and a takeover
//! show and match them, and how its rules are rebuilt and were last reloaded
//! ([`crate::instance::recipe::ReloadState`]). Written whole through a temporary file and a
//! rename, so a reader never sees half of one.

use std::{fs, path::Path};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use crate::configure::{
    rules::{Rate, RuleSet},
    sets::{SetSource, SetSpec},
};

/// What a running instance says about itself.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Meta {
    pub pid: u32,
    /// The process's start time in clock ticks since boot (/proc/PID/stat field 22).
    pub pid_start: u64,
    pub started_unix: u64,
    pub version: String,
    pub interfaces: Vec<MetaInterface>,
    pub transport: String,
    pub default_action: String,
    pub rules: Vec<MetaRule>,
    /// The rule file's sets, in index order (the kernel's set index is the position here),
    /// so `xdpsieve set` finds a set by name. Absent in descriptions of older versions.
    #[serde(default)]
    pub sets: Vec<MetaSet>,
    /// The rule generation and the last reload (see `instance::reload`).
    #[serde(default)]
    pub reload: crate::instance::recipe::ReloadState,
}

/// A set as `xdpsieve set` needs it: its name, and its file for `--save`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MetaSet {
    pub name: String,
    /// The set file, absolute; `None` for a set given inline in the rule file.
    pub file: Option<std::path::PathBuf>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MetaInterface {
    pub name: String,
    pub ifindex: u32,
    pub mode: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MetaRule {
    pub id: u32,
    pub name: String,
    pub action: String,
    pub conditions: String,
    pub log: bool,
    pub rate: String,
}

/// The start time of `pid`, or None when no such process exists or it has ended (a zombie
/// that its parent has not reaped yet records nothing any more).
pub fn process_start(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields count from the last ')'.
    let after = &stat[stat.rfind(')')? + 2..];
    let mut fields = after.split_whitespace();
    if matches!(fields.next(), Some("Z" | "X")) {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

impl Meta {
    pub fn is_live(&self) -> bool {
        process_start(self.pid) == Some(self.pid_start)
    }
}

/// The description at `path`, if there is a readable one.
pub fn read(path: &Path) -> Option<Meta> {
    serde_json::from_slice(&fs::read(path).ok()?).ok()
}

/// Replaces the description at `path` whole (a temporary file and a rename).
pub fn write(path: &Path, meta: &Meta) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    fs::write(&tmp, serde_json::to_vec_pretty(meta)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

/// The description's rules (for `status`, the metrics and a later takeover).
pub fn rules_of(rules: &RuleSet, default_rate: Rate) -> Vec<MetaRule> {
    rules
        .rules
        .iter()
        .map(|r| MetaRule {
            id: r.id,
            name: r.name.clone(),
            action: r.action.to_string(),
            conditions: r.conditions_with(&rules.sets),
            log: r.log,
            rate: r.rate.unwrap_or(default_rate).to_string(),
        })
        .collect()
}

/// The sets as an instance describes them (`Meta::sets`): names in index order, and
/// the absolute path of each set file (for `--save`, from any working directory).
pub fn sets_of(sets: &[SetSpec]) -> Vec<MetaSet> {
    sets.iter()
        .map(|s| MetaSet {
            name: s.name.clone(),
            file: match &s.source {
                SetSource::File(path) => {
                    Some(std::fs::canonicalize(path).unwrap_or_else(|_| path.clone()))
                }
                SetSource::Inline => None,
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_live_and_a_wrong_start_time_is_not() {
        let pid = std::process::id();
        let start = process_start(pid).expect("own start time");
        let mut meta = Meta {
            pid,
            pid_start: start,
            started_unix: 0,
            version: "test".into(),
            interfaces: Vec::new(),
            transport: "ringbuf".into(),
            default_action: "pass".into(),
            rules: Vec::new(),
            sets: Vec::new(),
            reload: Default::default(),
        };
        assert!(meta.is_live());
        meta.pid_start += 1; // a reused PID has another start time
        assert!(!meta.is_live());
        meta.pid = u32::MAX;
        assert!(!meta.is_live());
    }
}
