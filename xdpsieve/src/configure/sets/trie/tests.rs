//! The trie against a reference model: membership by scanning every prefix.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use xdpsieve_testkit::rng::Rng;

use super::*;

fn model(entries: &[(u32, TriePrefix)], addr: IpAddr) -> u64 {
    let host = TriePrefix::new(addr, 128);
    entries
        .iter()
        .filter(|(_, p)| p.covers(&host))
        .fold(0, |m, (s, _)| m | 1 << s)
}

/// Addresses near the prefixes (first, last, inside, just outside) and random ones.
fn probes(entries: &[(u32, TriePrefix)], rng: &mut Rng) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for (_, p) in entries {
        let bits = if p.v6 { 128 } else { 32 };
        let base = if p.v6 {
            u128::from_be_bytes(p.bytes)
        } else {
            u128::from(u32::from_be_bytes([
                p.bytes[0], p.bytes[1], p.bytes[2], p.bytes[3],
            ]))
        };
        let span = if p.len == 0 {
            u128::MAX >> (128 - bits)
        } else {
            (1u128 << (bits - u32::from(p.len))) - 1
        };
        let mut push = |v: u128| {
            out.push(if p.v6 {
                IpAddr::V6(Ipv6Addr::from(v))
            } else {
                IpAddr::V4(Ipv4Addr::from(v as u32))
            });
        };
        push(base);
        push(base.wrapping_add(span) & (u128::MAX >> (128 - bits)));
        push(base.wrapping_sub(1) & (u128::MAX >> (128 - bits)));
        push(base.wrapping_add(span).wrapping_add(1) & (u128::MAX >> (128 - bits)));
        push(base | (u128::from(rng.next_u64()) & span));
    }
    for _ in 0..1000 {
        out.push(IpAddr::V4(Ipv4Addr::from(rng.next_u64() as u32)));
        out.push(IpAddr::V6(Ipv6Addr::from(
            (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64()),
        )));
    }
    out
}

/// Random prefixes clustered so that they overlap: under a few /8s (IPv4) or /16s (IPv6).
fn random_entries(rng: &mut Rng, n: usize, sets: u32) -> Vec<(u32, TriePrefix)> {
    (0..n)
        .map(|_| {
            let set = rng.below(u64::from(sets)) as u32;
            let p = if rng.below(3) == 0 {
                let hi = 0x2001_0db8_0000_0000u128 + (rng.below(4) << 32) as u128;
                let addr = (hi << 64) | (u128::from(rng.next_u64()) << 40);
                TriePrefix::new(IpAddr::V6(Ipv6Addr::from(addr)), rng.below(129) as u8)
            } else {
                let addr = (198u32 << 24)
                    | ((rng.below(4) as u32) << 16)
                    | (rng.next_u64() as u32 & 0xffff);
                TriePrefix::new(IpAddr::V4(Ipv4Addr::from(addr)), 8 + rng.below(25) as u8)
            };
            (set, p)
        })
        .collect()
}

fn v4(s: &str) -> TriePrefix {
    let (a, l) = s.split_once('/').unwrap();
    TriePrefix::new(a.parse().unwrap(), l.parse().unwrap())
}

#[test]
fn lookups_equal_the_model_on_random_overlapping_sets() {
    let mut rng = Rng::new(0x5eed_1234);
    for round in 0..20 {
        let entries = random_entries(&mut rng, 300, 1 + round % 5);
        let trie = Trie::build(&entries).unwrap();
        for addr in probes(&entries, &mut rng) {
            assert_eq!(
                trie.lookup(addr),
                model(&entries, addr),
                "{addr} round {round}"
            );
        }
    }
}

