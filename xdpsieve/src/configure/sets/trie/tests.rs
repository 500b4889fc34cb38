//! The trie against a reference model: membership by scanning every prefix.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

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
            })
        };
        push(base);
        push(base.wrapping_add(span) & (u128::MAX >> (128 - bits)));
        push(base.wrapping_sub(1) & (u128::MAX >> (128 - bits)));
        push(base.wrapping_add(span).wrapping_add(1) & (u128::MAX >> (128 - bits)));
        push(base | (u128::from(rng.next()) & span));
    }
    for _ in 0..1000 {
        out.push(IpAddr::V4(Ipv4Addr::from(rng.next() as u32)));
        out.push(IpAddr::V6(Ipv6Addr::from(
            (u128::from(rng.next()) << 64) | u128::from(rng.next()),
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
                let addr = (hi << 64) | (u128::from(rng.next()) << 40);
                TriePrefix::new(IpAddr::V6(Ipv6Addr::from(addr)), rng.below(129) as u8)
            } else {
                let addr =
                    (198u32 << 24) | ((rng.below(4) as u32) << 16) | (rng.next() as u32 & 0xffff);
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
    let mut rng = Rng(0x5eed_1234);
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

#[test]
fn removal_repaints_what_the_set_still_holds() {
    let mut rng = Rng(0xdead_beef);
    for _ in 0..20 {
        let mut entries = random_entries(&mut rng, 200, 3);
        let mut trie = Trie::build(&entries).unwrap();
        for _ in 0..50 {
            let k = rng.below(entries.len() as u64) as usize;
            let (set, gone) = entries.swap_remove(k);
            let remaining: Vec<TriePrefix> = entries
                .iter()
                .filter(|(s, p)| *s == set && (p.covers(&gone) || gone.covers(p)))
                .map(|(_, p)| *p)
                .collect();
            trie.remove(set, &gone, &remaining, &mut |_, _| Ok(()))
                .unwrap();
        }
        for addr in probes(&entries, &mut rng) {
            assert_eq!(trie.lookup(addr), model(&entries, addr), "{addr}");
        }
    }
}

#[test]
fn a_change_that_does_not_fit_changes_nothing() {
    let built = Trie::build(&[(0, v4("198.51.100.0/24"))]).unwrap();
    let mut groups = built.groups().to_vec();
    let used = built.groups_used();
    let masks = built.class_masks().to_vec();
    let before = groups.clone();
    let mut trie = Trie::open(&mut groups, used, &masks);
    let error = trie
        .add(1, &v4("203.0.113.7/32"), &mut |_, _| Ok(()))
        .unwrap_err();
    assert!(matches!(
        error.downcast_ref::<TrieError>(),
        Some(TrieError::GroupsFull { .. })
    ));
    // A change within the existing groups fits.
    trie.add(1, &v4("198.51.100.0/24"), &mut |_, _| Ok(()))
        .unwrap();
    assert_eq!(trie.lookup("198.51.100.1".parse().unwrap()), 3);
    assert_eq!(trie.lookup("203.0.113.7".parse().unwrap()), 0);
    drop(trie);
    assert_ne!(groups, before);
}

#[test]
fn new_classes_are_announced_before_use() {
    let mut trie = Trie::new();
    let mut seen = Vec::new();
    trie.add(2, &v4("192.0.2.0/24"), &mut |id, mask| {
        seen.push((id, mask));
        Ok(())
    })
    .unwrap();
    trie.add(5, &v4("192.0.2.128/25"), &mut |id, mask| {
        seen.push((id, mask));
        Ok(())
    })
    .unwrap();
    assert_eq!(seen, vec![(1, 4), (2, 4 | 32)]);
}
