//! xdpsieve: an XDP firewall that records what it drops.
//!
//! The XDP program (crate `xdpsieve-ebpf`, embedded here as [`EBPF_OBJECT`]) parses each
//! frame, applies the rules (first match wins), counts per CPU, and sends the packets and
//! events asked for to userspace. The library is a stack of layers, each folder one layer;
//! a module imports from its own layer and the layers below it, never from one above:
//!
//! - [`session`]: one run, from a validated plan to the summary, tying the others together;
//! - [`observe`]: the summary and the live line, `status`, metrics, the interface watcher;
//! - [`write`](mod@write): the recorder: capture files (pcap, pcapng, rotation), the event
//!   log;
//! - [`instance`]: a firewall in force, whatever process holds it: its description and
//!   pins, the owner of each interface, takeover, reload, live set changes, stop;
//! - [`configure`]: what the firewall is: rules, address sets, capture filters, the
//!   bitmaps the program matches with (or a short rule set compiled to eBPF), loading and
//!   attaching the program, and the run's
//!   configuration file (which holds the rules, so a reload reads it here);
//! - [`read`]: what the kernel hands up: ring and perf buffers, decoding records and events;
//! - [`base`]: what every layer shares: the counter catalogue and the escaping of
//!   untrusted text.
//!
//! Why this order. A firewall is made of its configuration ([`configure`]), and the loader
//! hands out the record sources ([`read`]) it opens on the maps it loaded; [`read`] knows
//! no rule or setting. A firewall stays in force when nothing records for it (fail-static):
//! so nothing that keeps it, takes it over, reloads or stops it ([`instance`]) may depend
//! on the recorder ([`write`](mod@write)), which stands above them and only records for a
//! firewall. [`observe`] reports on all of them (the instance's pins and description, what
//! the recorder wrote), and [`session`] drives one run of everything. [`instance`] and
//! [`write`](mod@write) import nothing of each other. [`sandbox`] (the demo, in the namespaces
//! of the `xdpsieve-netns` crate) stands beside the stack and imports none of it.
//!
//! Modules are reached by their full paths (`xdpsieve::configure::rules`), never by a
//! short alias at the root, so every `use` names the layer it reaches into; a unit test
//! (`layer_tests`) fails when one reaches up.

pub mod base;
pub mod configure;
pub mod instance;
pub mod observe;
pub mod read;
pub mod sandbox;
pub mod session;
pub mod write;

#[cfg(test)]
mod layer_tests;

/// The compiled XDP program, built by this crate's build script.
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xdpsieve"));
