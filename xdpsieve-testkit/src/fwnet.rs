//! A firewall's namespaces for the tests that kill, race and take over `xdpsieve run`: the
//! veth pair, the real binary run in the firewall's namespace, UDP sockets bound behind the
//! firewall on a dropped and an allowed port, paced sends from the peer, and on drop (even
//! when the test fails) `xdpsieve stop` before the namespaces go, so no firewall or pin
//! outlives the test.
//!
//! The firewall's namespace is entered through a file: its `/run/netns` name, or a bind
//! mount of it elsewhere once the test moved it out of `/run/netns` ([`Net::hold_elsewhere`]),
//! as container runtimes and `unshare --net=FILE` keep theirs. xdpsieve may also run in a
//! mount namespace of its own ([`Net::own_mounts`]), with its own bpffs and /run.

use std::{
    fs::File,
    net::{SocketAddr, UdpSocket},
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use xdpsieve_netns::{VethOptions, VethPair};

use crate::{
    child::{Firewall, output_within},
    tool::stdout_of,
};

/// How long a command that ends by itself may take: a run that is refused, a `status`, a
/// `stop` (which waits up to 40 s for the interface's lock). Generous: the suite shares a
/// busy machine; what it bounds is a hang.
const COMMAND_LIMIT: Duration = Duration::from_secs(120);

pub const DROPPED_PORT: u16 = 7001;
pub const ALLOWED_PORT: u16 = 7002;
/// A little over the program's READER_TIMEOUT_NS: after this, a dead recorder is noticed.
pub const READER_TIMEOUT: Duration = Duration::from_millis(2300);

/// The firewall's and the peer's namespaces.
pub struct Net {
    pub pair: VethPair,
    /// The `xdpsieve` under test.
    binary: String,
    /// The bind mount that holds the firewall's namespace outside /run/netns, if moved.
    held: Option<PathBuf>,
    /// The process that keeps xdpsieve's own mount namespace, if it has one.
    mounts: Option<std::process::Child>,
    /// Whether the drop stops the firewall before the namespaces go.
    stop_on_drop: bool,
}

impl Net {
    /// The namespaces, tagged `tag`, for `binary` (the test's
    /// `env!("CARGO_BIN_EXE_xdpsieve")`).
    pub fn create(binary: &str, tag: &str) -> Net {
        Net::create_with(binary, tag, &VethOptions::default())
    }

    /// As [`Net::create`], with the pair shaped by `options` (its rx queues, say).
    pub fn create_with(binary: &str, tag: &str, options: &VethOptions) -> Net {
        Net {
            pair: VethPair::create_with(tag, options).expect("namespaces"),
            binary: binary.to_string(),
            held: None,
            mounts: None,
            stop_on_drop: true,
        }
    }

    /// The file the firewall's namespace is entered through.
    pub fn fw_path(&self) -> PathBuf {
        self.held.clone().unwrap_or_else(|| self.pair.fw.path())
    }

    /// Moves the firewall's namespace out of /run/netns: a bind mount of it in the temporary
    /// directory keeps it alive, and its /run/netns entry is unmounted (the file stays, so
    /// `ip netns del` still finds something to delete when the pair goes). Nothing is left
    /// in /run/netns or in a process that names it.
    pub fn hold_elsewhere(&mut self) {
        let hold = std::env::temp_dir().join(format!(
            "xdpsieve-hold-{}-{}",
            std::process::id(),
            self.pair.fw.name()
        ));
        File::create(&hold).expect("creating the hold file");
        let fw = self.pair.fw.path();
        stdout_of(
            Command::new("mount").arg("--bind").arg(&fw).arg(&hold),
            "mount --bind",
        );
        self.held = Some(hold);
        stdout_of(Command::new("umount").arg(&fw), "umount");
    }

    /// Deletes the namespaces now, leaving what xdpsieve pinned for them as it is (as when
    /// a container goes away under a firewall whose recorder died).
    pub fn vanish(mut self) {
        self.stop_on_drop = false;
    }

    /// From now on, xdpsieve runs in a mount namespace of its own, with a bpffs of its own
    /// at /sys/fs/bpf (root directory mode `bpffs_mode`, e.g. "1777") and an empty /run: a
    /// world the test may spoil as an unprivileged user would, without touching the
    /// machine's. A process sleeping in it keeps it (and the pins in it) until the test ends.
    pub fn own_mounts(&mut self, bpffs_mode: &str) {
        use std::io::BufRead as _;
        let script = format!(
            "mount -t bpf bpf /sys/fs/bpf && chmod {bpffs_mode} /sys/fs/bpf && \
             mount -t tmpfs -o mode=0755 tmpfs /run && echo ready && exec sleep 3600"
        );
        let mut holder = Command::new("nsenter")
            .arg(format!("--net={}", self.fw_path().display()))
            .args(["--", "unshare", "--mount", "--propagation", "private", "--"])
            .args(["sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting the mount namespace's holder");
        let mut line = String::new();
        let stdout = holder.stdout.take().expect("piped");
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        self.mounts = Some(holder);
        assert_eq!(line.trim(), "ready", "the mount namespace was not set up");
    }

    /// `PROGRAM ARGS` as `user` (runuser), in xdpsieve's namespaces; its output.
    pub fn as_user(&self, user: &str, program: &str, args: &[&str]) -> Output {
        self.command("runuser")
            .args(["-u", user, "--", program])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("running runuser")
    }

    /// A command that runs `program` in the firewall's network namespace (and mount
    /// namespace, if one was given).
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        match self.mounts.as_ref().map(std::process::Child::id) {
            Some(pid) => cmd
                .arg(format!("--target={pid}"))
                .args(["--mount", "--net"]),
            None => cmd.arg(format!("--net={}", self.fw_path().display())),
        };
        cmd.arg("--").arg(program);
        cmd
    }

    /// `ip ARGS` in the firewall's network namespace, to success.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", self.fw_path().display()))
            .args(["--", "ip"])
            .args(args);
        stdout_of(&mut cmd, "ip")
    }

    /// Runs `f` on a thread in the firewall's network namespace.
    pub fn in_fw<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        let path = self.fw_path();
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    xdpsieve_netns::enter(&path).expect("entering the firewall's namespace");
                    f()
                })
                .join()
                .expect("thread in the namespace")
        })
    }

    /// `xdpsieve ARGS` in the firewall's namespace, to completion (failing the test if it
    /// has not ended within two minutes).
    pub fn xdpsieve(&self, args: &[&str]) -> Output {
        output_within(self.command(&self.binary).args(args), COMMAND_LIMIT)
    }

    /// `xdpsieve run -i fw0 ARGS`, not waited on.
    pub fn spawn(&self, args: &[&str]) -> Firewall {
        let mut cmd = self.command(&self.binary);
        cmd.args(["run", "-i", VethPair::FW_IF]).args(args);
        Firewall::spawn_command(cmd, Stdio::null())
    }

    /// `xdpsieve run -i fw0 RULES -w CAPTURE`, waited on until `status` shows it live.
    pub fn start(&self, rules: &[&str], capture: &str) -> Run {
        let mut args = rules.to_vec();
        args.extend_from_slice(&["-w", capture]);
        let mut run = self.spawn(&args);
        run.wait_until(|| {
            let status = self.xdpsieve(&["status", "--json"]);
            String::from_utf8_lossy(&status.stdout).contains("\"live\": true")
        });
        Run(run)
    }

    /// `status -i fw0 --json`, its one instance.
    pub fn status_json(&self) -> serde_json::Value {
        let out = self.xdpsieve(&["status", "-i", VethPair::FW_IF, "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status JSON");
        json[0].clone()
    }

    /// `status` as text.
    pub fn status_text(&self) -> String {
        let out = self.xdpsieve(&["status"]);
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    }

    /// The id of the XDP program on fw0, if any.
    pub fn xdp_program(&self) -> Option<u32> {
        let out = self.ip(&["-d", "link", "show", "dev", VethPair::FW_IF]);
        let rest = &out[out.find("prog/xdp id ")? + "prog/xdp id ".len()..];
        rest.split_whitespace().next()?.parse().ok()
    }

    /// `netns-<dev>-<inode>`: the firewall namespace's own identity, which names its
    /// directories below the pin root and /run/xdpsieve.
    pub fn namespace_key(&self) -> String {
        let meta = std::fs::metadata(self.fw_path()).expect("namespace file");
        format!("netns-{}-{}", meta.dev(), meta.ino())
    }

    /// The pin directory and description of fw0, under the default pin root.
    pub fn pin_paths(&self) -> (PathBuf, PathBuf) {
        let key = self.namespace_key();
        (
            PathBuf::from(format!("/sys/fs/bpf/xdpsieve/{key}/fw0")),
            PathBuf::from(format!("/run/xdpsieve/{key}/fw0.json")),
        )
    }

    /// UDP sockets behind the firewall, on the dropped and on the allowed port.
    pub fn sockets(&self) -> (UdpSocket, UdpSocket) {
        self.in_fw(|| {
            let bind = |port| -> std::io::Result<UdpSocket> {
                let s = UdpSocket::bind(SocketAddr::new(VethPair::FW_V4.into(), port))?;
                s.set_read_timeout(Some(Duration::from_millis(200)))?;
                Ok(s)
            };
            Ok::<_, std::io::Error>((bind(DROPPED_PORT)?, bind(ALLOWED_PORT)?))
        })
        .expect("binding sockets")
    }

    /// Sends `count` datagrams from the peer to `port`, paced; returns how many were sent.
    pub fn send(&self, port: u16, count: u32) -> u64 {
        self.pair
            .peer
            .run(|| {
                let s = UdpSocket::bind(SocketAddr::new(VethPair::PEER_V4.into(), 0))?;
                for _ in 0..count {
                    s.send_to(b"fail-static", (VethPair::FW_V4, port))?;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Ok::<_, std::io::Error>(u64::from(count))
            })
            .expect("entering namespace")
            .expect("sending")
    }

    /// Sends to `port` from the peer as fast as it can until `until` says so, at most
    /// `max` datagrams or `time`; returns how many were sent.
    pub fn flood(
        &self,
        port: u16,
        until: &(dyn Fn() -> bool + Sync),
        max: u64,
        time: Duration,
    ) -> u64 {
        self.pair
            .peer
            .run(|| {
                let s = UdpSocket::bind(SocketAddr::new(VethPair::PEER_V4.into(), 0))?;
                let start = Instant::now();
                let mut sent = 0u64;
                while !until() && sent < max && start.elapsed() < time {
                    if s.send_to(b"flood", (VethPair::FW_V4, port)).is_ok() {
                        sent += 1;
                    }
                }
                Ok::<_, std::io::Error>(sent)
            })
            .expect("entering namespace")
            .expect("flooding")
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        if self.stop_on_drop {
            let _ = self.xdpsieve(&["stop", "-i", VethPair::FW_IF]);
        }
        if let Some(mut holder) = self.mounts.take() {
            // Its mount namespace, and the bpffs mounted in it, go with it.
            let _ = holder.kill();
            let _ = holder.wait();
        }
        if let Some(hold) = self.held.take() {
            // The namespace goes with its last reference, and its veth with it.
            let _ = Command::new("umount").arg(&hold).status();
            let _ = std::fs::remove_file(&hold);
        }
    }
}

/// A running `xdpsieve run`; killed (by PID) on drop if still running.
pub struct Run(pub Firewall);

impl Run {
    pub fn pid(&self) -> u32 {
        self.0.pid()
    }

    /// Sends `signal` and collects the exit status and output.
    pub fn signal(self, signal: i32) -> Output {
        self.0.stop(signal)
    }

    pub fn wait(self) -> Output {
        self.0.wait_output()
    }
}

/// A capture file in the temporary directory, unique to this process and `tag`.
pub fn capture_file(tag: &str) -> String {
    std::env::temp_dir()
        .join(format!(
            "xdpsieve-failstatic-{}-{tag}.pcap",
            std::process::id()
        ))
        .display()
        .to_string()
}

/// Whether `path` exists (without following a symlink at its end).
pub fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}
