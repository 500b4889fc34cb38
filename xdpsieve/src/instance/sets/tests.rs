//! The editor on real kernel maps (standalone arrays made like the program's, mmapped the
//! same way), checked against a reference model: after every change, the trie answers
//! every probe address as a scan of the entry table does, every class the trie uses is in
//! `SET_CLASSES` with the rules it should allow, and a refused change leaves the maps
//! byte for byte as they were. Needs root (skipped otherwise).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use aya::maps::{Array, MapData};
use xdpsieve_common::{
    RuleBits, SetClass, SetEntry, SetGroup, SetMeta,
    sets::{
        ENTRY_FILE, ENTRY_FREE, FIRST_GROUP, FREE_GROUP, GROUP_ENTRIES, MAX_CLASSES, MAX_SETS,
        MMAPABLE, POINTER,
    },
};
use xdpsieve_testkit::rng::Rng;

use super::{Generation, commit::Editor, text::parse_exact};
use crate::configure::sets::{
    kernel::{Built, Mapped, class_rules, entry_prefix, new_entry},
    trie::{TriePrefix, lookup},
};

pub(crate) fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A standalone array, reopened as MapData (through a pin) so it can be mmapped.
fn array<V: aya::Pod>(name: &str, entries: u32, flags: u32) -> MapData {
    // A pin of its own per call: the tests of this process run in parallel and ask for
    // the same names, and a shared path let one test remove another's pin before it was
    // reopened (`BPF_OBJ_GET`: not found), or reopen the other's map.
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let map = Array::<MapData, V>::create(entries, flags).expect("creating a map");
    let dir = std::path::Path::new("/sys/fs/bpf");
    let pin = dir.join(format!(
        "xdpsieve-live-test-{}-{call}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&pin);
    map.pin(&pin).expect("pinning");
    let data = MapData::from_pin(&pin).expect("reopening");
    let _ = std::fs::remove_file(&pin);
    data
}

/// Rules: rule `s` names set `s` as its source (rule 63: no source condition).
fn set_rules() -> Vec<SetClass> {
    let mut rules = vec![
        SetClass {
            src: RuleBits::EMPTY,
            dst: RuleBits::EMPTY
        };
        MAX_SETS as usize + 1
    ];
    for (s, r) in rules.iter_mut().enumerate().take(8) {
        r.src.words[0] = 1 << s;
    }
    rules[MAX_SETS as usize].src.words[0] = 1 << 63;
    rules
}

/// A generation with `file` entries, in maps of `groups` and `slots` capacity.
pub(crate) fn generation_of(file: &[(u16, &str)], groups: u32, slots: u32) -> Generation {
    let entries: Vec<SetEntry> = file
        .iter()
        .map(|(s, p)| new_entry(*s, &parse_exact(p).unwrap(), ENTRY_FILE, 0))
        .collect();
    let built = Built::new(entries, set_rules()).unwrap();
    let nodes_data = array::<SetGroup>("nodes", groups, MMAPABLE);
    let entries_data = array::<SetEntry>("entries", slots, MMAPABLE);
    let mut nodes = Mapped::<SetGroup>::new(&nodes_data, "SET_NODES").unwrap();
    let free_head = built.write_groups(nodes.as_mut_slice());
    let mut table = Mapped::<SetEntry>::new(&entries_data, "SET_ENTRIES").unwrap();
    table.as_mut_slice()[..built.entries.len()].copy_from_slice(&built.entries);
    let mut classes: Array<MapData, SetClass> =
        Array::try_from(aya::maps::Map::Array(array::<SetClass>(
            "classes",
            MAX_CLASSES,
            0,
        )))
        .unwrap();
    let masks = built.trie.class_masks();
    for (id, &m) in masks.iter().enumerate() {
        classes
            .set(id as u32, class_rules(m, &built.rules), 0)
            .unwrap();
    }
    let mut meta_map: Array<MapData, SetMeta> =
        Array::try_from(aya::maps::Map::Array(array::<SetMeta>("meta", 1, 0))).unwrap();
    let meta = built.meta(free_head);
    meta_map.set(0, meta, 0).unwrap();
    Generation {
        nodes,
        entries: table,
        classes,
        rules: built.rules.clone(),
        meta_map,
        meta,
        meta_id: 0,
        memory_bytes: 0,
    }
}

/// The model: what the entry table says, by scanning it.
fn model(generation: &Generation, addr: IpAddr) -> u64 {
    let host = TriePrefix::new(addr, 128);
    generation
        .used_entries()
        .iter()
        .filter(|e| e.state != ENTRY_FREE && entry_prefix(e).covers(&host))
        .fold(0, |m, e| m | 1 << e.set)
}

fn probes(generation: &Generation, rng: &mut Rng, limit: usize) -> Vec<IpAddr> {
    let mut out = Vec::new();
    let used = generation.used_entries();
    let step = used.len().div_ceil(limit).max(1);
    for e in used.iter().step_by(step) {
        if e.state == ENTRY_FREE {
            continue;
        }
        let p = entry_prefix(e);
        let bits = if p.v6 { 128 } else { 32 };
        let all = u128::MAX >> (128 - bits);
        let base = if p.v6 {
            u128::from_be_bytes(p.bytes)
        } else {
            u128::from(u32::from_be_bytes([
                p.bytes[0], p.bytes[1], p.bytes[2], p.bytes[3],
            ]))
        };
        let span = if p.len == 0 {
            all
        } else {
            (1u128 << (bits - u32::from(p.len))) - 1
        };
        for v in [
            base,
            base.wrapping_add(span) & all,
            base.wrapping_sub(1) & all,
            base.wrapping_add(span).wrapping_add(1) & all,
            base | (u128::from(rng.next_u64()) & span),
        ] {
            out.push(if p.v6 {
                IpAddr::V6(Ipv6Addr::from(v))
            } else {
                IpAddr::V4(Ipv4Addr::from(v as u32))
            });
        }
    }
    for _ in 0..200 {
        out.push(IpAddr::V4(Ipv4Addr::from(
            0xc000_0200 | (rng.next_u64() as u32 & 0x3ff),
        )));
    }
    out
}

/// Checks the trie, the classes and the meta against the entry table.
fn check(generation: &mut Generation, rng: &mut Rng) {
    check_some(generation, rng, usize::MAX);
}

/// [`check`] probing around at most `limit` entries.
fn check_some(generation: &mut Generation, rng: &mut Rng, limit: usize) {
    let probes = probes(generation, rng, limit);
    let want: Vec<u64> = probes.iter().map(|a| model(generation, *a)).collect();
    let meta = generation.meta_map.get(&0, 0).unwrap();
    assert_eq!(meta, generation.meta);
    check_space(generation);
    let masks = meta.class_masks[..meta.classes_used as usize].to_vec();
    for (id, &m) in masks.iter().enumerate() {
        let class = generation.classes.get(&(id as u32), 0).unwrap();
        assert_eq!(
            class,
            class_rules(m, &generation.rules),
            "class {id} ({m:#x})"
        );
    }
    for (addr, want) in probes.iter().zip(want) {
        assert_eq!(
            lookup(generation.nodes.as_slice(), &masks, *addr),
            want,
            "{addr}"
        );
    }
}

/// The bookkeeping agrees with the maps: no change under way, the groups in use are those
/// the roots reach (each once), and the free list holds every other group below the
/// highest ever used, each marked free, none reachable.
fn check_space(generation: &Generation) {
    let meta = generation.meta;
    assert_eq!(meta.in_change, 0);
    let nodes = generation.nodes.as_slice();
    let mut reachable = vec![false; nodes.len()];
    let mut stack: Vec<u32> = (0..FIRST_GROUP as usize * GROUP_ENTRIES)
        .map(|slot| nodes[slot / GROUP_ENTRIES].entries[slot % GROUP_ENTRIES])
        .collect();
    let mut count = FIRST_GROUP;
    while let Some(e) = stack.pop() {
        if e & POINTER == 0 {
            continue;
        }
        let id = (e & !POINTER) as usize;
        assert!(!reachable[id], "group {id} reached twice");
        assert!(
            id < meta.groups_high as usize,
            "group {id} above the highest"
        );
        reachable[id] = true;
        count += 1;
        stack.extend(nodes[id].entries.iter().copied());
    }
    assert_eq!(meta.groups_used, count, "groups in use");
    let mut free = 0;
    let mut at = meta.free_head;
    while at != 0 {
        let g = &nodes[at as usize];
        assert!(!reachable[at as usize], "free group {at} is in use");
        assert_eq!(g.entries[1], FREE_GROUP, "free group {at} unmarked");
        free += 1;
        assert!(free <= meta.groups_high, "the free list loops");
        at = g.entries[0];
    }
    assert_eq!(
        free,
        meta.groups_high - meta.groups_used,
        "free list length"
    );
    let last = generation
        .entries
        .as_slice()
        .iter()
        .rposition(|e| e.state != ENTRY_FREE)
        .map_or(0, |p| p + 1);
    assert_eq!(meta.entries_used as usize, last, "entries_used");
}

/// The maps' contents; `SET_META.changes` left out (a refused change counts too).
fn snapshot(generation: &Generation) -> (Vec<SetGroup>, Vec<SetEntry>, SetMeta) {
    let mut meta = generation.meta_map.get(&0, 0).unwrap();
    meta.changes = 0;
    (
        generation.nodes.as_slice().to_vec(),
        generation.entries.as_slice().to_vec(),
        meta,
    )
}

fn prefixes(list: &[&str]) -> Vec<TriePrefix> {
    list.iter().map(|p| parse_exact(p).unwrap()).collect()
}

const FILE: [(u16, &str); 6] = [
    (0, "198.51.100.0/24"),
    (0, "198.51.100.128/25"),
    (0, "198.51.100.128/25"), // listed twice in its file
    (1, "198.51.0.0/16"),
    (1, "2001:db8::/32"),
    (2, "192.0.2.0/24"),
];

#[test]
fn changes_keep_trie_classes_and_entries_consistent() {
    if !root() {
        eprintln!("skipped: needs root");
        return;
    }
    let mut rng = Rng::new(0x5eed);
    let mut generation = generation_of(&FILE, FIRST_GROUP + 256, 4096);
    check(&mut generation, &mut rng);
    // Random adds (nested, overlapping, both families, timed), dels of what is there,
    // expiry, checked after every step.
    let mut clock = 1_000u64;
    for _ in 0..150 {
        let set = rng.below(4) as u16;
        let op = rng.below(4);
        let mine: Vec<TriePrefix> = generation
            .used_entries()
            .iter()
            .filter(|e| e.state != ENTRY_FREE && e.set == set)
            .map(entry_prefix)
            .collect();
        let mut editor = Editor::new(&mut generation).unwrap();
        match op {
            0 | 1 => {
                let text = if rng.below(3) == 0 {
                    format!("2001:db8:{:x}::/{}", rng.below(8), 33 + rng.below(96))
                } else {
                    format!(
                        "198.51.{}.{}/{}",
                        rng.below(4) + 99,
                        rng.below(256),
                        16 + rng.below(17)
                    )
                };
                let (p, _) = super::text::parse_masking(&text).unwrap();
                let expires = if rng.below(2) == 0 {
                    0
                } else {
                    clock + rng.below(5_000)
                };
                editor.add(set, "s", &[p], expires).unwrap();
            }
            2 => {
                if !mine.is_empty() {
                    let p = mine[rng.below(mine.len() as u64) as usize];
                    editor.remove(set, &[p], "s").unwrap();
                }
            }
            _ => {
                clock += rng.below(3_000);
                editor.expire(clock).unwrap();
            }
        }
        check(&mut generation, &mut rng);
    }
    // Flush: the set is gone from every address, the others stay.
    let mut editor = Editor::new(&mut generation).unwrap();
    editor.flush(0, "s").unwrap();
    check(&mut generation, &mut rng);
    assert!(
        generation
            .used_entries()
            .iter()
            .all(|e| e.state == ENTRY_FREE || e.set != 0)
    );
}

#[test]
fn refused_changes_change_nothing() {
    if !root() {
        eprintln!("skipped: needs root");
        return;
    }
    let mut rng = Rng::new(7);
    // Room for 2 more entries.
    let mut generation = generation_of(&FILE, FIRST_GROUP + 4, FILE.len() as u32 + 2);
    let before = snapshot(&generation);
    let mut editor = Editor::new(&mut generation).unwrap();
    let err = editor
        .add(
            0,
            "blocklist",
            &prefixes(&["203.0.113.1", "203.0.113.2", "203.0.113.3"]),
            0,
        )
        .unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("set table is full"), "{text}");
    assert!(text.contains("set blocklist was not changed"), "{text}");
    let err = editor
        .remove(
            0,
            &prefixes(&["198.51.100.0/24", "198.51.100.7"]),
            "blocklist",
        )
        .unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains("198.51.100.7/32 is not in set blocklist"),
        "{text}"
    );
    assert!(text.contains("covered by 198.51.100.0/24"), "{text}");
    assert_eq!(snapshot(&generation), before);
    // The trie has 4 spare groups: a /32 in a new /16 takes 2, so the third add does not
    // fit, and nothing at all is written, trie space included; each thing is said once.
    let mut small = generation_of(&FILE, FIRST_GROUP + 8, 64);
    let before = snapshot(&small);
    let mut editor = Editor::new(&mut small).unwrap();
    let many = prefixes(&["203.0.113.1", "192.0.2.200", "10.9.9.9"]);
    let err = editor.add(3, "bans", &many, 0).unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("set trie is full"), "{text}");
    assert_eq!(text.matches("not changed").count(), 1, "{text}");
    assert!(text.contains("set bans "), "{text}");
    assert!(!text.contains("set 3"), "{text}");
    assert_eq!(snapshot(&small), before, "groups, entries and bookkeeping");
    // What does fit still does: the refused change took no room.
    let mut editor = Editor::new(&mut small).unwrap();
    editor.add(3, "bans", &many[..2], 0).unwrap();
    check(&mut small, &mut rng);
}

