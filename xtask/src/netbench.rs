//! What the network benchmarks share: a sandbox of two network namespaces joined by a veth
//! pair (documentation addresses 192.0.2.0/24 only), a frame generator (AF_PACKET with
//! PACKET_QDISC_BYPASS, one `send` per frame, paced by busy-waiting or flat out, pinned to a
//! CPU), child processes killed by their PID on drop, and readers of /proc.
//!
//! Everything is bounded: every wait has a deadline. Namespaces and scratch directories are
//! removed on drop, also on errors and Ctrl-C; ones left by a killed run are removed by the
//! next. Only processes started here are ever signalled, by their PID.

use std::{
    ffi::CString,
    fs::{self, File},
    io::{self, BufRead as _, BufReader},
    net::UdpSocket,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    path::{Path, PathBuf},
    process::{self, Child, Command, ExitStatus, Stdio},
    sync::atomic::{AtomicBool, Ordering},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use super::describe;

/// Namespace names start like those of xdpsieve's own tests (`xsieve-<pid>-...`), so either
/// side's stale-namespace cleanup recognises them.
pub(crate) const NS_PREFIX: &str = "xsieve";
pub(crate) const FW_IF: &str = "fw0";
pub(crate) const PEER_IF: &str = "peer0";
pub(crate) const FW_V4: [u8; 4] = [192, 0, 2, 2];
pub(crate) const PEER_V4: [u8; 4] = [192, 0, 2, 1];
/// The generator's frames go from UDP port 53 to this port.
pub(crate) const DST_PORT: u16 = 33333;
/// ...or, the few a capture filter is to select out of a flood, to this one.
pub(crate) const SELECTED_PORT: u16 = 44444;

pub(crate) const SIGINT: i32 = 2;
const AF_PACKET: i32 = 17;
const SOCK_RAW: i32 = 3;
const SOL_PACKET: i32 = 263;
const PACKET_QDISC_BYPASS: i32 = 20;
const CLONE_NEWNET: i32 = 0x4000_0000;
const EINTR: i32 = 4;
const EAGAIN: i32 = 11;
const ENOBUFS: i32 = 105;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_signal: i32) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Ctrl-C only sets a flag: the waits notice it, so the guards clean up on the way out.
pub(crate) fn catch_sigint() {
    // SAFETY: the handler only stores to an atomic.
    unsafe { signal(SIGINT, on_sigint as extern "C" fn(i32) as usize) };
}

#[repr(C)]
struct SockaddrLl {
    family: u16,
    protocol: u16,
    ifindex: i32,
    hatype: u16,
    pkttype: u8,
    halen: u8,
    addr: [u8; 8],
}

unsafe extern "C" {
    fn signal(signum: i32, handler: usize) -> usize;
    fn kill(pid: i32, sig: i32) -> i32;
    fn setns(fd: i32, nstype: i32) -> i32;
    fn sched_setaffinity(pid: i32, size: usize, mask: *const u64) -> i32;
    fn socket(domain: i32, kind: i32, protocol: i32) -> i32;
    fn bind(fd: i32, addr: *const SockaddrLl, len: u32) -> i32;
    fn setsockopt(fd: i32, level: i32, name: i32, value: *const i32, len: u32) -> i32;
    fn send(fd: i32, buf: *const u8, len: usize, flags: i32) -> isize;
    fn if_nametoindex(name: *const std::ffi::c_char) -> u32;
}

/// Sends SIGINT to a child of ours, by its PID.
pub(crate) fn interrupt(pid: u32) -> Result<()> {
    // SAFETY: signals our own child, by its PID.
    if unsafe { kill(pid as i32, SIGINT) } != 0 {
        return Err(io::Error::last_os_error()).context(format!("sending SIGINT to pid {pid}"));
    }
    Ok(())
}

