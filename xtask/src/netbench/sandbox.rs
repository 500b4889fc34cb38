//! The benchmarks' sandbox: the veth pair between two network namespaces that the demo and
//! the tests use too (`xdpsieve-netns`, IPv4 only here: no IPv6 chatter in the captures),
//! plus what only a benchmark needs: a never-read UDP sink on the firewall side, a scratch
//! directory, both ends' MAC addresses for the generator's frames, and the interface
//! statistics it reads. All removed on drop; the scratch directories a killed run left
//! behind are removed by the next (its namespaces, by the shared sandbox).

use std::{
    fs,
    net::UdpSocket,
    path::{Path, PathBuf},
    process,
};

use anyhow::{Context as _, Result};
use xdpsieve_netns::{VethOptions, VethPair};

use super::{DST_PORT, FW_IF, PEER_IF, SCRATCH_BASES};

/// The namespaces and the scratch directory; all removed on drop.
pub(crate) struct Sandbox {
    /// Closed before the namespaces go.
    sink: Option<UdpSocket>,
    pub(crate) pair: VethPair,
    pub(crate) dir: PathBuf,
    pub(crate) fw_mac: [u8; 6],
    pub(crate) peer_mac: [u8; 6],
    /// The commands that built it, for the report.
    pub(crate) commands: Vec<String>,
}

impl Sandbox {
    /// Namespaces `xsieve-<pid>-<n>-bench-<tag>-{fw,peer}`, a veth pair with `queues`
    /// queues each way, IPv4 only, and a scratch directory under `scratch` (one of
    /// [`SCRATCH_BASES`]).
    pub(crate) fn create(tag: &str, queues: u32, scratch: &Path) -> Result<Sandbox> {
        remove_stale_scratch();
        let pid = process::id();
        let dir = scratch.join(format!("xdpsieve-bench-{pid}-{tag}"));
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let options = VethOptions {
            rx_queues: Some((queues, queues)),
            ipv4_only: true,
            ..VethOptions::default()
        };
        let pair = VethPair::create_with(&format!("bench-{tag}"), &options)
            .context("creating the benchmark's namespaces")?;
        let mac = |ns: &xdpsieve_netns::Netns, iface| -> Result<[u8; 6]> {
            parse_mac(&ns.mac(iface).with_context(|| format!("reading {iface}"))?)
        };
        let (fw_mac, peer_mac) = (mac(&pair.fw, FW_IF)?, mac(&pair.peer, PEER_IF)?);
        // A bound, never read UDP socket on the destination port in the firewall namespace:
        // frames that get through end there instead of costing ICMP port-unreachable work.
        let sink = pair
            .fw
            .run(|| UdpSocket::bind((VethPair::FW_V4, DST_PORT)))
            .context("entering the firewall's namespace")?
            .context("binding the UDP sink")?;
        let mut commands = pair.commands().to_vec();
        commands.push(format!(
            "(a UDP socket bound to {}:{DST_PORT} in {}, never read)",
            VethPair::FW_V4,
            pair.fw.name()
        ));
        Ok(Sandbox {
            sink: Some(sink),
            pair,
            dir,
            fw_mac,
            peer_mac,
            commands,
        })
    }

    /// Whether the firewall side's interface has an XDP program attached.
    pub(crate) fn attached(&self) -> Result<bool> {
        let out = self.pair.fw.ip(&["-o", "link", "show", "dev", FW_IF])?;
        Ok(out.contains("prog/xdp") || out.contains(" xdp"))
    }

    /// Frames dropped by the veth pair itself (peer TX + firewall RX), before any XDP
    /// program or capture tool saw them.
    pub(crate) fn veth_drops(&self) -> Result<u64> {
        let mut total = 0;
        for (ns, iface, dir) in [
            (&self.pair.peer, PEER_IF, "TX:"),
            (&self.pair.fw, FW_IF, "RX:"),
        ] {
            let out = ns.ip(&["-s", "link", "show", "dev", iface])?;
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
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            eprintln!("warning: could not remove {}: {e}", self.dir.display());
        }
    }
}

/// Removes the `xdpsieve-bench-<pid>-<tag>` scratch directories of runs that no longer
/// exist, e.g. one killed with SIGKILL.
fn remove_stale_scratch() {
    for base in SCRATCH_BASES {
        let Ok(entries) = fs::read_dir(base) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(pid) = name
                .strip_prefix("xdpsieve-bench-")
                .and_then(|rest| rest.split('-').next())
                .and_then(|pid| pid.parse::<u32>().ok())
            else {
                continue;
            };
            if !Path::new(&format!("/proc/{pid}")).exists() {
                eprintln!("bench: removing stale scratch directory {base}/{name}");
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }
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
