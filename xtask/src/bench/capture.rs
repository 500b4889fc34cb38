//! End to end over veth: xdpsieve capturing what it drops, beside xdpdump and tcpdump, each
//! run the same way. A generator thread of this process sends 64 B or 512 B IPv4/UDP
//! frames out of the peer namespace's veth; the tool under test runs in the firewall
//! namespace as a child process, started fresh for every run and stopped with SIGINT.
//!
//! Per run: frames sent, frames of ours in the tool's file, the losses the tool reported,
//! the rest (unreported), the tool's CPU time from just before the traffic until it was
//! idle (per captured frame), its peak RSS, and the generator's rate. Receive-side kernel
//! work (the veth's NAPI, the XDP program, taps) runs on the sender's CPU, so with the
//! generator alone on one core its rate measures the kernel's cost per frame; the cost a
//! capture adds is the difference to a baseline without it.

use std::{
    fs::{self, File},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use serde::Serialize;

use crate::netbench::{
    FW_IF, Proc, Sandbox, Sent, Traffic, check_interrupted, number_before, shell_line,
    spawn_sender, udp_frame,
};

use super::pcap;

/// What runs in the firewall namespace during a run.
#[derive(Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Setup {
    /// `xdpsieve run --drop ... -w FILE`: captures what it drops.
    Xdpsieve,
    /// The same, writing pcapng (`--format pcapng`): the reader's cost in the other format.
    XdpsievePcapng,
    /// `xdpdump --load-xdp-program -w FILE`: its own XDP program passes and captures.
    Xdpdump,
    /// `tcpdump -w FILE` on traffic xdpsieve passes (without capturing).
    Tcpdump,
    /// Baselines, nothing captured: xdpsieve dropping; xdpsieve passing; no XDP program.
    BaseDrop,
    BasePass,
    BaseNone,
}

impl Setup {
    pub(crate) const TOOLS: [Setup; 4] = [
        Setup::Xdpsieve,
        Setup::XdpsievePcapng,
        Setup::Xdpdump,
        Setup::Tcpdump,
    ];
    pub(crate) const BASELINES: [Setup; 3] = [Setup::BaseDrop, Setup::BasePass, Setup::BaseNone];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Setup::Xdpsieve => "xdpsieve (drops, captures them)",
            Setup::XdpsievePcapng => "xdpsieve --format pcapng (drops, captures them)",
            Setup::Xdpdump => "xdpdump --load-xdp-program",
            Setup::Tcpdump => "tcpdump (xdpsieve passes)",
            Setup::BaseDrop => "baseline: xdpsieve drops, no capture",
            Setup::BasePass => "baseline: xdpsieve passes, no capture",
            Setup::BaseNone => "baseline: no XDP program, no capture",
        }
    }

    /// The baseline whose kernel path this tool adds its capture to.
    pub(crate) fn baseline(self) -> Setup {
        match self {
            Setup::Xdpsieve | Setup::XdpsievePcapng => Setup::BaseDrop,
            Setup::Tcpdump => Setup::BasePass,
            _ => Setup::BaseNone,
        }
    }

    fn captures(self) -> bool {
        Setup::TOOLS.contains(&self)
    }
}

/// Where the generator runs.
#[derive(Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Load {
    /// One sender on the first CPU, flat out; the tool pinned to the second.
    OneCore,
    /// One sender on each CPU, flat out; the tool wherever the scheduler puts it.
    BothCores,
    /// One sender on the first CPU at this rate; the tool pinned to the second.
    Paced(u64),
}