/// What a network benchmark needs before it starts: root, the tools it runs (with their
/// Debian packages), the release build of xdpsieve and two CPUs. Returns the binary and
/// the two CPUs: the generator's and the tool's.
pub(crate) fn preflight(
    task: &str,
    needs: &str,
    tools: &[(&str, &str)],
    root: &Path,
) -> Result<(PathBuf, u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { crate::geteuid() } != 0 {
        bail!("{task} needs root ({needs}); run it as root");
    }
    for (tool, package) in [
        ("ip", "iproute2"),
        ("nsenter", "util-linux"),
        ("taskset", "util-linux"),
    ]
    .iter()
    .chain(tools)
    {
        if !crate::on_path(tool) {
            bail!("`{tool}` not found; install it: apt-get install {package}");
        }
    }
    let binary = root.join("target/release/xdpsieve");
    if !binary.is_file() {
        bail!(
            "{} is missing; build it: cargo build --release -p xdpsieve",
            binary.display()
        );
    }
    let cpus = online_cpus()?;
    let [first, second, ..] = cpus[..] else {
        bail!("{task} needs 2 online CPUs (generator and tool apart), found {cpus:?}");
    };
    Ok((binary, first, second))
}

pub(crate) fn check_interrupted() -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    Ok(())
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

/// Where scratch directories go: /tmp, or /dev/shm (tmpfs) for capture files, so that
/// the capture tools are measured rather than the disk.
pub(crate) const SCRATCH_BASES: [&str; 2] = ["/tmp", "/dev/shm"];

/// The namespaces and the scratch directory; all removed on drop.
pub(crate) struct Sandbox {
    pub(crate) fw: String,
    pub(crate) peer: String,
    created: Vec<String>,
    pub(crate) dir: PathBuf,
    pub(crate) fw_mac: [u8; 6],
    pub(crate) peer_mac: [u8; 6],
    /// The commands that built it, for the report.
    pub(crate) commands: Vec<String>,
    /// A bound, never read UDP socket on the destination port in the firewall namespace:
    /// frames that get through end there instead of costing ICMP port-unreachable work.
    sink: Option<UdpSocket>,
}

