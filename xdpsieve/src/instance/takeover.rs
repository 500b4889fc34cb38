//! Carrying a left-behind firewall's counters over to the program that takes it over.
//!
//! A firewall whose recorder died keeps filtering and counting in its own maps (pinned).
//! The new program starts from zero, so before the swap its counters are set to the old
//! ones, per CPU and slot: interfaces by name, and a rule's counts only to
//! the same rule, one with the same name and the same match (conditions and action). A
//! rule's id says nothing (both rule sets number from 1), and a name alone neither (a named
//! rule may have changed its match). The counts of old rules that match no new one stay
//! theirs: reported once, as the previous rules' ([`previous_rules`]), and still in the
//! totals. The counts of old interfaces the new firewall does not serve go to its slot for
//! other interfaces, so that the totals (the sum of the slots) carry on whole. A firewall an
//! older build loaded kept the totals in a one-slot `COUNTERS` and the interfaces' counts in
//! `INTERFACE_COUNTERS`: its interfaces' counts go to their slots as above, and what only
//! the totals had (malformed frames, events, ...) to the slot for other interfaces.
//! Not carried, as in a reload: the rate limiter's state (each rule's record budget
//! starts full) and the first fragments' verdicts (the new program's maps start empty).
//!
//! The swap on the link is atomic, but the old program counted up to it: after the swap
//! (and a pause for runs still in flight), what the old maps counted since the copy is
//! added. That addition is a read-modify-write of the new map while the
//! new program runs, so a packet counted in the same microseconds can be lost from the
//! count; the window is two syscalls wide. Records the old program left in its rings when
//! its recorder died were counted as `captured` or `events` by the old program and never
//! reached a file: after the swap they are counted (without being consumed, see
//! [`unread_in_rings`]) and added to `no_reader`, lost for want of a reader, and the old
//! rings are freed with the old program.

use std::{path::Path, time::Duration};

use anyhow::{Context as _, Result};
use aya::{
    Pod,
    maps::{Map, MapData, PerCpuArray, PerCpuValues},
};
use xdpsieve_common::{
    Counters, InterfaceCounters, MAX_INTERFACES, RuleCounters, walk::RuleExtraCounters,
};

use crate::{
    base::counters::{self, Counter},
    base::snapshot,
    base::text::escape,
    configure::loader::{AttachMode, AttachedMode, Firewall, ifindex_of},
    instance::description::{Meta, MetaRule},
    instance::pins::{self, Claim, Found},
};

/// Which old slot goes to which new slot, per map.
#[derive(Debug, Default)]
pub struct SlotMap {
    /// `COUNTERS`' interface slots: each old one to the new slot of the same interface,
    /// else to the slot for other interfaces. Empty when the new program shares the old
    /// one's map.
    pub counters: Vec<(u32, u32)>,
    pub rules: Vec<(u32, u32)>,
    /// Old rule slots whose rule is not among the new rules: not carried.
    pub unmatched_rules: Vec<u32>,
}

/// Whether `new` is the same rule as `old`: the same name and the same match.
fn same_rule(old: &MetaRule, new: &MetaRule) -> bool {
    !old.name.is_empty()
        && old.name == new.name
        && old.action == new.action
        && old.conditions == new.conditions
}

impl SlotMap {
    /// Matches the old instance's rules and interfaces (from its description) with the new
    /// ones: `rules` as described, in evaluation order, `interfaces` by name in slot order.
    pub fn new(old: Option<&Meta>, rules: &[MetaRule], interfaces: &[String]) -> SlotMap {
        Self::build(old, rules, interfaces)
    }

    /// For a reload: the rules as in a takeover, and not `COUNTERS`, which the new
    /// program shares with the old one (so they go on exactly, with no copy).
    pub fn for_reload(old: &Meta, rules: &[MetaRule]) -> SlotMap {
        let mut map = Self::build(Some(old), rules, &[]);
        map.counters.clear();
        map
    }

