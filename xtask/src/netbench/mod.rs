//! What the network benchmarks share: a sandbox of two network namespaces joined by a veth
//! pair (documentation addresses 192.0.2.0/24 only), a frame generator (AF_PACKET with
//! PACKET_QDISC_BYPASS, one `send` per frame, paced by busy-waiting or flat out, pinned to a
//! CPU), child processes killed by their PID on drop, and readers of /proc.
//!
//! Everything is bounded: every wait has a deadline. Namespaces and scratch directories are
//! removed on drop, also on errors and Ctrl-C; ones left by a killed run are removed by the
//! next. Only processes started here are ever signalled, by their PID.
//!
//! The parts: [`sandbox`] (the veth pair between namespaces that the demo and the tests
//! use too, from `xdpsieve-netns`, with a UDP sink and a scratch directory),
//! [`generator`] (the frames and the sender thread), [`procfs`] (child processes, under
//! the test kit's guard, and what /proc says of them), [`sigint`] (Ctrl-C) and [`text`] (the
//! report's number and command formatting). This file holds the addresses and ports they
//! share, and the checks a benchmark makes before it starts.

mod generator;
mod procfs;
mod sandbox;
mod sigint;
mod text;

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use xdpsieve_netns::VethPair;

pub(crate) use generator::{
    Sent, Traffic, is_generated, send_frames, spawn_sender, udp_frame, udp_frame_to, udp6_frame,
};
pub(crate) use procfs::{
    Proc, capture, count_lines, cpu_ticks, file_len, irq_work_count, online_cpus,
    voluntary_switches,
};
pub(crate) use sandbox::Sandbox;
pub(crate) use sigint::{catch_sigint, check_interrupted};
pub(crate) use text::{dotted, number_before, rate_label, shell_line, thousands};

/// The sandbox's interfaces and addresses, as the generator's frames and the reports name
/// them.
pub(crate) const FW_IF: &str = VethPair::FW_IF;
pub(crate) const PEER_IF: &str = VethPair::PEER_IF;
pub(crate) const FW_V4: [u8; 4] = VethPair::FW_V4.octets();
pub(crate) const PEER_V4: [u8; 4] = VethPair::PEER_V4.octets();
/// The generator's frames go from UDP port 53 to this port.
pub(crate) const DST_PORT: u16 = 33333;
/// ...or, the few a capture filter is to select out of a flood, to this one.
pub(crate) const SELECTED_PORT: u16 = 44444;

/// Where scratch directories go: /tmp, or /dev/shm (tmpfs) for capture files, so that
/// the capture tools are measured rather than the disk.
pub(crate) const SCRATCH_BASES: [&str; 2] = ["/tmp", "/dev/shm"];

/// What a network benchmark needs before it starts: root, the tools it runs (with their
/// Debian packages), the release build of xdpsieve and two CPUs. Returns the binary and
/// the two CPUs: the generator's and the tool's.
pub(crate) fn preflight(
    task: &str,
    needs: &str,
    tools: &[(&str, &str)],
    root: &Path,
) -> Result<(PathBuf, u32, u32)> {
    if !crate::is_root() {
        bail!("{task} needs root ({needs}); run it as root");
    }
    for (tool, package) in [
        ("ip", "iproute2"),
        ("nsenter", "util-linux"),
        ("taskset", "util-linux"),
    ]
    .iter()
    .chain(tools)
    {
        if !crate::on_path(tool) {
            bail!("`{tool}` not found; install it: apt-get install {package}");
        }
    }
    let binary = root.join("target/release/xdpsieve");
    if !binary.is_file() {
        bail!(
            "{} is missing; build it: cargo build --release -p xdpsieve",
            binary.display()
        );
    }
    let cpus = online_cpus()?;
    let [first, second, ..] = cpus[..] else {
        bail!("{task} needs 2 online CPUs (generator and tool apart), found {cpus:?}");
    };
    Ok((binary, first, second))
}
