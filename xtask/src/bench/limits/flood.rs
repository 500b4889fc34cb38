//! The limit flood over veth: 64-byte IPv6/UDP frames to port 53 from random sources in
//! 2001:db8::/32 (a spoofed flood: almost every frame a source not seen before), sent at a
//! fixed rate by the generator pinned to one CPU, through each program attached in native
//! mode to the firewall side. The kernel's own accounting (`kernel.bpf_stats_enabled`, on
//! through a `BPF_ENABLE_STATS` descriptor held for the part and closed after it, so it
//! turns itself off even if we die) gives the program's run time per packet: run_time_ns
//! over run_cnt, read with bpftool before and after.
//!
//! Programs: the floor (returns XDP_PASS: the bpf_stats clock pair and dispatch, which every
//! figure includes), xdpsieve without a limit rule, xdpsieve with a limit rule per source
//! (`LIMIT_SOURCES` keys tracked, so the flood evicts), and the XDP-Firewall-style limiter
//! with its table of the same size. The bench binary `limit_cost --attach` loads and holds
//! each one; the runs go round the programs, `repetitions` times.

use std::{
    io::{BufRead as _, BufReader},
    os::fd::{FromRawFd as _, OwnedFd},
    path::Path,
    process::{ChildStdin, Command, Stdio},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use serde::Serialize;
use xdpsieve_testkit::rng::Rng;

use crate::netbench::{FW_IF, Proc, Sandbox, Traffic, check_interrupted, send_frames, udp6_frame};

/// The programs, as `limit_cost --attach` names them, and as the report does.
pub(crate) const PROGRAMS: [(&str, &str); 4] = [
    ("floor", "floor (XDP_PASS)"),
    ("no-limit", "xdpsieve, no limit rule"),
    ("limit-src", "xdpsieve, limit per src"),
    ("xdpfw", "XDP-Firewall-style"),
];

/// Keys the limiters track (xdpsieve's default `max_tracked`, plus the bench's headroom).
pub(crate) const LIMIT_SOURCES: usize = 65_536;
/// Distinct sources the flood cycles through.
const FLOOD_SOURCES: usize = 1 << 20;
/// Frames per second: below what one `send` per frame reaches on the slowest machine the
/// benches ran on (about 250k), so every program sees the same rate.
pub(crate) const RATE: u64 = 200_000;

#[derive(Serialize)]
pub(crate) struct FloodRun {
    pub(crate) program: &'static str,
    pub(crate) repetition: u32,
    pub(crate) sent: u64,
    pub(crate) pps: f64,
    /// Program runs and their time over the flood (bpf_stats).
    pub(crate) run_cnt: u64,
    pub(crate) run_time_ns: u64,
    pub(crate) ns_per_packet: Option<f64>,
}

/// `BPF_ENABLE_STATS` (`BPF_STATS_RUN_TIME`): stats are on while the descriptor is open.
pub(crate) fn enable_stats() -> Result<OwnedFd> {
    let attr: u32 = 0; // BPF_STATS_RUN_TIME
    // SAFETY: BPF_ENABLE_STATS (32) with its one-u32 attr.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            32,
            std::ptr::from_ref(&attr),
            size_of::<u32>(),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("BPF_ENABLE_STATS");
    }
    // SAFETY: the kernel just returned this descriptor to us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// (run_time_ns, run_cnt) of program `id`.
pub(crate) fn prog_stats(id: u64) -> Result<(u64, u64)> {
    let text =
        crate::output(Command::new("bpftool").args(["prog", "show", "id", &id.to_string(), "-j"]))?;
    let info: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("bpftool's JSON: {text}"))?;
    Ok((
        info["run_time_ns"].as_u64().unwrap_or(0),
        info["run_cnt"].as_u64().unwrap_or(0),
    ))
}

/// The id of the XDP program on the firewall side.
pub(crate) fn attached_id(sandbox: &Sandbox) -> Result<u64> {
    let text = sandbox
        .pair
        .fw
        .ip(&["-j", "link", "show", "dev", FW_IF])
        .context("ip link show")?;
    let link: serde_json::Value = serde_json::from_str(&text).context("ip's JSON")?;
    let xdp = &link[0]["xdp"];
    xdp["prog"]["id"]
        .as_u64()
        .or_else(|| xdp["attached"][0]["prog"]["id"].as_u64())
        .with_context(|| format!("no XDP program on {FW_IF}: {text}"))
}

