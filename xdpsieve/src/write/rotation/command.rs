//! `-z CMD`: CMD runs with each finished capture file's name as its only argument (tcpdump's
//! `-z`, e.g. `gzip`), beside the capture and never in its way.
//!
//! The command is started and left to run: the capture does not wait for it. It runs at
//! the lowest priority (as tcpdump runs it), in its own process group (a Ctrl-C meant for
//! the firewall does not cut a compression short), with nothing on its standard input and
//! its output on our standard error (standard output may carry the event log). Each loop
//! turn reaps the commands that ended and says which failed; a command still running after
//! [`HANG_AFTER`] is reported once, and reaped when it ends. At the end of the run the
//! commands get a bounded time to finish; those still running then are named and left to
//! run on their own. Only our own children are ever waited for, never killed.

use std::{
    io,
    os::{fd::AsFd as _, unix::process::CommandExt as _},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::base::text::escape;

/// A `-z` command running longer than this is reported as hanging (once).
pub const HANG_AFTER: Duration = Duration::from_secs(60);

struct Job {
    child: Child,
    file: String,
    started: Instant,
    hang_reported: bool,
}

/// The `-z` command and its running instances.
pub struct PostRotate {
    program: String,
    hang_after: Duration,
    running: Vec<Job>,
    /// Commands that could not start, failed, or were reported hanging.
    pub failures: u64,
}

impl PostRotate {
    pub fn new(program: &str) -> PostRotate {
        PostRotate::with_hang_after(program, HANG_AFTER)
    }

    /// For tests: a shorter time before a command counts as hanging.
    pub fn with_hang_after(program: &str, hang_after: Duration) -> PostRotate {
        PostRotate {
            program: program.to_string(),
            hang_after,
            running: Vec::new(),
            failures: 0,
        }
    }

    /// Starts the command on `file`; returns the line to report when it cannot start.
    pub fn start(&mut self, file: &str) -> Option<String> {
        match self.spawn(file) {
            Ok(child) => {
                // The lowest priority, as tcpdump gives it. Set from here rather than in
                // the child before exec: a moment at our priority costs nothing.
                // SAFETY: setpriority on the PID of a child we just started.
                unsafe { libc::setpriority(libc::PRIO_PROCESS, child.id(), 19) };
                self.running.push(Job {
                    child,
                    file: file.to_string(),
                    started: Instant::now(),
                    hang_reported: false,
                });
                None
            }
            Err(e) => {
                self.failures += 1;
                Some(format!(
                    "xdpsieve: -z: cannot run {} {}: {e}; the capture goes on",
                    escape(&self.program),
                    escape(file)
                ))
            }
        }
    }

    fn spawn(&self, file: &str) -> io::Result<Child> {
        let stderr = io::stderr().as_fd().try_clone_to_owned()?;
        Command::new(&self.program)
            .arg(file)
            .stdin(Stdio::null())
            .stdout(Stdio::from(stderr))
            .process_group(0)
            .spawn()
    }

    /// Reaps the commands that ended; returns a line for each that failed and for each
    /// newly found hanging.
    pub fn poll(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        let hang_after = self.hang_after;
        let program = escape(&self.program).into_owned();
        let mut failures = 0;
        self.running.retain_mut(|job| match job.child.try_wait() {
            Ok(Some(status)) => {
                if !status.success() {
                    failures += 1;
                    lines.push(format!(
                        "xdpsieve: -z: {program} {} failed ({status})",
                        escape(&job.file)
                    ));
                }
                false
            }
            Ok(None) => {
                if !job.hang_reported && job.started.elapsed() >= hang_after {
                    job.hang_reported = true;
                    failures += 1;
                    lines.push(format!(
                        "xdpsieve: -z: {program} {} still running after {} s (pid {}); \
                         the capture goes on",
                        escape(&job.file),
                        job.started.elapsed().as_secs(),
                        job.child.id()
                    ));
                }
                true
            }
            Err(e) => {
                lines.push(format!(
                    "xdpsieve: -z: cannot wait for {program} {}: {e}",
                    escape(&job.file)
                ));
                false
            }
        });
        self.failures += failures;
        lines
    }

    /// Commands still running.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// At the end of the run: waits up to `wait` for the commands to end, reaping them;
    /// returns the report lines, naming those left running.
    pub fn finish(&mut self, wait: Duration) -> Vec<String> {
        let deadline = Instant::now() + wait;
        let mut lines = self.poll();
        while !self.running.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            lines.extend(self.poll());
        }
        for job in self.running.drain(..) {
            lines.push(format!(
                "xdpsieve: -z: {} {} still running at exit (pid {}); left to finish on its own",
                escape(&self.program),
                escape(&job.file),
                job.child.id()
            ));
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_and_hangs_are_reported_and_every_command_reaped() {
        let mut ok = PostRotate::new("true");
        assert_eq!(ok.start("x"), None);
        assert!(ok.finish(Duration::from_secs(5)).is_empty());
        assert_eq!((ok.running(), ok.failures), (0, 0));

        let mut failing = PostRotate::new("false");
        assert_eq!(failing.start("some.pcap"), None);
        let lines = failing.finish(Duration::from_secs(5));
        assert!(lines[0].contains("false some.pcap failed"), "{lines:?}");
        assert_eq!(failing.failures, 1);

        let mut missing = PostRotate::new("/nonexistent/xdpsieve-z");
        assert!(missing.start("f").is_some_and(|l| l.contains("cannot run")));

        // `sleep 0.6` stands for a command that hangs: reported once, then reaped.
        let mut slow = PostRotate::with_hang_after("sleep", Duration::from_millis(100));
        let started = Instant::now();
        assert_eq!(slow.start("0.6"), None);
        assert!(
            started.elapsed() < Duration::from_millis(100),
            "start waited"
        );
        std::thread::sleep(Duration::from_millis(200));
        let lines = slow.poll();
        assert!(lines[0].contains("still running after"), "{lines:?}");
        assert!(slow.poll().is_empty(), "reported twice");
        assert!(slow.finish(Duration::from_secs(5)).is_empty());
        assert_eq!((slow.running(), slow.failures), (0, 1));

        // One that outlives the end of the run is named and left to run.
        let mut stuck = PostRotate::new("sleep");
        assert_eq!(stuck.start("0.5"), None);
        let lines = stuck.finish(Duration::from_millis(50));
        assert!(lines[0].contains("still running at exit"), "{lines:?}");
    }
}
