//! Issue 19: what capturing a dropped packet costs the XDP program under real traffic, not
//! only under `BPF_PROG_TEST_RUN`. `BPF_PROG_TEST_RUN` runs the program on one frame in a
//! loop, with warm caches and a ring buffer nobody contends for; over a veth the program
//! runs in the veth's NAPI poll, on frames the generator just wrote, with the ring buffer
//! drained by a real reader writing a pcap file. The kernel's own accounting times each
//! run there: `kernel.bpf_stats_enabled` (on through a `BPF_ENABLE_STATS` descriptor held
//! for the part and closed after it, so it turns itself off even if we die) adds
//! run_time_ns and run_cnt to the program, read with bpftool before and after the flood.
//!
//! In the netbench sandbox (one veth queue each way, IPv4 only), the real `xdpsieve run`
//! binary, pinned to the tool's CPU, with one rule dropping the flood's UDP destination
//! port, in two modes: without capture (`--capture none`) and capturing what it drops to
//! a pcap file on tmpfs (`-w FILE`, /dev/shm); beside the floor, a program that only
//! returns XDP_PASS (`limit_cost --attach floor`), whose figure is what bpf_stats' own
//! clock pair and the dispatch cost, so that each figure is also shown net of it. IPv4/UDP
//! frames of 64 and 1500 bytes, at a fixed rate the generator (pinned to the other CPU,
//! where the veth runs the receive side and so the program) sustains with either size,
//! bounded in count and time. The rounds go through every mode and size in turn, so that a
//! shared machine's drift falls on all of them alike; the report takes medians. Capture
//! runs also say whether every frame was captured: the generator's frames in the file
//! beside xdpsieve's own `packets captured` and `packets lost` on exit.
//!
//! Then one profile (`perf record -e cpu-clock` on the generator's CPU, with the JIT's
//! symbols in kallsyms) of a 64-byte flood sent flat out and captured, so that the
//! breakdown is of a CPU doing nothing but the packet path: where the time goes among the
//! program itself, the ring buffer's helpers, the copy of the frame, the clocks and the
//! veth's and the sender's own path.

use std::{
    fmt::Write as _,
    fs::{self, File},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use serde::Serialize;
use serde_json::{Value, json};

use super::{
    capture::{IDLE, SETTLE, wait_idle, wait_ready},
    limits::flood::{attach, attached_id, enable_stats, prog_stats, release},
    pcap,
};
use crate::netbench::{
    DST_PORT, FW_IF, Proc, SCRATCH_BASES, Sandbox, Traffic, check_interrupted, is_generated,
    number_before, send_frames, shell_line, spawn_sender, thousands, udp_frame,
};

pub(crate) const SECTION: &str = "## Capture cost under a veth flood (bpf_stats)";

/// Frame sizes (Ethernet header included, FCS not).
pub(crate) const SIZES: [usize; 2] = [64, 1500];
/// Frames per second: what one `send` per frame sustains with 1500-byte frames on the
/// slowest machine the benches ran on, with the receive side on the same CPU.
pub(crate) const RATE: u64 = 200_000;
/// The targets: drop+capture over drop, per size.
pub(crate) const TARGETS: [(usize, f64); 2] = [(64, 1.5), (1500, 2.0)];
/// The profile's top symbols kept for the report.
const TOP_SYMBOLS: usize = 12;

#[derive(Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Mode {
    /// A program that only returns XDP_PASS: bpf_stats' clock pair and the dispatch.
    Floor,
    /// xdpsieve dropping the flood, nothing captured.
    Drop,
    /// xdpsieve dropping the flood and capturing it to a pcap file.
    DropCapture,
}

impl Mode {
    const ALL: [Mode; 3] = [Mode::Floor, Mode::Drop, Mode::DropCapture];

    fn key(self) -> &'static str {
        match self {
            Mode::Floor => "floor",
            Mode::Drop => "drop",
            Mode::DropCapture => "drop-capture",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Mode::Floor => "floor (XDP_PASS)",
            Mode::Drop => "xdpsieve drops, no capture",
            Mode::DropCapture => "xdpsieve drops and captures",
        }
    }
}

