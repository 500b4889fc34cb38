//! The demo ([`demo`]): the product in one command, in throwaway network namespaces joined
//! by a veth pair (the `xdpsieve-netns` crate, the same sandbox the tests and benchmarks
//! use).

pub mod demo;
