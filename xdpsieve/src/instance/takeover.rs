//! Carrying a left-behind firewall's counters over to the program that takes it over.
//!
//! A firewall whose recorder died keeps filtering and counting in its own maps (pinned).
//! The new program starts from zero, so before the swap its counters are set to the old
//! ones, per CPU and slot: the totals whole, interfaces by name, and a rule's counts only to
//! the same rule, one with the same name and the same match (conditions and action). A
//! rule's id says nothing (both rule sets number from 1), and a name alone neither (a named
//! rule may have changed its match). The counts of old rules that match no new one stay
//! theirs: reported once, as the previous rules' ([`previous_rules`]), and still in the
//! totals. Not carried, as in a reload: the rate limiter's state (each rule's record budget
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
    base::text::escape,
    configure::loader::{AttachMode, AttachedMode, Firewall, ifindex_of},
    instance::description::{Meta, MetaRule},
    instance::pins::{self, Claim, Found},
};

/// Which old slot goes to which new slot, per map.
#[derive(Debug, Default)]
pub struct SlotMap {
    /// `COUNTERS`' one slot, or nothing when the new program shares the old one's map.
    pub counters: Vec<(u32, u32)>,
    pub rules: Vec<(u32, u32)>,
    pub interfaces: Vec<(u32, u32)>,
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

    /// For a reload: the rules as in a takeover, and neither `COUNTERS` nor
    /// `INTERFACE_COUNTERS`, which the new program shares with the old one (so they go on
    /// exactly, with no copy).
    pub fn for_reload(old: &Meta, rules: &[MetaRule]) -> SlotMap {
        let mut map = Self::build(Some(old), rules, &[]);
        map.counters.clear();
        map.interfaces.clear();
        map
    }

