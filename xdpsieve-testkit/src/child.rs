//! Child processes: [`Guard`], which kills (by its PID, through `Child::kill`) and reaps a
//! child still running when dropped, so that a failing test or an interrupted benchmark
//! leaves no process behind; and on it, [`Firewall`]: an `xdpsieve run` started in a test's
//! firewall namespace, waited on until it is ready, stopped with a signal and its output
//! collected.
//!
//! Only processes started here are ever signalled, by their PID.

use std::{
    io::{self, Read as _},
    process::{Child, Command, ExitStatus, Output, Stdio},
    time::{Duration, Instant},
};

use xdpsieve_netns::VethPair;

/// How long a child may take to become ready: generous, the suite shares a busy machine.
const READY_LIMIT: Duration = Duration::from_secs(30);

/// A child process of ours, killed (by its PID) and reaped on drop if still running.
#[derive(Debug)]
pub struct Guard {
    /// Taken only by the methods that consume the guard.
    child: Option<Child>,
}

impl Guard {
    pub fn new(child: Child) -> Guard {
        Guard { child: Some(child) }
    }

    /// Starts `command` under a guard.
    pub fn spawn(command: &mut Command) -> io::Result<Guard> {
        command.spawn().map(Guard::new)
    }

    pub fn child_mut(&mut self) -> &mut Child {
        self.child
            .as_mut()
            .expect("a guard holds its child until consumed")
    }

    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .expect("a guard holds its child until consumed")
            .id()
    }

    /// Its exit status, if it has exited.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.child_mut().try_wait()
    }

    /// Sends `signal` and leaves the child running (or ending) under this guard. Sends
    /// nothing to a child that has exited: once reaped, its PID may be another process's.
    pub fn signal(&mut self, signal: i32) -> io::Result<()> {
        if self.try_wait()?.is_some() {
            return Ok(());
        }
        let pid = libc::pid_t::try_from(self.pid()).map_err(io::Error::other)?;
        // SAFETY: kill on the PID of a child we started that had not exited just now, so
        // it is not reaped and the PID is still ours (a zombie at worst).
        if unsafe { libc::kill(pid, signal) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Sends `signal` (nothing if it has exited), then collects the exit status and the
    /// output not read yet.
    pub fn stop(mut self, signal: i32) -> io::Result<Output> {
        self.signal(signal)?;
        self.take().wait_with_output()
    }

    /// The exit status and output of a child that ends by itself: sends no signal.
    pub fn wait_output(mut self) -> io::Result<Output> {
        self.take().wait_with_output()
    }

    fn take(&mut self) -> Child {
        self.child
            .take()
            .expect("a guard holds its child until consumed")
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `command` to its end, standard input closed and its output collected, within
/// `limit`: a command that should end by itself (a refusal, a `status`, a `stop`) and does
/// not is killed (by its PID, through the guard) and the test fails saying what it printed,
/// instead of hanging the whole suite.
pub fn output_within(command: &mut Command, limit: Duration) -> Output {
    let mut guard = Guard::spawn(
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    )
    .expect("starting a command");
    // Read both pipes while waiting: a child that fills one would otherwise never end.
    let child = guard.child_mut();
    let stdout = read_all(child.stdout.take());
    let stderr = read_all(child.stderr.take());
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = guard.try_wait().expect("try_wait") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(guard); // kills and reaps it if still running, which closes its pipes
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    match status {
        Some(status) => Output {
            status,
            stdout,
            stderr,
        },
        None => panic!(
            "{command:?} did not end within {limit:?}; it printed:\n{}\n{}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        ),
    }
}

/// Reads `pipe` to its end on a thread of its own.
fn read_all<R: io::Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        bytes
    })
}

/// A running `xdpsieve run` in a test's firewall namespace. Killed (by PID) on drop if
/// still running.
#[derive(Debug)]
pub struct Firewall {
    guard: Guard,
}

impl Firewall {
    /// `BINARY run -i FW_IF ARGS` (the build under test: the test's
    /// `env!("CARGO_BIN_EXE_xdpsieve")`), standard output piped, waited on until attached
    /// and published for `xdpsieve status` (which happens just after).
    pub fn start(binary: &str, net: &VethPair, args: &[&str]) -> Firewall {
        let mut fw = Firewall::spawn(net, binary, args, Stdio::piped());
        fw.wait_until(|| xdp_attached(net) && published(binary, net));
        fw
    }

    /// `PROGRAM run -i FW_IF ARGS` in the firewall namespace, standard input closed, standard
    /// error piped (the exit summary), standard output as `stdout`. Does not wait: see
    /// [`Firewall::wait_until`].
    pub fn spawn(net: &VethPair, program: &str, args: &[&str], stdout: Stdio) -> Firewall {
        let mut command = net.fw.command(program);
        command.arg("run").args(["-i", VethPair::FW_IF]).args(args);
        Firewall::spawn_command(command, stdout)
    }

    /// `command` (an `xdpsieve run` made by the caller), standard input closed, standard
    /// error piped, standard output as `stdout`. Does not wait.
    pub fn spawn_command(mut command: Command, stdout: Stdio) -> Firewall {
        let guard = Guard::spawn(
            command
                .stdin(Stdio::null())
                .stdout(stdout)
                .stderr(Stdio::piped()),
        )
        .expect("starting xdpsieve");
        Firewall { guard }
    }

    /// Waits until `ready` says so; panics with the child's standard error if it exits
    /// first, and when it is not ready within 30 s.
    pub fn wait_until(&mut self, mut ready: impl FnMut() -> bool) {
        let deadline = Instant::now() + READY_LIMIT;
        while Instant::now() < deadline {
            let child = self.guard.child_mut();
            if let Some(status) = child.try_wait().expect("try_wait") {
                let mut err = String::new();
                let _ = child.stderr.take().map(|mut e| e.read_to_string(&mut err));
                panic!("xdpsieve exited before it was ready ({status}): {err}");
            }
            if ready() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("xdpsieve was not ready within {READY_LIMIT:?}");
    }

    /// The child itself, for a test that waits on it exiting by itself.
    pub fn child_mut(&mut self) -> &mut Child {
        self.guard.child_mut()
    }

    pub fn pid(&self) -> u32 {
        self.guard.pid()
    }

    /// True while it runs; once it has exited, says how (with its standard error) and
    /// returns false.
    pub fn running(&mut self) -> bool {
        let child = self.guard.child_mut();
        match child.try_wait().expect("try_wait") {
            None => true,
            Some(status) => {
                let mut err = String::new();
                let _ = child.stderr.take().map(|mut e| e.read_to_string(&mut err));
                eprintln!("xdpsieve exited ({status}): {err}");
                false
            }
        }
    }

    /// Sends `signal` (nothing if it has exited) and leaves the child running (or ending)
    /// under this guard.
    pub fn signal(&mut self, signal: i32) {
        self.guard.signal(signal).expect("signalling xdpsieve");
    }

    /// Sends `signal` (nothing if it has exited) and collects the exit status and output.
    pub fn stop(self, signal: i32) -> Output {
        self.guard.stop(signal).expect("stopping xdpsieve")
    }

    /// The exit status and output of a run that ends by itself: sends no signal.
    pub fn wait_output(self) -> Output {
        self.guard.wait_output().expect("waiting for xdpsieve")
    }

    /// The guard alone, for a caller that stops the child its own way.
    pub fn into_guard(self) -> Guard {
        self.guard
    }

    /// Waits (up to `limit`) for the run to end by itself; its status and output.
    pub fn wait_exit(mut self, limit: Duration) -> Output {
        let deadline = Instant::now() + limit;
        while self.guard.try_wait().expect("try_wait").is_none() {
            assert!(
                Instant::now() < deadline,
                "xdpsieve did not end by itself within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.wait_output()
    }
}

/// True once an XDP program is attached to the firewall's interface.
pub fn xdp_attached(net: &VethPair) -> bool {
    net.fw
        .ip(&["-d", "link", "show", "dev", VethPair::FW_IF])
        .map(|out| out.contains("prog/xdp"))
        .unwrap_or(false)
}

/// True once `BINARY status --json`, run in the firewall's namespace, shows the instance
/// live.
pub fn published(binary: &str, net: &VethPair) -> bool {
    net.fw
        .command(binary)
        .args(["status", "--json"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("\"live\": true"))
}