/// One flood through one mode.
#[derive(Serialize)]
pub(crate) struct CostRun {
    pub(crate) mode: Mode,
    pub(crate) frame_bytes: usize,
    pub(crate) round: u32,
    pub(crate) sent: u64,
    pub(crate) pps: f64,
    /// Frames the veth pair dropped before the program saw them.
    pub(crate) veth_dropped: u64,
    /// Program runs and their time over the flood (bpf_stats).
    pub(crate) run_cnt: u64,
    pub(crate) run_time_ns: u64,
    pub(crate) ns_per_packet: Option<f64>,
    /// Capture runs: the generator's frames in the file...
    pub(crate) in_file: Option<u64>,
    /// ...and what xdpsieve said on exit: `packets captured`, `packets lost`.
    pub(crate) captured: Option<u64>,
    pub(crate) lost: Option<u64>,
    /// Every frame sent is in the file, and xdpsieve reported no loss.
    pub(crate) complete: Option<bool>,
}

/// The sandbox, and what runs in it where.
struct Bench<'a> {
    sandbox: &'a Sandbox,
    root: &'a Path,
    xdpsieve: &'a Path,
    gen_cpu: u32,
    tool_cpu: u32,
}

/// xdpsieve's command line in a mode (`file` for `-w`).
fn xdpsieve_command(bench: &Bench<'_>, mode: Mode, file: &Path) -> Command {
    let mut c = Command::new("nsenter");
    c.arg(format!("--net={}", bench.sandbox.pair.fw.path().display()))
        .args(["--", "taskset", "-c", &bench.tool_cpu.to_string()])
        .arg(bench.xdpsieve)
        .args(["run", "-q", "-i", FW_IF, "--drop"])
        .arg(format!("udp dst port {DST_PORT}"));
    if mode == Mode::DropCapture {
        c.arg("-w").arg(file);
    } else {
        c.args(["--capture", "none"]);
    }
    c
}

/// A running xdpsieve, its log, and its capture file.
struct Running {
    proc: Proc,
    log: PathBuf,
}

fn start_xdpsieve(bench: &Bench<'_>, mode: Mode, file: &Path) -> Result<Running> {
    let sb = bench.sandbox;
    if sb.attached()? {
        bail!("{FW_IF} still has an XDP program from the previous run (not detached on exit)");
    }
    let _ = fs::remove_file(file);
    let mut cmd = xdpsieve_command(bench, mode, file);
    let line = shell_line(&cmd);
    let log = sb.dir.join("capture-cost-output");
    let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let child = cmd
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .with_context(|| format!("starting {line}"))?;
    let mut proc = Proc::new(child, "xdpsieve");
    wait_ready(sb, &mut proc, &log, &line)?;
    thread::sleep(SETTLE);
    Ok(Running { proc, log })
}

/// What xdpsieve said on exit: (packets captured, packets lost), when it captured.
fn stop_xdpsieve(running: Running) -> Result<(String, Option<u64>, Option<u64>)> {
    let Running { mut proc, log } = running;
    proc.interrupt()?;
    let status = proc.wait_for(Duration::from_secs(30))?;
    let text = fs::read_to_string(&log).unwrap_or_default();
    if !status.success() {
        bail!("xdpsieve failed ({status}):\n{text}");
    }
    let captured = number_before(&text, "packets captured");
    let lost = number_before(&text, "packets lost: capture buffer full");
    Ok((text, captured, lost))
}

