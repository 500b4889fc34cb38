//! Repairing a generation after a change that died part-way (`SET_META.in_change` set).
//!
//! The entry table is the record of what each set holds; a change writes it so that each
//! entry is whole or free at every instant (`edit`). The trie may be anywhere between the
//! old state and the new one: some root entries published, others not, groups allocated
//! and never linked, groups unlinked and not yet on the free list. The repair makes the
//! trie say exactly what the table says, without a window:
//!
//! 1. wait out the program's walks in flight ([`grace`]), so nothing reads a group the
//!    dead change unlinked;
//! 2. find the entries in use by scanning the whole table (the dead change may have
//!    written slots past `entries_used`);
//! 3. find the groups in use by walking the trie from its roots, and make every other
//!    group below the highest ever used free (this rebuilds the free list, whatever state
//!    the dead change left it in);
//! 4. write every class `SET_META` announces to `SET_CLASSES` again (the dead change
//!    announced its classes before writing them);
//! 5. build the trie the table describes in memory, with the class numbers in force, and
//!    replace each root entry whose subtree says something else, as any change does:
//!    new groups first, then one atomic store per root entry.
//!
//! Every entry ends up fully in force (the trie blocks what the table lists) or fully
//! out (not listed, not blocking). The repair is itself a change written the same way, so
//! a repair that is killed is repaired by the next command.

use anyhow::{Context as _, Result};
use xdpsieve_common::{
    SetGroup,
    sets::{ENTRY_FREE, FIRST_GROUP, FREE_GROUP, GROUP_ENTRIES, POINTER, V6_ROOT},
};

use super::commit::{Editor, EntryWrites, grace};
use crate::configure::sets::{
    kernel::entry_prefix,
    trie::{
        Trie, TrieError,
        change::{Change, Space},
    },
};

/// What the walk from the roots found.
struct Sweep {
    reachable: Vec<bool>,
    /// Root entries (group * 256 + entry) whose pointers cannot be followed: out of
    /// range, a group reached twice, or deeper than an address.
    damaged: Vec<bool>,
    highest: u32,
}

fn sweep(nodes: &[SetGroup]) -> Sweep {
    let mut s = Sweep {
        reachable: vec![false; nodes.len()],
        damaged: vec![false; FIRST_GROUP as usize * GROUP_ENTRIES],
        highest: FIRST_GROUP,
    };
    for slot in 0..FIRST_GROUP as usize * GROUP_ENTRIES {
        let entry = nodes[slot / GROUP_ENTRIES].entries[slot % GROUP_ENTRIES];
        let depth = if slot / GROUP_ENTRIES >= V6_ROOT as usize {
            14
        } else {
            2
        };
        if !mark(nodes, &mut s, entry, depth) {
            s.damaged[slot] = true;
        }
    }
    s
}

/// Marks the groups under `entry`, at most `depth` levels; false if a pointer cannot be
/// followed.
fn mark(nodes: &[SetGroup], s: &mut Sweep, entry: u32, depth: usize) -> bool {
    if entry & POINTER == 0 {
        return true;
    }
    let id = entry & !POINTER;
    if depth == 0 || id < FIRST_GROUP || id as usize >= nodes.len() || s.reachable[id as usize] {
        return false;
    }
    s.reachable[id as usize] = true;
    s.highest = s.highest.max(id + 1);
    nodes[id as usize]
        .entries
        .iter()
        .all(|&e| mark(nodes, s, e, depth - 1))
}

/// Whether the subtree under `live` (in force) and `want` (built in memory) give every
/// address the same class.
fn same(nodes: &[SetGroup], live: u32, built: &Trie, want: u32) -> bool {
    match (live & POINTER != 0, want & POINTER != 0) {
        (false, false) => live == want,
        (true, false) => nodes[(live & !POINTER) as usize]
            .entries
            .iter()
            .all(|&c| same(nodes, c, built, want)),
        (false, true) => built.groups()[(want & !POINTER) as usize]
            .entries
            .iter()
            .all(|&c| same(nodes, live, built, c)),
        (true, true) => {
            let (l, w) = (
                &nodes[(live & !POINTER) as usize],
                &built.groups()[(want & !POINTER) as usize],
            );
            l.entries
                .iter()
                .zip(w.entries.iter())
                .all(|(&a, &b)| same(nodes, a, built, b))
        }
    }
}

/// Repairs the generation `editor` holds (see the module doc).
pub(super) fn recover(editor: &mut Editor<'_>) -> Result<()> {
    grace();
    // The entries in use.
    let mut used = 0;
    let mut entries = Vec::new();
    for (slot, e) in editor.entries.iter().enumerate() {
        if e.state != ENTRY_FREE {
            used = slot as u32 + 1;
            entries.push((u32::from(e.set), entry_prefix(e)));
        }
    }
    // The groups in use; the rest below the highest ever used are free.
    let found = sweep(editor.nodes);
    let high = editor
        .meta
        .groups_high
        .max(found.highest)
        .clamp(FIRST_GROUP, editor.nodes.len() as u32);
    let mut head = 0;
    let mut free = 0;
    for id in (FIRST_GROUP..high).rev() {
        if !found.reachable[id as usize] {
            let group = &mut editor.nodes[id as usize];
            group.entries[0] = head;
            group.entries[1] = FREE_GROUP;
            head = id;
            free += 1;
        }
    }
    // The classes the dead change announced may not all have reached SET_CLASSES.
    editor.rewrite_classes()?;
    let mut meta = *editor.meta;
    meta.groups_high = high;
    meta.groups_used = high - free;
    meta.free_head = head;
    meta.entries_used = used;
    meta.in_change = 1;
    editor.write_meta(meta)?;
    // The trie the table describes, with the classes numbered as in force.
    let built = Trie::build_with(&entries, editor.masks())
        .context("building the sets the entry table holds")?;
    let differing: Vec<usize> = (0..FIRST_GROUP as usize * GROUP_ENTRIES)
        .filter(|&slot| {
            let want = built.groups()[slot / GROUP_ENTRIES].entries[slot % GROUP_ENTRIES];
            let live = editor.nodes[slot / GROUP_ENTRIES].entries[slot % GROUP_ENTRIES];
            found.damaged[slot] || !same(editor.nodes, live, &built, want)
        })
        .collect();
    // One change for all; if the trie cannot hold old and new at once, one root entry at
    // a time (each frees what it replaced before the next).
    match replace(editor, &built, &differing, &found.damaged) {
        Err(e) if matches!(e.downcast_ref(), Some(TrieError::GroupsFull { .. })) => {
            for &slot in &differing {
                replace(editor, &built, &[slot], &found.damaged)?;
            }
            Ok(())
        }
        other => other,
    }
}

/// One change replacing the root entries `slots` by those of `built`.
fn replace(editor: &mut Editor<'_>, built: &Trie, slots: &[usize], damaged: &[bool]) -> Result<()> {
    let space: Space = editor.space();
    let mut change = Change::of(editor.nodes, editor.masks(), space, 0);
    change.adopt_classes(built.class_masks());
    for &slot in slots {
        let want = built.groups()[slot / GROUP_ENTRIES].entries[slot % GROUP_ENTRIES];
        change.replace_root(slot, built, want, damaged[slot])?;
    }
    let change = change.prepared();
    editor.commit(change, &EntryWrites::default())
}
