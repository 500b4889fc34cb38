//! `cargo xtask bench-events`: how many events per second xdpsieve's event log carries
//! without loss, over each transport (BPF ring buffer and perf buffers), what the reader
//! costs in CPU, and whether every loss past that point is reported.
//!
//! Two network namespaces joined by a veth pair (documentation addresses 192.0.2.0/24 only).
//! In the peer namespace a sender thread of this process writes 64-byte IPv4/UDP frames from
//! port 53 to an AF_PACKET socket, one `send` per frame, paced by busy-waiting on the
//! monotonic clock, pinned to one CPU; the veth runs the XDP program on that same CPU (the
//! sender's softirq). In the firewall namespace xdpsieve drops them (`--drop 'udp src port
//! 53' --log dropped`), pinned to the other CPU, and writes one text line per drop to a file
//! under /tmp. Every step is a fresh xdpsieve run: start, send a fixed number of frames at a
//! target rate, wait until the reader is idle, read its CPU time from /proc, stop it with
//! SIGINT and parse its summary.
//!
//! Per transport: 50k to 400k frames/s and flat out with the default 8M buffer (the highest
//! lossless event rate, and the reader's CPU time per event), then flat out with an 8K
//! buffer, so that events are lost and the loss counters can be checked against
//! `dropped - logged`.
//!
//! Not trafgen: its `-b RATE` sends each second's quota as one burst at full speed (50k pps
//! is 50,000 frames in ~50 ms, then nothing), which any buffer absorbs, and its `-t GAP`
//! sleeps per frame and tops out near 40k pps.
//!
//! Everything is bounded: a fixed list of steps, a fixed frame count per step, and a
//! deadline on every wait. The namespaces and the scratch directory are removed on the way
//! out, also on errors and Ctrl-C; ones left by a killed run are removed by the next. Only
//! processes started here are ever signalled, by their PID.
//!
//! The parts: [`step`] runs one step and holds what it measured, [`report`] writes
//! target/bench-events.md from the steps. This file holds the plan (the steps and their
//! constants) and runs it.

mod report;
mod step;

use std::{
    fs,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};

use crate::netbench::*;
use report::report;

const RULE: &str = "udp src port 53";
const RING_SIZE: &str = "8M";
/// A ring small enough that the sender outruns the reader: losses, to check their accounting.
const SMALL_RING: &str = "8K";
const TRANSPORTS: &[&str] = &["ringbuf", "perf"];
/// The steps, per transport: target rate in frames per second (`None`: the sender flat out)
/// and `--ring-size`.
const STEPS: &[(Option<u64>, &str)] = &[
    (Some(50_000), RING_SIZE),
    (Some(100_000), RING_SIZE),
    (Some(200_000), RING_SIZE),
    (Some(400_000), RING_SIZE),
    (None, RING_SIZE),
    (None, SMALL_RING),
];
/// Between attaching and sending: with perf, xdpsieve opens its buffers only after it has
/// attached the program, and events in between are lost (counted). Not what this measures.
const SETTLE: Duration = Duration::from_millis(500);
const FRAMES_FULL: u64 = 1_000_000;
const FRAMES_QUICK: u64 = 200_000;
/// A step "sustains" its target if the sender got within this share of it.
const SUSTAINED: f64 = 0.97;

pub(crate) fn run(root: &Path, quick: bool) -> Result<()> {
    let (binary, gen_cpu, reader_cpu) = preflight(
        "bench-events",
        "network namespaces, XDP",
        &[("getconf", "libc-bin")],
        root,
    )?;
    let clk_tck: u64 = capture(Command::new("getconf").arg("CLK_TCK"))?
        .trim()
        .parse()
        .context("parsing `getconf CLK_TCK`")?;
    catch_sigint();

    let frames = if quick { FRAMES_QUICK } else { FRAMES_FULL };
    let started = Instant::now();
    let sandbox = Sandbox::create("events", 1, Path::new(SCRATCH_BASES[0]))?;
    let frame = udp_frame(64, sandbox.fw_mac, sandbox.peer_mac);
    let bench = Bench {
        root,
        sandbox: &sandbox,
        binary: &binary,
        frame,
        frames,
        gen_cpu,
        reader_cpu,
        clk_tck,
    };
    let mut steps = Vec::new();
    let mut reader_command = None;
    for transport in TRANSPORTS {
        for &(target, ring) in STEPS {
            let label = format!("{transport} at {}, --ring-size {ring}", rate_label(target));
            eprintln!("bench-events: {label}, {} frames", thousands(frames));
            let (step, cmd) = bench
                .step(transport, target, ring)
                .with_context(|| format!("step {label}"))?;
            eprintln!("bench-events:   {}", step.one_line());
            reader_command.get_or_insert(cmd);
            steps.push(step);
        }
    }
    let report = report(&bench, &steps, reader_command.as_deref(), started.elapsed())?;
    drop(sandbox);
    print!("{report}");
    let out = root.join("target/bench-events.md");
    fs::write(&out, &report).with_context(|| format!("writing {}", out.display()))?;
    eprintln!("bench-events: wrote {}", out.display());
    for bad in steps
        .iter()
        .filter(|s| s.unaccounted() != 0 || s.sent != s.logged)
    {
        eprintln!(
            "bench-events: WARNING: the loss accounting does not add up for {} at {} \
             (--ring-size {}): {}",
            bad.transport,
            rate_label(bad.target),
            bad.ring,
            bad.one_line()
        );
    }
    Ok(())
}

struct Bench<'a> {
    root: &'a Path,
    sandbox: &'a Sandbox,
    binary: &'a Path,
    frame: Vec<u8>,
    frames: u64,
    gen_cpu: u32,
    reader_cpu: u32,
    clk_tck: u64,
}