/// One run of one setup under one load.
#[derive(Serialize)]
pub(crate) struct Run {
    pub(crate) setup: Setup,
    /// Which repetition of this setup and load (from 0).
    pub(crate) repetition: u32,
    pub(crate) frame_bytes: usize,
    pub(crate) load: Load,
    pub(crate) sent: u64,
    pub(crate) seconds: f64,
    pub(crate) pps: f64,
    /// Frames the veth pair dropped before any program or tap saw them.
    pub(crate) veth_dropped: u64,
    /// Our frames in the capture file (None: nothing captures in this setup).
    pub(crate) in_file: Option<u64>,
    /// Losses the tool reported on exit.
    pub(crate) reported_lost: Option<u64>,
    /// sent - veth_dropped - in_file - reported_lost: frames gone without a word.
    pub(crate) unreported_lost: Option<i64>,
    /// CPU time of the capturing process, just before the traffic until idle.
    pub(crate) cpu_ns: Option<u64>,
    pub(crate) cpu_ns_per_captured: Option<f64>,
    /// Peak resident set size (VmHWM) of the capturing process.
    pub(crate) peak_rss_kib: Option<u64>,
    /// Of its resident memory, kernel buffers mapped into it (BPF ring buffer, perf
    /// buffers, packet socket ring): memory the kernel holds either way. A BPF ring
    /// buffer's data pages are mapped twice (for records that wrap), so they count double.
    pub(crate) kernel_buffers_rss_kib: Option<u64>,
    /// Frames the capture filter turned down, as xdpsieve reported (not a loss).
    pub(crate) not_selected: Option<u64>,
    /// The capturing process's own summary, as printed.
    pub(crate) summary: String,
}

impl Run {
    pub(crate) fn lossless(&self) -> bool {
        self.in_file.is_some_and(|n| n >= self.sent)
    }

    pub(crate) fn kept(&self) -> Option<f64> {
        self.in_file
            .map(|n| 100.0 * n as f64 / self.sent.max(1) as f64)
    }
}

pub(crate) struct Bench<'a> {
    pub(crate) sandbox: &'a Sandbox,
    pub(crate) xdpsieve: &'a Path,
    pub(crate) duration: Duration,
    pub(crate) gen_cpu: u32,
    pub(crate) tool_cpu: u32,
    /// `None`: one frame over and over; else a flood of which a few are selected.
    pub(crate) mix: Option<super::mix::Mix>,
}

/// Between the tool being ready and the traffic: start-up work settles.
pub(super) const SETTLE: Duration = Duration::from_millis(300);
/// The tool is idle once its CPU time and file stop changing for this long...
pub(super) const IDLE: Duration = Duration::from_millis(300);
/// ...but tcpdump hands over a partly filled TPACKET_V3 block only when the block's 1 s
/// timer fires, so it gets at least this long.
const TCPDUMP_DRAIN: Duration = Duration::from_millis(1500);