#[test]
fn adding_what_is_there_renews_and_file_entries_stay() {
    if !root() {
        eprintln!("skipped: needs root");
        return;
    }
    let mut rng = Rng::new(9);
    let mut generation = generation_of(&FILE, FIRST_GROUP + 64, 256);
    let mut editor = Editor::new(&mut generation).unwrap();
    let first = editor
        .add(0, "s", &prefixes(&["203.0.113.5", "203.0.113.5"]), 100)
        .unwrap();
    assert_eq!((first.added, first.renewed, first.from_file), (1, 0, 0));
    let again = editor
        .add(0, "s", &prefixes(&["203.0.113.5", "198.51.100.0/24"]), 500)
        .unwrap();
    assert_eq!((again.added, again.renewed, again.from_file), (0, 1, 1));
    // Expiry at 200 removes nothing (renewed to 500), at 500 the runtime entry only.
    assert!(editor.expire(200).unwrap().is_empty());
    assert_eq!(editor.expire(500).unwrap().len(), 1);
    // A prefix listed twice in the file: removing it removes both entries.
    assert_eq!(
        editor
            .remove(0, &prefixes(&["198.51.100.128/25"]), "s")
            .unwrap(),
        1
    );
    check(&mut generation, &mut rng);
    let held: Vec<TriePrefix> = generation
        .used_entries()
        .iter()
        .filter(|e| e.state != ENTRY_FREE && e.set == 0)
        .map(entry_prefix)
        .collect();
    assert_eq!(held, prefixes(&["198.51.100.0/24"]));
}

