//! Every counter of a running firewall at one moment ([`Snapshot`]), read from the counter
//! maps of the loaded program or from their pins: the one reader of those maps, through the
//! catalogue ([`crate::base::counters`]) so that a counter added there is read here
//! without a change.

use std::path::Path;

use anyhow::{Context as _, Result};
use aya::{
    Pod,
    maps::{HashMap, Map, MapData, MapError, PerCpuArray},
};
use xdpsieve_common::{
    COUNTER_SLOTS, Counters, InterfaceCounters, MAX_INTERFACES, RuleCounters,
    walk::{LimitKey, LimitState, RuleExtraCounters, SourceKey, SourceSlot, SourceStats},
};

use crate::base::counters::{Counter, INTERFACE, KERNEL, RULE, RULE_EXTRA, add};

/// Every counter of a running firewall at one moment, summed over CPUs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub counters: Counters,
    /// Slot 0 is the default verdict, slot `i + 1` rule `i` in evaluation order.
    pub rules: Vec<RuleCounters>,
    /// What monitor and limit rules counted, by the same slots (empty when the firewall's
    /// program has no such map: one loaded by an older build).
    pub rule_extra: Vec<RuleExtraCounters>,
    /// Keys each limit rule tracks now, by the same slots (empty without the map). With
    /// `RuleExtraCounters::new_keys`, how many it forgot to make room.
    pub limit_keys: Vec<u64>,
    /// Interface name and its counters.
    pub interfaces: Vec<(String, InterfaceCounters)>,
    /// Samples the perf buffers reported lost (perf transport only).
    pub perf_lost: u64,
}

impl Snapshot {
    pub fn rule(&self, slot: usize) -> RuleCounters {
        self.rules.get(slot).copied().unwrap_or_default()
    }

    /// The keys the limit rules of kernel rules `indexes` track now, summed.
    pub fn limit_keys_summed(&self, indexes: std::ops::Range<usize>) -> u64 {
        indexes
            .map(|i| self.limit_keys.get(i + 1).copied().unwrap_or(0))
            .sum()
    }

    pub fn rule_extra(&self, slot: usize) -> RuleExtraCounters {
        self.rule_extra.get(slot).copied().unwrap_or_default()
    }

    /// [`Snapshot::rules_summed`] for what monitor and limit rules count.
    pub fn rule_extra_summed(&self, indexes: std::ops::Range<usize>) -> RuleExtraCounters {
        let mut total = RuleExtraCounters::default();
        for index in indexes {
            add(RULE_EXTRA, &mut total, &self.rule_extra(index + 1));
        }
        total
    }

    /// The counters of kernel rules `indexes` (slots `indexes + 1`) summed: one written
    /// rule's, when a condition without a direction made it several kernel rules.
    pub fn rules_summed(&self, indexes: std::ops::Range<usize>) -> RuleCounters {
        let mut total = RuleCounters::default();
        for index in indexes {
            add(RULE, &mut total, &self.rule(index + 1));
        }
        total
    }
}

/// Reads slots `0..slots` of a per-CPU array map, each summed over CPUs.
fn sum_per_cpu<T: Pod + Default>(
    map: &Map,
    slots: usize,
    catalogue: &[Counter<T>],
) -> Result<Vec<T>, MapError> {
    let array: PerCpuArray<_, T> = PerCpuArray::try_from(map)?;
    (0..slots as u32)
        .map(|slot| {
            let mut total = T::default();
            for value in array.get(&slot, 0)?.iter() {
                add(catalogue, &mut total, value);
            }
            Ok(total)
        })
        .collect()
}

/// The per-interface counters of a firewall an older build loaded, beside its one-slot
/// `COUNTERS` (see `xdpsieve_common::InterfaceCounters`).
pub const OLDER_INTERFACES: &str = "INTERFACE_COUNTERS";

/// The counter maps, from the loaded program or from their pins.
pub struct CounterMaps<'a> {
    /// One slot per interface (see `xdpsieve_common::COUNTER_SLOTS`); the totals alone in
    /// one slot for a firewall an older build loaded, which has `interfaces` beside.
    pub counters: &'a Map,
    pub rules: &'a Map,
    /// An older build's `INTERFACE_COUNTERS`: read only when `counters` has one slot.
    pub interfaces: Option<&'a Map>,
    pub rule_extra: Option<&'a Map>,
    pub limit_state: Option<&'a Map>,
}

/// Every counter now: the one reader of the counter maps. `rule_count` rules (plus the
/// default verdict's slot); `interface_names` in slot order (the program's
/// `Config::ifindexes`); the extra slot for packets from any other interface appears as
/// "other" when it counted any.
pub fn read_snapshot(
    maps: &CounterMaps<'_>,
    rule_count: usize,
    interface_names: &[String],
    perf_lost: u64,
) -> Result<Snapshot, MapError> {
    let counter_slots = PerCpuArray::<_, Counters>::try_from(maps.counters)?.len() as usize;
    let per_slot = sum_per_cpu(maps.counters, counter_slots, KERNEL)?;
    let mut counters = Counters::default();
    for slot in &per_slot {
        add(KERNEL, &mut counters, slot);
    }
    let rules = sum_per_cpu(maps.rules, rule_count + 1, RULE)?;
    let rule_extra = match maps.rule_extra {
        Some(map) => sum_per_cpu(map, rule_count + 1, RULE_EXTRA)?,
        None => Vec::new(),
    };
    let limit_keys = match maps.limit_state {
        Some(map) => keys_per_rule(map, rule_count)?,
        None => Vec::new(),
    };
    let slots = match maps.interfaces {
        Some(older) if counter_slots == 1 => sum_per_cpu(older, MAX_INTERFACES + 1, INTERFACE)?,
        _ => per_slot.iter().map(InterfaceCounters::from).collect(),
    };
    let mut interfaces: Vec<(String, InterfaceCounters)> = interface_names
        .iter()
        .take(MAX_INTERFACES)
        .cloned()
        .zip(slots.iter().copied())
        .collect();
    if let Some(other) = slots.last().filter(|c| c.packets > 0) {
        interfaces.push(("other".into(), *other));
    }
    Ok(Snapshot {
        counters,
        rules,
        rule_extra,
        limit_keys,
        interfaces,
        perf_lost,
    })
}