    fn build(old: Option<&Meta>, rules: &[MetaRule], interfaces: &[String]) -> SlotMap {
        let other = MAX_INTERFACES as u32;
        // Every old slot goes somewhere, so that the totals carry on whole.
        let counters = (0..=other)
            .map(|old_slot| {
                let name = old
                    .and_then(|old| old.interfaces.get(old_slot as usize))
                    .filter(|_| old_slot < other)
                    .map(|i| &i.name);
                let new_slot = name.and_then(|name| {
                    interfaces
                        .iter()
                        .take(MAX_INTERFACES)
                        .position(|n| n == name)
                });
                (old_slot, new_slot.map_or(other, |s| s as u32))
            })
            .collect();
        let mut map = SlotMap {
            counters,
            rules: vec![(0, 0)],
            unmatched_rules: Vec::new(),
        };
        let Some(old) = old else {
            return map;
        };
        // Each new rule takes the counts of one old rule at most.
        let mut taken = vec![false; rules.len()];
        for (old_index, old_rule) in old.rules.iter().enumerate() {
            let old_slot = old_index as u32 + 1;
            let found = (0..rules.len()).find(|&i| !taken[i] && same_rule(old_rule, &rules[i]));
            match found {
                Some(new_index) => {
                    taken[new_index] = true;
                    map.rules.push((old_slot, new_index as u32 + 1));
                }
                None => map.unmatched_rules.push(old_slot),
            }
        }
        map
    }
}

/// "the previous rules' counts, which match no new rule (same name and match), stay
/// theirs: rule 1 "NAME" (CONDITIONS): N hits, ...", for the old rules that had hits;
/// None when there are none. `hits` are (old slot, hits), slot 1 the old rule 0.
pub fn previous_rules(old: &Meta, hits: &[(u32, u64)]) -> Option<String> {
    let parts: Vec<String> = hits
        .iter()
        .filter(|(_, n)| *n > 0)
        .filter_map(|(slot, n)| {
            let rule = old.rules.get((*slot as usize).checked_sub(1)?)?;
            Some(format!(
                "rule {} \"{}\" ({} {}): {n} hits",
                rule.id,
                escape(&rule.name),
                rule.action,
                escape(&rule.conditions)
            ))
        })
        .collect();
    (!parts.is_empty()).then(|| {
        format!(
            "the previous rules' counts, which match no new rule (same name and match), stay \
             theirs (and in the totals), not carried: {}",
            parts.join(", ")
        )
    })
}

/// The old firewall's counter maps and their values at the copy.
pub struct Carried {
    old: OldMaps,
    /// The old program's `RULE_EXTRA` (monitor and limit rules), and its values at the
    /// copy; absent from a firewall an older build loaded.
    old_extra: Option<(Map, Vec<Vec<RuleExtraCounters>>)>,
    slots: SlotMap,
    before: Values,
    /// The old firewall's totals at the copy.
    pub old_totals: Counters,
}

/// The old firewall's counter maps.
struct OldMaps {
    counters: OldCounters,
    rules: Map,
}

/// The old firewall's `COUNTERS`, in either layout.
enum OldCounters {
    /// One slot per interface, as this build's.
    PerInterface(Map),
    /// An older build's: the totals in one slot, the interfaces in `INTERFACE_COUNTERS`.
    Older { totals: Map, interfaces: Map },
}

/// Per map, per slot pair (of the map's [`SlotMap`] list), the per-CPU values.
struct Values {
    counters: Vec<Vec<Counters>>,
    rules: Vec<Vec<RuleCounters>>,
}

const COUNTERS: &str = "COUNTERS";
const RULE_COUNTERS: &str = "RULE_COUNTERS";

fn read<T: Pod>(map: &Map, slots: &[(u32, u32)]) -> Result<Vec<Vec<T>>> {
    let array: PerCpuArray<_, T> = PerCpuArray::try_from(map)?;
    slots
        .iter()
        .map(|(old, _)| Ok(array.get(old, 0)?.iter().copied().collect()))
        .collect()
}

