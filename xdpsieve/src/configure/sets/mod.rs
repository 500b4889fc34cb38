//! Address sets: named sets of prefixes that rules refer to (`src = "@blocklist"`).
//!
//! [`trie`] is the structure the XDP program looks addresses up in.

pub mod trie;
