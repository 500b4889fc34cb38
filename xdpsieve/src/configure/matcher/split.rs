//! The split shape of compiled rules (see the parent module's doc): a binary search on the
//! port to the code of the range's own rules, then the rules without a condition on the
//! port.

use std::collections::HashMap;

use xdpsieve_common::matcher::NO_MATCH;

use super::{Conditions, Port, rules_in_order, tests_in_order};
use crate::configure::ebpf_code::{
    ALU, EXIT, Emitter, JA, JGE, JLT, JMP, JMP32, K, Label, MOV, R0, R5, R6,
};

/// The split shape (the module doc). Returns the longest path through the code, from its
/// first instruction to an `exit`.
///
/// `r0 = NO_MATCH`, then the search; a range's code tests its own rules (those whose ports
/// it is within) in order. The first that holds puts its index in `r0`; the rules without
/// a condition on the port come after, as one chain, since they could hold in any range:
/// each is tested only while its index is below `r0`'s (the first that holds returns its
/// own), and past them `r0` is returned. A rule of a range that no rule of the chain comes
/// before returns at once, and so does every rule when there is no chain.
///
/// Why the chain after the ranges, not before: the verifier follows the code once per
/// value `r0` can hold where paths meet. Entering the chain with the index of the rule
/// that held, it follows the chain (short: its path is within `MAX_PATH`) once per rule;
/// entering the search with the index of a rule of the chain, it would follow the whole
/// search and every range once per rule of the chain.
pub(super) fn split(e: &mut Emitter, rules: &[Conditions], port: Port) -> usize {
    let (with, without): (Vec<&Conditions>, Vec<&Conditions>) =
        rules.iter().partition(|r| r.port(port).is_some());
    e.emit(ALU | MOV | K, R0, 0, 0, NO_MATCH as i32);
    // Everything so far runs at most once: the null test, the loads, `r0 = NO_MATCH`.
    let before_search = e.len();
    // Every range starts at 0 or where a rule's range starts or ends.
    let mut starts: Vec<u32> = vec![0];
    for (min, max) in with.iter().filter_map(|r| r.port(port)) {
        starts.push(u32::from(min));
        starts.push(u32::from(max) + 1);
    }
    starts.retain(|&s| s <= u32::from(u16::MAX));
    starts.sort_unstable();
    starts.dedup();
    // Each range's own rules (positions in `with`); neighbours alike are merged.
    let mut ranges: Vec<(u32, Vec<usize>)> = Vec::new();
    for &start in &starts {
        let own: Vec<usize> = (0..with.len())
            .filter(|&i| {
                with[i]
                    .port(port)
                    .is_some_and(|(min, max)| (u32::from(min)..=u32::from(max)).contains(&start))
            })
            .collect();
        if ranges.last().is_none_or(|(_, last)| *last != own) {
            ranges.push((start, own));
        }
    }
    // One piece of code per distinct list of own rules; a range without goes to the chain.
    let chain = e.label();
    let mut pieces: Vec<(Vec<usize>, Label)> = Vec::new();
    let mut piece_of: HashMap<Vec<usize>, Label> = HashMap::new();
    let targets: Vec<Label> = ranges
        .iter()
        .map(|(_, own)| {
            if own.is_empty() {
                return chain;
            }
            *piece_of.entry(own.clone()).or_insert_with(|| {
                let label = e.label();
                pieces.push((own.clone(), label));
                label
            })
        })
        .collect();
    let register = match port {
        Port::Src => R5,
        Port::Dst => R6,
    };
    let range_starts: Vec<u32> = ranges.iter().map(|(start, _)| *start).collect();
    let mut depths = vec![0usize; ranges.len()];
    search(e, register, &range_starts, &targets, 0, &mut depths);
    let first_without = without.first().map_or(i32::MAX, |r| r.index);
    let mut piece_len: HashMap<Label, usize> = HashMap::new();
    for (own, label) in &pieces {
        e.bind(*label);
        let at = e.len();
        let piece: Vec<Conditions> = own.iter().map(|&i| with[i].without(port)).collect();
        tests_in_order(e, &piece, |e, index| {
            e.emit(ALU | MOV | K, R0, 0, 0, index);
            if index > first_without {
                e.jump(JMP | JA, 0, 0, 0, chain);
            } else {
                e.emit(JMP | EXIT, 0, 0, 0, 0);
            }
        });
        e.jump(JMP | JA, 0, 0, 0, chain);
        piece_len.insert(*label, e.len() - at);
    }
    e.bind(chain);
    let chain_start = e.len();
    let done = e.label();
    for &rule in &without {
        e.jump(JMP32 | JLT | K, R0, 0, rule.index, done);
        rules_in_order(e, std::slice::from_ref(rule));
    }
    e.bind(done);
    e.emit(JMP | EXIT, 0, 0, 0, 0);
    let chain_len = e.len() - chain_start;
    // Before the search, the search to a range, the range's code, the chain and its exit.
    // (`none` is reached only by a null packet, before all this.)
    before_search
        + targets
            .iter()
            .zip(&depths)
            .map(|(target, depth)| depth + piece_len.get(target).copied().unwrap_or(0))
            .max()
            .unwrap_or(0)
        + chain_len
}

/// A binary search over the ranges starting at `starts` (ascending): one comparison per
/// level, then a jump to the range's target. `depths` gets each range's instructions on
/// the way, the last jump included.
fn search(
    e: &mut Emitter,
    register: u8,
    starts: &[u32],
    targets: &[Label],
    depth: usize,
    depths: &mut [usize],
) {
    if starts.len() == 1 {
        e.jump(JMP | JA, 0, 0, 0, targets[0]);
        depths[0] = depth + 1;
        return;
    }
    let mid = starts.len() / 2;
    let upper = e.label();
    // The start fits 32 bits signed: at most 65,535.
    e.jump(JMP32 | JGE | K, register, 0, starts[mid] as i32, upper);
    let (lower_depths, upper_depths) = depths.split_at_mut(mid);
    search(
        e,
        register,
        &starts[..mid],
        &targets[..mid],
        depth + 1,
        lower_depths,
    );
    e.bind(upper);
    search(
        e,
        register,
        &starts[mid..],
        &targets[mid..],
        depth + 1,
        upper_depths,
    );
}