/// One frame per source, random sources in 2001:db8::/32, from a fixed seed.
fn frames(sandbox: &Sandbox) -> Vec<Vec<u8>> {
    let mut rng = Rng::new(0x5eed_f100d);
    let dst = std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).octets();
    (0..FLOOD_SOURCES)
        .map(|_| {
            let mut src = rng.bits128().to_be_bytes();
            src[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
            udp6_frame(64, (sandbox.fw_mac, sandbox.peer_mac), src, dst, 53)
        })
        .collect()
}

/// Every program under the flood, `repetitions` rounds of `duration` each.
pub(crate) fn measure(
    root: &Path,
    gen_cpu: u32,
    duration: Duration,
    repetitions: u32,
) -> Result<Vec<FloodRun>> {
    let sandbox = Sandbox::create("limits", 1, Path::new(crate::netbench::SCRATCH_BASES[0]))?;
    let frames = frames(&sandbox);
    let _stats = enable_stats()?;
    let mut runs = Vec::new();
    for repetition in 0..repetitions {
        for (name, label) in PROGRAMS {
            check_interrupted()?;
            eprintln!("bench: limit flood, {label}, run {}", repetition + 1);
            let (mut holder, stdin) = attach(root, &sandbox, name)?;
            let id = attached_id(&sandbox)?;
            let before = prog_stats(id)?;
            let sent = send_frames(Traffic {
                netns: sandbox.pair.peer.path(),
                cpu: gen_cpu,
                frames: frames.clone(),
                count: RATE * duration.as_millis() as u64 / 1000,
                limit: duration + Duration::from_secs(2),
                rate: Some(RATE),
            })?;
            let after = prog_stats(id)?;
            release(&mut holder, stdin)?;
            let (time, count) = (after.0 - before.0, after.1 - before.1);
            runs.push(FloodRun {
                program: label,
                repetition,
                sent: sent.frames,
                pps: sent.pps(),
                run_cnt: count,
                run_time_ns: time,
                ns_per_packet: (count > 0).then(|| time as f64 / count as f64),
            });
        }
    }
    Ok(runs)
}

/// Starts `limit_cost --attach NAME` in the sandbox and waits until it says it attached;
/// the program stays attached until its standard input (returned) is closed.
pub(crate) fn attach(root: &Path, sandbox: &Sandbox, name: &str) -> Result<(Proc, ChildStdin)> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let netns = sandbox.pair.fw.path();
    let mut child = Command::new(cargo)
        .args([
            "bench",
            "-q",
            "-p",
            "xdpsieve",
            "--bench",
            "limit_cost",
            "--",
        ])
        .args(["--attach", name, "--ifname", FW_IF, "--netns"])
        .arg(&netns)
        .args(["--sources", &LIMIT_SOURCES.to_string()])
        .current_dir(root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting limit_cost --attach")?;
    let stdout = child.stdout.take();
    let stdin = child
        .stdin
        .take()
        .context("limit_cost --attach: no stdin")?;
    let mut holder = Proc::new(child, "limit_cost --attach");
    let mut line = String::new();
    if let Some(out) = stdout {
        // The holder prints one line once attached, or exits (EOF) having said why.
        BufReader::new(out)
            .read_line(&mut line)
            .context("reading limit_cost --attach")?;
    }
    if line.trim() != "attached" {
        let status = holder.wait_for(Duration::from_secs(10))?;
        bail!("limit_cost --attach {name} did not attach ({status})");
    }
    Ok((holder, stdin))
}

/// Closes the holder's standard input (it detaches and exits) and waits for it.
pub(crate) fn release(holder: &mut Proc, stdin: ChildStdin) -> Result<()> {
    drop(stdin);
    let status = holder.wait_for(Duration::from_secs(10))?;
    if !status.success() {
        bail!("limit_cost --attach exited with {status}");
    }
    Ok(())
}
