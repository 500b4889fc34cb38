//! Section 2 of the report: end to end over veth. Each tool's median run per frame size
//! (what reached its file, what it said it lost, what it cost in CPU and in the kernel,
//! the lossless rate, its memory), then every run.

use std::fmt::Write as _;

use anyhow::Result;

use super::cells::{ns, opt};
use crate::{
    bench::{
        FRAME_SIZES, REPETITIONS, Results,
        capture::{Load, Run, Setup},
    },
    netbench::{dotted, thousands},
};

pub(crate) fn load_label(load: Load) -> String {
    match load {
        Load::OneCore => "generator on 1 core, flat out".into(),
        Load::BothCores => "generator on both cores, flat out".into(),
        Load::Paced(rate) => format!("generator on 1 core at {} pps", thousands(rate)),
    }
}

/// The run with the median `key` among the repetitions of a setup under a load.
pub(super) fn median_by(
    runs: &[Run],
    setup: Setup,
    bytes: usize,
    load: Load,
    key: impl Fn(&Run) -> f64,
) -> Option<&Run> {
    let mut matching: Vec<&Run> = runs
        .iter()
        .filter(|r| r.setup == setup && r.frame_bytes == bytes && r.load == load)
        .collect();
    matching.sort_by(|a, b| key(a).total_cmp(&key(b)));
    matching.get(matching.len() / 2).copied()
}

fn by_pps(r: &Run) -> f64 {
    r.pps
}

pub(super) fn by_cpu(r: &Run) -> f64 {
    r.cpu_ns_per_captured.unwrap_or(0.0)
}

pub(super) fn by_kept(r: &Run) -> f64 {
    r.kept().unwrap_or(0.0)
}

fn rss(r: &Run) -> String {
    match (r.peak_rss_kib, r.kernel_buffers_rss_kib) {
        (Some(peak), Some(kernel)) => format!(
            "{:.1} MiB ({:.1} in kernel buffers)",
            peak as f64 / 1024.0,
            kernel as f64 / 1024.0
        ),
        (Some(peak), None) => format!("{:.1} MiB", peak as f64 / 1024.0),
        _ => "—".into(),
    }
}

/// Kernel time per frame at the generator's saturated core, from its flat-out rate.
fn ns_per_frame(r: &Run) -> f64 {
    1e9 / r.pps.max(1.0)
}

/// What capture adds per frame in the kernel: the tool's flat-out run against its baseline.
pub(super) fn added_ns(runs: &[Run], setup: Setup, bytes: usize) -> Option<f64> {
    let tool = median_by(runs, setup, bytes, Load::OneCore, by_pps)?;
    let base = median_by(runs, setup.baseline(), bytes, Load::OneCore, by_pps)?;
    Some(ns_per_frame(tool) - ns_per_frame(base))
}

/// The highest rate found lossless: flat out, a stepped rate, or none tried.
fn lossless_rate(runs: &[Run], setup: Setup, bytes: usize) -> String {
    let flat_out = || {
        runs.iter()
            .filter(move |r| r.setup == setup && r.frame_bytes == bytes && r.load == Load::OneCore)
    };
    if flat_out().all(Run::lossless)
        && let Some(flat) = median_by(runs, setup, bytes, Load::OneCore, by_pps)
    {
        return format!("flat out ({} pps)", thousands(flat.pps as u64));
    }
    let paced: Vec<&Run> = runs
        .iter()
        .filter(|r| r.setup == setup && r.frame_bytes == bytes && matches!(r.load, Load::Paced(_)))
        .collect();
    if let Some(r) = paced.iter().find(|r| r.lossless()) {
        return format!("{} pps", thousands(r.pps as u64));
    }
    match paced.last() {
        Some(r) => format!("below {} pps", thousands(r.pps as u64)),
        None => "—".into(),
    }
}

