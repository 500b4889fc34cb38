//! xdpsieve: an XDP firewall that records what it drops.
//!
//! The XDP program (crate `xdpsieve-ebpf`, embedded here as [`EBPF_OBJECT`]) parses each
//! frame, applies the [`rules`] (first match wins), counts per CPU, and sends the packets and
//! events asked for through a ring buffer or perf buffers ([`source`]). This library loads and
//! attaches it ([`loader`]), decodes its records ([`record`], [`event`]), writes them as pcap
//! or pcapng ([`capture`]) and log lines from the [`recorder`] loop, and reports its counters
//! ([`stats`]). [`watch`] notices when an interface stops running the program. [`netns`] and [`demo`] build the sandbox the demo and the end-to-end tests
//! run in.

pub mod capture;
pub mod classify;
pub mod counters;
pub mod demo;
pub mod event;
pub mod flags;
pub mod input;
pub mod loader;
pub mod metrics;
pub mod netns;
pub mod output;
pub mod pins;
pub mod record;
pub mod recorder;
pub mod ringbuf;
pub mod rules;
pub mod source;
pub mod stats;
pub mod status;
pub mod stop;
pub mod takeover;
pub mod text;
pub mod watch;
pub mod writer_state;

/// The compiled XDP program, built by this crate's build script.
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xdpsieve"));
