//! Kernel tests: the real XDP program, verified and loaded by this kernel, fed crafted frames
//! through `BPF_PROG_TEST_RUN`.
//!
//! The parser in `xdpsieve-ebpf` is only trustworthy if it holds up against the frames an
//! attacker would send: lying length fields, truncated headers, stacked VLAN tags, IPv4
//! options, IPv6 extension-header chains and fragments. Unit tests cannot run it (it only
//! builds for the BPF target) and end-to-end tests cannot send most of these frames through a
//! real stack, so here every frame is built byte by byte and its verdict, matching rule and
//! `malformed` count are checked one frame at a time. The capture path (ring records,
//! snap length, ring overflow) is checked the same way.
//!
//! Nothing is attached to an interface, so the tests run in parallel, each with its own
//! loaded program. They need root; under `CI` they fail rather than skip when they cannot run.
//!
//! One test binary, split by topic under `tests/kernel/` so each file reads in one sitting:
//!
//! - `verdicts.rs`: the verdict table (every crafted frame against one rule set) and
//!   mangled or random frames that must never abort. Its cases live with their topic:
//!   - `parsing.rs`: each protocol in both families, VLAN tags, IPv4 header length and options;
//!   - `ipv6_chains.rs`: IPv6 extension-header chains, long, cut and lying;
//!   - `fragments.rs`: IPv4 and IPv6 fragments, tiny and overlapping ones; also the fragment
//!     tracking test (later fragments take their first fragment's verdict);
//!   - `malformed.rs`: truncated frames, lying lengths, frames that are not IP.
//! - `unclassifiable.rs`: the unclassifiable policy under each kind of rule and setting.
//! - `capture.rs`: capture records, snap length, jumbo frames, a full ring.
//! - `events.rs`: events decoded over both transports, a full perf buffer.
//! - `features.rs`: the kernel feature probes `run` makes, against the kernel that loads it.
//! - `rules.rs`: default drop with pass rules, TOML against expressions, the full rule table.
//! - `compiled_rules.rs`: rule sets compiled to eBPF against the bitmaps, frame by frame.
//! - `directions.rs`: rules written without a direction (`udp port 53`), both ways, one id.
//! - `walk.rs`: monitor rules against their enforcing twins on every frame of the table;
//!   limit rules' bursts, keys, byte rates, and one bucket charged by two CPUs at once.
//! - `top_sources.rs`: who is dropped, per source, as `top` reads it.
//! - `support.rs`: what they all use: addresses, loading and running the program, counters,
//!   draining the capture ring, the per-frame step record.

mod bans;
mod capture;
mod compiled_rules;
mod directions;
mod events;
mod features;
mod fragments;
mod ipv6_chains;
mod malformed;
mod parsing;
mod rules;
mod support;
mod top_sources;
mod unclassifiable;
mod unrecorded;
mod verdicts;
mod walk;