/// Every mode and size under the flood, `rounds` times, `seconds` each; then the profile.
pub(crate) fn measure(
    root: &Path,
    xdpsieve: &Path,
    gen_cpu: u32,
    tool_cpu: u32,
    flood: Duration,
    rounds: u32,
    profile_time: Duration,
) -> Result<Value> {
    // The capture file on tmpfs: the program is measured, not the disk.
    let shm = Path::new(SCRATCH_BASES[1]);
    let scratch = if shm.is_dir() {
        shm
    } else {
        Path::new(SCRATCH_BASES[0])
    };
    let sandbox = Sandbox::create("ccost", 1, scratch)?;
    let bench = Bench {
        sandbox: &sandbox,
        root,
        xdpsieve,
        gen_cpu,
        tool_cpu,
    };
    let stats = enable_stats()?;
    let mut runs = Vec::new();
    for round in 0..rounds {
        for bytes in SIZES {
            for mode in Mode::ALL {
                check_interrupted()?;
                eprintln!(
                    "bench: capture cost, {bytes} B, {}, round {}",
                    mode.label(),
                    round + 1
                );
                let run = run_one(&bench, mode, bytes, round, flood)
                    .with_context(|| format!("capture cost: {bytes} B, {}", mode.label()))?;
                eprintln!(
                    "bench:   {} ns/packet over {} runs, {:.0} kpps{}",
                    run.ns_per_packet.map_or("—".into(), |v| format!("{v:.1}")),
                    thousands(run.run_cnt),
                    run.pps / 1000.0,
                    match (run.in_file, run.lost) {
                        (Some(n), lost) => format!(
                            ", {} of {} in the file, {} lost",
                            thousands(n),
                            thousands(run.sent),
                            lost.map_or("?".into(), thousands)
                        ),
                        _ => String::new(),
                    }
                );
                runs.push(run);
            }
        }
    }
    drop(stats);
    check_interrupted()?;
    eprintln!("bench: capture cost, profile of a 64 B flood captured (perf)");
    let profile = profile(&bench, profile_time).unwrap_or_else(|e| {
        eprintln!("bench:   profile failed: {e:#}");
        json!({ "error": format!("{e:#}") })
    });
    let file = PathBuf::from("FILE");
    let commands: Vec<String> = [Mode::Drop, Mode::DropCapture]
        .into_iter()
        .map(|m| shell_line(&xdpsieve_command(&bench, m, &file)))
        .collect();
    Ok(json!({
        "rate": RATE,
        "seconds_per_run": flood.as_secs_f64(),
        "rounds": rounds,
        "generator_cpu": gen_cpu,
        "tool_cpu": tool_cpu,
        "scratch": scratch,
        "commands": commands,
        "runs": runs,
        "profile": profile,
    }))
}

fn run_one(
    bench: &Bench<'_>,
    mode: Mode,
    bytes: usize,
    round: u32,
    flood: Duration,
) -> Result<CostRun> {
    let sb = bench.sandbox;
    let file = sb.dir.join("capture.pcap");
    // The program under test, attached; the floor is held by the limit bench's holder.
    let (xdpsieve, holder) = if mode == Mode::Floor {
        (None, Some(attach(bench.root, sb, "floor")?))
    } else {
        (Some(start_xdpsieve(bench, mode, &file)?), None)
    };
    let id = attached_id(sb)?;
    let veth_before = sb.veth_drops()?;
    let before = prog_stats(id)?;
    let sent = send_frames(Traffic {
        netns: sb.pair.peer.path(),
        cpu: bench.gen_cpu,
        frames: vec![udp_frame(bytes, sb.fw_mac, sb.peer_mac)],
        count: RATE * flood.as_millis() as u64 / 1000,
        limit: flood + Duration::from_secs(2),
        rate: Some(RATE),
    })?;
    // The veth's NAPI poll may still hold the last frames.
    thread::sleep(Duration::from_millis(50));
    let after = prog_stats(id)?;
    let veth_dropped = sb.veth_drops()?.saturating_sub(veth_before);
    let (mut in_file, mut captured, mut lost) = (None, None, None);
    if let Some((mut holder, stdin)) = holder {
        release(&mut holder, stdin)?;
    }
    if let Some(running) = xdpsieve {
        if mode == Mode::DropCapture {
            // The reader catches up before it is stopped.
            wait_idle(running.proc.pid(), &file, IDLE)?;
        }
        let (summary, c, l) = stop_xdpsieve(running)?;
        if mode == Mode::DropCapture {
            in_file = Some(
                pcap::count_matching(&file, is_generated)
                    .with_context(|| format!("reading {}", file.display()))?,
            );
            captured = Some(c.with_context(|| format!("no `packets captured` in:\n{summary}"))?);
            lost = Some(l.with_context(|| format!("no `packets lost` in:\n{summary}"))?);
        }
    }
    let _ = fs::remove_file(&file);
    let (time, count) = (after.0 - before.0, after.1 - before.1);
    Ok(CostRun {
        mode,
        frame_bytes: bytes,
        round,
        sent: sent.frames,
        pps: sent.pps(),
        veth_dropped,
        run_cnt: count,
        run_time_ns: time,
        ns_per_packet: (count > 0).then(|| time as f64 / count as f64),
        in_file,
        captured,
        lost,
        complete: in_file.map(|n| n == sent.frames && lost == Some(0)),
    })
}

