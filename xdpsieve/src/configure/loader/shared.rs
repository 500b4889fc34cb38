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

/// Counter maps a reload's program shares too: the totals and the per-interface counters,
/// whose slots do not change with the rules (pinned at start with the other counters).
pub(super) const SHARED_COUNTERS: [&str; 2] = ["COUNTERS", "INTERFACE_COUNTERS"];

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
        loader.map_pin_path(name, path);
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
