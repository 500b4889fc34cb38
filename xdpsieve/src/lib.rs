//! xdpsieve: an XDP firewall that records what it drops.
//!
//! The XDP program (crate `xdpsieve-ebpf`, embedded here as [`EBPF_OBJECT`]) parses each
//! frame, applies the rules (first match wins), counts per CPU, and sends the packets and
//! events asked for to userspace. The library's folders follow a packet record's way:
//!
//! - [`configure`]: rules, their bitmaps, loading and attaching the program, and the pins
//!   that keep the firewall in force whatever happens to the process;
//! - [`read`]: the ring and perf buffers, and decoding what comes out of them;
//! - [`write`]: the recorder, the pcap/pcapng writers and the event log;
//! - [`observe`]: the counter catalogue, the summary, `status`, metrics, the interface watcher;
//! - [`sandbox`]: the namespaces the demo and the end-to-end tests run in;
//! - [`session`]: one run, from a validated plan to the summary, tying the others together.
//!
//! Modules are reached by their full paths (`xdpsieve::configure::rules`), never by a
//! short alias at the root, so every `use` names the folder it crosses into.

pub mod base;
pub mod configure;
pub mod instance;
pub mod observe;
pub mod read;
pub mod sandbox;
pub mod session;
pub mod write;

#[cfg(test)]
mod test_support;

/// The compiled XDP program, built by this crate's build script.
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xdpsieve"));
