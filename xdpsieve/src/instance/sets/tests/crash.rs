//! What a change stopped part-way leaves (as a killed process would), and what a packet
//! sees while changes run: the editor on real maps, as in the parent module.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;

/// Runs `op` on a fresh generation (`setup` first) stopped after its 1st, 2nd, ... write,
/// as a process killed there would leave it; each time the next editor repairs it, and
/// then the maps say what the entry table says, the bookkeeping agrees with them, and a
/// further change works. Returns the writes the whole change takes.
fn stop_everywhere(
    setup: &dyn Fn(&mut Editor<'_>),
    op: &dyn Fn(&mut Editor<'_>) -> anyhow::Result<()>,
) -> u64 {
    let mut rng = Rng::new(11);
    for n in 1.. {
        let mut generation = generation_of(&FILE, FIRST_GROUP + 4096, 8192);
        {
            let mut editor = Editor::new(&mut generation).unwrap();
            setup(&mut editor);
            editor.stop_after(n);
            if op(&mut editor).is_ok() {
                // Finished before the nth write: every stopping point was tried.
                check(&mut generation, &mut rng);
                return n - 1;
            }
        }
        let mut editor = Editor::new(&mut generation).unwrap();
        editor.add(7, "s", &prefixes(&["203.0.113.99"]), 0).unwrap();
        check(&mut generation, &mut rng);
        // Each entry is whole: listed entries are in force (checked above against the
        // table), and the table lists only whole entries of the sets in use.
        assert!(
            generation
                .used_entries()
                .iter()
                .all(|e| e.state == ENTRY_FREE || (e.set <= 7 && e.prefix_len <= 128))
        );
    }
    unreachable!()
}

/// `n` /32s scattered in 192.0.0.0/8, and 192.0.2.53.
fn bans(n: u32) -> Vec<TriePrefix> {
    (0..n)
        .map(|i| {
            TriePrefix::new(
                IpAddr::V4(Ipv4Addr::from(
                    0xc000_0000 | (i.wrapping_mul(2_654_435_761) >> 8),
                )),
                32,
            )
        })
        .chain(prefixes(&["192.0.2.53"]))
        .collect()
}

#[test]
fn a_change_stopped_after_any_write_is_repaired_by_the_next_command() {
    if !root() {
        eprintln!("skipped: needs root");
        return;
    }
    let no_setup = |_: &mut Editor<'_>| {};
    let with_bans = |e: &mut Editor<'_>| {
        e.add(0, "s", &bans(12), 0).unwrap();
    };
    let mut counts = Vec::new();
    // A bulk add: new groups, new classes, many entries.
    counts.push(stop_everywhere(&no_setup, &|e| {
        e.add(3, "s", &bans(12), 0).map(drop)
    }));
    // A covering prefix added over the bans, then deleted (the deleted one repaints them).
    counts.push(stop_everywhere(&with_bans, &|e| {
        e.add(0, "s", &prefixes(&["192.0.0.0/8"]), 0).map(drop)
    }));
    counts.push(stop_everywhere(
        &|e| {
            with_bans(e);
            e.add(0, "s", &prefixes(&["192.0.0.0/8"]), 0).unwrap();
        },
        &|e| e.remove(0, &prefixes(&["192.0.0.0/8"]), "s").map(drop),
    ));
    // Expiry and flush.
    counts.push(stop_everywhere(
        &|e| {
            e.add(1, "s", &bans(12)[..6], 5).unwrap();
        },
        &|e| e.expire(10).map(drop),
    ));
    counts.push(stop_everywhere(&with_bans, &|e| e.flush(0, "s").map(drop)));
    eprintln!("writes per change, each stopped after every one of them: {counts:?}");
    assert!(counts.iter().all(|&c| c > 3), "{counts:?}");
}

#[test]
fn a_stopped_repair_is_repaired_too() {
    if !root() {
        eprintln!("skipped: needs root");
        return;
    }
    let mut rng = Rng::new(12);
    let mut generation = generation_of(&FILE, FIRST_GROUP + 4096, 8192);
    {
        let mut editor = Editor::new(&mut generation).unwrap();
        editor.stop_after(40);
        assert!(editor.add(0, "s", &bans(300), 0).is_err());
    }
    // Each repair is stopped a little later than the last, until one finishes.
    for n in 1.. {
        if Editor::new_stopping(&mut generation, n).is_ok() {
            break;
        }
        assert!(n < 100_000);
    }
    check(&mut generation, &mut rng);
}

#[test]
fn a_packet_never_sees_half_a_change() {
    if !root() {
        eprintln!("skipped: needs root");
        return;
    }
    // 192.0.2.53 stays in set 0 throughout while 192.0.0.0/8 is added and deleted over it
    // and 300 other bans; a reader walking the mapped trie as the program does (atomic
    // reads, root entry first) must find set 0 every time.
    let mut generation = generation_of(&FILE, FIRST_GROUP + 8192, 8192);
    {
        let mut editor = Editor::new(&mut generation).unwrap();
        editor.add(0, "s", &bans(300), 0).unwrap();
    }
    let base = generation.nodes.as_slice().as_ptr() as usize;
    let len = generation.nodes.as_slice().len();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (seen, classes) = std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let mut seen = 0u64;
            let mut classes = std::collections::HashSet::new();
            let addr = [192u8, 0, 2, 53];
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // SAFETY: the mapping outlives this scope; reads are atomic, as the program's.
                let entry = |g: u32, i: u8| unsafe {
                    assert!((g as usize) < len);
                    let group = (base as *const SetGroup).add(g as usize);
                    std::sync::atomic::AtomicU32::from_ptr(
                        (*group).entries.as_ptr().add(usize::from(i)).cast_mut(),
                    )
                    .load(std::sync::atomic::Ordering::Acquire)
                };
                let mut e = entry(u32::from(addr[0]), addr[1]);
                let mut level = 2;
                while e & POINTER != 0 && level < 4 {
                    e = entry(e & !POINTER, addr[level]);
                    level += 1;
                }
                seen += 1;
                classes.insert(e);
            }
            (seen, classes)
        });
        for _ in 0..30 {
            let mut editor = Editor::new(&mut generation).unwrap();
            editor.add(0, "s", &prefixes(&["192.0.0.0/8"]), 0).unwrap();
            editor.remove(0, &prefixes(&["192.0.0.0/8"]), "s").unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        reader.join().unwrap()
    });
    // Class ids are never renumbered, so the masks read now are those the reader saw.
    let masks = generation.meta.class_masks;
    let missed: Vec<u32> = classes
        .iter()
        .copied()
        .filter(|&c| c & POINTER != 0 || masks[c as usize] & 1 == 0)
        .collect();
    eprintln!(
        "{seen} walks during 30 add/delete cycles of a covering /8; classes seen {classes:?}"
    );
    assert!(seen > 1000, "the reader ran {seen} times");
    assert!(
        missed.is_empty(),
        "walks that missed set 0: classes {missed:?}"
    );
    let mut rng = Rng::new(13);
    check(&mut generation, &mut rng);
}

#[test]
fn a_refused_bulk_add_leaves_room_for_the_next() {
    if !root() {
        eprintln!("skipped: needs root");
        return;
    }
    // 60,000 scattered IPv6 /128s need far more than 4096 groups: refused, and then a
    // single /128 still fits.
    let mut generation = generation_of(&FILE, FIRST_GROUP + 4096, 65536);
    let before = snapshot(&generation);
    let list: Vec<TriePrefix> = (0..60_000u64)
        .map(|i| {
            let a = (0x2001_0db8u128 << 96) | u128::from(i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            TriePrefix::new(IpAddr::V6(Ipv6Addr::from(a)), 128)
        })
        .collect();
    let mut editor = Editor::new(&mut generation).unwrap();
    let err = format!("{:#}", editor.add(4, "bl", &list, 0).unwrap_err());
    assert!(err.contains("set bl was not changed"), "{err}");
    assert!(err.contains("set trie is full"), "{err}");
    assert_eq!(snapshot(&generation), before);
    let mut editor = Editor::new(&mut generation).unwrap();
    editor.add(4, "bl", &list[..1], 0).unwrap();
    let mut rng = Rng::new(14);
    check(&mut generation, &mut rng);
}
