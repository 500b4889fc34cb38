//! Throwaway network namespaces joined by a veth pair: the one sandbox of xdpsieve's demo
//! (`xdpsieve demo`), its tests and its benchmarks. Namespaces are named uniquely per
//! process and use, and removed on drop (even when a test fails); ones left by a killed
//! process are removed by the next user.
//!
//! Addresses come from the documentation ranges only: 192.0.2.0/24 and 2001:db8::/32.
//!
//! A crate of its own because three users need it and none can hold it for the others: the
//! demo is a product feature, so the library depends on this with nothing of the tests
//! (the test kit, `xdpsieve-testkit`, must not ship in the binary); and xtask, which runs
//! the benchmarks, must build before `cargo xtask setup` has installed the nightly
//! toolchain that building the library needs.

use std::{
    fs::File,
    io,
    net::{Ipv4Addr, Ipv6Addr},
    os::fd::AsRawFd as _,
    path::{Path, PathBuf},
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
        Netns::create_logged(tag, &mut Vec::new())
    }

    /// As [`Netns::create`], adding the commands it runs to `log`.
    fn create_logged(tag: &str, log: &mut Vec<String>) -> io::Result<Netns> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{PREFIX}-{}-{n}-{tag}", std::process::id());
        ip(&["netns", "add", &name], log)?;
        let ns = Netns { name };
        ns.ip_logged(&["link", "set", "lo", "up"], log)?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bind-mounted namespace file, for `nsenter --net=` and [`enter`].
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// Runs `ip -n NAME ARGS...`; its standard output.
    pub fn ip(&self, args: &[&str]) -> io::Result<String> {
        self.ip_logged(args, &mut Vec::new())
    }

    fn ip_logged(&self, args: &[&str], log: &mut Vec<String>) -> io::Result<String> {
        let mut full = vec!["-n", &self.name];
        full.extend_from_slice(args);
        ip(&full, log)
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
        let path = self.path();
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    enter(&path)?;
                    Ok(f())
                })
                .join()
                .map_err(|_| io::Error::other("thread in namespace panicked"))?
        })
    }

    /// The MAC address of `iface` in this namespace, as `ip` prints it (`02:00:...`).
    pub fn mac(&self, iface: &str) -> io::Result<String> {
        let out = self.ip(&["-o", "link", "show", "dev", iface])?;
        out.split_whitespace()
            .skip_while(|w| *w != "link/ether")
            .nth(1)
            .map(str::to_string)
            .ok_or_else(|| io::Error::other(format!("no MAC address for {iface} in `{out}`")))
    }

    /// Runs `ethtool -L IFACE ARGS...` in this namespace (e.g. `["rx", "4"]`).
    pub fn set_channels(&self, iface: &str, args: &[&str]) -> io::Result<()> {
        self.set_channels_logged(iface, args, &mut Vec::new())
    }

    fn set_channels_logged(
        &self,
        iface: &str,
        args: &[&str],
        log: &mut Vec<String>,
    ) -> io::Result<()> {
        let mut full = vec!["-L", iface];
        full.extend_from_slice(args);
        self.run_tool("ethtool", "ethtool", &full, log).map(drop)
    }

    /// Runs `program ARGS` in this namespace to success (`package` installs it); its
    /// standard output.
    fn run_tool(
        &self,
        program: &str,
        package: &str,
        args: &[&str],
        log: &mut Vec<String>,
    ) -> io::Result<String> {
        log.push(format!(
            "nsenter --net={} -- {program} {}",
            self.path().display(),
            args.join(" ")
        ));
        run(self.command(program), program, package, args)
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
                let _ = ip(&["netns", "del", &name], &mut Vec::new());
            }
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = ip(&["netns", "del", &self.name], &mut Vec::new()) {
            eprintln!(
                "warning: could not delete network namespace {}: {e}",
                self.name
            );
        }
    }
}

/// Moves the calling thread into the network namespace whose file is `path` (a
/// [`Netns::path`], or a bind mount of one elsewhere). The thread stays there.
pub fn enter(path: &Path) -> io::Result<()> {
    let file = File::open(path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("opening the namespace {}: {e}", path.display()),
        )
    })?;
    // SAFETY: setns on this thread only, with a file that is a network namespace (the
    // kernel refuses any other with EINVAL).
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("entering the namespace {}: {e}", path.display()),
        ));
    }
    Ok(())
}

/// Runs `ip ARGS` to success, adding the command to `log`; its standard output. The
/// arguments never need quoting in the log: names are made of the callers' tags, the
/// rest are addresses, numbers and keywords.
fn ip(args: &[&str], log: &mut Vec<String>) -> io::Result<String> {
    log.push(format!("ip {}", args.join(" ")));
    run(Command::new("ip"), "ip", "iproute2", args)
}

