//! What xdpsieve's tests, benchmarks and xtask share, in one crate without BPF (so xtask
//! can use it before `cargo xtask setup` has installed what building the XDP program
//! needs) and without the library (the tests link that themselves):
//!
//! - [`rng`]: the one seeded random generator (tests, benchmarks, xtask);
//! - [`prefix_gen`]: deterministic address sets shaped like a routing table, and their
//!   membership model (the set benchmark).

pub mod prefix_gen;
pub mod rng;
