//! The report of a run, target/bench-events.md: the machine and the method, a table of
//! every step, a summary per transport (the highest lossless event rate, the reader's cost,
//! whether the losses add up) and the commands to repeat it.

use std::{fmt::Write as _, fs, process::Command, time::Duration};

use anyhow::Result;

use super::{Bench, RING_SIZE, RULE, SETTLE, SMALL_RING, SUSTAINED, TRANSPORTS, step::Step};
use crate::netbench::*;

/// The report's Markdown for `steps`, run in `elapsed`.
pub(super) fn report(
    bench: &Bench<'_>,
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