impl Sandbox {
    /// Namespaces `xsieve-<pid>-bench-<tag>-{fw,peer}`, a veth pair with `queues` queues
    /// each way, IPv4 only (no IPv6 neighbour or multicast chatter in the captures), and a
    /// scratch directory under `scratch` (one of [`SCRATCH_BASES`]).
    pub(crate) fn create(tag: &str, queues: u32, scratch: &Path) -> Result<Sandbox> {
        remove_stale();
        let pid = process::id();
        let mut sandbox = Sandbox {
            fw: format!("{NS_PREFIX}-{pid}-bench-{tag}-fw"),
            peer: format!("{NS_PREFIX}-{pid}-bench-{tag}-peer"),
            created: Vec::new(),
            dir: scratch.join(format!("xdpsieve-bench-{pid}-{tag}")),
            fw_mac: [0; 6],
            peer_mac: [0; 6],
            commands: Vec::new(),
            sink: None,
        };
        fs::create_dir_all(&sandbox.dir)
            .with_context(|| format!("creating {}", sandbox.dir.display()))?;
        let (fw, peer) = (sandbox.fw.clone(), sandbox.peer.clone());
        for ns in [&fw, &peer] {
            sandbox.ip(&["netns", "add", ns])?;
            sandbox.created.push(ns.clone());
            for key in ["all", "default"] {
                let key = format!("net.ipv6.conf.{key}.disable_ipv6=1");
                sandbox.run_in(ns, &["sysctl", "-q", "-w", &key])?;
            }
            sandbox.ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        let queues = queues.to_string();
        sandbox.ip(&[
            "-n",
            &fw,
            "link",
            "add",
            FW_IF,
            "numtxqueues",
            &queues,
            "numrxqueues",
            &queues,
            "type",
            "veth",
            "peer",
            "name",
            PEER_IF,
            "netns",
            &peer,
            "numtxqueues",
            &queues,
            "numrxqueues",
            &queues,
        ])?;
        for (ns, iface, addr) in [(&fw, FW_IF, FW_V4), (&peer, PEER_IF, PEER_V4)] {
            let addr = format!("{}/24", dotted(addr));
            sandbox.ip(&["-n", ns, "addr", "add", &addr, "dev", iface])?;
            sandbox.ip(&["-n", ns, "link", "set", iface, "up"])?;
        }
        sandbox.fw_mac = parse_mac(&mac_of(&fw, FW_IF)?)?;
        sandbox.peer_mac = parse_mac(&mac_of(&peer, PEER_IF)?)?;
        let fw_ns = sandbox.netns_path(&fw);
        let sink = thread::spawn(move || -> Result<UdpSocket> {
            enter_netns(&fw_ns)?;
            let addr = (std::net::Ipv4Addr::from(FW_V4), DST_PORT);
            UdpSocket::bind(addr).context("binding the UDP sink")
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the sink thread panicked"))??;
        sandbox.sink = Some(sink);
        sandbox.commands.push(format!(
            "(a UDP socket bound to {}:{DST_PORT} in {fw}, never read)",
            dotted(FW_V4)
        ));
        Ok(sandbox)
    }

    pub(crate) fn netns_path(&self, ns: &str) -> PathBuf {
        PathBuf::from("/run/netns").join(ns)
    }

    pub(crate) fn ip(&mut self, args: &[&str]) -> Result<String> {
        let mut cmd = Command::new("ip");
        cmd.args(args);
        self.commands.push(shell_line(&cmd));
        capture(&mut cmd)
    }

    /// Runs a command in a namespace (network namespace only, like `nsenter --net`).
    pub(crate) fn run_in(&mut self, ns: &str, args: &[&str]) -> Result<String> {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{ns}"))
            .arg("--")
            .args(args);
        self.commands.push(shell_line(&cmd));
        capture(&mut cmd)
    }

    /// Whether the firewall side's interface has an XDP program attached.
    pub(crate) fn attached(&self) -> Result<bool> {
        let out =
            capture(Command::new("ip").args(["-n", &self.fw, "-o", "link", "show", "dev", FW_IF]))?;
        Ok(out.contains("prog/xdp") || out.contains(" xdp"))
    }

    /// Frames dropped by the veth pair itself (peer TX + firewall RX), before any XDP
    /// program or capture tool saw them.
    pub(crate) fn veth_drops(&self) -> Result<u64> {
        let mut total = 0;
        for (ns, iface, dir) in [(&self.peer, PEER_IF, "TX:"), (&self.fw, FW_IF, "RX:")] {
            let out =
                capture(Command::new("ip").args(["-n", ns, "-s", "link", "show", "dev", iface]))?;
            // "RX:  bytes packets errors dropped ..." then the numbers on the next line.
            let mut lines = out.lines();
            let header = lines
                .by_ref()
                .find(|l| l.trim_start().starts_with(dir))
                .with_context(|| format!("no {dir} statistics for {iface}: {out}"))?;
            let column = header
                .split_whitespace()
                .position(|w| w == "dropped")
                .with_context(|| format!("no `dropped` column for {iface}: {out}"))?;
            let values = lines.next().unwrap_or_default();
            total += values
                .split_whitespace()
                .nth(column - 1)
                .and_then(|v| v.parse::<u64>().ok())
                .with_context(|| format!("parsing {iface}'s statistics: {out}"))?;
        }
        Ok(total)
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.sink = None;
        for ns in self.created.iter().rev() {
            if let Err(e) = capture(Command::new("ip").args(["netns", "del", ns])) {
                eprintln!("warning: could not delete network namespace {ns}: {e:#}");
            }
        }
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            eprintln!("warning: could not remove {}: {e}", self.dir.display());
        }
    }
}

/// Removes `xsieve-<pid>-bench-*` namespaces (and scratch directories) of runs that no
/// longer exist, e.g. one killed with SIGKILL.
fn remove_stale() {
    let Ok(entries) = fs::read_dir("/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(&format!("{NS_PREFIX}-")) else {
            continue;
        };
        let Some((pid, tag)) = rest.split_once('-') else {
            continue;
        };
        if !tag.starts_with("bench-") || pid.parse::<u32>().is_err() {
            continue;
        }
        if !Path::new(&format!("/proc/{pid}")).exists() {
            eprintln!("bench: removing stale network namespace {name}");
            let _ = capture(Command::new("ip").args(["netns", "del", &name]));
            if let Some(tag) = tag.strip_prefix("bench-") {
                let tag = tag.rsplit_once('-').map_or(tag, |(t, _)| t);
                for base in SCRATCH_BASES {
                    let _ = fs::remove_dir_all(format!("{base}/xdpsieve-bench-{pid}-{tag}"));
                }
            }
        }
    }
}

fn mac_of(ns: &str, iface: &str) -> Result<String> {
    let out = capture(Command::new("ip").args(["-n", ns, "-o", "link", "show", "dev", iface]))?;
    out.split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .map(str::to_string)
        .with_context(|| format!("no MAC address for {iface} in `{}`", out.trim()))
}

fn parse_mac(mac: &str) -> Result<[u8; 6]> {
    let bytes = mac
        .split(':')
        .map(|b| u8::from_str_radix(b, 16))
        .collect::<Result<Vec<u8>, _>>()
        .ok()
        .and_then(|v| <[u8; 6]>::try_from(v).ok());
    bytes.with_context(|| format!("unexpected MAC address `{mac}`"))
}

pub(crate) fn dotted(a: [u8; 4]) -> String {
    format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3])
}

