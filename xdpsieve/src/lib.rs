//! xdpsieve: an XDP firewall that records what it drops.
//!
//! The XDP program (crate `xdpsieve-ebpf`, embedded here as [`EBPF_OBJECT`]) parses each
//! frame, applies the [`rules`] (first match wins), counts per CPU, and copies the packets
//! asked for into a ring buffer. This library loads and attaches it ([`loader`]), decodes its
//! records ([`record`]), writes them as pcap or pcapng ([`capture`]), and reads its counters
//! ([`stats`]).

pub mod capture;
pub mod record;
pub mod rules;

/// The compiled XDP program, built by this crate's build script.
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xdpsieve"));