/// The old `COUNTERS` values of each pair in `pairs` (which name every old interface
/// slot), per CPU. From an older build's maps: each interface's counts as its slot's, and
/// what the totals hold beyond the interfaces' counts in the slot for other interfaces;
/// the pairs then sum to the totals, as this build's slots do.
fn read_counters(old: &OldCounters, pairs: &[(u32, u32)]) -> Result<Vec<Vec<Counters>>> {
    let (totals, interfaces) = match old {
        OldCounters::PerInterface(map) => return read(map, pairs),
        OldCounters::Older { totals, interfaces } => (totals, interfaces),
    };
    let totals: Vec<Counters> = read(totals, &[(0, 0)])?
        .into_iter()
        .next()
        .unwrap_or_default();
    let mut values: Vec<Vec<Counters>> = read::<InterfaceCounters>(interfaces, pairs)?
        .iter()
        .map(|cpus| cpus.iter().map(Counters::from).collect())
        .collect();
    let other = MAX_INTERFACES as u32;
    let rest = pairs
        .iter()
        .position(|&(old, _)| old == other)
        .context("the slot map has no pair for the other interfaces' slot")?;
    for (cpu, total) in totals.iter().enumerate() {
        let mut remainder = *total;
        for (i, cpus) in values.iter().enumerate() {
            if let Some(counted) = cpus.get(cpu).filter(|_| i != rest) {
                for counter in counters::KERNEL {
                    let field = (counter.get_mut)(&mut remainder);
                    *field = field.wrapping_sub((counter.get)(counted));
                }
            }
        }
        if let Some(slot) = values[rest].get_mut(cpu) {
            *slot = remainder;
        }
    }
    Ok(values)
}

fn read_all(old: &OldMaps, slots: &SlotMap) -> Result<Values> {
    Ok(Values {
        counters: read_counters(&old.counters, &slots.counters)?,
        rules: read(&old.rules, &slots.rules)?,
    })
}

/// Adds `plus - minus` (per CPU, every catalogued counter) to each mapped slot of the new map.
fn add<T: Pod>(
    map: &mut Map,
    catalogue: &[Counter<T>],
    slots: &[(u32, u32)],
    plus: &[Vec<T>],
    minus: Option<&[Vec<T>]>,
) -> Result<()> {
    let mut array: PerCpuArray<_, T> = PerCpuArray::try_from(map)?;
    for (i, (_, new)) in slots.iter().enumerate() {
        let mut values: Vec<T> = array.get(new, 0)?.iter().copied().collect();
        let mut changed = false;
        for (cpu, value) in values.iter_mut().enumerate() {
            let Some(plus) = plus[i].get(cpu) else {
                continue;
            };
            let minus = minus.and_then(|m| m[i].get(cpu));
            for counter in catalogue {
                let delta = (counter.get)(plus).wrapping_sub(minus.map_or(0, |m| (counter.get)(m)));
                if delta != 0 {
                    let field = (counter.get_mut)(value);
                    *field = field.wrapping_add(delta);
                    changed = true;
                }
            }
        }
        if changed {
            array.set(*new, PerCpuValues::try_from(values)?, 0)?;
        }
    }
    Ok(())
}

fn add_all(
    firewall: &mut Firewall,
    slots: &SlotMap,
    plus: &Values,
    minus: Option<&Values>,
) -> Result<()> {
    fn map<'a>(firewall: &'a mut Firewall, name: &str) -> Result<&'a mut Map> {
        firewall
            .map_mut(name)
            .with_context(|| format!("the object has no {name} map"))
    }
    add(
        map(firewall, COUNTERS)?,
        counters::KERNEL,
        &slots.counters,
        &plus.counters,
        minus.map(|m| m.counters.as_slice()),
    )
    .with_context(|| format!("carrying {COUNTERS} over"))?;
    add(
        map(firewall, RULE_COUNTERS)?,
        counters::RULE,
        &slots.rules,
        &plus.rules,
        minus.map(|m| m.rules.as_slice()),
    )
    .with_context(|| format!("carrying {RULE_COUNTERS} over"))
}

