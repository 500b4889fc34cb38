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

use std::{
    fmt::Write as _,
    fs,
    io::{BufRead as _, BufReader},
    path::Path,
    process::{Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::netbench::*;

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

pub fn run(root: &Path, quick: bool) -> Result<()> {
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

/// One run of xdpsieve with one stream of traffic.
struct Step {
    transport: &'static str,
    target: Option<u64>,
    ring: &'static str,
    /// Frames sent.
    frames: u64,
    /// First to last frame sent.
    elapsed: Duration,
    dropped: u64,
    /// Events the program queued ("sent by the program").
    sent: u64,
    /// Events the reader wrote ("events logged").
    logged: u64,
    /// Lines in the log file (should equal `logged`).
    lines: u64,
    /// Events the program could not queue ("events lost: event buffer full").
    ring_lost: u64,
    /// PERF_RECORD_LOST totals, which xdpsieve shows as a cross-check of `ring_lost`.
    perf_lost: u64,
    /// The reader's user + system time from just before the traffic until it was idle.
    cpu: Duration,
    /// Whether the reader went idle (caught up) before SIGINT.
    caught_up: bool,
    /// The reader's voluntary context switches (about one per wakeup) over the same time.
    wakeups: u64,
    /// IRQ work interrupts on the sender's CPU over the same time (perf wakes readers
    /// through IRQ work), if /proc/interrupts has them.
    irq_work: Option<u64>,
}

impl Step {
    /// Events that never reached the log.
    fn missing(&self) -> u64 {
        self.dropped.saturating_sub(self.logged)
    }
    /// Missing events not covered by the loss counter (negative: counted more than once).
    /// The perf buffers' own lost-sample reports describe the same samples as `ring_lost`,
    /// and are checked against it separately.
    fn unaccounted(&self) -> i64 {
        self.dropped as i64 - self.logged as i64 - self.ring_lost as i64
    }
    fn lossless(&self) -> bool {
        self.dropped == self.frames
            && self.sent == self.dropped
            && self.logged == self.dropped
            && self.lines == self.logged
            && self.ring_lost == 0
            && self.perf_lost == 0
    }
    fn secs(&self) -> f64 {
        self.elapsed.as_secs_f64().max(1e-9)
    }
    fn pps(&self) -> f64 {
        self.frames as f64 / self.secs()
    }
    /// Whether the sender kept up with the target rate.
    fn sustained(&self) -> bool {
        self.target
            .is_none_or(|t| self.pps() >= t as f64 * SUSTAINED)
    }
    fn events_per_sec(&self) -> f64 {
        self.logged as f64 / self.secs()
    }
    fn cpu_share(&self) -> f64 {
        self.cpu.as_secs_f64() / self.secs()
    }
    fn ns_per_event(&self) -> String {
        if self.logged == 0 {
            return "-".to_string();
        }
        format!("{:.0}", self.cpu.as_nanos() as f64 / self.logged as f64)
    }
    fn loss_fraction(&self) -> f64 {
        if self.dropped == 0 {
            0.0
        } else {
            self.missing() as f64 / self.dropped as f64
        }
    }
    fn one_line(&self) -> String {
        format!(
            "{} pps for {:.2} s, dropped {}, sent {}, logged {}, lost {} (ring) {} (perf), \
             unaccounted {}, reader CPU {:.2} s ({:.0}%)",
            thousands(self.pps() as u64),
            self.secs(),
            self.dropped,
            self.sent,
            self.logged,
            self.ring_lost,
            self.perf_lost,
            self.unaccounted(),
            self.cpu.as_secs_f64(),
            self.cpu_share() * 100.0
        )
    }
}

impl Bench<'_> {
    /// Runs one step; also returns the reader's command line, for the report.
    fn step(
        &self,
        transport: &'static str,
        target: Option<u64>,
        ring: &'static str,
    ) -> Result<(Step, String)> {
        let sb = self.sandbox;
        let log = sb.dir.join(format!("events-{transport}.log"));
        let _ = fs::remove_file(&log);
        if sb.attached()? {
            bail!("{FW_IF} still has an XDP program from the previous step (not detached on exit)");
        }

        let mut reader_cmd = Command::new("nsenter");
        reader_cmd
            .arg(format!("--net=/run/netns/{}", sb.fw))
            .args(["--", "taskset", "-c", &self.reader_cpu.to_string()])
            .arg(self.binary)
            .args(["run", "-i", FW_IF, "--drop", RULE, "--log", "dropped"])
            .args(["--log-format", "text", "--log-file"])
            .arg(&log)
            .args(["--transport", transport, "--ring-size", ring])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let reader_desc = shell_line(&reader_cmd);
        let mut child = reader_cmd
            .spawn()
            .with_context(|| format!("starting {reader_desc}"))?;
        let stderr = child.stderr.take().context("xdpsieve's stderr")?;
        let mut reader = Proc {
            child,
            what: "xdpsieve",
        };
        let (tx, rx) = mpsc::channel::<String>();
        let stderr_thread = thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let collect = |rx: &mpsc::Receiver<String>| rx.try_iter().collect::<Vec<_>>().join("\n");

        // Attached once the interface shows an XDP program.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            check_interrupted()?;
            if let Some(status) = reader.child.try_wait()? {
                let _ = stderr_thread.join();
                bail!(
                    "xdpsieve exited before attaching ({status}): {reader_desc}\n{}",
                    collect(&rx)
                );
            }
            if sb.attached()? {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "xdpsieve did not attach to {FW_IF} within 20 s:\n{}",
                    collect(&rx)
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
        let pid = reader.pid();
        // nsenter and taskset exec, so the PID is xdpsieve's own.
        let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() != "xdpsieve" {
            bail!(
                "pid {pid} is `{}`, not xdpsieve (did nsenter fork?)",
                comm.trim()
            );
        }
        thread::sleep(SETTLE);
        check_interrupted()?;
        let cpu_before = cpu_ticks(pid)?;
        let wakeups_before = voluntary_switches(pid)?;
        let irq_work_before = irq_work_count(self.gen_cpu);

        // Bounded: 3x the planned duration (flat out: as if at 100k pps) plus 10 s.
        let planned = self.frames as f64 / target.unwrap_or(100_000) as f64;
        let sent = send_frames(Traffic {
            netns: sb.netns_path(&sb.peer),
            cpu: self.gen_cpu,
            frames: vec![self.frame.clone()],
            count: self.frames,
            limit: Duration::from_secs_f64(planned * 3.0 + 10.0),
            rate: target,
        })?;
        if sent.retries > 0 {
            eprintln!(
                "bench-events:   ({} sends retried after ENOBUFS/EAGAIN)",
                sent.retries
            );
        }

        // Let the reader catch up: its CPU time and the log's size stop changing.
        let mut last = (cpu_ticks(pid)?, file_len(&log));
        let mut stable = 0;
        let deadline = Instant::now() + Duration::from_secs(30);
        let caught_up = loop {
            thread::sleep(Duration::from_millis(100));
            check_interrupted()?;
            if let Some(status) = reader.child.try_wait()? {
                let _ = stderr_thread.join();
                bail!("xdpsieve exited early ({status}):\n{}", collect(&rx));
            }
            let now = (cpu_ticks(pid)?, file_len(&log));
            if now == last {
                stable += 1;
                if stable >= 3 {
                    break true;
                }
            } else {
                stable = 0;
                last = now;
            }
            if Instant::now() > deadline {
                break false;
            }
        };
        let cpu_after = cpu_ticks(pid)?;
        let wakeups = voluntary_switches(pid)?.saturating_sub(wakeups_before);
        let irq_work = irq_work_before
            .zip(irq_work_count(self.gen_cpu))
            .map(|(before, after)| after.saturating_sub(before));

        interrupt(pid)?;
        let status = reader.wait_for(Duration::from_secs(60))?;
        let _ = stderr_thread.join();
        let summary = collect(&rx);
        if !status.success() {
            bail!("xdpsieve failed ({status}): {reader_desc}\n{summary}");
        }
        let parse = || -> Option<(u64, u64, u64, u64, u64)> {
            let line = summary.lines().find(|l| l.contains("packets seen by"))?;
            let dropped = number_before(line.split_once('(')?.1, "dropped")?;
            let logged = number_before(&summary, "events logged")?;
            let line = summary.lines().find(|l| l.contains("events logged"))?;
            let sent = number_before(line.split_once('(')?.1, "sent by the program")?;
            let ring_lost = number_before(&summary, "events lost: event buffer full")?;
            // Shown as a cross-check of the same samples, not as more losses.
            let perf_lost =
                number_before(&summary, "lost samples: the ones counted above").unwrap_or(0);
            Some((dropped, sent, logged, ring_lost, perf_lost))
        };
        let (dropped, sent_by_program, logged, ring_lost, perf_lost) =
            parse().with_context(|| format!("could not read xdpsieve's summary:\n{summary}"))?;
        let lines = count_lines(&log)?;
        let _ = fs::remove_file(&log);
        let cpu = Duration::from_secs_f64(
            cpu_after.saturating_sub(cpu_before) as f64 / self.clk_tck as f64,
        );
        let step = Step {
            transport,
            target,
            ring,
            frames: sent.frames,
            elapsed: sent.elapsed,
            dropped,
            sent: sent_by_program,
            logged,
            lines,
            ring_lost,
            perf_lost,
            cpu,
            caught_up,
            wakeups,
            irq_work,
        };
        Ok((step, reader_desc))
    }
}

/// utime + stime of a process, in clock ticks.
fn report(
    bench: &Bench,
    steps: &[Step],
    reader_command: Option<&str>,
    elapsed: Duration,
) -> Result<String> {
    let mut md = String::new();
    let model = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".to_string());
    let kernel = capture(Command::new("uname").arg("-r"))?.trim().to_string();
    let cpus = online_cpus()?.len();
    let revision = capture(
        Command::new("git")
            .args(["describe", "--always", "--dirty"])
            .current_dir(bench.root),
    )
    .map(|r| r.trim().to_string())
    .unwrap_or_else(|_| "unknown".to_string());
    let (fw, peer) = (dotted(FW_V4), dotted(PEER_V4));
    writeln!(md, "# xdpsieve event log benchmark\n")?;
    writeln!(
        md,
        "- Machine: {model}, {cpus} online CPUs. Sender and XDP program (the veth's NAPI, \
         in the sender's softirq) on CPU {}, the reader (xdpsieve) on CPU {}",
        bench.gen_cpu, bench.reader_cpu
    )?;
    writeln!(md, "- Kernel: {kernel}")?;
    writeln!(md, "- xdpsieve: git {revision}, release build")?;
    writeln!(
        md,
        "- Per step: {} frames of 64 bytes (IPv4/UDP {peer}:53 -> {fw}:{DST_PORT}) over a \
         veth pair between two network namespaces, at a steady rate (one `send` per frame, \
         busy-waiting between them), all dropped by `--drop '{RULE}'` and logged with \
         `--log dropped --log-format text` to a file on /tmp; a fresh xdpsieve per step, \
         traffic from {} ms after the program is attached",
        thousands(bench.frames),
        SETTLE.as_millis()
    )?;
    writeln!(
        md,
        "- `--ring-size {RING_SIZE}`: one 8 MiB ring buffer, or 8 MiB of perf buffers shared \
         out among the CPUs. The last step per transport uses `--ring-size {SMALL_RING}` on \
         purpose, to make the sender outrun the reader and check how losses are reported"
    )?;
    writeln!(
        md,
        "- pps: frames / time from the first to the last send. Reader CPU: utime + stime of \
         xdpsieve from /proc/PID/stat (CLK_TCK {}), from just before the traffic until the \
         reader was idle; CPU % is that over the traffic's wall time (over 100%: the reader \
         was still catching up when the traffic ended)",
        bench.clk_tck
    )?;
    writeln!(
        md,
        "- lost (ring): \"events lost: event buffer full\", the program's count of failed \
         outputs (whatever the transport); lost (perf): the perf buffers' PERF_RECORD_LOST \
         totals, which xdpsieve shows as a cross-check of the same samples; unaccounted = \
         dropped - logged - lost (ring): positive is silent loss, negative is loss reported \
         more than once"
    )?;
    writeln!(
        md,
        "- reader wakeups: xdpsieve's voluntary context switches (each a return from poll); \
         IRQ work: the `IWI` interrupts of CPU {} in /proc/interrupts, which is how perf \
         output wakes a reader (aya opens perf buffers with wakeup_events = 1)",
        bench.gen_cpu
    )?;
    writeln!(md, "- Whole run: {:.0} s\n", elapsed.as_secs_f64())?;

    writeln!(md, "## Results\n")?;
    writeln!(
        md,
        "| transport | ring size | target pps | achieved pps | frames | dropped | sent by program \
         | logged | lost (ring) | lost (perf) | unaccounted | not logged | reader CPU s | CPU % \
         | ns/event | reader wakeups | IRQ work on CPU {} |",
        bench.gen_cpu
    )?;
    writeln!(md, "|{}", "---|".repeat(17))?;
    for s in steps {
        writeln!(
            md,
            "| {} | {} | {} | {}{} | {} | {} | {} | {}{} | {} | {} | {} | {:.2}% | {:.2}{} | {:.0}% | {} | {} | {} |",
            s.transport,
            s.ring,
            s.target.map_or("max".to_string(), thousands),
            thousands(s.pps() as u64),
            if s.sustained() { "" } else { " (short)" },
            thousands(s.frames),
            thousands(s.dropped),
            thousands(s.sent),
            thousands(s.logged),
            if s.lines == s.logged {
                String::new()
            } else {
                format!(" ({} lines!)", thousands(s.lines))
            },
            thousands(s.ring_lost),
            thousands(s.perf_lost),
            s.unaccounted(),
            s.loss_fraction() * 100.0,
            s.cpu.as_secs_f64(),
            if s.caught_up { "" } else { " (not idle)" },
            s.cpu_share() * 100.0,
            s.ns_per_event(),
            thousands(s.wakeups),
            s.irq_work.map_or("-".to_string(), thousands),
        )?;
    }
    if steps.iter().any(|s| !s.sustained()) {
        writeln!(
            md,
            "\n(short): the sender fell more than {:.0}% short of the target: CPU {} was \
             saturated by sending and the XDP program (including its event output).",
            (1.0 - SUSTAINED) * 100.0,
            bench.gen_cpu
        )?;
    }

    writeln!(md, "\n## Summary\n")?;
    for transport in TRANSPORTS {
        let mine: Vec<&Step> = steps.iter().filter(|s| s.transport == *transport).collect();
        let normal: Vec<&Step> = mine
            .iter()
            .copied()
            .filter(|s| s.ring == RING_SIZE)
            .collect();
        let best = normal
            .iter()
            .filter(|s| s.lossless())
            .max_by(|a, b| a.events_per_sec().total_cmp(&b.events_per_sec()));
        match best {
            Some(s) => writeln!(
                md,
                "- **{transport}** (`--ring-size {RING_SIZE}`): no loss up to {} events/s \
                 (step {}); reader CPU {:.0}% of one core, {} ns per event",
                thousands(s.events_per_sec() as u64),
                rate_label(s.target),
                s.cpu_share() * 100.0,
                s.ns_per_event(),
            )?,
            None => writeln!(
                md,
                "- **{transport}** (`--ring-size {RING_SIZE}`): lost events at every rate tried"
            )?,
        }
        if let Some(fastest) = normal
            .iter()
            .max_by(|a, b| a.pps().total_cmp(&b.pps()))
            .filter(|s| best.is_none_or(|b| b.pps() < s.pps()))
        {
            writeln!(
                md,
                "  - fastest step ({} pps) not lossless: {} of {} events not logged",
                thousands(fastest.pps() as u64),
                thousands(fastest.missing()),
                thousands(fastest.dropped)
            )?;
        }
        for lossy in normal.iter().filter(|s| !s.lossless()) {
            if normal
                .iter()
                .any(|s| s.lossless() && s.events_per_sec() > lossy.events_per_sec())
            {
                writeln!(
                    md,
                    "  - note: the step at {} lost events while a faster one did not",
                    rate_label(lossy.target)
                )?;
            }
        }
        for s in mine.iter().filter(|s| s.target.is_none()) {
            writeln!(
                md,
                "  - max rate, `--ring-size {}` ({} pps): {:.2}% of events not logged ({} of \
                 {}); reported lost: {} (ring) + {} (perf): {}; reader CPU {:.0}%, {} ns/event",
                s.ring,
                thousands(s.pps() as u64),
                s.loss_fraction() * 100.0,
                thousands(s.missing()),
                thousands(s.dropped),
                thousands(s.ring_lost),
                thousands(s.perf_lost),
                accounting_verdict(s),
                s.cpu_share() * 100.0,
                s.ns_per_event(),
            )?;
        }
        for s in mine.iter().filter(|s| s.sent != s.logged) {
            writeln!(
                md,
                "  - **at {} (`--ring-size {}`) the program sent {} events but {} were logged**",
                rate_label(s.target),
                s.ring,
                thousands(s.sent),
                thousands(s.logged)
            )?;
        }
        for s in mine.iter().filter(|s| s.frames < bench.frames) {
            writeln!(
                md,
                "  - at {}: the sender hit its time limit after {} of {} frames",
                rate_label(s.target),
                thousands(s.frames),
                thousands(bench.frames)
            )?;
        }
        for s in mine.iter().filter(|s| s.dropped != s.frames) {
            writeln!(
                md,
                "  - at {}: {} frames sent, {} dropped by XDP",
                rate_label(s.target),
                thousands(s.frames),
                thousands(s.dropped)
            )?;
        }
    }

    writeln!(md, "\n## Commands\n")?;
    writeln!(md, "```sh")?;
    for cmd in &bench.sandbox.commands {
        writeln!(md, "{cmd}")?;
    }
    if let Some(reader) = reader_command {
        writeln!(
            md,
            "# per step, with --transport ringbuf or perf and --ring-size {RING_SIZE} or \
             {SMALL_RING}:"
        )?;
        writeln!(md, "{reader} &")?;
        writeln!(
            md,
            "# {} ms after {FW_IF} shows an XDP program: send the frames from {PEER_IF} \
             (below); once the reader is idle (CPU time and log size unchanged for 300 ms), \
             read /proc/PID/stat, then",
            SETTLE.as_millis()
        )?;
        writeln!(md, "kill -INT PID")?;
    }
    writeln!(md, "```\n")?;
    writeln!(
        md,
        "Sender: a thread of `cargo xtask bench-events` in the peer namespace (setns), pinned \
         to CPU {} (sched_setaffinity), writing to an AF_PACKET SOCK_RAW socket bound to \
         {PEER_IF} with PACKET_QDISC_BYPASS, one `send` per frame; frame i goes out i/rate s \
         after the first (busy-wait on the monotonic clock), or back to back for max. The \
         frame:\n",
        bench.gen_cpu
    )?;
    writeln!(md, "```")?;
    for chunk in bench.frame.chunks(16) {
        let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
        writeln!(md, "{}", hex.join(" "))?;
    }
    writeln!(md, "```")?;
    Ok(md)
}

/// Whether a step's losses add up: each missing event reported exactly once.
fn accounting_verdict(s: &Step) -> String {
    let missing = s.missing();
    match s.unaccounted() {
        0 if missing == 0 => "nothing lost".to_string(),
        0 if s.perf_lost != 0 && s.perf_lost != missing => format!(
            "every loss reported, once; but the perf buffers reported {} lost samples for {} missing",
            thousands(s.perf_lost),
            thousands(missing)
        ),
        0 => "every loss reported, once".to_string(),
        n if n > 0 => format!("**{n} events lost without being reported**"),
        _ if s.ring_lost == missing && s.perf_lost == missing => format!(
            "**every loss reported twice**: dropped = logged + lost (ring) exactly, and lost \
             (perf) counts the same {} samples again",
            thousands(missing)
        ),
        n => format!(
            "**losses over-reported by {}**",
            thousands(n.unsigned_abs())
        ),
    }
}