/// `net.core.bpf_jit_kallsyms` set to 1 (JIT symbols for perf) and put back when dropped.
struct JitKallsyms(Option<String>);

const JIT_KALLSYMS: &str = "/proc/sys/net/core/bpf_jit_kallsyms";

impl JitKallsyms {
    fn enable() -> Result<JitKallsyms> {
        let old = fs::read_to_string(JIT_KALLSYMS)
            .with_context(|| format!("reading {JIT_KALLSYMS}"))?
            .trim()
            .to_string();
        if old == "1" {
            return Ok(JitKallsyms(None));
        }
        fs::write(JIT_KALLSYMS, "1").with_context(|| format!("writing 1 to {JIT_KALLSYMS}"))?;
        Ok(JitKallsyms(Some(old)))
    }
}

impl Drop for JitKallsyms {
    fn drop(&mut self) {
        if let Some(old) = &self.0
            && let Err(e) = fs::write(JIT_KALLSYMS, old)
        {
            eprintln!("warning: could not put {JIT_KALLSYMS} back to {old}: {e}");
        }
    }
}

/// What a symbol of the profile belongs to (`user`: a userspace symbol, `[.]` in perf's
/// report; on the generator's CPU, only the generator's).
pub(crate) fn group(symbol: &str, user: bool) -> &'static str {
    let s = symbol;
    let any = |words: &[&str]| words.iter().any(|w| s.contains(w));
    if user {
        GROUPS[6]
    } else if s.starts_with("bpf_prog_") || any(&["htab_", "lookup_nulls_elem", "map_lookup"]) {
        // JIT symbols: the program, and its subprograms (`bpf_prog_TAG_count`).
        GROUPS[0]
    } else if any(&["ringbuf", "spin_lock", "spin_unlock", "irq_work"]) {
        GROUPS[1]
    } else if any(&["load_bytes", "xdp_copy_buf", "memcpy", "memmove"]) {
        GROUPS[2]
    } else if any(&["ktime", "clock", "read_tsc", "rdtsc", "pvclock"]) {
        GROUPS[3]
    } else if any(&[
        "packet_",
        "sendto",
        "sendmsg",
        "syscall",
        "entry_",
        "_copy_from_iter",
        "fdget",
        "fput",
        "import_ubuf",
        "check_object_size",
        "check_heap_object",
        "virt_addr_valid",
        "dev_direct_xmit",
        "validate_xmit",
        "netdev_pick_tx",
        "sock_alloc_send",
        "sock_wfree",
        "sock_def_write_space",
        "skb_copy_datagram_from_iter",
        "alloc_skb",
        "kmalloc_reserve",
        "features_check",
        "netif_skb_features",
        "skb_clone_tx_timestamp",
        "veth_xmit",
    ]) {
        GROUPS[5]
    } else if any(&[
        "veth",
        "napi",
        "net_rx",
        "netif",
        "skb",
        "xdp",
        "softirq",
        "page_pool",
        "kmem_cache",
        "kfree",
        "eth_",
        "flow_dissect",
        "dev_forward",
        "rcu",
        "local_bh",
    ]) {
        GROUPS[4]
    } else {
        GROUPS[7]
    }
}

/// The groups in the order the report shows them; the first four are the XDP program's
/// run (what bpf_stats times).
pub(crate) const GROUPS: [&str; 8] = [
    "the XDP program (its code, subprograms, map lookups)",
    "ring buffer helpers (bpf_ringbuf_output, reserve, commit, lock)",
    "frame copy (bpf_xdp_load_bytes, memcpy)",
    "clocks (bpf_ktime_get_ns; any kernel clock read)",
    "veth receive side, netstack, softirq",
    "the generator's send (syscall, AF_PACKET, veth_xmit)",
    "the generator (userspace)",
    "other",
];

/// The groups that make the program's run.
const RUN_GROUPS: usize = 4;

/// `perf report --stdio` lines `  12.34%  [k] symbol` as (share, userspace, symbol).
fn parse_report(text: &str) -> Vec<(f64, bool, String)> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let share = words.next()?.strip_suffix('%')?.parse::<f64>().ok()?;
            let rest: Vec<&str> = words.collect();
            let (user, symbol) = match rest.first() {
                Some(tag) if tag.starts_with('[') && tag.ends_with(']') => {
                    (*tag == "[.]", rest[1..].join(" "))
                }
                _ => (false, rest.join(" ")),
            };
            Some((share, user, symbol))
        })
        .collect()
}