/// A frame of `len` bytes (without FCS, at least 42): Ethernet, IPv4 (DF, TTL 64), UDP
/// 53 -> `DST_PORT` without checksum, zeros after.
pub(crate) fn udp_frame(len: usize, dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
    udp_frame_to(len, dst, src, DST_PORT)
}

/// As [`udp_frame`], to UDP port `port`.
pub(crate) fn udp_frame_to(len: usize, dst: [u8; 6], src: [u8; 6], port: u16) -> Vec<u8> {
    let len = len.max(42);
    let mut f = vec![0u8; len];
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((len - 14) as u16).to_be_bytes());
    ip[6..8].copy_from_slice(&0x4000u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&PEER_V4);
    ip[16..20].copy_from_slice(&FW_V4);
    let sum: u32 = ip
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    let folded = (sum & 0xffff) + (sum >> 16);
    let checksum = !(((folded & 0xffff) + (folded >> 16)) as u16);
    ip[10..12].copy_from_slice(&checksum.to_be_bytes());
    let udp = &mut f[34..42];
    udp[0..2].copy_from_slice(&53u16.to_be_bytes());
    udp[2..4].copy_from_slice(&port.to_be_bytes());
    udp[4..6].copy_from_slice(&((len - 34) as u16).to_be_bytes());
    f
}

/// Whether a captured frame is one of the generator's (the captures may hold others).
pub(crate) fn is_generated(frame: &[u8]) -> bool {
    frame.len() >= 38
        && frame[12..14] == [0x08, 0x00]
        && frame[23] == 17
        && frame[34..36] == 53u16.to_be_bytes()
        && [DST_PORT, SELECTED_PORT].contains(&u16::from_be_bytes([frame[36], frame[37]]))
}

fn enter_netns(path: &Path) -> Result<()> {
    let ns = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    // SAFETY: setns on this thread only, with a network namespace file.
    if unsafe { setns(ns.as_raw_fd(), CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error())
            .context(format!("entering the namespace {}", path.display()));
    }
    Ok(())
}

fn pin_thread(cpu: u32) -> Result<()> {
    let mut mask = [0u64; 16];
    let cpu = cpu as usize;
    if cpu >= 16 * 64 {
        bail!("CPU {cpu} is beyond the affinity mask");
    }
    mask[cpu / 64] |= 1 << (cpu % 64);
    // SAFETY: pid 0 is this thread; the mask is 128 bytes (a cpu_set_t).
    if unsafe { sched_setaffinity(0, size_of_val(&mask), mask.as_ptr()) } != 0 {
        return Err(io::Error::last_os_error()).context(format!("pinning a thread to CPU {cpu}"));
    }
    Ok(())
}

/// What a sender did.
#[derive(Clone, Copy, Default)]
pub(crate) struct Sent {
    pub(crate) frames: u64,
    /// First send to last send.
    pub(crate) elapsed: Duration,
    /// Sends retried after ENOBUFS/EAGAIN.
    pub(crate) retries: u64,
}