#[test]
fn ten_thousand_adds_in_one_change() {
    if !root() {
        eprintln!("skipped: needs root");
        return;
    }
    // Scattered /32s: each in its own /16 takes two groups (2 KiB) of the trie.
    let mut generation = generation_of(&FILE, FIRST_GROUP + 25_000, 65536);
    let list: Vec<TriePrefix> = (0..10_000u32)
        .map(|i| {
            TriePrefix::new(
                IpAddr::V4(Ipv4Addr::from(
                    0xcb00_7100 ^ (i.wrapping_mul(2_654_435_761) & 0x00ff_ffff),
                )),
                32,
            )
        })
        .collect();
    let before = generation.meta.groups_used;
    let started = std::time::Instant::now();
    let mut editor = Editor::new(&mut generation).unwrap();
    let added = editor.add(5, "s", &list, 0).unwrap();
    let took = started.elapsed();
    let groups = generation.meta_map.get(&0, 0).unwrap().groups_used;
    eprintln!(
        "10,000 IPv4 /32 adds (scattered over a /8) in one change: {took:?}, trie groups \
         {before} -> {groups} (1 KiB each)"
    );
    assert_eq!(added.added, 10_000);
    let mut rng = Rng::new(3);
    check_some(&mut generation, &mut rng, 50);
    let started = std::time::Instant::now();
    let mut editor = Editor::new(&mut generation).unwrap();
    assert_eq!(editor.remove(5, &list, "s").unwrap(), 10_000);
    eprintln!("10,000 dels in one change: {:?}", started.elapsed());
    check_some(&mut generation, &mut rng, 50);
}