#[test]
fn edges_zero_and_host_prefixes() {
    let entries = vec![
        (0, v4("0.0.0.0/0")),
        (1, TriePrefix::new("2001:db8::1".parse().unwrap(), 128)),
        (2, v4("203.0.113.7/32")),
        (3, v4("198.51.100.0/24")),
        (3, v4("198.51.100.128/25")),
        (4, TriePrefix::new("::".parse().unwrap(), 0)),
    ];
    let trie = Trie::build(&entries).unwrap();
    let at = |a: &str| trie.lookup(a.parse().unwrap());
    assert_eq!(at("192.0.2.1"), 1);
    assert_eq!(at("203.0.113.7"), 1 | 4);
    assert_eq!(at("203.0.113.6"), 1);
    assert_eq!(at("198.51.100.0"), 1 | 8);
    assert_eq!(at("198.51.100.255"), 1 | 8);
    assert_eq!(at("198.51.101.0"), 1);
    assert_eq!(at("2001:db8::1"), 2 | 16);
    assert_eq!(at("2001:db8::2"), 16);
    // A longer prefix inside a shorter one of the same set costs no group.
    let nested = Trie::build(&[(0, v4("198.51.0.0/16")), (0, v4("198.51.100.7/32"))]).unwrap();
    assert_eq!(nested.groups_used(), FIRST_GROUP);
}