/// One 64-byte flood, flat out and captured, profiled on the generator's CPU.
fn profile(bench: &Bench<'_>, time: Duration) -> Result<Value> {
    if !crate::on_path("perf") {
        bail!("`perf` not found; install it: apt-get install linux-perf");
    }
    let sb = bench.sandbox;
    let _kallsyms = JitKallsyms::enable()?;
    let file = sb.dir.join("capture.pcap");
    let data = sb.dir.join("perf.data");
    let running = start_xdpsieve(bench, Mode::DropCapture, &file)?;
    let mut record = Command::new("perf");
    record
        .args(["record", "-q", "-e", "cpu-clock", "-C"])
        .arg(bench.gen_cpu.to_string())
        .arg("-o")
        .arg(&data)
        .args(["--", "sleep", &format!("{:.1}", time.as_secs_f64())]);
    let record_line = shell_line(&record);
    let perf_log = sb.dir.join("perf-output");
    let out = File::create(&perf_log)?;
    let child = record
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .with_context(|| format!("starting {record_line}"))?;
    let mut perf = Proc::new(child, "perf");
    // perf lists the programs already loaded before it samples; then the flood, flat out,
    // outlasting the recording.
    thread::sleep(Duration::from_millis(300));
    let sender = spawn_sender(Traffic {
        netns: sb.pair.peer.path(),
        cpu: bench.gen_cpu,
        frames: vec![udp_frame(64, sb.fw_mac, sb.peer_mac)],
        count: 2_000_000 * (time.as_secs() + 2),
        limit: time + Duration::from_secs(1),
        rate: None,
    });
    let status = perf.wait_for(time + Duration::from_secs(30))?;
    let sent = sender
        .join()
        .map_err(|_| anyhow::anyhow!("the sender thread panicked"))??;
    wait_idle(running.proc.pid(), &file, IDLE)?;
    let (_, captured, lost) = stop_xdpsieve(running)?;
    let _ = fs::remove_file(&file);
    if !status.success() {
        bail!(
            "{record_line} failed ({status}): {}",
            fs::read_to_string(&perf_log).unwrap_or_default()
        );
    }
    let mut report_cmd = Command::new("perf");
    report_cmd
        .args(["report", "--no-children", "--sort", "sym", "--stdio", "-i"])
        .arg(&data);
    let report_line = shell_line(&report_cmd);
    let text = crate::output(&mut report_cmd)?;
    let samples = text
        .lines()
        .find_map(|l| l.strip_prefix("# Samples: "))
        .and_then(|l| l.split_whitespace().next())
        .map(str::to_string);
    let symbols = parse_report(&text);
    let _ = fs::remove_file(&data);
    if symbols.is_empty() {
        bail!("{report_line}: no samples:\n{text}");
    }
    let shares: Vec<f64> = GROUPS
        .iter()
        .map(|g| {
            symbols
                .iter()
                .filter(|(_, user, s)| group(s, *user) == *g)
                .map(|(p, _, _)| p)
                .sum()
        })
        .collect();
    let run_total: f64 = shares[..RUN_GROUPS].iter().sum();
    let groups: Vec<Value> = GROUPS
        .iter()
        .zip(&shares)
        .enumerate()
        .map(|(i, (g, share))| {
            let of_run = (i < RUN_GROUPS && run_total > 0.0).then(|| 100.0 * share / run_total);
            json!({ "group": g, "share": share, "share_of_program_run": of_run })
        })
        .collect();
    let top: Vec<Value> = symbols
        .iter()
        .take(TOP_SYMBOLS)
        .map(|(share, user, s)| json!({ "symbol": s, "share": share, "group": group(s, *user) }))
        .collect();
    let sym_tagged = symbols
        .iter()
        .any(|(_, _, s)| s.starts_with("bpf_prog_") && s.contains("xdpsieve"));
    Ok(json!({
        "frame_bytes": 64,
        "seconds": time.as_secs_f64(),
        "cpu": bench.gen_cpu,
        "samples": samples,
        "sent": sent.frames,
        "pps": sent.pps(),
        "captured": captured,
        "lost": lost,
        "jit_symbols": sym_tagged,
        "top": top,
        "groups": groups,
        "commands": [record_line, report_line],
    }))
}