/// [`read_snapshot`] of the counter maps pinned in `dir` (a firewall that no process of
/// ours holds: `status`, `stop`, the metrics).
pub fn read_pinned(dir: &Path, rule_count: usize, interface_names: &[String]) -> Result<Snapshot> {
    let open = |name: &str| -> Result<Map> {
        let data = MapData::from_pin(dir.join(name))
            .with_context(|| format!("opening pinned map {}", dir.join(name).display()))?;
        Map::from_map_data(data).with_context(|| format!("reading pinned map {name}"))
    };
    let (counters, rules) = (open("COUNTERS")?, open("RULE_COUNTERS")?);
    // Only a firewall an older build loaded has this one.
    let interfaces = open(OLDER_INTERFACES).ok();
    // Optional: the pins of a firewall an older build loaded have no such map.
    let rule_extra = open("RULE_EXTRA").ok();
    let limit_state = open("LIMIT_STATE").ok();
    let maps = CounterMaps {
        counters: &counters,
        rules: &rules,
        interfaces: interfaces.as_ref(),
        rule_extra: rule_extra.as_ref(),
        limit_state: limit_state.as_ref(),
    };
    read_snapshot(&maps, rule_count, interface_names, 0)
        .with_context(|| format!("reading the counters pinned under {}", dir.display()))
}

/// The keys of the limit rules' table (`LIMIT_STATE`), counted by rule slot. A key
/// evicted while the walk goes on is missed: the count is of one moment.
fn keys_per_rule(map: &Map, rule_count: usize) -> Result<Vec<u64>, MapError> {
    let table: HashMap<_, LimitKey, LimitState> = HashMap::try_from(map)?;
    let mut per_slot = vec![0u64; rule_count + 1];
    for key in table.keys().flatten() {
        if let Some(count) = per_slot.get_mut(key.rule as usize + 1) {
            *count += 1;
        }
    }
    Ok(per_slot)
}

/// Each source `TOP_SOURCES` holds (pinned in `dir`), its counts summed over CPUs; `None`
/// when there is no such map or it is not the per-CPU array this build reads (a firewall
/// an older build loaded).
pub fn read_top_sources(dir: &Path) -> Option<Vec<(SourceKey, SourceStats)>> {
    let data = MapData::from_pin(dir.join("TOP_SOURCES")).ok()?;
    let map = Map::from_map_data(data).ok()?;
    top_sources_of(&map)
}

/// The sources a `TOP_SOURCES` map holds, summed over the CPUs (a source is in the same
/// slot on every CPU, but each CPU's slot may hold another source); `None` when `map` is
/// not the per-CPU array of [`SourceSlot`]s.
pub fn top_sources_of(map: &Map) -> Option<Vec<(SourceKey, SourceStats)>> {
    let slots: PerCpuArray<_, SourceSlot> = PerCpuArray::try_from(map).ok()?;
    let mut sources = std::collections::BTreeMap::<SourceKey, SourceStats>::new();
    for index in 0..slots.len() {
        let Ok(values) = slots.get(&index, 0) else {
            continue;
        };
        for slot in values.iter().filter(|s| s.key.family != 0) {
            let total = sources.entry(slot.key).or_default();
            let v = &slot.stats;
            total.dropped += v.dropped;
            total.dropped_bytes += v.dropped_bytes;
            total.would += v.would;
            total.would_bytes += v.would_bytes;
            total.limited += v.limited;
            total.limited_bytes += v.limited_bytes;
        }
    }
    Some(sources.into_iter().collect())
}

/// Interface counters per slot of `COUNTERS`, summed over CPUs (for the capture's closing
/// blocks).
pub fn read_interface_slots(map: &Map) -> Result<Vec<InterfaceCounters>, MapError> {
    let slots = sum_per_cpu(map, COUNTER_SLOTS as usize, KERNEL)?;
    Ok(slots.iter().map(InterfaceCounters::from).collect())
}

/// The interfaces' counters, readable apart from the firewall (its own handle on the
/// counter map): what a rotating capture writes into each file's statistics.
pub struct InterfaceProbe {
    map: Map,
    /// The interfaces of the counter slots, in slot order.
    ifindexes: Vec<u32>,
}

impl InterfaceProbe {
    pub fn new(map: Map, ifindexes: Vec<u32>) -> Self {
        InterfaceProbe { map, ifindexes }
    }

    /// Each interface's counters now; `None` when the map cannot be read.
    pub fn read(&self) -> Option<Vec<(u32, InterfaceCounters)>> {
        let slots = read_interface_slots(&self.map).ok()?;
        Some(self.ifindexes.iter().copied().zip(slots).collect())
    }
}
