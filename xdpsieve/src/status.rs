//! Looking into a running firewall from another shell.
//!
//! A running instance pins its counter maps under `/sys/fs/bpf/xdpsieve/<iface>/` (in a
//! network namespace other than the host's, under `.../netns-<inode>/<iface>/`, since bpffs
//! is shared by all namespaces and interface names are not) and describes itself in
//! `/run/xdpsieve/.../<iface>.json`. `xdpsieve status` reads both without touching the
//! running program. Pins and descriptions are removed on exit; ones left by a killed
//! instance are recognised by their dead PID (with its start time, so a reused PID does not
//! fool it) and cleaned on the next start.

use std::{
    fs, io,
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, Result, bail};
use aya::maps::{Map, MapData};
use serde::{Deserialize, Serialize};
use xdpsieve_common::MAX_INTERFACES;

use crate::stats::{self, Snapshot};

const BPFFS: &str = "/sys/fs/bpf";
const RUN_DIR: &str = "/run/xdpsieve";
/// The maps a status reader needs, pinned under these names.
pub const PINNED_MAPS: [&str; 3] = ["COUNTERS", "RULE_COUNTERS", "INTERFACE_COUNTERS"];

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

/// Where this network namespace's instances live, below bpffs and /run: nothing extra in the
/// host's namespace, `netns-<inode>` in any other.
fn namespace_subdir() -> PathBuf {
    let ino = |p: &Path| {
        fs::metadata(p)
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
            .ok()
    };
    let Some(mine) = ino(Path::new("/proc/self/ns/net")) else {
        return PathBuf::new();
    };
    let other = match ino(Path::new("/proc/1/ns/net")) {
        Some(init) => mine != init,
        // PID 1's namespace can be unreadable (a sandboxed init): recognise the namespaces
        // `ip netns` made by their bind mounts instead.
        None => fs::read_dir("/run/netns")
            .map(|entries| entries.flatten().any(|e| ino(&e.path()) == Some(mine)))
            .unwrap_or(false),
    };
    if other {
        PathBuf::from(format!("netns-{mine}"))
    } else {
        PathBuf::new()
    }
}

fn pin_dir(iface: &str) -> PathBuf {
    Path::new(BPFFS)
        .join("xdpsieve")
        .join(namespace_subdir())
        .join(iface)
}

fn meta_path(iface: &str) -> PathBuf {
    Path::new(RUN_DIR)
        .join(namespace_subdir())
        .join(format!("{iface}.json"))
}

/// The start time of `pid`, or None when no such process exists.
pub fn process_start(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields count from the last ')'.
    let after = &stat[stat.rfind(')')? + 2..];
    after.split_whitespace().nth(19)?.parse().ok()
}

impl Meta {
    pub fn is_live(&self) -> bool {
        process_start(self.pid) == Some(self.pid_start)
    }
}

/// Mounts bpffs at /sys/fs/bpf when nothing is mounted there.
fn ensure_bpffs() -> Result<()> {
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    if mounts
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(BPFFS))
    {
        return Ok(());
    }
    let target = std::ffi::CString::new(BPFFS).expect("no NUL");
    let fstype = c"bpf";
    // SAFETY: valid NUL-terminated strings; no data argument.
    let rc = unsafe {
        libc::mount(
            fstype.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error()).context("mounting bpffs at /sys/fs/bpf");
    }
    Ok(())
}

/// Pins and descriptions of one running instance; removed on drop.
pub struct Published {
    paths: Vec<PathBuf>,
}

impl Drop for Published {
    fn drop(&mut self) {
        for path in &self.paths {
            let _ = if path.is_dir() {
                fs::remove_dir_all(path)
            } else {
                fs::remove_file(path)
            };
            // The per-namespace directory goes too once empty (remove_dir refuses otherwise).
            if let Some(parent) = path.parent().filter(|p| p.ends_with(namespace_subdir()))
                && !namespace_subdir().as_os_str().is_empty()
            {
                let _ = fs::remove_dir(parent);
            }
        }
    }
}

