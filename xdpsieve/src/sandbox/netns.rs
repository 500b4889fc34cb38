//! Throwaway network namespaces joined by a veth pair, for the demo and the end-to-end
//! tests. Namespaces are named uniquely per process and use, and removed on drop (even when
//! a test fails); ones left by a killed process are removed by the next user.
//!
//! Addresses come from the documentation ranges only: 192.0.2.0/24 and 2001:db8::/32.

use std::{
    fs::File,
    io,
    net::{Ipv4Addr, Ipv6Addr},
    os::fd::AsRawFd,
    path::PathBuf,
    process::{Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
};

/// Every namespace this crate creates starts with this.
const PREFIX: &str = "xsieve";

/// A named network namespace, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `xsieve-<pid>-<n>-<tag>`.
    pub fn create(tag: &str) -> io::Result<Netns> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{PREFIX}-{}-{n}-{tag}", std::process::id());
        ip(&["netns", "add", &name])?;
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bind-mounted namespace file, for `nsenter --net=`.
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// Runs `ip -n NAME ARGS...`.
    pub fn ip(&self, args: &[&str]) -> io::Result<String> {
        let mut full = vec!["-n", &self.name];
        full.extend_from_slice(args);
        ip(&full)
    }

    /// A command that runs `program` inside this namespace's network stack only (unlike
    /// `ip netns exec`, which also remounts /sys).
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", self.path().display()))
            .arg("--")
            .arg(program);
        cmd
    }

    /// Runs `f` on a thread that has entered this namespace, and returns its result.
    pub fn run<F, R>(&self, f: F) -> io::Result<R>
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        let file = File::open(self.path())?;
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    // SAFETY: setns on this thread only; the file is a network namespace.
                    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                        return Err(io::Error::last_os_error());
                    }
                    Ok(f())
                })
                .join()
                .map_err(|_| io::Error::other("thread in namespace panicked"))?
        })
    }

    /// Removes namespaces left behind by processes that no longer exist.
    pub fn remove_stale() {
        let Ok(entries) = std::fs::read_dir("/run/netns") else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix(&format!("{PREFIX}-")) else {
                continue;
            };
            let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
                continue;
            };
            if !PathBuf::from(format!("/proc/{pid}")).exists() {
                let _ = ip(&["netns", "del", &name]);
            }
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = ip(&["netns", "del", &self.name]) {
            eprintln!(
                "warning: could not delete network namespace {}: {e}",
                self.name
            );
        }
    }
}

fn ip(args: &[&str]) -> io::Result<String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("running `ip`: {e} (install iproute2)")))?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Two namespaces joined by a veth pair: `fw` (where the firewall runs, interface `fw0`) and
/// `peer` (the traffic source, interface `peer0`). Both have IPv4 and IPv6 addresses.
#[derive(Debug)]
pub struct VethPair {
    // Field order is drop order: both namespaces go, taking the veth pair with them.
    pub fw: Netns,
    pub peer: Netns,
}

impl VethPair {
    pub const FW_IF: &'static str = "fw0";
    pub const PEER_IF: &'static str = "peer0";
    pub const FW_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
    pub const PEER_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    pub const FW_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
    pub const PEER_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);

    /// Creates the pair with `tag` in the namespace names. `mtu` sets both ends (frames
    /// larger than a page need the program's frags support).
    pub fn create(tag: &str, mtu: Option<u32>) -> io::Result<VethPair> {
        Self::create_with(
            tag,
            &VethOptions {
                mtu,
                ..VethOptions::default()
            },
        )
    }

    /// Creates the pair with `tag` in the namespace names, shaped by `options`.
    pub fn create_with(tag: &str, options: &VethOptions) -> io::Result<VethPair> {
        Netns::remove_stale();
        let fw = Netns::create(&format!("{tag}-fw"))?;
        let peer = Netns::create(&format!("{tag}-peer"))?;
        let pair = VethPair { fw, peer };
        pair.add_link(options)?;
        Ok(pair)
    }

    /// Creates the veth pair itself (again, after it was deleted), addressed and up.
    pub fn add_link(&self, options: &VethOptions) -> io::Result<()> {
        let (fw, peer) = (&self.fw, &self.peer);
        let mut add = vec!["link", "add", Self::FW_IF];
        let queues = options.rx_queues.map(|(_, max)| max.to_string());
        if let Some(max) = &queues {
            add.extend(["numrxqueues", max, "numtxqueues", max]);
        }
        add.extend(["type", "veth", "peer", "name", Self::PEER_IF]);
        if let Some(max) = &queues {
            add.extend(["numrxqueues", max, "numtxqueues", max]);
        }
        add.extend(["netns", peer.name()]);
        fw.ip(&add)?;
        if let Some((current, _)) = options.rx_queues {
            // Both directions: XDP on fw0 needs at least as many rx queues as peer0 has tx
            // queues, and veth picks the receiving queue from the sender's tx queue.
            let n = current.to_string();
            for (ns, iface) in [(fw, Self::FW_IF), (peer, Self::PEER_IF)] {
                ns.set_channels(iface, &["rx", &n, "tx", &n])?;
            }
        }
        for (ns, iface, v4, v6) in [
            (fw, Self::FW_IF, Self::FW_V4, Self::FW_V6),
            (peer, Self::PEER_IF, Self::PEER_V4, Self::PEER_V6),
        ] {
            if let Some(mtu) = options.mtu {
                ns.ip(&["link", "set", iface, "mtu", &mtu.to_string()])?;
            }
            ns.ip(&["addr", "add", &format!("{v4}/24"), "dev", iface])?;
            ns.ip(&["addr", "add", &format!("{v6}/64"), "dev", iface, "nodad"])?;
            ns.ip(&["link", "set", iface, "up"])?;
        }
        // Static neighbours: no ARP/ND exchange races the first test packet.
        let fw_mac = mac_of(fw, Self::FW_IF)?;
        let peer_mac = mac_of(peer, Self::PEER_IF)?;
        for (ns, iface, addr, mac) in [
            (peer, Self::PEER_IF, Self::FW_V4.to_string(), &fw_mac),
            (peer, Self::PEER_IF, Self::FW_V6.to_string(), &fw_mac),
            (fw, Self::FW_IF, Self::PEER_V4.to_string(), &peer_mac),
            (fw, Self::FW_IF, Self::PEER_V6.to_string(), &peer_mac),
        ] {
            ns.ip(&["neigh", "replace", &addr, "lladdr", mac, "dev", iface])?;
        }
        Ok(())
    }
}

/// How [`VethPair::create_with`] shapes the pair.
#[derive(Clone, Debug, Default)]
pub struct VethOptions {
    /// MTU of both ends.
    pub mtu: Option<u32>,
    /// (rx/tx queues in use, maximum) on both ends; the kernel's default (one) when None.
    /// Grow later with [`Netns::set_channels`].
    pub rx_queues: Option<(u32, u32)>,
}

impl Netns {
    /// Runs `ethtool -L IFACE ARGS...` in this namespace (e.g. `["rx", "4"]`).
    pub fn set_channels(&self, iface: &str, args: &[&str]) -> io::Result<()> {
        let out = self
            .command("ethtool")
            .args(["-L", iface])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("running `ethtool`: {e} (install ethtool)"),
                )
            })?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "`ethtool -L {iface} {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    }
}

fn mac_of(ns: &Netns, iface: &str) -> io::Result<String> {
    let out = ns.ip(&["-o", "link", "show", "dev", iface])?;
    out.split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .map(str::to_string)
        .ok_or_else(|| io::Error::other(format!("no MAC address for {iface} in `{out}`")))
}
