//! Slot maps and carrying counters over, and the counter maps of a firewall an older build
//! loaded (one `COUNTERS` slot for the totals, `INTERFACE_COUNTERS` beside), as a takeover
//! and `status` read them.

use std::os::fd::AsFd as _;

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
    // Old fw1 (slot 1) to new slot 0; fw0 and the empty slots to the other interfaces'.
    let counters: Vec<(u32, u32)> = (0..=other)
        .map(|old| (old, if old == 1 { 0 } else { other }))
        .collect();
    assert_eq!(slots.counters, counters);
    let reload = SlotMap::for_reload(&old, &new_rules);
    assert_eq!(reload.rules, vec![(0, 0), (2, 1)]);
    assert_eq!(reload.unmatched_rules, vec![1, 3, 4]);
    assert!(reload.counters.is_empty());
    // Another action is another rule too.
    let mut passing = rule(5, "b", "udp and dst port 2");
    passing.action = crate::configure::rules::Action::Pass;
    let slots = SlotMap::new(Some(&old), &[passing], &[]);
    assert_eq!(slots.rules, vec![(0, 0)]);
    let none = SlotMap::new(None, &new_rules, &[]);
    assert_eq!(
        (none.rules, none.counters),
        (vec![(0, 0)], (0..=other).map(|old| (old, other)).collect())
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
    let described = |toml: &str| rules_of(&RuleSet::from_toml(toml, "t").unwrap(), Rate::UNLIMITED);
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
        said.contains("rule 1 \"drop udp dst port 7001\" (drop udp and dst port 7001): 53654 hits")
            && !said.contains("idle"),
        "{said}"
    );
    assert_eq!(previous_rules(&old, &[(2, 0)]), None);
}

/// A standalone per-CPU array holding `values` (slot, per-CPU values), as a map of the
/// old program would.
fn per_cpu_map<T: Pod + Default>(slots: u32, values: &[(u32, Vec<T>)]) -> Map {
    let mut array = PerCpuArray::<MapData, T>::create(slots, 0).expect("creating a map");
    for (slot, cpus) in values {
        let values = PerCpuValues::try_from(cpus.clone()).expect("one value per CPU");
        array.set(*slot, values, 0).expect("writing the map");
    }
    // A second descriptor of the same map, as `Map` (aya gives no way back from the typed
    // handle).
    let fd = aya::maps::IterableMap::map(&array)
        .fd()
        .as_fd()
        .try_clone_to_owned()
        .expect("duplicating the descriptor");
    Map::PerCpuArray(MapData::from_fd(fd).expect("opening the map"))
}

fn cpus() -> usize {
    aya::util::nr_cpus().expect("counting the CPUs")
}

