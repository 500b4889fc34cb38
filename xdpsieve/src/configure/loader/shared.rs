//! The maps a reload's new program shares with the program it replaces (see
//! `instance::reload`): pinned next to the counters at start, and handed to aya's loader
//! by their pins for the next generation, which then writes into the same buffers.

use std::{os::fd::AsFd as _, path::Path};

use aya::{Ebpf, EbpfLoader};

use super::LoaderError;

/// The maps a new rule generation shares with the program it replaces (see
/// `instance::reload`): the record rings and perf arrays, so the recorder reads on from
/// the same buffers, the reader heartbeat, and the ban notices. Pinned next to the
/// counters.
pub const SHARED_MAPS: [&str; 6] = [
    "CAPTURE_RINGS",
    "EVENT_RING",
    "CAPTURE_PERF",
    "EVENT_PERF",
    "READER",
    NOTICES,
];

/// The ban notices' ring: shared when the running firewall pinned it. One started by an
/// xdpsieve without bans did not; its reloads get a ring of their own, which its recorder
/// does not read (notices are then counted lost, and nothing is banned until a restart).
const NOTICES: &str = "LIMIT_NOTICES";

/// Counter maps a reload's program shares too: the per-interface counters, whose slots do
/// not change with the rules (pinned at start with the other counters).
pub(super) const SHARED_COUNTERS: [&str; 1] = ["COUNTERS"];

/// Has `loader` use the maps pinned in `dir` for [`SHARED_MAPS`] and [`SHARED_COUNTERS`]
/// instead of making new ones.
pub(super) fn share_from(loader: &mut EbpfLoader<'_>, dir: &Path) -> Result<(), LoaderError> {
    for name in SHARED_MAPS.into_iter().chain(SHARED_COUNTERS) {
        let path = dir.join(name);
        if name == NOTICES && !path.exists() {
            continue;
        }
        // aya would make and pin a new map where none is pinned: a ring nobody reads.
        if !path.exists() {
            return Err(LoaderError::Load(format!(
                "{} is missing: the running firewall does not share its record buffers \
                 (started by an older xdpsieve?); restart it to reload",
                path.display()
            )));
        }
        if name == "COUNTERS" {
            counters_have_slots(&path)?;
        }
        loader.map_pin_path(name, path);
    }
    Ok(())
}

/// Refuses a pinned `COUNTERS` without one slot per interface: that of a firewall an older
/// build loaded (the totals alone, the interfaces in a map of their own). aya would hand it
/// to the new program as it is, whose lookups past its one slot fail: every packet on a
/// listed interface would go uncounted.
fn counters_have_slots(path: &Path) -> Result<(), LoaderError> {
    let slots = aya::maps::MapData::from_pin(path)
        .and_then(|data| Ok(data.info()?.max_entries()))
        .map_err(|e| LoaderError::Load(format!("reading {}: {e}", path.display())))?;
    if slots != xdpsieve_common::COUNTER_SLOTS {
        return Err(LoaderError::Load(format!(
            "{} has {slots} slot(s), not {} (one per interface): the running firewall was \
             started by an older xdpsieve; restart it to reload (the restart takes the \
             firewall over, with its counts, and keeps it in force meanwhile)",
            path.display(),
            xdpsieve_common::COUNTER_SLOTS
        )));
    }
    Ok(())
}

/// Second handles of [`SHARED_MAPS`] (the record sources take the first ones away).
pub(super) fn handles(ebpf: &Ebpf) -> Result<Vec<(String, aya::maps::Map)>, LoaderError> {
    use aya::maps::Map;
    let mut shared = Vec::new();
    for name in SHARED_MAPS {
        let data = match ebpf.map(name) {
            Some(
                Map::RingBuf(d) | Map::PerfEventArray(d) | Map::Array(d) | Map::ArrayOfMaps(d),
            ) => d,
            _ => return Err(LoaderError::Load(format!("the object has no {name} map"))),
        };
        let handle = second_handle(name, data)?;
        shared.push((name.to_string(), handle));
    }
    Ok(shared)
}

/// A second handle of `data`: a duplicate of its descriptor, not the map opened again by
/// its id (that needs CAP_SYS_ADMIN, which a service runs without).
pub(super) fn second_handle(
    name: &str,
    data: &aya::maps::MapData,
) -> Result<aya::maps::Map, LoaderError> {
    use aya::maps::{Map, MapData};
    data.fd()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| LoaderError::Load(format!("duplicating the descriptor of {name}: {e}")))
        .and_then(|fd| {
            MapData::from_fd(fd)
                .and_then(Map::from_map_data)
                .map_err(|e| LoaderError::Load(format!("opening a second handle of {name}: {e}")))
        })
}

#[cfg(test)]
mod tests {
    use aya::maps::{MapData, PerCpuArray};
    use xdpsieve_common::{COUNTER_SLOTS, Counters};

    use super::counters_have_slots;

    /// A reload refuses the pinned `COUNTERS` of a firewall an older build loaded (one slot
    /// for the totals), whose slots past the first this build's program would count into
    /// in vain, and takes this build's.
    #[test]
    fn a_reload_refuses_an_older_builds_counters() {
        if !xdpsieve_testkit::gate::root_or_skip() {
            return;
        }
        for (slots, ok) in [(1, false), (COUNTER_SLOTS, true)] {
            let map = PerCpuArray::<MapData, Counters>::create(slots, 0).expect("creating");
            let pin = std::path::PathBuf::from(format!(
                "/sys/fs/bpf/xdpsieve-unit-{}-counters-{slots}",
                std::process::id()
            ));
            let _ = std::fs::remove_file(&pin);
            aya::maps::IterableMap::map(&map)
                .pin(&pin)
                .expect("pinning");
            let checked = counters_have_slots(&pin);
            let _ = std::fs::remove_file(&pin);
            match checked {
                Ok(()) => assert!(ok, "{slots} slot(s) taken"),
                Err(e) => {
                    assert!(!ok, "{slots} slots refused: {e}");
                    assert!(e.to_string().contains("older xdpsieve"), "{e}");
                }
            }
        }
    }
}
