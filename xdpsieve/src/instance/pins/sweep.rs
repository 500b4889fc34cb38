//! Removing what firewalls left behind where nobody can remove it any more: a run sweeps
//! the pins of every network namespace.
//!
//! A left-behind firewall is removed only when the kernel says its interface is gone: its
//! pinned link is defunct (the link's ifindex reads 0), which is what becomes of a link
//! whose interface was deleted, by itself or with its namespace. Whether a namespace
//! "still exists" is never guessed from /proc or /run/netns: a namespace can be kept by a
//! bind mount anywhere, or by a descriptor, and a firewall in it filters on. A link the
//! kernel cannot tell us about stays. Entries with no link at all (a recorder that died
//! before attaching) are not firewalls; they go too, as claiming them would.
//!
//! Each entry is removed under its interface's lock ([`super::owner`]): never one a run,
//! a stop or a reload holds, nor one whose recorder lives.

use std::{
    fs,
    path::{Path, PathBuf},
};

use super::{LINK_PIN, RUN_DIR, owner::Owner, owner::Verb};
use crate::instance::description;

/// What the kernel says of the link pinned at `link`: `Some(true)` defunct, `Some(false)`
/// attached, `None` no link there (or one it cannot tell us about: kept).
fn defunct(link: &Path) -> Option<bool> {
    match crate::configure::relink::pinned_link_ifindex(link) {
        Ok(Some(ifindex)) => Some(ifindex == 0),
        _ => None,
    }
}

/// The interfaces (pin directories and descriptions, by name) of the namespace
/// directories `pins` (below the pin root) and `run` (below /run/xdpsieve).
fn interfaces(pins: &Path, run: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(pins)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    for entry in fs::read_dir(run).into_iter().flatten().flatten() {
        if let Some(name) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.strip_suffix(".json"))
            && !names.iter().any(|n| n == name)
        {
            names.push(name.to_string());
        }
    }
    names
}

/// Sweeps every namespace's pins below `root`; says on stderr what it removed.
pub(super) fn sweep(root: &Path) {
    let mut namespaces: Vec<PathBuf> = Vec::new();
    for base in [root, Path::new(RUN_DIR)] {
        for entry in fs::read_dir(base).into_iter().flatten().flatten() {
            let name = PathBuf::from(entry.file_name());
            let is_namespace = name.to_str().is_some_and(|n| n.starts_with("netns-"));
            if is_namespace && entry.path().is_dir() && !namespaces.contains(&name) {
                namespaces.push(name);
            }
        }
    }
    let mut removed: Vec<String> = Vec::new();
    for namespace in &namespaces {
        let (pins, run) = (root.join(namespace), Path::new(RUN_DIR).join(namespace));
        for iface in interfaces(&pins, &run) {
            let (dir, meta_file) = (pins.join(&iface), run.join(format!("{iface}.json")));
            let link = dir.join(LINK_PIN);
            let gone = match defunct(&link) {
                Some(defunct) => defunct,
                None => !link.exists(),
            };
            if !gone {
                continue;
            }
            // Under the interface's lock, look again: a run may have just attached.
            let lock = run.join(format!("{iface}.lock"));
            if !run.is_dir() {
                // A namespace's /run directory is made with its first lock; none, none held.
                let _ = super::secure_dir(Path::new("/run"), &run);
            }
            let Ok(Ok(owner)) = Owner::try_take_at(&lock, &iface, Verb::Sweep) else {
                continue;
            };
            let still_gone = match defunct(&link) {
                Some(defunct) => defunct,
                None => !link.exists(),
            };
            if !still_gone || description::read(&meta_file).is_some_and(|m| m.is_live()) {
                continue;
            }
            let firewall = link.exists();
            super::remove_at(&dir, &meta_file, &owner);
            if firewall {
                removed.push(format!("{iface} ({})", namespace.display()));
            }
        }
        // Both go once empty (remove_dir refuses otherwise).
        let _ = fs::remove_dir(&pins);
        let _ = fs::remove_dir(&run);
    }
    if !removed.is_empty() {
        crate::base::log::info(format_args!(
            "xdpsieve: removed the firewall(s) left on {}: the kernel reports their links \
             defunct (their interfaces, or namespaces, are gone)",
            removed.join(", ")
        ));
    }
}