fn runs(part: &Value) -> &[Value] {
    part["runs"].as_array().map_or(&[][..], Vec::as_slice)
}

/// The median ns/packet of a mode at a size.
fn median(part: &Value, mode: Mode, bytes: usize) -> Option<f64> {
    let mut v: Vec<f64> = runs(part)
        .iter()
        .filter(|r| r["mode"] == mode.key() && r["frame_bytes"] == bytes)
        .filter_map(|r| r["ns_per_packet"].as_f64())
        .collect();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied()
}

/// (drop, drop+capture) medians net of the floor at a size, and their ratio; also raw.
pub(crate) struct Figures {
    pub(crate) drop: Option<f64>,
    pub(crate) capture: Option<f64>,
    pub(crate) floor: Option<f64>,
}

impl Figures {
    pub(crate) fn of(part: &Value, bytes: usize) -> Figures {
        Figures {
            drop: median(part, Mode::Drop, bytes),
            capture: median(part, Mode::DropCapture, bytes),
            floor: median(part, Mode::Floor, bytes),
        }
    }

    fn net(&self, v: Option<f64>) -> Option<f64> {
        v.zip(self.floor).map(|(v, f)| v - f)
    }

    /// drop+capture over drop, both net of the floor.
    pub(crate) fn ratio_net(&self) -> Option<f64> {
        let (c, d) = (self.net(self.capture)?, self.net(self.drop)?);
        (d > 0.0).then(|| c / d)
    }

    pub(crate) fn ratio_raw(&self) -> Option<f64> {
        let (c, d) = (self.capture?, self.drop?);
        (d > 0.0).then(|| c / d)
    }
}

fn ns1(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| format!("{v:.1}"))
}

fn times(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| format!("{v:.2}×"))
}

/// The targets rows: drop+capture over drop, net of the floor, per size.
pub(crate) fn targets(part: &Value) -> Vec<Value> {
    TARGETS
        .iter()
        .map(|&(bytes, factor)| {
            let f = Figures::of(part, bytes);
            json!({
                "target": format!(
                    "veth flood (bpf_stats), {bytes} B: drop+capture ≤ {factor}× drop"
                ),
                "peer": format!(
                    "drop: {} ns/packet ({} net of the floor)",
                    ns1(f.drop),
                    ns1(f.net(f.drop))
                ),
                "xdpsieve": format!(
                    "drop+capture: {} ns ({} net): {} net, {} raw",
                    ns1(f.capture),
                    ns1(f.net(f.capture)),
                    times(f.ratio_net()),
                    times(f.ratio_raw())
                ),
                "met": f.ratio_net().map(|r| r <= factor),
            })
        })
        .collect()
}

