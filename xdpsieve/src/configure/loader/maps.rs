//! The loaded program's maps as the rest of the library uses them: the record sources,
//! the reader heartbeat and the streams a writer reads, the counters (read through the one
//! counter catalogue, [`crate::base::counters`]), and the maps a takeover or a pin needs.

use aya::{maps::Array, programs::Xdp};
use xdpsieve_common::{Counters, InterfaceCounters, RuleCounters, reader};

use super::{FilterRun, Firewall, LoaderError, Transport, monotonic_ns, program_of};
use crate::{
    base::snapshot::{self, CounterMaps, Snapshot},
    read::source::Source,
};

/// The maps `status` and a takeover need, pinned under these names.
pub const PINNED_MAPS: [&str; 5] = [
    "COUNTERS",
    "RULE_COUNTERS",
    "RULE_EXTRA",
    "TOP_SOURCES",
    "LIMIT_STATE",
];
/// The set maps, pinned so `xdpsieve set` finds them: the program's own map list names
/// only the maps its code reads, not the entry table and bookkeeping it never touches.
pub const SET_PINS: [&str; 5] = [
    "SET_NODES",
    "SET_CLASSES",
    "SET_ENTRIES",
    "SET_RULES",
    "SET_META",
];

impl Firewall {
    /// How each filter runs (translated or interpreted, and why).
    pub fn filter_runs(&self) -> &[FilterRun] {
        &self.filter_runs
    }

    /// How the program finds the first matching rule (compiled code or bitmaps, and why).
    pub fn matching(&self) -> &crate::configure::matcher::Matching {
        &self.matching
    }

    /// Tells the program a recorder is reading its rings: records are counted as lost for
    /// want of a reader once this is more than `READER_TIMEOUT_NS` old. Call it before
    /// attaching and every ~100 ms after.
    pub fn heartbeat(&mut self) -> Result<(), LoaderError> {
        self.set_reader(reader::HEARTBEAT, monotonic_ns(), "the reader heartbeat")
    }

    /// Tells the program its recorder is gone for good (a run that ends leaving the
    /// firewall in force): from now on records are counted as lost for want of a reader,
    /// as they are `READER_TIMEOUT_NS` after a crash, instead of filling rings nobody
    /// drains until a takeover.
    pub fn reader_gone(&mut self) -> Result<(), LoaderError> {
        // Any time older than the timeout will do but 0, which means "not tracked".
        self.set_reader(reader::HEARTBEAT, 1, "the reader heartbeat")
    }

    /// Tells the program which record streams a writer of the run reads: it counts the
    /// records of the others (`capture_no_writer`, `event_no_writer`) instead of sending
    /// them to a ring nobody drains. Call it before attaching. A reload's program shares
    /// the map, and so what the run published.
    pub fn publish_writers(&mut self, capture: bool, events: bool) -> Result<(), LoaderError> {
        let mut writers = reader::PUBLISHED;
        if capture {
            writers |= reader::CAPTURE;
        }
        if events {
            writers |= reader::EVENTS;
        }
        self.set_reader(reader::WRITERS, writers, "which streams are read")
    }

    /// What the run published with [`Firewall::publish_writers`] (bits of
    /// `xdpsieve_common::reader`); `None` when nothing was (or the map is an older run's,
    /// without the slot).
    pub fn published_writers(&self) -> Option<u64> {
        let reader: Array<_, u64> = Array::try_from(self.ebpf.map("READER")?).ok()?;
        reader
            .get(&reader::WRITERS, 0)
            .ok()
            .filter(|w| w & reader::PUBLISHED != 0)
    }

    fn set_reader(&mut self, slot: u32, value: u64, what: &str) -> Result<(), LoaderError> {
        let map = self
            .ebpf
            .map_mut("READER")
            .ok_or_else(|| LoaderError::Load("the object has no READER map".into()))?;
        let mut reader: Array<_, u64> =
            Array::try_from(map).map_err(|e| LoaderError::Load(format!("READER: {e}")))?;
        reader
            .set(slot, value, 0)
            .map_err(|e| LoaderError::Load(format!("writing {what}: {e}")))
    }

    /// A map of the loaded program, by name (for carrying counters over in a takeover).
    pub fn map_mut(&mut self, name: &str) -> Option<&mut aya::maps::Map> {
        self.ebpf.map_mut(name)
    }

    /// The program, for `BPF_PROG_TEST_RUN`.
    pub fn program(&mut self) -> Result<&mut Xdp, LoaderError> {
        program_of(&mut self.ebpf)
    }

    /// Takes the capture records' source (once).
    pub fn take_capture_source(&mut self) -> Result<Source, LoaderError> {
        if self.transport == Transport::RingBuf {
            let rings = std::mem::take(&mut self.capture_rings);
            return Source::rings(rings)
                .map_err(|e| LoaderError::Load(format!("opening the capture rings: {e}")));
        }
        self.take_source("CAPTURE_RING", "CAPTURE_PERF")
    }

    /// Takes the events' source (once).
    pub fn take_event_source(&mut self) -> Result<Source, LoaderError> {
        self.take_source("EVENT_RING", "EVENT_PERF")
    }

