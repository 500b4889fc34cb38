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
    loader::{AttachedMode, Transport},
    rules::{Action, Rate, RuleSet, limit::Mode},
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
    pub transport: Transport,
    pub default_action: Action,
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
    pub mode: AttachedMode,
}

/// One kernel rule (one counter slot). A rule written with a condition without a
/// direction (`udp port 53`) is several, side by side, with its id and name; `status` and
/// the metrics show them as one ([`written_rules`]).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MetaRule {
    pub id: u32,
    pub name: String,
    pub action: Action,
    /// This kernel rule's own conditions, directions included (`udp src port 53`): what a
    /// takeover matches it by.
    pub conditions: String,
    pub log: bool,
    /// The rule's record rate, or the run's default for a rule without one.
    pub rate: Rate,
    /// The conditions as written (`udp and port 53`) when some had no direction; absent
    /// otherwise (and in descriptions of older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written: Option<String>,
    /// Monitor: the rule only marks what it would decide. Absent: enforce (and in
    /// descriptions of older versions).
    #[serde(default, skip_serializing_if = "is_enforce")]
    pub mode: Mode,
    /// A limit rule's budget as `check-rules` shows it (`rate 100/s burst 100 per src`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
}

fn is_enforce(mode: &Mode) -> bool {
    *mode == Mode::Enforce
}

impl MetaRule {
    /// The action as written: `drop`, `pass` or `limit`, with ` (monitor)` for a rule in
    /// monitor mode.
    pub fn shown_action(&self) -> String {
        let action = if self.limit.is_some() {
            "limit".to_string()
        } else {
            self.action.to_string()
        };
        match self.mode {
            Mode::Enforce => action,
            Mode::Monitor => format!("{action} (monitor)"),
        }
    }

    /// The conditions to show for the written rule: as written.
    pub fn shown_conditions(&self) -> &str {
        self.written.as_deref().unwrap_or(&self.conditions)
    }
}

/// The written rules of `rules` (kernel rules, in slot order): for each, its first kernel
/// rule and the range of its kernel rules' indexes (slot = index + 1).
pub fn written_rules(rules: &[MetaRule]) -> Vec<(&MetaRule, std::ops::Range<usize>)> {
    crate::configure::rules::runs_of_ids(rules.iter().map(|r| r.id))
        .into_iter()
        .map(|run| (&rules[run.start], run))
        .collect()
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
            action: r.action,
            conditions: r.conditions_with(&rules.sets),
            log: r.log,
            rate: r.rate.unwrap_or(default_rate),
            written: r
                .either
                .any()
                .then(|| r.written_conditions_with(&rules.sets)),
            mode: r.mode,
            limit: r.limit.map(|l| l.to_string()),
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
                    Some(fs::canonicalize(path).unwrap_or_else(|_| path.clone()))
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
            transport: Transport::RingBuf,
            default_action: Action::Pass,
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

    /// A description as the version before typed descriptions wrote it: it reads, and it
    /// is written back the same, field for field and value for value, so that a run
    /// started by one version can be reloaded, stopped or taken over by the next.
    #[test]
    fn descriptions_of_the_string_typed_version_read_and_write_back_the_same() {
        let old = r#"{
  "pid": 4242,
  "pid_start": 123456,
  "started_unix": 1700000000,
  "version": "0.1.0",
  "interfaces": [
    {
      "name": "fw0",
      "ifindex": 7,
      "mode": "native"
    },
    {
      "name": "fw1",
      "ifindex": 8,
      "mode": "skb"
    }
  ],
  "transport": "perf",
  "default_action": "pass",
  "rules": [
    {
      "id": 1,
      "name": "block-dns",
      "action": "drop",
      "conditions": "udp src port 53",
      "log": true,
      "rate": "10/s"
    },
    {
      "id": 2,
      "name": "ssh",
      "action": "pass",
      "conditions": "tcp dst port 22",
      "log": false,
      "rate": "unlimited"
    }
  ],
  "sets": [
    {
      "name": "blocklist",
      "file": "/etc/xdpsieve/block.netset"
    },
    {
      "name": "inline",
      "file": null
    }
  ],
  "reload": {
    "generation": 3,
    "loaded_unix": 1700000100,
    "last": {
      "started_unix_ns": 1700000099000000000,
      "ok": true,
      "generation": 3,
      "took_ms": 12.5,
      "load_ms": 10.0,
      "swap_ms": 2.5,
      "message": "generation 3 in force",
      "by": "reload"
    },
    "recipe": {
      "sources": {
        "file": "/etc/xdpsieve/fw.toml",
        "expressions": [
          [
            "drop",
            "udp src port 53"
          ],
          [
            "pass",
            "tcp dst port 22"
          ]
        ],
        "default_action": "pass"
      },
      "capture": 1,
      "log": 3,
      "snaplen": 128,
      "sample": 10,
      "ring_bytes": 1048576,
      "transport": "perf",
      "default_rate": "5/m",
      "unclassifiable": "drop",
      "capture_filter": "udp port 53",
      "log_filter": null,
      "filter_engine": "translated"
    }
  }
}"#;
        let meta: Meta = serde_json::from_str(old).expect("the old description reads");
        assert_eq!(meta.transport, Transport::Perf);
        assert_eq!(meta.default_action, Action::Pass);
        assert_eq!(meta.interfaces[1].mode, AttachedMode::Skb);
        assert_eq!(meta.rules[0].action, Action::Drop);
        assert_eq!(meta.rules[1].rate, Rate::UNLIMITED);
        let recipe = meta.reload.recipe.as_ref().expect("a recipe");
        assert_eq!(recipe.transport, Transport::Perf);
        assert_eq!(recipe.unclassifiable, Some(Action::Drop));
        assert_eq!(
            recipe.filter_engine,
            crate::configure::capture_filter::FilterEngine::Translated
        );
        assert_eq!(recipe.sources.expressions[1].0, Action::Pass);
        assert_eq!(
            meta.reload.last.as_ref().map(|l| l.by),
            Some(crate::instance::recipe::Reloader::Reload)
        );
        assert_eq!(serde_json::to_string_pretty(&meta).unwrap(), old);
    }
}
