//! Child processes and /proc: a child killed by its PID when dropped, a command run to
//! its output, and what /proc and /sys say of CPUs, processes and files.

use std::{
    fs::{self, File},
    io::{self, BufRead as _, BufReader},
    path::Path,
    process::{Child, Command, ExitStatus, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use xdpsieve_testkit::child::Guard;

use super::sigint::check_interrupted;
use crate::describe;

/// A child process of ours, killed (by its PID) if still running when dropped: the test
/// kit's guard, with the waits a benchmark makes (bounded, and broken off by Ctrl-C).
pub(crate) struct Proc {
    guard: Guard,
    pub(crate) what: &'static str,
}

impl Proc {
    pub(crate) fn new(child: Child, what: &'static str) -> Proc {
        Proc {
            guard: Guard::new(child),
            what,
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.guard.pid()
    }

    /// Its exit status, if it has exited.
    pub(crate) fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        self.guard
            .try_wait()
            .with_context(|| format!("waiting for {} (pid {})", self.what, self.pid()))
    }

    /// Sends it SIGINT (by its PID): how a child is asked to stop and print its summary.
    pub(crate) fn interrupt(&mut self) -> Result<()> {
        self.guard
            .signal(libc::SIGINT)
            .with_context(|| format!("sending SIGINT to {} (pid {})", self.what, self.pid()))
    }

    /// Waits until the process exits or `limit` passes.
    pub(crate) fn wait_for(&mut self, limit: Duration) -> Result<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(status);
            }
            check_interrupted()?;
            if start.elapsed() > limit {
                bail!(
                    "{} (pid {}) still running after {limit:?}",
                    self.what,
                    self.pid()
                );
            }
            thread::sleep(Duration::from_millis(5));
        }
    }
}

pub(crate) fn cpu_ticks(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let stat = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // Fields after the command name (which may hold spaces): state is field 3, utime 14.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |i: usize| -> Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .with_context(|| format!("parsing {path}: `{}`", stat.trim()))
    };
    Ok(field(11)? + field(12)?)
}

/// `voluntary_ctxt_switches` of a process: each time it blocked (in poll, mostly).
pub(crate) fn voluntary_switches(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no voluntary_ctxt_switches in {path}"))
}

/// The `IWI` (IRQ work interrupts) count of one CPU in /proc/interrupts.
pub(crate) fn irq_work_count(cpu: u32) -> Option<u64> {
    let text = fs::read_to_string("/proc/interrupts").ok()?;
    let mut lines = text.lines();
    let column = lines
        .next()?
        .split_whitespace()
        .position(|c| c == format!("CPU{cpu}"))?;
    let row = lines.find_map(|l| l.trim_start().strip_prefix("IWI:"))?;
    row.split_whitespace().nth(column)?.parse().ok()
}

pub(crate) fn file_len(path: &Path) -> u64 {
    fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

pub(crate) fn count_lines(path: &Path) -> Result<u64> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
    };
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut lines = 0;
    loop {
        let buf = reader
            .fill_buf()
            .with_context(|| format!("reading {}", path.display()))?;
        if buf.is_empty() {
            return Ok(lines);
        }
        lines += buf.iter().filter(|&&b| b == b'\n').count() as u64;
        let n = buf.len();
        reader.consume(n);
    }
}

/// `/sys/devices/system/cpu/online`, e.g. `0-1` or `0,2-3`.
pub(crate) fn online_cpus() -> Result<Vec<u32>> {
    let path = "/sys/devices/system/cpu/online";
    let text = fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    let mut cpus = Vec::new();
    for part in text.trim().split(',') {
        let parse = |s: &str| {
            s.parse::<u32>()
                .with_context(|| format!("parsing {path}: `{}`", text.trim()))
        };
        match part.split_once('-') {
            Some((a, b)) => cpus.extend(parse(a)?..=parse(b)?),
            None => cpus.push(parse(part)?),
        }
    }
    Ok(cpus)
}

pub(crate) fn capture(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running `{}`", describe(cmd)))?;
    if !out.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            describe(cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