pub(crate) fn render(md: &mut String, part: &Value) -> std::fmt::Result {
    writeln!(md, "\n{SECTION}\n")?;
    if part.is_null() {
        writeln!(md, "Not measured in this run.")?;
        return Ok(());
    }
    writeln!(
        md,
        "Issue 19: the program's run time per packet under real traffic, beside the \
         `BPF_PROG_TEST_RUN` figures of section 1. A veth pair (one queue each way) between \
         two namespaces; the generator sends IPv4/UDP frames to port {DST_PORT} at {} \
         frames/s for {:.1} s per run from CPU {} (where the veth runs the receive side, so \
         the XDP program too); the real `xdpsieve run`, pinned to CPU {}, drops them with \
         one rule, without capture or capturing them to a pcap file in {}. \
         `kernel.bpf_stats_enabled` (through a `BPF_ENABLE_STATS` descriptor held for the \
         part) times every run of the attached program: ns/packet = run_time_ns / run_cnt \
         over the flood, read with bpftool. The floor is a program that only returns \
         XDP_PASS: bpf_stats' own clock pair and the dispatch, which every figure includes; \
         *net* is the median minus the floor's median. {} round{} going through every mode \
         and size in turn; medians. The targets compare the figures net of the floor \
         (raw ratios beside them).\n",
        thousands(part["rate"].as_u64().unwrap_or(0)),
        part["seconds_per_run"].as_f64().unwrap_or(0.0),
        part["generator_cpu"],
        part["tool_cpu"],
        part["scratch"].as_str().unwrap_or("?"),
        part["rounds"],
        if part["rounds"] == 1 { "" } else { "s" },
    )?;
    writeln!(
        md,
        "| frame | mode | ns/packet, each round | median | net of the floor | drop+capture / drop (net; raw) |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|")?;
    for bytes in SIZES {
        let f = Figures::of(part, bytes);
        for mode in Mode::ALL {
            let each: Vec<String> = runs(part)
                .iter()
                .filter(|r| r["mode"] == mode.key() && r["frame_bytes"] == bytes)
                .map(|r| ns1(r["ns_per_packet"].as_f64()))
                .collect();
            let m = median(part, mode, bytes);
            writeln!(
                md,
                "| {bytes} B | {} | {} | {} | {} | {} |",
                mode.label(),
                each.join(", "),
                ns1(m),
                if mode == Mode::Floor {
                    "—".into()
                } else {
                    ns1(f.net(m))
                },
                if mode == Mode::DropCapture {
                    format!("{}; {}", times(f.ratio_net()), times(f.ratio_raw()))
                } else {
                    "—".into()
                }
            )?;
        }
    }
    writeln!(
        md,
        "\nEvery run: the rate the generator reached, the program's runs, and for the capture \
         runs the generator's frames in the file beside what xdpsieve reported on exit \
         (`packets captured`, `packets lost: capture buffer full`).\n"
    )?;
    writeln!(
        md,
        "| frame | mode | round | sent | kpps | veth dropped | program runs | in file | captured (xdpsieve) | lost (xdpsieve) | every frame captured |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|")?;
    let opt = |v: &Value| v.as_u64().map_or("—".into(), thousands);
    for r in runs(part) {
        let mode = Mode::ALL
            .iter()
            .find(|m| r["mode"] == m.key())
            .map_or("?", |m| m.label());
        writeln!(
            md,
            "| {} B | {mode} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {} |",
            r["frame_bytes"],
            r["round"].as_u64().unwrap_or(0) + 1,
            opt(&r["sent"]),
            r["pps"].as_f64().unwrap_or(0.0) / 1000.0,
            opt(&r["veth_dropped"]),
            opt(&r["run_cnt"]),
            opt(&r["in_file"]),
            opt(&r["captured"]),
            opt(&r["lost"]),
            match r["complete"].as_bool() {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "—",
            }
        )?;
    }
    render_profile(md, &part["profile"])?;
    let commands = part["commands"].as_array().map_or(&[][..], Vec::as_slice);
    writeln!(
        md,
        "\nCaveats: a shared 2-CPU VM; bpf_stats' clock pair is read around every run, so the \
         raw figures are larger than the program's own time by about the floor; the floor \
         passes its frames up the stack to a never-read socket, which costs it nothing \
         inside the program. xdpsieve's commands (FILE is the capture file):"
    )?;
    for c in commands {
        writeln!(md, "- `{}`", c.as_str().unwrap_or("?"))?;
    }
    Ok(())
}

