//! Runtime entries across generations: what `set add` put in a generation, read out of it
//! by name so that the next generation (a reload, or a takeover by a new run) holds them
//! too, with the time they had left.

use std::collections::HashMap;

use xdpsieve_common::{SetEntry, sets::ENTRY_RUNTIME};

use super::{Generation, boottime_ns};
use crate::configure::sets::{
    kernel::{entry_prefix, new_entry},
    trie::TriePrefix,
};

/// A runtime entry of a generation, by set name, for the next generation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeEntry {
    pub set: String,
    pub prefix: TriePrefix,
    /// `CLOCK_BOOTTIME` ns; 0: never.
    pub expires_ns: u64,
}

/// The entries added at run time (`set add`) to `generation` and not yet expired; `names`
/// are its sets in index order (`Meta::sets`). A reload or a takeover reads them under the
/// old generation's lock ([`Generation::lock`]) and holds it until the new generation is
/// in force, so no change made meanwhile is lost.
pub fn runtime_entries(generation: &Generation, names: &[String]) -> Vec<RuntimeEntry> {
    let now = boottime_ns();
    generation
        .used_entries()
        .iter()
        .filter(|e| e.state == ENTRY_RUNTIME && (e.expires_ns == 0 || e.expires_ns > now))
        .filter_map(|e| {
            Some(RuntimeEntry {
                set: names.get(usize::from(e.set))?.clone(),
                prefix: entry_prefix(e),
                expires_ns: e.expires_ns,
            })
        })
        .collect()
}

/// The entries of `carried` for a new generation whose sets are `names` (in index order),
/// and how many were left out because their set is gone.
pub fn carry_over(carried: &[RuntimeEntry], names: &[String]) -> (Vec<SetEntry>, usize) {
    let index: HashMap<&str, u16> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i as u16))
        .collect();
    let mut dropped = 0;
    let entries = carried
        .iter()
        .filter_map(|c| match index.get(c.set.as_str()) {
            Some(&set) => Some(new_entry(set, &c.prefix, ENTRY_RUNTIME, c.expires_ns)),
            None => {
                dropped += 1;
                None
            }
        })
        .collect();
    (entries, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::configure::sets::live::text;

    #[test]
    fn runtime_entries_carry_over_by_set_name() {
        let p = |s: &str| text::parse_exact(s).unwrap();
        let carried = vec![
            RuntimeEntry {
                set: "ban".into(),
                prefix: p("198.51.100.7"),
                expires_ns: 5,
            },
            RuntimeEntry {
                set: "gone".into(),
                prefix: p("2001:db8::/48"),
                expires_ns: 0,
            },
        ];
        let (entries, dropped) = carry_over(&carried, &["other".into(), "ban".into()]);
        assert_eq!(dropped, 1);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].set, 1);
        assert_eq!(entries[0].state, ENTRY_RUNTIME);
        assert_eq!(entries[0].expires_ns, 5);
        assert_eq!(entry_prefix(&entries[0]), p("198.51.100.7"));
    }
}