/// The per-rule counters of monitor and limit rules: carried by the same rule slots as
/// `RULE_COUNTERS`, when both programs have the map.
const EXTRA: &str = "RULE_EXTRA";

fn add_extra(
    firewall: &mut Firewall,
    slots: &SlotMap,
    plus: &[Vec<RuleExtraCounters>],
    minus: Option<&[Vec<RuleExtraCounters>]>,
) -> Result<()> {
    let Some(map) = firewall.map_mut(EXTRA) else {
        return Ok(());
    };
    add(map, counters::RULE_EXTRA, &slots.rules, plus, minus)
        .with_context(|| format!("carrying {EXTRA} over"))
}

/// The old firewall's totals: its `COUNTERS` slots, summed over slots and CPUs.
fn totals(values: &Values) -> Counters {
    let mut total = Counters::default();
    for cpu in values.counters.iter().flatten() {
        counters::add(counters::KERNEL, &mut total, cpu);
    }
    total
}

/// Before the swap: copies the old firewall's counters (pinned in `old_dir`) into the new
/// program's maps, which nothing else writes yet.
pub fn copy_before_swap(
    firewall: &mut Firewall,
    old_dir: &Path,
    slots: SlotMap,
) -> Result<Carried> {
    let open = |name: &'static str| -> Result<(&'static str, Map)> {
        let path = old_dir.join(name);
        let data = MapData::from_pin(&path)
            .with_context(|| format!("opening the left-behind map {}", path.display()))?;
        Ok((name, Map::from_map_data(data)?))
    };
    let (_, counters) = open(COUNTERS)?;
    let one_slot = PerCpuArray::<_, Counters>::try_from(&counters)?.len() == 1;
    let counters = if one_slot {
        let (_, interfaces) = open(snapshot::OLDER_INTERFACES)?;
        OldCounters::Older {
            totals: counters,
            interfaces,
        }
    } else {
        OldCounters::PerInterface(counters)
    };
    let old = OldMaps {
        counters,
        rules: open(RULE_COUNTERS)?.1,
    };
    let before = read_all(&old, &slots)?;
    add_all(firewall, &slots, &before, None)?;
    let old_extra = match open(EXTRA) {
        Ok((_, map)) => {
            let values = read(&map, &slots.rules)?;
            add_extra(firewall, &slots, &values, None)?;
            Some((map, values))
        }
        Err(_) => None,
    };
    let old_totals = totals(&before);
    Ok(Carried {
        old,
        old_extra,
        slots,
        before,
        old_totals,
    })
}

/// What the old program counted, as the swap leaves it.
pub struct AfterSwap {
    /// The packets it dropped between the copy and the swap.
    pub dropped_meanwhile: u64,
    /// Per old rule slot not carried ([`SlotMap::unmatched_rules`]), its hits in all.
    pub previous_rules: Vec<(u32, u64)>,
}

/// After the swap: adds what the old program counted between the copy and the swap, and
/// reads the hits of the old rules that were not carried.
pub fn add_after_swap(firewall: &mut Firewall, carried: Carried) -> Result<AfterSwap> {
    // Runs of the old program that started before the swap finish within a NAPI poll.
    std::thread::sleep(Duration::from_millis(20));
    let after = read_all(&carried.old, &carried.slots)?;
    add_all(firewall, &carried.slots, &after, Some(&carried.before))?;
    if let Some((map, before)) = &carried.old_extra {
        let after = read(map, &carried.slots.rules)?;
        add_extra(firewall, &carried.slots, &after, Some(before))?;
    }
    let unmatched: Vec<(u32, u32)> = carried
        .slots
        .unmatched_rules
        .iter()
        .map(|&slot| (slot, slot))
        .collect();
    let previous: Vec<Vec<RuleCounters>> = read(&carried.old.rules, &unmatched)?;
    Ok(AfterSwap {
        dropped_meanwhile: totals(&after)
            .dropped
            .saturating_sub(totals(&carried.before).dropped),
        previous_rules: unmatched
            .iter()
            .zip(previous)
            .map(|((slot, _), cpus)| (*slot, cpus.iter().map(|c| c.hits).sum()))
            .collect(),
    })
}

