//! Who owns an interface's firewall: the real `xdpsieve` binary on a veth in namespaces the
//! test creates, real UDP sockets bound behind the firewall, and runs racing each other.
//!
//! By topic, in `ownership/`:
//! - `race`: many runs started at once on one interface: one owner, the others refused
//!   without touching it, its firewall in force after it is SIGKILLed under a flood.
//!
//! They need root; under `CI` they fail rather than skip when they cannot run.

#[path = "common/child.rs"]
#[expect(
    dead_code,
    reason = "the child guard serves several test binaries; this one uses a part"
)]
mod child;
mod common;
#[path = "common/fwnet.rs"]
#[expect(
    dead_code,
    reason = "the namespaces' helpers serve several test binaries; this one uses a part"
)]
mod fwnet;

#[path = "ownership/race.rs"]
mod race;