impl Bench<'_> {
    /// The command lines of a setup (firewall first, capturing tool last), pinned with
    /// taskset to `cpus`, each with the name its process will have.
    pub(crate) fn commands(
        &self,
        setup: Setup,
        file: &Path,
        cpus: &str,
    ) -> Vec<(&'static str, Command)> {
        let ns = format!("--net={}", self.sandbox.pair.fw.path().display());
        let base = || {
            let mut c = Command::new("nsenter");
            c.arg(&ns).args(["--", "taskset", "-c", cpus]);
            c
        };
        let xdpsieve = |args: &[&str]| {
            let mut c = base();
            c.arg(self.xdpsieve)
                .args(["run", "-q", "-i", FW_IF])
                .args(args);
            c
        };
        const XDPSIEVE: &str = "xdpsieve";
        match setup {
            Setup::Xdpsieve | Setup::XdpsievePcapng => {
                let mut c = xdpsieve(&["--drop", "udp src port 53", "-w"]);
                c.arg(file);
                if setup == Setup::XdpsievePcapng {
                    c.args(["--format", "pcapng"]);
                }
                if let Some(filter) = self.mix.and_then(|m| m.filter()) {
                    c.args(["--filter", &filter]);
                }
                vec![(XDPSIEVE, c)]
            }
            Setup::Xdpdump => {
                let mut c = base();
                c.args(["xdpdump", "-i", FW_IF, "--load-xdp-program", "-w"])
                    .arg(file);
                vec![("xdpdump", c)]
            }
            Setup::Tcpdump => {
                let mut c = base();
                c.args(["tcpdump", "-i", FW_IF, "-Z", "root", "-w"])
                    .arg(file);
                vec![(XDPSIEVE, xdpsieve(&["--capture", "none"])), ("tcpdump", c)]
            }
            Setup::BaseDrop => vec![(
                XDPSIEVE,
                xdpsieve(&["--drop", "udp src port 53", "--capture", "none"]),
            )],
            Setup::BasePass => vec![(XDPSIEVE, xdpsieve(&["--capture", "none"]))],
            Setup::BaseNone => Vec::new(),
        }
    }

    pub(crate) fn run(
        &self,
        setup: Setup,
        frame_bytes: usize,
        load: Load,
        repetition: u32,
    ) -> Result<Run> {
        check_interrupted()?;
        let sb = self.sandbox;
        if sb.attached()? {
            bail!("{FW_IF} still has an XDP program from the previous run (not detached on exit)");
        }
        let file = sb.dir.join("capture");
        let _ = fs::remove_file(&file);
        let cpus = match load {
            Load::BothCores => format!("{},{}", self.gen_cpu, self.tool_cpu),
            _ => self.tool_cpu.to_string(),
        };
        let mut procs = Vec::new();
        for (i, (what, mut cmd)) in self.commands(setup, &file, &cpus).into_iter().enumerate() {
            let log = sb.dir.join(format!("output-{i}"));
            let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
            let line = shell_line(&cmd);
            let child = cmd
                .stdin(Stdio::null())
                .stdout(out.try_clone()?)
                .stderr(out)
                .spawn()
                .with_context(|| format!("starting {line}"))?;
            let mut proc = Proc::new(child, what);
            wait_ready(sb, &mut proc, &log, &line)?;
            procs.push((proc, log));
        }
        thread::sleep(SETTLE);
        let capturing = setup.captures().then(|| procs.last()).flatten();
        let pid = capturing.map(|(p, _)| p.pid());
        let cpu_before = pid.map(cpu_ns).transpose()?;
        let veth_before = sb.veth_drops()?;

        let frames = match self.mix {
            None => vec![udp_frame(frame_bytes, sb.fw_mac, sb.peer_mac)],
            Some(mix) => mix.frames(frame_bytes, sb.fw_mac, sb.peer_mac),
        };
        let sender = |cpu, rate| Traffic {
            netns: sb.pair.peer.path(),
            cpu,
            frames: frames.clone(),
            count: u64::MAX,
            limit: self.duration,
            rate,
        };
        let senders: Vec<Traffic> = match load {
            Load::OneCore => vec![sender(self.gen_cpu, None)],
            Load::BothCores => vec![sender(self.gen_cpu, None), sender(self.tool_cpu, None)],
            Load::Paced(rate) => vec![sender(self.gen_cpu, Some(rate))],
        };
        let handles: Vec<_> = senders.into_iter().map(spawn_sender).collect();
        let mut sent = Sent::default();
        for handle in handles {
            let one = handle
                .join()
                .map_err(|_| anyhow::anyhow!("a sender thread panicked"))??;
            sent.frames += one.frames;
            sent.elapsed = sent.elapsed.max(one.elapsed);
            sent.retries += one.retries;
        }

        // Let the capturing tool catch up.
        let min_wait = if setup == Setup::Tcpdump {
            TCPDUMP_DRAIN
        } else {
            IDLE
        };
        let mut cpu_after = None;
        let (mut peak_rss_kib, mut kernel_buffers_rss_kib) = (None, None);
        if let Some(pid) = pid {
            cpu_after = Some(wait_idle(pid, &file, min_wait)?);
            peak_rss_kib = Some(peak_rss(pid)?);
            kernel_buffers_rss_kib = Some(kernel_buffers_rss(pid)?);
        }
        let veth_dropped = sb.veth_drops()?.saturating_sub(veth_before);

        // Stop them in reverse order: the capturing tool first.
        let mut summary = String::new();
        for (mut proc, log) in procs.into_iter().rev() {
            proc.interrupt()?;
            let status = proc.wait_for(Duration::from_secs(30))?;
            let text = fs::read_to_string(&log).unwrap_or_default();
            if !status.success() {
                bail!("{} failed ({status}):\n{text}", proc.what);
            }
            if summary.is_empty() && setup.captures() {
                summary = text.trim().to_string();
            }
        }

        let (in_file, reported_lost) = if setup.captures() {
            let in_file = pcap::count_matching(&file, crate::netbench::is_generated)
                .with_context(|| format!("reading {}", file.display()))?;
            let lost = reported_losses(setup, &summary).with_context(|| {
                format!(
                    "no loss count in the summary of {}:\n{summary}",
                    setup.label()
                )
            })?;
            (Some(in_file), Some(lost))
        } else {
            (None, None)
        };
        let _ = fs::remove_file(&file);
        let not_selected = number_before(&summary, "packets not selected by the capture filter");
        let unreported_lost = in_file.zip(reported_lost).map(|(kept, lost)| {
            let turned_down = not_selected.unwrap_or(0) as i64;
            sent.frames as i64 - veth_dropped as i64 - kept as i64 - lost as i64 - turned_down
        });
        let cpu = cpu_before
            .zip(cpu_after)
            .map(|(before, after)| after.saturating_sub(before));
        Ok(Run {
            setup,
            repetition,
            frame_bytes: frames[0].len(),
            load,
            sent: sent.frames,
            seconds: sent.elapsed.as_secs_f64(),
            pps: sent.pps(),
            veth_dropped,
            in_file,
            reported_lost,
            unreported_lost,
            cpu_ns: cpu,
            cpu_ns_per_captured: cpu.zip(in_file).map(|(ns, n)| ns as f64 / n.max(1) as f64),
            peak_rss_kib,
            kernel_buffers_rss_kib,
            not_selected,
            summary,
        })
    }
}