/// Records left unread in the rings of the program pinned in `dir` (ring-buffer transport;
/// with perf the per-CPU buffers die with their reader's descriptors and cannot be looked
/// into). Found through the program's own map list, so the rings need no pins of their own.
pub fn unread_in_rings(dir: &Path) -> Result<u64> {
    let prog = dir.join(pins::PROG_PIN);
    // Read through the pin's own descriptor: aya's map_ids opens the program again by its
    // id, which needs CAP_SYS_ADMIN.
    let (_, ids) = crate::configure::relink::pinned_program_maps(&prog)
        .with_context(|| format!("listing the maps of the pinned program {}", prog.display()))?;
    let mut unread = 0;
    // Through the rings' pins first: opening a map by its id needs CAP_SYS_ADMIN, which a
    // service runs without. The ids are the fallback (an older xdpsieve's firewall).
    let mut pinned = Vec::new();
    // The per-CPU rings are not the program's maps but the entries of its CAPTURE_RINGS,
    // pinned one by one; then the event ring, and the one shared capture ring of an older
    // xdpsieve.
    let inner = capture_ring_ids(dir, &ids);
    let mut names: Vec<String> = (0u32..)
        .take(inner.len())
        .map(crate::configure::loader::capture_rings::pin_name)
        .collect();
    names.extend(["CAPTURE_RING", "EVENT_RING"].map(String::from));
    for name in names {
        if let Ok(data) = MapData::from_pin(dir.join(&name))
            && let Ok(info) = data.info()
            && (ids.contains(&info.id()) || inner.contains(&info.id()))
        {
            pinned.push(info.id());
            if matches!(info.map_type(), Ok(aya::maps::MapType::RingBuf)) {
                unread += crate::read::ringbuf::unread_records(&data)
                    .with_context(|| format!("looking into {name}"))?;
            }
        }
    }
    for id in ids.into_iter().filter(|id| !pinned.contains(id)) {
        let Ok(map) = aya::maps::MapInfo::from_id(id) else {
            continue;
        };
        let ring = matches!(map.map_type(), Ok(aya::maps::MapType::RingBuf));
        if ring && matches!(map.name_as_str(), Some("CAPTURE_RING" | "EVENT_RING")) {
            let data = MapData::from_id(id).with_context(|| format!("opening ring {id}"))?;
            unread += crate::read::ringbuf::unread_records(&data)
                .with_context(|| format!("looking into ring {id}"))?;
        }
    }
    Ok(unread)
}

/// The ids of the rings in the pinned `CAPTURE_RINGS` of `dir`, if it is the program's
/// (one of `ids`); none for an older xdpsieve's firewall, which has one shared ring.
fn capture_ring_ids(dir: &Path, ids: &[u32]) -> Vec<u32> {
    let Ok(data) = MapData::from_pin(dir.join("CAPTURE_RINGS")) else {
        return Vec::new();
    };
    if !data.info().is_ok_and(|info| ids.contains(&info.id())) {
        return Vec::new();
    }
    let len = data.info().map_or(0, |info| info.max_entries());
    crate::configure::relink::inner_map_ids(std::os::fd::AsFd::as_fd(data.fd()), len)
        .unwrap_or_default()
}

/// Adds `records` to the new program's `no_reader` count (on the first CPU's slot).
fn add_no_reader(firewall: &mut Firewall, records: u64) -> Result<()> {
    if records == 0 {
        return Ok(());
    }
    let plus = Counters {
        no_reader: records,
        ..Counters::default()
    };
    let map = firewall
        .map_mut(COUNTERS)
        .with_context(|| format!("the object has no {COUNTERS} map"))?;
    add(map, counters::KERNEL, &[(0, 0)], &[vec![plus]], None)
}