/// Runs `command` (`program`, perhaps behind nsenter) with `args` to success; its standard
/// output. The errors name the command, and the package that installs `program`.
fn run(mut command: Command, program: &str, package: &str, args: &[&str]) -> io::Result<String> {
    let out = command
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("running `{program}`: {e} (install {package})"),
            )
        })?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Two namespaces joined by a veth pair: `fw` (where the firewall runs, interface `fw0`) and
/// `peer` (the traffic source, interface `peer0`). Both have IPv4 and (unless told
/// otherwise) IPv6 addresses, and each knows the other's MAC address (static neighbours).
#[derive(Debug)]
pub struct VethPair {
    // Field order is drop order: both namespaces go, taking the veth pair with them.
    pub fw: Netns,
    pub peer: Netns,
    /// The commands that built the pair, in order.
    built_by: Vec<String>,
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
        let mut log = Vec::new();
        let fw = Netns::create_logged(&format!("{tag}-fw"), &mut log)?;
        let peer = Netns::create_logged(&format!("{tag}-peer"), &mut log)?;
        let mut pair = VethPair {
            fw,
            peer,
            built_by: Vec::new(),
        };
        pair.add_link_logged(options, &mut log)?;
        pair.built_by = log;
        Ok(pair)
    }

    /// The commands that built the pair, in order, one shell line each (for a report that
    /// says how to build the same by hand).
    pub fn commands(&self) -> &[String] {
        &self.built_by
    }

    /// Creates the veth pair itself (again, after it was deleted), addressed and up.
    pub fn add_link(&self, options: &VethOptions) -> io::Result<()> {
        self.add_link_logged(options, &mut Vec::new())
    }

    fn add_link_logged(&self, options: &VethOptions, log: &mut Vec<String>) -> io::Result<()> {
        let (fw, peer) = (&self.fw, &self.peer);
        if options.ipv4_only {
            // Before the link exists, so that it never gets an IPv6 address or sends
            // neighbour and multicast chatter.
            for ns in [fw, peer] {
                for key in ["all", "default"] {
                    let key = format!("net.ipv6.conf.{key}.disable_ipv6=1");
                    ns.run_tool("sysctl", "procps", &["-q", "-w", &key], log)?;
                }
            }
        }
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
        fw.ip_logged(&add, log)?;
        // A new veth uses all the queues it was created with (measured on 6.18); fewer
        // need ethtool.
        if let Some((current, max)) = options.rx_queues
            && current != max
        {
            // Both directions: XDP on fw0 needs at least as many rx queues as peer0 has tx
            // queues, and veth picks the receiving queue from the sender's tx queue.
            let n = current.to_string();
            for (ns, iface) in [(fw, Self::FW_IF), (peer, Self::PEER_IF)] {
                ns.set_channels_logged(iface, &["rx", &n, "tx", &n], log)?;
            }
        }
        for (ns, iface, v4, v6) in [
            (fw, Self::FW_IF, Self::FW_V4, Self::FW_V6),
            (peer, Self::PEER_IF, Self::PEER_V4, Self::PEER_V6),
        ] {
            if let Some(mtu) = options.mtu {
                ns.ip_logged(&["link", "set", iface, "mtu", &mtu.to_string()], log)?;
            }
            ns.ip_logged(&["addr", "add", &format!("{v4}/24"), "dev", iface], log)?;
            if !options.ipv4_only {
                let v6 = format!("{v6}/64");
                ns.ip_logged(&["addr", "add", &v6, "dev", iface, "nodad"], log)?;
            }
            ns.ip_logged(&["link", "set", iface, "up"], log)?;
        }
        // Static neighbours: no ARP/ND exchange races the first test packet.
        let fw_mac = fw.mac(Self::FW_IF)?;
        let peer_mac = peer.mac(Self::PEER_IF)?;
        let mut neighbours = vec![
            (peer, Self::PEER_IF, Self::FW_V4.to_string(), &fw_mac),
            (fw, Self::FW_IF, Self::PEER_V4.to_string(), &peer_mac),
        ];
        if !options.ipv4_only {
            neighbours.extend([
                (peer, Self::PEER_IF, Self::FW_V6.to_string(), &fw_mac),
                (fw, Self::FW_IF, Self::PEER_V6.to_string(), &peer_mac),
            ]);
        }
        for (ns, iface, addr, mac) in neighbours {
            ns.ip_logged(
                &["neigh", "replace", &addr, "lladdr", mac, "dev", iface],
                log,
            )?;
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
    /// IPv6 off in both namespaces: no IPv6 address, neighbour or multicast chatter (the
    /// benchmarks count every frame on the wire).
    pub ipv4_only: bool,
}