#[test]
fn runtime_entries_are_the_live_additions_not_yet_expired() {
    if !root() {
        eprintln!("skipped: needs root");
        return;
    }
    let mut generation = generation_of(&FILE, FIRST_GROUP + 64, 256);
    let now = super::boottime_ns();
    let mut editor = Editor::new(&mut generation).unwrap();
    editor
        .add(2, "s", &prefixes(&["203.0.113.7"]), now + 60_000_000_000)
        .unwrap();
    editor
        .add(1, "s", &prefixes(&["2001:db8:bad::/48"]), 0)
        .unwrap();
    editor
        .add(0, "s", &prefixes(&["203.0.113.8"]), now - 1)
        .unwrap(); // overdue
    let names: Vec<String> = ["ban", "blocklist", "other"].map(String::from).to_vec();
    let mut got = super::carry::runtime_entries(&generation, &names);
    got.sort_by(|a, b| a.set.cmp(&b.set));
    let shown: Vec<(String, String, bool)> = got
        .iter()
        .map(|e| {
            (
                e.set.clone(),
                super::text::show(&e.prefix),
                e.expires_ns != 0,
            )
        })
        .collect();
    assert_eq!(
        shown,
        vec![
            ("blocklist".into(), "2001:db8:bad::/48".into(), false),
            ("other".into(), "203.0.113.7/32".into(), true),
        ]
    );
}

mod crash;