impl Sent {
    pub(crate) fn pps(&self) -> f64 {
        self.frames as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// One sending thread: where, how fast, how much.
#[derive(Clone)]
pub(crate) struct Traffic {
    /// The peer namespace's file under /run/netns.
    pub(crate) netns: PathBuf,
    pub(crate) cpu: u32,
    /// Sent in this order, over and over (one frame: the same frame every time).
    pub(crate) frames: Vec<Vec<u8>>,
    /// Stop after this many frames...
    pub(crate) count: u64,
    /// ...or after this long, whichever comes first.
    pub(crate) limit: Duration,
    /// Frames per second (busy-waiting between sends), or `None`: flat out.
    pub(crate) rate: Option<u64>,
}

/// Starts sending `traffic` out of the peer interface from a thread pinned to its CPU.
/// Ctrl-C makes it return an error.
pub(crate) fn spawn_sender(traffic: Traffic) -> thread::JoinHandle<Result<Sent>> {
    thread::spawn(move || -> Result<Sent> {
        enter_netns(&traffic.netns)?;
        pin_thread(traffic.cpu)?;
        // Protocol 0: a send-only packet socket, it receives nothing.
        // SAFETY: plain syscall.
        let fd = unsafe { socket(AF_PACKET, SOCK_RAW, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error()).context("opening an AF_PACKET socket");
        }
        // SAFETY: a new descriptor that nothing else owns.
        let sock = unsafe { OwnedFd::from_raw_fd(fd) };
        let name = CString::new(PEER_IF)?;
        // SAFETY: a NUL-terminated name.
        let ifindex = unsafe { if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            return Err(io::Error::last_os_error()).context(format!("no {PEER_IF} in the peer"));
        }
        let addr = SockaddrLl {
            family: AF_PACKET as u16,
            protocol: 0,
            ifindex: ifindex as i32,
            hatype: 0,
            pkttype: 0,
            halen: 0,
            addr: [0; 8],
        };
        // SAFETY: a sockaddr_ll of the size given.
        let len = size_of::<SockaddrLl>() as u32;
        if unsafe { bind(sock.as_raw_fd(), &addr, len) } != 0 {
            return Err(io::Error::last_os_error()).context(format!("binding to {PEER_IF}"));
        }
        // Straight to the driver (the veth has no qdisc anyway); best effort.
        let one = 1i32;
        // SAFETY: an int option.
        unsafe { setsockopt(sock.as_raw_fd(), SOL_PACKET, PACKET_QDISC_BYPASS, &one, 4) };

        if traffic.frames.is_empty() {
            bail!("nothing to send: the traffic has no frames");
        }
        let frames = &traffic.frames;
        let (mut sent, mut retries, mut spins) = (0u64, 0u64, 0u64);
        let start = Instant::now();
        while sent < traffic.count {
            spins += 1;
            if spins.is_multiple_of(1024) {
                if start.elapsed() > traffic.limit {
                    break;
                }
                check_interrupted()?;
            }
            if let Some(rate) = traffic.rate {
                let due = Duration::from_nanos(
                    (u128::from(sent) * 1_000_000_000 / u128::from(rate.max(1))) as u64,
                );
                if start.elapsed() < due {
                    std::hint::spin_loop();
                    continue;
                }
            }
            let frame = &frames[(sent % frames.len() as u64) as usize];
            // SAFETY: the frame outlives the call.
            let n = unsafe { send(sock.as_raw_fd(), frame.as_ptr(), frame.len(), 0) };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(EINTR | EAGAIN | ENOBUFS) => {
                        retries += 1;
                        continue;
                    }
                    _ => return Err(e).context(format!("sending on {PEER_IF}")),
                }
            }
            sent += 1;
        }
        Ok(Sent {
            frames: sent,
            elapsed: start.elapsed(),
            retries,
        })
    })
}

/// Sends `traffic` and waits for it.
pub(crate) fn send_frames(traffic: Traffic) -> Result<Sent> {
    spawn_sender(traffic)
        .join()
        .map_err(|_| anyhow::anyhow!("the sender thread panicked"))?
}

/// A child process of ours, killed (by its PID) if still running when dropped.
pub(crate) struct Proc {
    pub(crate) child: Child,
    pub(crate) what: &'static str,
}

impl Proc {
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until the process exits or `limit` passes.
    pub(crate) fn wait_for(&mut self, limit: Duration) -> Result<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
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

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
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

/// The number just before `words` in `text`, e.g. 42 in "42 events logged".
pub(crate) fn number_before(text: &str, words: &str) -> Option<u64> {
    let at = text.find(words)?;
    text[..at].split_whitespace().last()?.parse().ok()
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

/// A command as a shell line, quoting what needs it (for the report: copy and paste).
pub(crate) fn shell_line(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|arg| {
            let arg = arg.to_string_lossy();
            let plain = !arg.is_empty()
                && arg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@+%".contains(c));
            if plain {
                arg.into_owned()
            } else {
                format!("'{}'", arg.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub(crate) fn rate_label(target: Option<u64>) -> String {
    target.map_or("max".to_string(), |r| format!("{} pps", thousands(r)))
}