    /// Takes the ban notices' source (once): always a ring buffer, whatever the transport
    /// of the records (it is small, and perf arrays would wake the reader per notice).
    pub fn take_notice_source(&mut self) -> Result<Source, LoaderError> {
        let map = self.ebpf.take_map("LIMIT_NOTICES").ok_or_else(|| {
            LoaderError::Load("map LIMIT_NOTICES missing or already taken".into())
        })?;
        Source::ring(map).map_err(|e| LoaderError::Load(format!("opening LIMIT_NOTICES: {e}")))
    }

    fn take_source(&mut self, ring: &str, perf: &str) -> Result<Source, LoaderError> {
        let name = match self.transport {
            Transport::RingBuf => ring,
            Transport::Perf => perf,
        };
        let map = self
            .ebpf
            .take_map(name)
            .ok_or_else(|| LoaderError::Load(format!("map {name} missing or already taken")))?;
        let source = match self.transport {
            Transport::RingBuf => Source::ring(map),
            Transport::Perf => {
                let cpus = aya::util::nr_cpus().map_or(1, |n| n.max(1));
                Source::perf(map, self.ring_bytes as usize / cpus)
            }
        };
        source.map_err(|e| LoaderError::Load(format!("opening {name}: {e}")))
    }

    /// Counters summed over all CPUs.
    pub fn counters(&self) -> Result<Counters, LoaderError> {
        Ok(self.snapshot(0, 0)?.counters)
    }

    /// Every counter now, through the same reader as `xdpsieve status`'s; `perf_lost`
    /// comes from the userspace readers.
    pub fn snapshot(&self, rule_count: usize, perf_lost: u64) -> Result<Snapshot, LoaderError> {
        let names: Vec<String> = self
            .ifindexes
            .iter()
            .map(|ifindex| {
                self.interface_names
                    .iter()
                    .find(|(i, _)| i == ifindex)
                    .map_or_else(|| format!("ifindex{ifindex}"), |(_, n)| n.clone())
            })
            .collect();
        let maps = CounterMaps {
            counters: self.map("COUNTERS")?,
            rules: self.map("RULE_COUNTERS")?,
            interfaces: None,
            rule_extra: self.map("RULE_EXTRA").ok(),
            limit_state: self.map("LIMIT_STATE").ok(),
        };
        snapshot::read_snapshot(&maps, rule_count, &names, perf_lost)
            .map_err(|e| LoaderError::Load(format!("reading the counter maps: {e}")))
    }

    /// Counters per rule slot, summed over CPUs: the default verdict's first, then each
    /// rule's in evaluation order.
    pub fn rule_counters(&self, rule_count: usize) -> Result<Vec<RuleCounters>, LoaderError> {
        Ok(self.snapshot(rule_count, 0)?.rules)
    }

    /// The counter maps `xdpsieve status` reads, by name.
    pub fn counter_maps(&self) -> Vec<(&'static str, &aya::maps::Map)> {
        PINNED_MAPS
            .iter()
            .filter_map(|&name| self.ebpf.map(name).map(|m| (name, m)))
            .collect()
    }

    /// The maps to pin for `status`, a takeover and a reload: the counters,
    /// [`SHARED_MAPS`] and the set maps (for `xdpsieve set`).
    pub fn pinned_maps(&self) -> Vec<(&str, &aya::maps::Map)> {
        let mut maps: Vec<(&str, &aya::maps::Map)> = self.counter_maps();
        maps.extend(self.shared.iter().map(|(name, map)| (name.as_str(), map)));
        maps.extend(
            SET_PINS
                .iter()
                .filter_map(|&name| self.ebpf.map(name).map(|m| (name, m))),
        );
        maps
    }

    /// Hits per rule slot (the default verdict's first).
    pub fn rule_hits(&self, rule_count: usize) -> Result<Vec<u64>, LoaderError> {
        Ok(self
            .rule_counters(rule_count)?
            .iter()
            .map(|c| c.hits)
            .collect())
    }

    /// Counters per interface slot (as in `Settings::ifindexes`, then one for any other).
    pub fn interface_counters(&self) -> Result<Vec<InterfaceCounters>, LoaderError> {
        snapshot::read_interface_slots(self.map("COUNTERS")?)
            .map_err(|e| LoaderError::Load(format!("reading COUNTERS: {e}")))
    }

    /// A handle of its own on the interface counters, for a rotating capture's per-file
    /// statistics (see [`snapshot::InterfaceProbe`]).
    pub fn interface_probe(&self) -> Result<snapshot::InterfaceProbe, LoaderError> {
        use std::os::fd::AsFd as _;
        let fail = |e: String| LoaderError::Load(format!("COUNTERS: {e}"));
        let aya::maps::Map::PerCpuArray(data) = self.map("COUNTERS")? else {
            return Err(fail("not a per-CPU array".into()));
        };
        let fd = data
            .fd()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| fail(e.to_string()))?;
        let data = aya::maps::MapData::from_fd(fd).map_err(|e| fail(e.to_string()))?;
        Ok(snapshot::InterfaceProbe::new(
            aya::maps::Map::PerCpuArray(data),
            self.ifindexes.clone(),
        ))
    }

    fn map(&self, name: &str) -> Result<&aya::maps::Map, LoaderError> {
        self.ebpf
            .map(name)
            .ok_or_else(|| LoaderError::Load(format!("the object has no {name} map")))
    }
}