fn render_profile(md: &mut String, p: &Value) -> std::fmt::Result {
    writeln!(md, "\n### Where the capture path's time goes (perf)\n")?;
    if let Some(error) = p["error"].as_str() {
        writeln!(md, "Not profiled in this run: {error}")?;
        return Ok(());
    }
    let commands: Vec<String> = p["commands"]
        .as_array()
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .map(|c| format!("`{}`", c.as_str().unwrap_or("?")))
        .collect();
    writeln!(
        md,
        "A 64-byte flood sent flat out ({} kpps for {:.1} s) from CPU {}, dropped and captured \
         by xdpsieve as above ({} captured, {} lost), sampled on that CPU (software \
         `cpu-clock`, {} samples; the JIT's symbols in kallsyms: {}). That CPU runs only the \
         packet path: the generator's `send`, the veth, the XDP program and its helpers; the \
         reader writing the file runs on the other CPU and is not in these shares; bpf_stats \
         is off here. Samples \
         land where interrupts are enabled again, so time under a spinlock taken with \
         interrupts off shows up at its unlock. Commands: {}.\n",
        p["pps"]
            .as_f64()
            .map_or("?".into(), |v| format!("{:.0}", v / 1000.0)),
        p["seconds"].as_f64().unwrap_or(0.0),
        p["cpu"],
        p["captured"].as_u64().map_or("?".into(), thousands),
        p["lost"].as_u64().map_or("?".into(), thousands),
        p["samples"].as_str().unwrap_or("?"),
        if p["jit_symbols"] == true {
            "yes"
        } else {
            "**no xdpsieve program symbol found**"
        },
        commands.join(", then "),
    )?;
    writeln!(
        md,
        "| group | share of the CPU's samples | share of the program's run (the first {RUN_GROUPS}) |"
    )?;
    writeln!(md, "|---|---|---|")?;
    for g in p["groups"].as_array().map_or(&[][..], Vec::as_slice) {
        writeln!(
            md,
            "| {} | {:.1}% | {} |",
            g["group"].as_str().unwrap_or("?"),
            g["share"].as_f64().unwrap_or(0.0),
            g["share_of_program_run"]
                .as_f64()
                .map_or("—".into(), |v| format!("{v:.0}%"))
        )?;
    }
    writeln!(md, "\nThe top {TOP_SYMBOLS} symbols:\n")?;
    writeln!(md, "| symbol | group | share |")?;
    writeln!(md, "|---|---|---|")?;
    for s in p["top"].as_array().map_or(&[][..], Vec::as_slice) {
        writeln!(
            md,
            "| `{}` | {} | {:.1}% |",
            s["symbol"].as_str().unwrap_or("?"),
            s["group"].as_str().unwrap_or("?"),
            s["share"].as_f64().unwrap_or(0.0)
        )?;
    }
    Ok(())
}

/// Every mode at every size has a figure, and the profile ran if perf is here (the smoke
/// run's check; nothing about the numbers).
pub(crate) fn check(part: &Value) -> Result<()> {
    for bytes in SIZES {
        for mode in Mode::ALL {
            if median(part, mode, bytes).is_none() {
                bail!(
                    "capture cost: no ns/packet for {} at {bytes} B",
                    mode.label()
                );
            }
        }
        if !runs(part).iter().any(|r| {
            r["mode"] == Mode::DropCapture.key()
                && r["frame_bytes"] == bytes
                && r["in_file"].is_u64()
                && r["captured"].is_u64()
        }) {
            bail!("capture cost: no capture count at {bytes} B");
        }
    }
    if crate::on_path("perf")
        && part["profile"]["top"]
            .as_array()
            .is_none_or(|t| t.is_empty())
    {
        bail!(
            "capture cost: no profile ({})",
            part["profile"]["error"].as_str().unwrap_or("no symbols")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_perf_reports_and_groups_symbols() {
        let text = "# Samples: 8K of event 'cpu-clock'\n# Overhead  Symbol\n#\n\
                    \x20   23.45%  [k] bpf_prog_6deef7357e7b4530_xdpsieve\n\
                    \x20    8.01%  [k] __bpf_ringbuf_reserve\n\
                    \x20    1.00%  [.] std::thread::sleep\n";
        let parsed = parse_report(text);
        assert_eq!(parsed.len(), 3);
        assert_eq!(parsed[0].2, "bpf_prog_6deef7357e7b4530_xdpsieve");
        let of = |(_, user, s): &(f64, bool, String)| group(s, *user);
        assert_eq!(of(&parsed[0]), GROUPS[0]);
        assert_eq!(of(&parsed[1]), GROUPS[1]);
        assert_eq!(of(&parsed[2]), GROUPS[6]);
        assert_eq!(group("bpf_prog_036ab4f7727061b2_count", false), GROUPS[0]);
        assert_eq!(group("_raw_spin_unlock_irqrestore", false), GROUPS[1]);
        assert_eq!(group("bpf_xdp_load_bytes", false), GROUPS[2]);
        assert_eq!(group("ktime_get_mono_fast_ns", false), GROUPS[3]);
        assert_eq!(group("veth_xdp_rcv", false), GROUPS[4]);
        assert_eq!(group("skb_pp_cow_data", false), GROUPS[4]);
        assert_eq!(group("packet_sendmsg", false), GROUPS[5]);
        assert_eq!(group("native_write_msr", false), GROUPS[7]);
    }
}
