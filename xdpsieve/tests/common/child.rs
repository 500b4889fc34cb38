//! The guard of a child `xdpsieve run` started in a test's firewall namespace: started, waited
//! on until it is ready, stopped with a signal and its output collected, and killed (by its
//! PID, through `Child::kill`) on drop when a test fails before stopping it.

use std::{
    io::Read,
    process::{Child, Output, Stdio},
    time::{Duration, Instant},
};

use xdpsieve_netns::VethPair;

const BINARY: &str = env!("CARGO_BIN_EXE_xdpsieve");

/// How long a child may take to attach: generous, the suite shares a busy machine.
const ATTACH_LIMIT: Duration = Duration::from_secs(20);

/// A running `xdpsieve run` in the firewall namespace. Killed (by PID) on drop if still
/// running.
pub struct Firewall {
    child: Option<Child>,
}

impl Firewall {
    /// This build's `xdpsieve run -i FW_IF ARGS`, standard output piped, waited on until
    /// attached and published for `xdpsieve status` (which happens just after).
    pub fn start(net: &VethPair, args: &[&str]) -> Firewall {
        let mut fw = Firewall::spawn(net, BINARY, args, Stdio::piped());
        fw.wait_until(|| xdp_attached(net) && published(net));
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
    pub fn spawn_command(mut command: std::process::Command, stdout: Stdio) -> Firewall {
        let child = command
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting xdpsieve");
        Firewall { child: Some(child) }
    }

    /// Waits until `ready` says so; panics with the child's standard error if it exits
    /// first, and when it is not ready within 20 s.
    pub fn wait_until(&mut self, mut ready: impl FnMut() -> bool) {
        let deadline = Instant::now() + ATTACH_LIMIT;
        while Instant::now() < deadline {
            let child = self.child.as_mut().expect("running");
            if let Some(status) = child.try_wait().expect("try_wait") {
                let mut err = String::new();
                let _ = child.stderr.take().map(|mut e| e.read_to_string(&mut err));
                panic!("xdpsieve exited before attaching ({status}): {err}");
            }
            if ready() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("xdpsieve did not attach within 20 s");
    }

    /// The child itself, for a test that waits on it exiting by itself.
    pub fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("running")
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("running").id() as i32
    }

    /// Sends `signal` and leaves the child running (or ending) under this guard.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill on the PID of a child we started and have not reaped.
        unsafe { libc::kill(self.pid(), signal) };
    }

    /// Sends `signal` and collects the exit status and output.
    pub fn stop(mut self, signal: i32) -> Output {
        let child = self.child.take().expect("running");
        // SAFETY: kill on the PID of a child we started and have not reaped.
        unsafe { libc::kill(child.id() as i32, signal) };
        child.wait_with_output().expect("waiting for xdpsieve")
    }
}

impl Firewall {
    /// The exit status and output of a run that ends by itself: sends no signal.
    pub fn wait_output(mut self) -> Output {
        let child = self.child.take().expect("running");
        child.wait_with_output().expect("waiting for xdpsieve")
    }
}

impl Drop for Firewall {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// True once an XDP program is attached to the firewall's interface.
pub fn xdp_attached(net: &VethPair) -> bool {
    net.fw
        .ip(&["-d", "link", "show", "dev", VethPair::FW_IF])
        .map(|out| out.contains("prog/xdp"))
        .unwrap_or(false)
}

/// True once `xdpsieve status --json` shows the instance live.
pub fn published(net: &VethPair) -> bool {
    net.fw
        .command(BINARY)
        .args(["status", "--json"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("\"live\": true"))
        .unwrap_or(false)
}
