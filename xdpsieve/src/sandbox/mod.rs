//! The sandbox the demo and the end-to-end tests run in: throwaway network namespaces joined
//! by a veth pair ([`netns`]) and the demo itself ([`demo`]).

pub mod demo;
pub mod netns;