/// Applies `f` to a [`Change`] of `trie` as if it were in force (its groups as the base,
/// in a map of `capacity` groups), writes the change into a copy and returns the new trie.
fn changed(
    trie: &Trie,
    capacity: usize,
    floor: u32,
    f: impl FnOnce(&mut Change<'_>) -> Result<(), TrieError>,
) -> Result<(Vec<SetGroup>, Vec<u64>, change::Space), TrieError> {
    let mut nodes = trie.groups().to_vec();
    nodes.resize(capacity, SetGroup { entries: [0; 256] });
    let mut head = 0;
    for &id in trie.free_groups() {
        nodes[id as usize].entries[0] = head;
        nodes[id as usize].entries[1] = xdpsieve_common::sets::FREE_GROUP;
        head = id;
    }
    let space = change::Space {
        groups_used: trie.groups_used(),
        groups_high: trie.groups().len() as u32,
        free_head: head,
    };
    let mut change = Change::of(&nodes, trie.class_masks(), space, floor);
    f(&mut change)?;
    let mut change = change.prepared();
    let masks = change.class_masks().to_vec();
    let mut ok = || Ok(());
    change.write_groups(&mut nodes, &mut ok).unwrap();
    change.publish(&mut nodes, &mut ok).unwrap();
    let space = change.reclaim(&mut nodes, &mut ok).unwrap();
    Ok((nodes, masks, space))
}

#[test]
fn removal_repaints_what_the_set_still_holds() {
    let mut rng = Rng::new(0xdead_beef);
    for _ in 0..20 {
        let mut entries = random_entries(&mut rng, 200, 3);
        let trie = Trie::build(&entries).unwrap();
        let mut gone_all = Vec::new();
        for _ in 0..50 {
            let k = rng.below(entries.len() as u64) as usize;
            gone_all.push(entries.swap_remove(k));
        }
        // All 50 removals in one change, each seeing what the set still holds then.
        let (nodes, masks, _) = changed(&trie, trie.groups().len() + 4096, 0, |change| {
            let mut held = entries.clone();
            held.extend(gone_all.iter().copied());
            for (set, gone) in &gone_all {
                let at = held.iter().position(|e| e == &(*set, *gone)).unwrap();
                held.swap_remove(at);
                let remaining: Vec<TriePrefix> = held
                    .iter()
                    .filter(|(s, p)| s == set && (p.covers(gone) || gone.covers(p)))
                    .map(|(_, p)| *p)
                    .collect();
                change.remove(*set, gone, &remaining)?;
            }
            Ok(())
        })
        .unwrap();
        for addr in probes(&entries, &mut rng) {
            assert_eq!(
                lookup(nodes.as_slice(), &masks, addr),
                model(&entries, addr),
                "{addr}"
            );
        }
    }
}

#[test]
fn a_change_that_does_not_fit_writes_nothing() {
    let built = Trie::build(&[(0, v4("198.51.100.0/24"))]).unwrap();
    let capacity = built.groups().len();
    let error = changed(&built, capacity, 0, |c| c.add(1, &v4("203.0.113.7/32"))).unwrap_err();
    assert!(matches!(error, TrieError::GroupsFull { .. }));
    // A change of the existing groups fits with room for one copy (the group it changes
    // is copied, and the old one freed once the copy is in force).
    let (nodes, masks, space) = changed(&built, capacity + 1, 0, |c| {
        c.add(1, &v4("198.51.100.0/24"))
    })
    .unwrap();
    assert_eq!(space.groups_used, built.groups_used());
    assert_eq!(
        lookup(nodes.as_slice(), &masks, "198.51.100.1".parse().unwrap()),
        3
    );
    assert_eq!(
        lookup(nodes.as_slice(), &masks, "203.0.113.7".parse().unwrap()),
        0
    );
    // Room kept for removals: an add may not take the last groups, a removal may.
    let two = Trie::build(&[(0, v4("198.51.100.7/32"))]).unwrap();
    let capacity = two.groups().len() + 2;
    let error = changed(&two, capacity, 1, |c| c.add(0, &v4("203.0.113.7/32"))).unwrap_err();
    assert!(matches!(error, TrieError::GroupsFull { .. }));
    changed(&two, capacity, 0, |c| c.add(0, &v4("203.0.113.7/32"))).unwrap();
}

#[test]
fn new_classes_are_numbered_after_those_in_force() {
    let mut change = Change::building(&[0]);
    change.add(2, &v4("192.0.2.0/24")).unwrap();
    change.add(5, &v4("192.0.2.128/25")).unwrap();
    let made: Vec<(u32, u64)> = change.new_classes().collect();
    assert_eq!(made, vec![(1, 4), (2, 4 | 32)]);
}

#[test]
fn groups_whose_entries_are_all_alike_are_folded_and_freed() {
    // 256 /32s filling a /24 fold into one entry of the /16's group; removing them frees
    // every group they took.
    let all: Vec<(u32, TriePrefix)> = (0..256)
        .map(|i| (0, v4(&format!("198.51.100.{i}/32"))))
        .collect();
    let trie = Trie::build(&all[..255]).unwrap();
    assert_eq!(trie.groups_used(), FIRST_GROUP + 2);
    let (nodes, masks, space) = changed(&trie, trie.groups().len() + 16, 0, |c| {
        c.add(0, &all[255].1)
    })
    .unwrap();
    assert_eq!(
        space.groups_used,
        FIRST_GROUP + 1,
        "the /24 is one entry now"
    );
    assert_eq!(
        lookup(nodes.as_slice(), &masks, "198.51.100.77".parse().unwrap()),
        1
    );
    let (_, _, space) = changed(&trie, trie.groups().len() + 16, 0, |c| {
        for (i, (_, p)) in all[..255].iter().enumerate() {
            let rest: Vec<TriePrefix> = all[i + 1..255].iter().map(|(_, q)| *q).collect();
            c.remove(0, p, &rest)?;
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(space.groups_used, FIRST_GROUP);
}

#[test]
fn a_change_leaves_the_trie_in_force_untouched_until_it_is_published() {
    let entries: Vec<(u32, TriePrefix)> = (0..2000u32)
        .map(|i| {
            (
                0,
                TriePrefix::new(IpAddr::V4(Ipv4Addr::from(0xc000_0000 | (i * 7919))), 32),
            )
        })
        .chain(std::iter::once((0, v4("192.0.2.53/32"))))
        .collect();
    let trie = Trie::build(&entries).unwrap();
    let mut nodes = trie.groups().to_vec();
    nodes.resize(trie.groups().len() + 8192, SetGroup { entries: [0; 256] });
    let before = nodes.clone();
    let space = change::Space {
        groups_used: trie.groups_used(),
        groups_high: trie.groups().len() as u32,
        free_head: 0,
    };
    let mut change = Change::of(&nodes, trie.class_masks(), space, 0);
    change.add(0, &v4("192.0.0.0/8")).unwrap();
    let rest: Vec<TriePrefix> = entries.iter().map(|(_, p)| *p).collect();
    change.remove(0, &v4("192.0.0.0/8"), &rest).unwrap();
    assert!(change.has_garbage());
    let change = change.prepared();
    assert_eq!(nodes, before, "computing a change writes nothing");
    let mut count = 0;
    let mut counting = || {
        count += 1;
        Ok(())
    };
    change.write_groups(&mut nodes, &mut counting).unwrap();
    // Only groups nothing reaches were written: every lookup is as before.
    for (_, p) in &entries {
        assert_eq!(lookup(nodes.as_slice(), trie.class_masks(), p.addr()), 1);
    }
    assert!(count > 0);
}
