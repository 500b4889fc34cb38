//! Per-rule values (names, pcapng comments) of the last few rule generations.
//!
//! A reload (see `instance::reload`) puts in a new program with new rules while records of
//! the old one may still wait in the rings they share, and rule ids mean different rules in
//! two generations (two files both numbering from 1). Each record carries the low byte of
//! the generation that judged it (`Config::generation`), so its rule is looked up in that
//! generation's table. [`KEEP`] generations are kept: a record older than that would have
//! waited in the ring through 16 reloads, each of which takes at least a program load
//! (hundreds of milliseconds through the verifier), while the reader drains every ~100 ms
//! at the latest. A record of a generation no longer kept is written with its rule id
//! (`rule-N`) and generation 0, not dropped.

use crate::configure::rules::{RuleSet, RuleSpec};

/// How many generations' tables are kept.
pub const KEEP: usize = 16;

/// `V` per rule id, for each of the last [`KEEP`] generations, newest last. A table is
/// sorted by id and searched: looked up for every captured packet, a binary search over
/// small integers costs less than hashing one.
#[derive(Debug, Clone)]
pub struct Generations<V> {
    tables: Vec<(u32, Vec<(u32, V)>)>,
}

impl<V> Generations<V> {
    /// The table of `generation`, built from `rules` with `value` (id 0 is the default
    /// verdict's, given as `default`).
    pub fn new(
        generation: u32,
        rules: &RuleSet,
        value: impl Fn(&RuleSpec) -> V,
        default: V,
    ) -> Self {
        let mut g = Generations { tables: Vec::new() };
        g.add(generation, rules, value, default);
        g
    }

    /// Adds `generation`'s table, dropping the oldest beyond [`KEEP`].
    pub fn add(
        &mut self,
        generation: u32,
        rules: &RuleSet,
        value: impl Fn(&RuleSpec) -> V,
        default: V,
    ) {
        let mut table: Vec<(u32, V)> = rules
            .rules
            .iter()
            .map(|r| (r.id, value(r)))
            .chain(std::iter::once((0, default)))
            .collect();
        // Ids are unique in a rule set; should one repeat, the last one stands (and id 0 is
        // the default's), as inserting into a map one by one would have it.
        table.reverse();
        table.sort_by_key(|(id, _)| *id);
        table.dedup_by_key(|(id, _)| *id);
        self.tables.retain(|(g, _)| *g != generation);
        self.tables.push((generation, table));
        if self.tables.len() > KEEP {
            self.tables.remove(0);
        }
    }

    /// The value for rule `id` of the generation whose low byte is `stamp`, with that
    /// generation's full number; None when the generation or the id is unknown.
    pub fn get(&self, stamp: u8, id: u32) -> Option<(&V, u32)> {
        let (generation, table) = self.table(stamp)?;
        let at = table.binary_search_by_key(&id, |(i, _)| *i).ok()?;
        Some((&table[at].1, generation))
    }

    /// The full number of the kept generation whose low byte is `stamp`.
    pub fn generation(&self, stamp: u8) -> Option<u32> {
        self.table(stamp).map(|(g, _)| g)
    }

    fn table(&self, stamp: u8) -> Option<(u32, &[(u32, V)])> {
        // Newest first: almost every record is the current generation's.
        self.tables
            .iter()
            .rev()
            .find(|(g, _)| *g as u8 == stamp)
            .map(|(g, t)| (*g, t.as_slice()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::configure::rules::Action;

    fn rules(names: &[&str]) -> RuleSet {
        let mut set = RuleSet::default();
        for name in names {
            set.push_expression(Action::Drop, "udp dst port 9").unwrap();
            set.rules.last_mut().unwrap().name = (*name).into();
        }
        set
    }

    #[test]
    fn ids_resolve_in_the_generation_that_stamped_them() {
        let name = |r: &RuleSpec| r.name.clone();
        let mut g = Generations::new(1, &rules(&["a1", "a2"]), name, "default".into());
        g.add(2, &rules(&["b1"]), name, "default".into());
        assert_eq!(g.get(1, 1), Some((&"a1".to_string(), 1)));
        assert_eq!(g.get(2, 1), Some((&"b1".to_string(), 2)));
        assert_eq!(g.get(2, 2), None);
        assert_eq!(g.get(2, 0), Some((&"default".to_string(), 2)));
        for n in 3..=(KEEP as u32 + 2) {
            g.add(n, &rules(&["c"]), name, "default".into());
        }
        // Only the last KEEP remain: 3 ..= KEEP + 2.
        assert_eq!(g.generation(2), None);
        assert_eq!(g.generation(3), Some(3));
        // The stamp is the low byte: 257 is found by 1.
        g.add(257, &rules(&["d"]), name, "default".into());
        assert_eq!(g.get(1, 1), Some((&"d".to_string(), 257)));
    }
}
