//! The sandbox: two network namespaces joined by a veth pair (documentation addresses
//! 192.0.2.0/24 only), a never-read UDP sink on the firewall side and a scratch
//! directory, all removed on drop; and the removal of those a killed run left behind.

use std::{
    fs,
    net::UdpSocket,
    path::{Path, PathBuf},
    process::{self, Command},
    thread,
};

use anyhow::{Context as _, Result};

use super::{
    DST_PORT, FW_IF, FW_V4, NS_PREFIX, PEER_IF, PEER_V4, SCRATCH_BASES,
    generator::enter_netns,
    procfs::capture,
    text::{dotted, shell_line},
};

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