/// Waits until the process has attached its program (xdpsieve, xdpdump) or opened its
/// capture (tcpdump: "listening on").
pub(super) fn wait_ready(sb: &Sandbox, proc: &mut Proc, log: &Path, line: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        check_interrupted()?;
        if let Some(status) = proc.try_wait()? {
            bail!(
                "{} exited before it was ready ({status}): {line}\n{}",
                proc.what,
                fs::read_to_string(log).unwrap_or_default()
            );
        }
        let ready = match proc.what {
            "tcpdump" => fs::read_to_string(log)
                .unwrap_or_default()
                .contains("listening on"),
            _ => sb.attached()?,
        };
        if ready {
            // nsenter and taskset exec, so the PID is the tool's own.
            let comm = fs::read_to_string(format!("/proc/{}/comm", proc.pid())).unwrap_or_default();
            if comm.trim() != proc.what {
                bail!("pid {} is `{}`, not {}", proc.pid(), comm.trim(), proc.what);
            }
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{} not ready within 30 s: {line}\n{}",
                proc.what,
                fs::read_to_string(log).unwrap_or_default()
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (at least `min`, at most 30 s) until the process's CPU time and the capture
/// file stop changing; returns its CPU time then.
pub(super) fn wait_idle(pid: u32, file: &Path, min: Duration) -> Result<u64> {
    let start = Instant::now();
    let mut last = (cpu_ns(pid)?, crate::netbench::file_len(file));
    let mut still_since = Instant::now();
    loop {
        thread::sleep(Duration::from_millis(50));
        check_interrupted()?;
        let now = (cpu_ns(pid)?, crate::netbench::file_len(file));
        // Idle: less than 1 ms of CPU in the window (timers and polls cost a little).
        if now.1 != last.1 || now.0.saturating_sub(last.0) > 1_000_000 {
            still_since = Instant::now();
            last = now;
        }
        let waited = start.elapsed();
        if (waited >= min && still_since.elapsed() >= IDLE) || waited > Duration::from_secs(30) {
            return Ok(now.0);
        }
    }
}

/// CPU time of every thread of a process, in ns (the scheduler's own accounting).
fn cpu_ns(pid: u32) -> Result<u64> {
    let dir = PathBuf::from(format!("/proc/{pid}/task"));
    let mut total = 0;
    for task in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = task?.path().join("schedstat");
        // A thread that just exited: its time is gone with it.
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        total += text
            .split_whitespace()
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .with_context(|| format!("parsing {}: `{}`", path.display(), text.trim()))?;
    }
    Ok(total)
}

/// VmHWM: the peak resident set size, in KiB.
fn peak_rss(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no VmHWM in {path}"))
}

/// Resident KiB of the mappings of kernel buffers: BPF maps and perf buffers (anon inodes)
/// and packet socket rings (sockets), from /proc/PID/smaps.
fn kernel_buffers_rss(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/smaps");
    let smaps = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let mut total = 0;
    let mut kernel_buffer = false;
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or_default();
        if first.contains('-') && first.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            // A mapping's header line: range, perms, offset, dev, inode, name.
            let name = words.nth(4).unwrap_or_default();
            kernel_buffer = name.starts_with("anon_inode:") || name.starts_with("socket:");
        } else if first == "Rss:" && kernel_buffer {
            total += words
                .next()
                .and_then(|kib| kib.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Ok(total)
}

/// N in "N packets WHAT", or "1 packet WHAT": tcpdump and xdpdump print the singular for one.
fn packets_before(summary: &str, what: &str) -> Option<u64> {
    number_before(summary, &format!("packets {what}"))
        .or_else(|| number_before(summary, &format!("packet {what}")))
}

/// The losses each tool owns up to on exit.
fn reported_losses(setup: Setup, summary: &str) -> Option<u64> {
    match setup {
        Setup::Xdpsieve | Setup::XdpsievePcapng => {
            let ring = number_before(summary, "packets lost: capture buffer full")?;
            // Only with a rate limit, which these runs do not set; counted if present.
            let rate = number_before(
                summary,
                "packets not recorded: over their rule's rate limit",
            )
            .unwrap_or(0);
            Some(ring + rate)
        }
        Setup::Xdpdump => packets_before(summary, "dropped by perf ring"),
        Setup::Tcpdump => {
            let kernel = packets_before(summary, "dropped by kernel")?;
            let interface = packets_before(summary, "dropped by interface").unwrap_or(0);
            Some(kernel + interface)
        }
        _ => Some(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_tools_own_loss_report() {
        // As xdpsieve's summary (stats.rs), xdpdump 1.3 and tcpdump 4.99 print them.
        let xdpsieve = "100 packets seen by xdpsieve (100 dropped, 0 passed, 0 malformed, 0 without IP header)\n\
                        90 packets captured\n7 packets lost: capture buffer full\n\
                        3 packets not recorded: over their rule's rate limit\n";
        assert_eq!(reported_losses(Setup::Xdpsieve, xdpsieve), Some(10));
        let xdpdump = "listening on fw0, ingress XDP program ID 6 func xdpdump\n\n\
                       5 packets captured\n2 packets dropped by perf ring\n";
        assert_eq!(reported_losses(Setup::Xdpdump, xdpdump), Some(2));
        let tcpdump =
            "5 packets captured\n9 packets received by filter\n4 packets dropped by kernel\n";
        assert_eq!(reported_losses(Setup::Tcpdump, tcpdump), Some(4));
        // One loss is singular (a run of CI's smoke bench failed on exactly this).
        let one = "5 packets captured\n6 packets received by filter\n1 packet dropped by kernel\n";
        assert_eq!(reported_losses(Setup::Tcpdump, one), Some(1));
        // A summary without the line is an error for the run, not zero losses.
        assert_eq!(
            reported_losses(Setup::Xdpdump, "5 packets captured\n"),
            None
        );
    }
}
