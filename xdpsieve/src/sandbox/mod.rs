//! The sandbox the demo and the end-to-end tests run in: throwaway network namespaces joined
//! by a veth pair ([`netns`]) and the demo itself ([`demo`]); and the deterministic address
//! sets the benchmarks and the set tests draw (`prefix_gen`).

pub mod demo;
pub mod netns;
#[doc(hidden)]
pub mod prefix_gen;