/// Puts `firewall` in force on every claimed interface: attaches afresh where nothing was
/// there, takes over (atomic swap, counters carried) where a firewall was left behind, and
/// says so on stderr. `rules` are the new rules as described, in evaluation order.
pub fn attach_or_take_over(
    firewall: &mut Firewall,
    claims: &[Claim],
    rules: &[MetaRule],
    mode: AttachMode,
) -> Result<()> {
    let names: Vec<String> = claims.iter().map(|c| c.interface.clone()).collect();
    // Counters are carried once per old instance: its interfaces share its maps.
    let mut carried_from: Vec<(u32, u64)> = Vec::new();
    for claim in claims {
        let iface = &claim.interface;
        let Found::LeftBehind { meta } = &claim.found else {
            firewall
                .attach(iface, mode, &claim.link_pin())
                .map_err(pins::name_the_owner)?;
            continue;
        };
        let old_if = meta
            .as_ref()
            .and_then(|m| m.interfaces.iter().find(|i| i.name == *iface));
        let ifindex = ifindex_of(iface)?;
        if old_if.is_some_and(|i| i.ifindex != ifindex) {
            // The interface was deleted and made again: the old link is defunct (it
            // filtered nothing since); attach afresh.
            crate::base::log::info(format_args!(
                "xdpsieve: the firewall pinned for {iface} was on an interface that no longer \
                 exists (ifindex {}); attaching afresh",
                old_if.map_or(0, |i| i.ifindex)
            ));
            std::fs::remove_file(claim.link_pin())
                .with_context(|| format!("removing {}", claim.link_pin().display()))?;
            firewall
                .attach(iface, mode, &claim.link_pin())
                .map_err(pins::name_the_owner)?;
            continue;
        }
        let old_mode = old_if.map_or(AttachedMode::Native, |i| i.mode);
        let owner = meta.as_ref().map(|m| (m.pid, m.pid_start));
        let carry =
            match owner {
                Some(key) if carried_from.contains(&key) => None,
                _ => {
                    carried_from.extend(owner);
                    let slots = SlotMap::new(meta.as_ref(), rules, &names);
                    Some(copy_before_swap(firewall, &claim.dir, slots).with_context(|| {
                    format!(
                        "carrying the counters of the firewall left on {iface}; it is left as \
                         it was (in force)"
                    )
                })?)
                }
            };
        let old_totals = carry.as_ref().map(|c| c.old_totals);
        firewall.take_over(iface, old_mode, &claim.link_pin())?;
        let carried = carry.is_some();
        let after =
            match carry {
                Some(carried) => Some(add_after_swap(firewall, carried).with_context(|| {
                    format!("carrying the counters of {iface} on after the swap")
                })?),
                None => None,
            };
        let meanwhile = after.as_ref().map_or(0, |a| a.dropped_meanwhile);
        // The old program no longer runs (add_after_swap waited for runs in flight).
        let unread = if carried {
            match unread_in_rings(&claim.dir) {
                Ok(n) => n,
                Err(e) => {
                    crate::base::log::warning(format_args!(
                        "xdpsieve: warning: cannot count the records left in the old rings of \
                         {iface}: {e:#}"
                    ));
                    0
                }
            }
        } else {
            0
        };
        add_no_reader(firewall, unread)
            .with_context(|| format!("counting the records left unread on {iface}"))?;
        let by = meta.as_ref().map_or_else(
            || "an instance that left no description".into(),
            |m| format!("pid {}", m.pid),
        );
        let mut counts = old_totals.map_or_else(String::new, |c| {
            format!(
                "; its counters carry on: {} packets dropped so far ({meanwhile} during the \
                 handover), {} packets' records lost while no recorder was reading ({unread} of \
                 them left unread in its rings)",
                c.dropped + meanwhile,
                c.no_reader + unread
            )
        });
        if let (Some(old), Some(after)) = (meta, &after)
            && let Some(previous) = previous_rules(old, &after.previous_rules)
        {
            counts.push_str("; ");
            counts.push_str(&previous);
        }
        crate::base::log::info(format_args!(
            "xdpsieve: took over the firewall left on {iface} by {by}, with no gap (the program \
             was swapped on its pinned link){counts}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