/// Publishes `maps` (name, map) and `meta` for each of `meta.interfaces`. Refuses when a
/// live instance already owns an interface; cleans up after a dead one (and says so).
pub fn publish(maps: &[(&str, &Map)], meta: &Meta) -> Result<Published> {
    ensure_bpffs()?;
    sweep_other_namespaces();
    let mut published = Published { paths: Vec::new() };
    for interface in &meta.interfaces {
        let (dir, meta_file) = (pin_dir(&interface.name), meta_path(&interface.name));
        if let Some(old) = read_meta(&meta_file) {
            if old.is_live() && old.pid != meta.pid {
                bail!(
                    "xdpsieve (pid {}) is already running on {}; stop it first",
                    old.pid,
                    interface.name
                );
            }
            eprintln!(
                "xdpsieve: removing stale pins of {} left by pid {}, which is gone",
                interface.name, old.pid
            );
        } else if dir.exists() {
            eprintln!(
                "xdpsieve: removing stale pins of {} with no owner",
                interface.name
            );
        }
        let _ = fs::remove_dir_all(&dir);
        let _ = fs::remove_file(&meta_file);

        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        published.paths.push(dir.clone());
        for (name, map) in maps {
            map.pin(dir.join(name))
                .with_context(|| format!("pinning {name} under {}", dir.display()))?;
        }
        if let Some(parent) = meta_file.parent() {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        let tmp = meta_file.with_extension("json.tmp");
        fs::write(&tmp, serde_json::to_vec_pretty(meta)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        fs::rename(&tmp, &meta_file).with_context(|| format!("writing {}", meta_file.display()))?;
        published.paths.push(meta_file);
    }
    Ok(published)
}

/// Network namespaces that still exist: named ones (`ip netns`) and those of processes.
fn existing_namespaces() -> std::collections::HashSet<u64> {
    let ino = |p: &Path| {
        fs::metadata(p)
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
            .ok()
    };
    let mut set = std::collections::HashSet::new();
    for dir in ["/run/netns", "/proc"] {
        let Ok(entries) = fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = if dir == "/proc" {
                entry.path().join("ns/net")
            } else {
                entry.path()
            };
            if let Some(i) = ino(&path) {
                set.insert(i);
            }
        }
    }
    set
}

/// Removes what dead instances left for network namespaces that no longer exist: nobody
/// can run `status` there any more, and a new namespace could reuse the inode number. A
/// namespace that still exists keeps its stale pins for its own next start or `status`.
fn sweep_other_namespaces() {
    let Ok(entries) = fs::read_dir(RUN_DIR) else {
        return;
    };
    let existing = existing_namespaces();
    let mut removed = 0;
    for entry in entries.flatten() {
        let sub = PathBuf::from(entry.file_name());
        let Some(inode) = sub
            .to_str()
            .and_then(|n| n.strip_prefix("netns-"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        if existing.contains(&inode) {
            continue;
        }
        let Ok(metas) = fs::read_dir(entry.path()) else {
            continue;
        };
        for meta_entry in metas.flatten() {
            let path = meta_entry.path();
            let Some(iface) = path
                .file_name()
                .and_then(|n| n.to_str()?.strip_suffix(".json"))
            else {
                continue;
            };
            if read_meta(&path).is_some_and(|m| !m.is_live()) {
                let _ =
                    fs::remove_dir_all(Path::new(BPFFS).join("xdpsieve").join(&sub).join(iface));
                let _ = fs::remove_file(&path);
                removed += 1;
            }
        }
        let _ = fs::remove_dir(entry.path());
        let _ = fs::remove_dir(Path::new(BPFFS).join("xdpsieve").join(&sub));
    }
    if removed > 0 {
        eprintln!(
            "xdpsieve: removed {removed} set(s) of pins left by dead instances in network namespaces that no longer exist"
        );
    }
}

fn read_meta(path: &Path) -> Option<Meta> {
    serde_json::from_slice(&fs::read(path).ok()?).ok()
}

/// What `xdpsieve status` reports for one interface.
#[derive(Debug, Serialize)]
pub struct Status {
    pub interface: String,
    pub live: bool,
    pub uptime_seconds: u64,
    #[serde(flatten)]
    pub meta: Meta,
    pub counters: Option<StatusCounters>,
}

#[derive(Debug, Serialize)]
pub struct StatusCounters {
    pub seen: u64,
    pub passed: u64,
    pub dropped: u64,
    pub malformed: u64,
    pub non_ip: u64,
    pub bytes_seen: u64,
    pub bytes_passed: u64,
    pub bytes_dropped: u64,
    pub captured: u64,
    pub capture_lost: u64,
    pub events: u64,
    pub event_lost: u64,
    pub rate_limited: u64,
    /// Hits per rule id (0 = default verdict).
    pub rule_hits: Vec<(u32, u64)>,
    pub rule_suppressed: Vec<(u32, u64)>,
    /// Packets per interface of this instance.
    pub interface_packets: Vec<(String, u64)>,
}

/// Reads the snapshot of a running instance from its pins.
pub fn pinned_snapshot(iface: &str, meta: &Meta) -> Result<Snapshot> {
    let dir = pin_dir(iface);
    let open = |name: &str| -> Result<Map> {
        let data = MapData::from_pin(dir.join(name))
            .with_context(|| format!("opening pinned map {}", dir.join(name).display()))?;
        Map::from_map_data(data).with_context(|| format!("reading pinned map {name}"))
    };
    let total = stats::sum_per_cpu(&open("COUNTERS")?, 1, stats::add_counters)?;
    let rules = stats::sum_per_cpu(
        &open("RULE_COUNTERS")?,
        meta.rules.len() + 1,
        stats::add_rule,
    )?;
    let slots = meta.interfaces.len().min(MAX_INTERFACES);
    let per_slot = stats::sum_per_cpu(&open("INTERFACE_COUNTERS")?, slots, stats::add_interface)?;
    let interfaces = meta
        .interfaces
        .iter()
        .map(|i| i.name.clone())
        .zip(per_slot)
        .collect();
    Ok(Snapshot {
        counters: total.into_iter().next().unwrap_or_default(),
        rules,
        interfaces,
        perf_lost: 0,
    })
}

/// Status of the instances on `iface`, or of every instance in this network namespace.
pub fn read_status(iface: Option<&str>) -> Result<Vec<Status>> {
    let dir = Path::new(RUN_DIR).join(namespace_subdir());
    let names: Vec<String> = match iface {
        Some(name) => vec![name.to_string()],
        None => fs::read_dir(&dir)
            .map(|entries| {
                let mut names: Vec<String> = entries
                    .flatten()
                    .filter_map(|e| {
                        e.file_name()
                            .to_str()?
                            .strip_suffix(".json")
                            .map(str::to_string)
                    })
                    .collect();
                names.sort();
                names
            })
            .unwrap_or_default(),
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let mut out = Vec::new();
    for name in names {
        let Some(meta) = read_meta(&meta_path(&name)) else {
            if iface.is_some() {
                bail!("no xdpsieve is running on {name} (in this network namespace)");
            }
            continue;
        };
        let live = meta.is_live();
        let counters = if live {
            let snap = pinned_snapshot(&name, &meta)?;
            Some(status_counters(&snap, &meta))
        } else {
            None
        };
        out.push(Status {
            interface: name,
            live,
            uptime_seconds: now.saturating_sub(meta.started_unix),
            meta,
            counters,
        });
    }
    Ok(out)
}

fn status_counters(snap: &Snapshot, meta: &Meta) -> StatusCounters {
    let c = &snap.counters;
    let ids = std::iter::once(0).chain(meta.rules.iter().map(|r| r.id));
    StatusCounters {
        seen: c.seen,
        passed: c.passed,
        dropped: c.dropped,
        malformed: c.malformed,
        non_ip: c.non_ip,
        bytes_seen: c.bytes_seen,
        bytes_passed: c.bytes_passed,
        bytes_dropped: c.bytes_dropped,
        captured: c.captured,
        capture_lost: c.capture_lost,
        events: c.events,
        event_lost: c.event_lost,
        rate_limited: c.rate_limited,
        rule_hits: ids.clone().zip(snap.rules.iter().map(|r| r.hits)).collect(),
        rule_suppressed: ids.zip(snap.rules.iter().map(|r| r.suppressed)).collect(),
        interface_packets: snap
            .interfaces
            .iter()
            .map(|(n, c)| (n.clone(), c.packets))
            .collect(),
    }
}

/// Human-readable status.
pub fn render(statuses: &[Status]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    if statuses.is_empty() {
        out.push_str("no xdpsieve is running (in this network namespace)\n");
    }
    for s in statuses {
        let modes: Vec<String> = s
            .meta
            .interfaces
            .iter()
            .map(|i| {
                format!(
                    "{} ({})",
                    crate::text::escape(&i.name),
                    crate::text::escape(&i.mode)
                )
            })
            .collect();
        if !s.live {
            let _ = writeln!(
                out,
                "{}: stale: pid {} is gone; the next xdpsieve run cleans up",
                crate::text::escape(&s.interface),
                s.meta.pid
            );
            continue;
        }
        let _ = writeln!(
            out,
            "{}: xdpsieve {} pid {}, up {}s, on {}, transport {}",
            crate::text::escape(&s.interface),
            crate::text::escape(&s.meta.version),
            s.meta.pid,
            s.uptime_seconds,
            modes.join(", "),
            crate::text::escape(&s.meta.transport)
        );
        let Some(c) = &s.counters else { continue };
        let _ = writeln!(
            out,
            "  {} seen, {} dropped, {} passed, {} malformed, {} without IP header",
            c.seen, c.dropped, c.passed, c.malformed, c.non_ip
        );
        let _ = writeln!(
            out,
            "  captured {} (lost {}), events {} (lost {}), rate-limited {}",
            c.captured, c.capture_lost, c.events, c.event_lost, c.rate_limited
        );
        for (rule, (id, hits)) in s.meta.rules.iter().zip(c.rule_hits.iter().skip(1)) {
            let suppressed = c
                .rule_suppressed
                .iter()
                .find(|(i, _)| i == id)
                .map_or(0, |p| p.1);
            let _ = writeln!(
                out,
                "  rule {:>4} {:<24} {:<4} {:>12} hits {:>8} suppressed  ({})",
                rule.id,
                crate::text::escape(&rule.name),
                crate::text::escape(&rule.action),
                hits,
                suppressed,
                crate::text::escape(&rule.conditions)
            );
        }
        let default_hits = c.rule_hits.first().map_or(0, |p| p.1);
        let _ = writeln!(
            out,
            "  default      {:<24} {:<4} {:>12} hits",
            "",
            crate::text::escape(&s.meta.default_action),
            default_hits
        );
    }
    out
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
        };
        assert!(meta.is_live());
        meta.pid_start += 1; // a reused PID has another start time
        assert!(!meta.is_live());
        meta.pid = u32::MAX;
        assert!(!meta.is_live());
    }
}
