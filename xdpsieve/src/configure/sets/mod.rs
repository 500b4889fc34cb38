//! Address sets: named sets of prefixes that rules refer to (`src = "@blocklist"`).
//!
//! [`trie`] is the structure the XDP program looks addresses up in; [`kernel`] the maps
//! that hold it and how userspace writes them.

pub mod kernel;
pub mod live;
pub mod trie;
