//! The capture filter (tcpdump expressions, compiled by libpcap, run by the XDP program
//! interpreted or translated to eBPF) against what it must select:
//!
//! - [`kernel`]: hand-written classic programs and libpcap's, on crafted frames through
//!   `BPF_PROG_TEST_RUN`, both engines agreeing;
//! - [`diff`]: every expression over crafted frames in a pcap file, against `tcpdump -r`;
//! - [`live`]: the same expressions live over veth, `xdpsieve run` beside `tcpdump -w`.
//!
//! [`harness`] loads the program and runs a frame through both engines; [`cases`] holds
//! the crafted frames and the expressions.
//!
//! They need root and tcpdump (`cargo xtask setup`); under `CI` they fail rather than skip.

mod cases;
mod diff;
mod harness;
mod kernel;
mod live;
