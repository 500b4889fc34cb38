//! The demo ([`demo`]): the product in one command, in throwaway network namespaces joined
//! by a veth pair (the `xdpsieve-netns` crate, the same sandbox the tests and benchmarks
//! use); and the deterministic address sets the benchmarks and the set tests draw
//! (`prefix_gen`).

pub mod demo;
#[doc(hidden)]
pub mod prefix_gen;