/// The end-to-end tables.
pub(super) fn render(md: &mut String, res: &Results) -> Result<()> {
    writeln!(md, "\n## 2. End to end over veth\n")?;
    writeln!(
        md,
        "A veth pair with 2 queues each way between two network namespaces (IPv4 only, \
         {} ↔ {}). In one, a generator thread of `cargo xtask bench` sends IPv4/UDP frames \
         (port 53 → a port with a bound, never-read UDP socket) with one `send` per frame on \
         an AF_PACKET socket with PACKET_QDISC_BYPASS, for {:.1} s per run. In the other runs \
         the tool under test, started fresh for each run, ready before the traffic, and \
         stopped with SIGINT once idle. The veth runs the receive side (NAPI, XDP, taps) on \
         the sender's CPU: with the generator alone on CPU {} and the tool pinned to CPU {}, \
         the generator's rate measures the kernel's cost per frame. Capture files go to {} \
         ({}), so that the tools are measured rather than the disk.",
        dotted(crate::netbench::PEER_V4),
        dotted(crate::netbench::FW_V4),
        res.duration.as_secs_f64(),
        res.gen_cpu,
        res.tool_cpu,
        res.scratch.display(),
        if res.scratch.starts_with("/dev/shm") {
            "tmpfs"
        } else {
            "no tmpfs here"
        },
    )?;
    writeln!(
        md,
        "\n- **in file**: the generator's frames found in the tool's capture file. \
         **reported lost**: what the tool said it lost on exit (xdpsieve: `packets lost`; \
         xdpdump: `packets dropped by perf ring`; tcpdump: `packets dropped by kernel`). \
         **unreported** = sent − dropped by the veth − in file − reported lost.\n\
         - **CPU / captured**: the tool's CPU time (every thread's, from \
         /proc/PID/task/*/schedstat) from just before the traffic until it was idle, over \
         the frames in its file.\n\
         - **kernel cost added**: 10⁹/pps of the tool's run − 10⁹/pps of its baseline \
         (xdpsieve: the same rule without capture; tcpdump: xdpsieve passing without \
         capture; xdpdump: no XDP program), generator on one core flat out.\n\
         - **both cores**: a generator thread on each CPU, the tool unpinned, competing with \
         them; the share of frames in the file, and the rate offered. The rate differs by \
         tool: the cheaper the kernel's path (xdpsieve drops; tcpdump's traffic is passed up \
         the stack), the more frames the generator gets out, and the more the tool must keep.\n\
         - **lossless rate**: the flat-out rate if nothing was lost, else the first of \
         75%, 50%, 25%, 10% of it (quick: 50%, 10%) at which the file held every frame.\n\
         - **peak RSS**: VmHWM of the capturing process; in brackets, how much of it is kernel \
         buffers mapped into the process (BPF ring buffers, perf buffers, packet socket ring), \
         which the kernel holds either way. xdpsieve's capture rings (8 MiB between the CPUs, \
         one ring each) count twice: the kernel maps a ring's data pages twice, so that \
         records can wrap around. xdpdump's perf \
         buffers do not count at all (perf maps its pages without charging them to RSS).\n\
         - **Medians**: a full run repeats each flat-out run {} times; the tables show the \
         median run (by CPU per captured frame, by share kept, by rate for the kernel cost), \
         and \"Every run\" lists them all.\n",
        REPETITIONS
    )?;
    for bytes in FRAME_SIZES {
        writeln!(md, "### {bytes}-byte frames\n")?;
        writeln!(
            md,
            "| tool | sent | in file | reported lost | unreported | CPU / captured | generator rate | kernel cost added | both cores: kept | lossless rate | peak RSS |"
        )?;
        writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|")?;
        for setup in Setup::TOOLS {
            let Some(r) = median_by(&res.runs, setup, bytes, Load::OneCore, by_cpu) else {
                continue;
            };
            let both = median_by(&res.runs, setup, bytes, Load::BothCores, by_kept);
            writeln!(
                md,
                "| {} | {} | {} ({:.1}%) | {} | {} | {} ns | {} pps | {} ns | {} | {} | {} |",
                setup.label(),
                thousands(r.sent),
                opt(r.in_file),
                r.kept().unwrap_or(0.0),
                opt(r.reported_lost),
                r.unreported_lost.map_or("—".into(), |n| n.to_string()),
                ns(r.cpu_ns_per_captured),
                thousands(
                    median_by(&res.runs, setup, bytes, Load::OneCore, by_pps)
                        .map_or(0, |m| m.pps as u64)
                ),
                added_ns(&res.runs, setup, bytes).map_or("—".into(), |v| format!("{v:+.0}")),
                both.map_or("—".into(), |b| format!(
                    "{:.1}% of {} pps",
                    b.kept().unwrap_or(0.0),
                    thousands(b.pps as u64)
                )),
                lossless_rate(&res.runs, setup, bytes),
                rss(r),
            )?;
        }
        writeln!(md)?;
    }
    writeln!(md, "### Every run\n")?;
    writeln!(
        md,
        "| setup | frame | load | sent | rate (pps) | ns/frame at the sender's core | in file | reported lost | unreported | veth dropped | CPU / captured | peak RSS |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|---|")?;
    for r in &res.runs {
        writeln!(
            md,
            "| {} | {} B | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            if r.repetition > 0 {
                format!("{} (again)", r.setup.label())
            } else {
                r.setup.label().to_string()
            },
            r.frame_bytes,
            load_label(r.load),
            thousands(r.sent),
            thousands(r.pps as u64),
            if r.load == Load::OneCore {
                format!("{:.0}", ns_per_frame(r))
            } else {
                "—".into()
            },
            match r.in_file {
                Some(n) => format!("{} ({:.1}%)", thousands(n), r.kept().unwrap_or(0.0)),
                None => "—".into(),
            },
            opt(r.reported_lost),
            r.unreported_lost.map_or("—".into(), |n| n.to_string()),
            thousands(r.veth_dropped),
            r.cpu_ns_per_captured
                .map_or("—".into(), |v| format!("{v:.0} ns")),
            rss(r),
        )?;
    }
    Ok(())
}