/// A firewall an older build loaded kept its totals in a one-slot `COUNTERS` and its
/// interfaces' counts in `INTERFACE_COUNTERS`. Carried into this build's per-interface
/// slots, the slots sum to the old totals field by field and CPU by CPU, an interface
/// the new firewall serves keeps its counts, and one it does not goes to the slot for
/// other interfaces.
#[test]
fn an_older_builds_counters_carry_over_whole() {
    if !xdpsieve_testkit::gate::root_or_skip() {
        return;
    }
    let n = cpus();
    let other = MAX_INTERFACES as u32;
    let iface = |k: u64| InterfaceCounters {
        packets: 10 * k,
        bytes: 1000 * k,
        passed: 4 * k,
        dropped: 6 * k,
        captured: 5 * k,
        capture_lost: k,
        rate_limited: 2 * k,
        sampled_out: 3 * k,
    };
    // fw0 (slot 0), fw1 (slot 1) and other interfaces, differently on each CPU; the totals
    // hold their sum plus what only the totals count.
    let per_cpu = |base: u64| (0..n as u64).map(|c| iface(base + c)).collect::<Vec<_>>();
    let interfaces = vec![(0, per_cpu(1)), (1, per_cpu(7)), (other, per_cpu(20))];
    let totals: Vec<Counters> = (0..n)
        .map(|c| {
            let mut t = Counters {
                malformed: 3,
                events: 11 + c as u64,
                bytes_dropped: 99,
                ..Counters::default()
            };
            for (_, cpus) in &interfaces {
                counters::add(counters::KERNEL, &mut t, &Counters::from(&cpus[c]));
            }
            t
        })
        .collect();
    let old = OldCounters::Older {
        totals: per_cpu_map(1, &[(0, totals.clone())]),
        interfaces: per_cpu_map(other + 1, &interfaces),
    };
    let slots = SlotMap::new(Some(&old_instance(Vec::new())), &[], &["fw1".to_string()]);
    let values = read_counters(&old, &slots.counters).expect("reading the old maps");
    assert_eq!(values.len(), slots.counters.len());
    for (c, total) in totals.iter().enumerate() {
        let mut sum = Counters::default();
        for pair in &values {
            counters::add(counters::KERNEL, &mut sum, &pair[c]);
        }
        assert_eq!(
            sum, *total,
            "CPU {c}: the slots do not sum to the old totals"
        );
    }
    // fw1 (old slot 1) goes to new slot 0 with its counts, as they were.
    let fw1 = slots
        .counters
        .iter()
        .position(|&p| p == (1, 0))
        .expect("fw1");
    for (carried, was) in values[fw1].iter().zip(&interfaces[1].1) {
        assert_eq!(InterfaceCounters::from(carried), *was);
    }
    // fw0 is not served any more: its counts go to the other interfaces' slot.
    assert!(slots.counters.contains(&(0, other)));
}

/// `status` of a firewall an older build loaded: the totals from its one `COUNTERS` slot,
/// the interfaces from its `INTERFACE_COUNTERS`; of this build's, both from the slots. The
/// same firewall both ways: fw0 dropped 5 packets, another interface 3, one was malformed.
#[test]
fn status_reads_either_layout() {
    if !xdpsieve_testkit::gate::root_or_skip() {
        return;
    }
    let n = cpus();
    let other = MAX_INTERFACES as u32;
    let names = ["fw0".to_string()];
    let rules = per_cpu_map::<RuleCounters>(2, &[]);
    let dropped = |k: u64| InterfaceCounters {
        packets: k,
        dropped: k,
        ..InterfaceCounters::default()
    };
    let (fw0, elsewhere) = (dropped(5), dropped(3));
    let totals = Counters {
        seen: 8,
        dropped: 8,
        malformed: 1,
        ..Counters::default()
    };
    // Each value on the first CPU, zero on the others.
    fn on_first<T: Clone + Default>(v: T, n: usize) -> Vec<T> {
        let mut cpus = vec![v];
        cpus.resize(n, T::default());
        cpus
    }
    let read = |counters: &Map, interfaces: Option<&Map>| {
        let maps = snapshot::CounterMaps {
            counters,
            rules: &rules,
            interfaces,
            rule_extra: None,
            limit_state: None,
        };
        snapshot::read_snapshot(&maps, 1, &names, 0).expect("reading")
    };
    // Read as this build's slots, the older one-slot map would put all 8 on fw0.
    let older = read(
        &per_cpu_map(1, &[(0, on_first(totals, n))]),
        Some(&per_cpu_map(
            other + 1,
            &[(0, on_first(fw0, n)), (other, on_first(elsewhere, n))],
        )),
    );
    let mut fw0_slot = Counters::from(&fw0);
    fw0_slot.malformed = 1;
    let current = read(
        &per_cpu_map(
            other + 1,
            &[
                (0, on_first(fw0_slot, n)),
                (other, on_first(Counters::from(&elsewhere), n)),
            ],
        ),
        None,
    );
    for snap in [older, current] {
        assert_eq!(snap.counters, totals);
        assert_eq!(
            snap.interfaces,
            vec![("fw0".to_string(), fw0), ("other".to_string(), elsewhere)]
        );
    }
}
