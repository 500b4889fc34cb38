//! One step of the benchmark: a fresh xdpsieve reading the event log, one stream of
//! frames at a target rate, and what came of it (frames, drops, events sent, logged and
//! lost, the reader's CPU time and wakeups), with the figures the report derives from it.

use std::{
    fs,
    io::{BufRead as _, BufReader},
    process::{Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use super::{Bench, RULE, SETTLE, SUSTAINED};
use crate::netbench::*;

/// One run of xdpsieve with one stream of traffic.
pub(super) struct Step {
    pub(super) transport: &'static str,
    pub(super) target: Option<u64>,
    pub(super) ring: &'static str,
    /// Frames sent.
    pub(super) frames: u64,
    /// First to last frame sent.
    pub(super) elapsed: Duration,
    pub(super) dropped: u64,
    /// Events the program queued ("sent by the program").
    pub(super) sent: u64,
    /// Events the reader wrote ("events logged").
    pub(super) logged: u64,
    /// Lines in the log file (should equal `logged`).
    pub(super) lines: u64,
    /// Events the program could not queue ("events lost: event buffer full").
    pub(super) ring_lost: u64,
    /// PERF_RECORD_LOST totals, which xdpsieve shows as a cross-check of `ring_lost`.
    pub(super) perf_lost: u64,
    /// The reader's user + system time from just before the traffic until it was idle.
    pub(super) cpu: Duration,
    /// Whether the reader went idle (caught up) before SIGINT.
    pub(super) caught_up: bool,
    /// The reader's voluntary context switches (about one per wakeup) over the same time.
    pub(super) wakeups: u64,
    /// IRQ work interrupts on the sender's CPU over the same time (perf wakes readers
    /// through IRQ work), if /proc/interrupts has them.
    pub(super) irq_work: Option<u64>,
}

impl Step {
    /// Events that never reached the log.
    pub(super) fn missing(&self) -> u64 {
        self.dropped.saturating_sub(self.logged)
    }
    /// Missing events not covered by the loss counter (negative: counted more than once).
    /// The perf buffers' own lost-sample reports describe the same samples as `ring_lost`,
    /// and are checked against it separately.
    pub(super) fn unaccounted(&self) -> i64 {
        self.dropped as i64 - self.logged as i64 - self.ring_lost as i64
    }
    pub(super) fn lossless(&self) -> bool {
        self.dropped == self.frames
            && self.sent == self.dropped
            && self.logged == self.dropped
            && self.lines == self.logged
            && self.ring_lost == 0
            && self.perf_lost == 0
    }
    pub(super) fn secs(&self) -> f64 {
        self.elapsed.as_secs_f64().max(1e-9)
    }
    pub(super) fn pps(&self) -> f64 {
        self.frames as f64 / self.secs()
    }
    /// Whether the sender kept up with the target rate.
    pub(super) fn sustained(&self) -> bool {
        self.target
            .is_none_or(|t| self.pps() >= t as f64 * SUSTAINED)
    }
    pub(super) fn events_per_sec(&self) -> f64 {
        self.logged as f64 / self.secs()
    }
    pub(super) fn cpu_share(&self) -> f64 {
        self.cpu.as_secs_f64() / self.secs()
    }
    pub(super) fn ns_per_event(&self) -> String {
        if self.logged == 0 {
            return "-".to_string();
        }
        format!("{:.0}", self.cpu.as_nanos() as f64 / self.logged as f64)
    }
    pub(super) fn loss_fraction(&self) -> f64 {
        if self.dropped == 0 {
            0.0
        } else {
            self.missing() as f64 / self.dropped as f64
        }
    }
    pub(super) fn one_line(&self) -> String {
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
    pub(super) fn step(
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
            .arg(format!("--net={}", sb.pair.fw.path().display()))
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
        let mut reader = Proc::new(child, "xdpsieve");
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
            if let Some(status) = reader.try_wait()? {
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
            netns: sb.pair.peer.path(),
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
            if let Some(status) = reader.try_wait()? {
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

        reader.interrupt()?;
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
