//! Who owns an interface's firewall, where its pins live, and what its counters mean: the
//! real `xdpsieve` binary on a veth in namespaces the test creates, real UDP sockets bound
//! behind the firewall, and an attacker where there can be one (an unprivileged user, a
//! second run racing the first, a namespace nobody named).
//!
//! By topic, in `ownership/`:
//! - `race`: many runs started at once on one interface: one owner, the others refused
//!   without touching it, its firewall in force after it is SIGKILLed under a flood;
//! - `counters`: a takeover and a reload carry a rule's counters only to the same rule;
//! - `bpffs`: a directory another user made in a world-writable bpffs neither keeps the
//!   firewall from starting nor hides it from `status` and `stop`;
//! - `namespaces`: namespaces outside /run/netns are told apart by their own identity,
//!   and a firewall is swept away only when the kernel says its interface is gone.
//!
//! They need root; under `CI` they fail rather than skip when they cannot run.

mod bpffs;
mod counters;
mod namespaces;
mod race;

/// The build under test.
const BINARY: &str = env!("CARGO_BIN_EXE_xdpsieve");