    fn build(old: Option<&Meta>, rules: &[MetaRule], interfaces: &[String]) -> SlotMap {
        let mut map = SlotMap {
            counters: vec![(0, 0)],
            rules: vec![(0, 0)],
            interfaces: vec![(MAX_INTERFACES as u32, MAX_INTERFACES as u32)],
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
        for (old_slot, old_if) in old.interfaces.iter().enumerate().take(MAX_INTERFACES) {
            if let Some(new_slot) = interfaces.iter().position(|n| *n == old_if.name) {
                map.interfaces.push((old_slot as u32, new_slot as u32));
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
    old: [(&'static str, Map); 3],
    /// The old program's `RULE_EXTRA` (monitor and limit rules), and its values at the
    /// copy; absent from a firewall an older build loaded.
    old_extra: Option<(Map, Vec<Vec<RuleExtraCounters>>)>,
    slots: SlotMap,
    before: Values,
    /// The old firewall's totals at the copy.
    pub old_totals: Counters,
}

/// Per map, per (old slot), the per-CPU values.
struct Values {
    counters: Vec<Vec<Counters>>,
    rules: Vec<Vec<RuleCounters>>,
    interfaces: Vec<Vec<InterfaceCounters>>,
}

const MAPS: [&str; 3] = ["COUNTERS", "RULE_COUNTERS", "INTERFACE_COUNTERS"];

fn old_slots(slots: &SlotMap, index: usize) -> Vec<(u32, u32)> {
    match index {
        0 => slots.counters.clone(),
        1 => slots.rules.clone(),
        _ => slots.interfaces.clone(),
    }
}

fn read<T: Pod>(map: &Map, slots: &[(u32, u32)]) -> Result<Vec<Vec<T>>> {
    let array: PerCpuArray<_, T> = PerCpuArray::try_from(map)?;
    slots
        .iter()
        .map(|(old, _)| Ok(array.get(old, 0)?.iter().copied().collect()))
        .collect()
}

fn read_all(old: &[(&str, Map); 3], slots: &SlotMap) -> Result<Values> {
    Ok(Values {
        counters: read(&old[0].1, &old_slots(slots, 0))?,
        rules: read(&old[1].1, &old_slots(slots, 1))?,
        interfaces: read(&old[2].1, &old_slots(slots, 2))?,
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
    for (index, name) in MAPS.iter().enumerate() {
        let map = firewall
            .map_mut(name)
            .with_context(|| format!("the object has no {name} map"))?;
        let pairs = old_slots(slots, index);
        match index {
            0 => add(
                map,
                counters::KERNEL,
                &pairs,
                &plus.counters,
                minus.map(|m| m.counters.as_slice()),
            ),
            1 => add(
                map,
                counters::RULE,
                &pairs,
                &plus.rules,
                minus.map(|m| m.rules.as_slice()),
            ),
            _ => add(
                map,
                counters::INTERFACE,
                &pairs,
                &plus.interfaces,
                minus.map(|m| m.interfaces.as_slice()),
            ),
        }
        .with_context(|| format!("carrying {name} over"))?;
    }
    Ok(())
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

/// The old firewall's totals: its one slot of `COUNTERS`, summed over CPUs.
fn totals(values: &Values) -> Counters {
    let mut total = Counters::default();
    for cpu in values.counters.first().into_iter().flatten() {
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
    let old = [open(MAPS[0])?, open(MAPS[1])?, open(MAPS[2])?];
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
    let previous: Vec<Vec<RuleCounters>> = read(&carried.old[1].1, &unmatched)?;
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
        .map_mut(MAPS[0])
        .with_context(|| format!("the object has no {} map", MAPS[0]))?;
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
mod tests {
    use super::*;
    use crate::instance::description::MetaInterface;

    fn rule(id: u32, name: &str, conditions: &str) -> MetaRule {
        MetaRule {
            id,
            name: name.into(),
            action: crate::configure::rules::Action::Drop,
            conditions: conditions.into(),
            log: false,
            rate: crate::configure::rules::Rate::UNLIMITED,
            written: None,
            mode: crate::configure::rules::limit::Mode::Enforce,
            limit: None,
        }
    }

    fn old_instance(rules: Vec<MetaRule>) -> Meta {
        Meta {
            pid: 1,
            pid_start: 1,
            started_unix: 0,
            version: "test".into(),
            interfaces: ["fw0", "fw1"]
                .iter()
                .enumerate()
                .map(|(i, n)| MetaInterface {
                    name: (*n).into(),
                    ifindex: i as u32 + 2,
                    mode: AttachedMode::Native,
                })
                .collect(),
            transport: crate::configure::loader::Transport::RingBuf,
            default_action: crate::configure::rules::Action::Pass,
            rules,
            sets: Vec::new(),
            reload: Default::default(),
        }
    }

    /// Was `slots_match_rules_by_name_then_id_and_interfaces_by_name`: a rule with the old
    /// one's id but another match took its counts (issue 15, point 4). Now only the same
    /// rule (name and match) does, in a takeover and a reload alike.
    #[test]
    fn slots_match_rules_by_name_and_match_and_interfaces_by_name() {
        let old = old_instance(vec![
            rule(1, "a", "udp and dst port 1"),
            rule(2, "b", "udp and dst port 2"),
            rule(3, "gone", "udp and dst port 3"),
            rule(4, "named", "udp and dst port 4"),
        ]);
        let new_rules = vec![
            rule(5, "b", "udp and dst port 2"),
            // Id 1 again, another rule: not "a".
            rule(1, "c", "udp and dst port 1"),
            // The name stays, the match changed: another rule.
            rule(2, "named", "udp and dst port 5"),
        ];
        let slots = SlotMap::new(Some(&old), &new_rules, &["fw1".to_string()]);
        // Default to default; "b" (old slot 2) to new slot 1; nothing else.
        assert_eq!(slots.rules, vec![(0, 0), (2, 1)]);
        assert_eq!(slots.unmatched_rules, vec![1, 3, 4]);
        let other = MAX_INTERFACES as u32;
        assert_eq!(slots.interfaces, vec![(other, other), (1, 0)]);
        let reload = SlotMap::for_reload(&old, &new_rules);
        assert_eq!(reload.rules, vec![(0, 0), (2, 1)]);
        assert_eq!(reload.unmatched_rules, vec![1, 3, 4]);
        assert!(reload.counters.is_empty() && reload.interfaces.is_empty());
        // Another action is another rule too.
        let mut passing = rule(5, "b", "udp and dst port 2");
        passing.action = crate::configure::rules::Action::Pass;
        let slots = SlotMap::new(Some(&old), &[passing], &[]);
        assert_eq!(slots.rules, vec![(0, 0)]);
        let none = SlotMap::new(None, &new_rules, &[]);
        assert_eq!(
            (none.rules, none.interfaces),
            (vec![(0, 0)], vec![(other, other)])
        );
    }

    #[test]
    fn two_old_rules_of_one_name_and_match_go_to_two_new_ones_not_one() {
        let old = old_instance(vec![rule(1, "x", "udp"), rule(2, "x", "udp")]);
        let slots = SlotMap::new(Some(&old), &[rule(1, "x", "udp")], &[]);
        assert_eq!(slots.rules, vec![(0, 0), (1, 1)]);
        assert_eq!(slots.unmatched_rules, vec![2]);
    }

    /// A rule without a direction is a kernel rule per direction, each with its own
    /// conditions: each takes its own old counts, wherever the rule moved; a rule that now
    /// has one direction takes only that direction's.
    #[test]
    fn each_direction_of_a_rule_takes_its_own_old_counts() {
        use crate::configure::rules::{Rate, RuleSet};
        use crate::instance::description::rules_of;
        let described =
            |toml: &str| rules_of(&RuleSet::from_toml(toml, "t").unwrap(), Rate::UNLIMITED);
        let dns = "[[rule]]\nname = \"dns\"\naction = \"drop\"\nprotocol = \"udp\"\nport = 53\n";
        let ssh = "[[rule]]\nname = \"ssh\"\naction = \"pass\"\nprotocol = \"tcp\"\n";
        let old = old_instance(described(&format!("{dns}{ssh}")));
        assert_eq!(old.rules.len(), 3);
        let moved = described(&format!("{ssh}{dns}"));
        let slots = SlotMap::for_reload(&old, &moved);
        assert_eq!(slots.rules, vec![(0, 0), (1, 2), (2, 3), (3, 1)]);
        assert!(slots.unmatched_rules.is_empty());
        let source_only = described(&dns.replace("port = 53", "src_port = 53"));
        let slots = SlotMap::for_reload(&old, &source_only);
        assert_eq!(slots.rules, vec![(0, 0), (1, 1)]);
        assert_eq!(slots.unmatched_rules, vec![2, 3]);
    }

    #[test]
    fn the_previous_rules_counts_are_named_once_with_their_match() {
        let old = old_instance(vec![
            rule(1, "drop udp dst port 7001", "udp and dst port 7001"),
            rule(2, "idle", "udp"),
        ]);
        let said = previous_rules(&old, &[(1, 53_654), (2, 0)]).expect("a rule had hits");
        assert!(
            said.contains(
                "rule 1 \"drop udp dst port 7001\" (drop udp and dst port 7001): 53654 hits"
            ) && !said.contains("idle"),
            "{said}"
        );
        assert_eq!(previous_rules(&old, &[(2, 0)]), None);
    }
}
