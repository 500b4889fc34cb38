//! A second path into the firewall's host that never meets the XDP program, the way
//! container networking (Cilium, say) delivers into a veth: a tc program on another
//! interface in the peer namespace calls `bpf_redirect_peer` with `peer0`, which puts the
//! packet straight onto `fw0`'s receive path in the firewall's namespace, past XDP.
//!
//! Datagrams sent from [`BYPASS_V4`] take it: `by1` and `by0` are a second veth pair in the
//! peer namespace, source-routed so that only that address uses them, and the program sits
//! on `by0`'s ingress (a tcx link, kernel 6.6 and later). On recent kernels (6.7 on, as far
//! as known; 6.18 measured) veth counts these packets in `fw0`'s rx_packets, so they are
//! exactly the difference the divergence check looks for (the test measures that on the
//! running kernel before relying on it).
//!
//! The program is four instructions, loaded with the `bpf` syscall: no compiler and no
//! object file for a test helper.

use std::{
    io,
    net::{Ipv4Addr, SocketAddr, UdpSocket},
    os::fd::OwnedFd,
    time::Duration,
};

use xdpsieve_netns::VethPair;
use xdpsieve_testkit::bpf::{bpf, insn, load_program};

/// The peer's address whose datagrams take the bypass.
pub(crate) const BYPASS_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 3);

const BY_IF: &str = "by0";
const BY_PEER_IF: &str = "by1";
/// The routing table the bypass address uses.
const TABLE: &str = "100";

const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_PROG_TYPE_SCHED_CLS: u32 = 3;
const BPF_TCX_INGRESS: u32 = 46;
const BPF_FUNC_REDIRECT_PEER: i32 = 155;

/// `union bpf_attr` for BPF_LINK_CREATE, as far as these fields.
#[repr(C)]
struct LinkCreate {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
}

/// The bypass, in place while this lives (the link goes with its file descriptor, and with
/// the peer namespace).
pub(crate) struct Bypass {
    _link: OwnedFd,
    _program: OwnedFd,
}

impl Bypass {
    /// Builds the bypass into `net`'s peer namespace; the error says what this kernel
    /// refused (no tcx before 6.6, say).
    pub(crate) fn build(net: &VethPair) -> Result<Bypass, String> {
        let peer = &net.peer;
        let ip = |args: &[&str]| peer.ip(args).map_err(|e| e.to_string());
        ip(&[
            "link", "add", BY_PEER_IF, "type", "veth", "peer", "name", BY_IF,
        ])?;
        for iface in [BY_IF, BY_PEER_IF] {
            ip(&["link", "set", iface, "up"])?;
        }
        let bypass = BYPASS_V4.to_string();
        let fw = VethPair::FW_V4.to_string();
        ip(&["addr", "add", &format!("{bypass}/32"), "dev", BY_PEER_IF])?;
        ip(&["rule", "add", "from", &bypass, "table", TABLE])?;
        ip(&[
            "route",
            "add",
            &format!("{fw}/32"),
            "dev",
            BY_PEER_IF,
            "table",
            TABLE,
        ])?;
        // fw0's own address: the frame is handed to fw0 as it is.
        let shown = net
            .fw
            .ip(&["-o", "link", "show", "dev", VethPair::FW_IF])
            .map_err(|e| e.to_string())?;
        let fw_mac = shown
            .split_whitespace()
            .skip_while(|w| *w != "link/ether")
            .nth(1)
            .ok_or_else(|| format!("no MAC address in `{shown}`"))?;
        ip(&["neigh", "replace", &fw, "lladdr", fw_mac, "dev", BY_PEER_IF])?;
        peer.run(attach)
            .map_err(|e| format!("entering the peer namespace: {e}"))?
    }

    /// Sends `count` datagrams to `port` on the firewall's address through the bypass.
    pub(crate) fn send(net: &VethPair, port: u16, count: u16) {
        net.peer
            .run(|| {
                let s = UdpSocket::bind(SocketAddr::new(BYPASS_V4.into(), 0))?;
                for i in 0..count {
                    s.send_to(&i.to_be_bytes(), (VethPair::FW_V4, port))?;
                    if i % 32 == 31 {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                }
                Ok::<_, io::Error>(())
            })
            .expect("entering namespace")
            .expect("sending through the bypass");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// In the peer namespace: loads `redirect_peer(ifindex of peer0)` and links it to by0's
/// ingress.
fn attach() -> Result<Bypass, String> {
    let ifindex = |name: &str| -> Result<u32, String> {
        let c = std::ffi::CString::new(name).map_err(|e| e.to_string())?;
        // SAFETY: a NUL-terminated name; the call only reads it.
        match unsafe { libc::if_nametoindex(c.as_ptr()) } {
            0 => Err(format!(
                "no interface {name}: {}",
                io::Error::last_os_error()
            )),
            index => Ok(index),
        }
    };
    let peer_ifindex = i32::try_from(ifindex(VethPair::PEER_IF)?).map_err(|e| e.to_string())?;
    // r1 = peer0's ifindex; r2 = 0 (flags); r0 = bpf_redirect_peer(r1, r2); exit.
    let insns: [u64; 4] = [
        insn(0xb7, 1, peer_ifindex),
        insn(0xb7, 2, 0),
        insn(0x85, 0, BPF_FUNC_REDIRECT_PEER),
        insn(0x95, 0, 0),
    ];
    let program = load_program(BPF_PROG_TYPE_SCHED_CLS, &insns)
        .map_err(|e| format!("loading the redirect_peer program: {e}"))?;
    let link = LinkCreate {
        prog_fd: fd_u32(&program),
        target_ifindex: ifindex(BY_IF)?,
        attach_type: BPF_TCX_INGRESS,
        flags: 0,
    };
    let link = bpf(BPF_LINK_CREATE, &link)
        .map_err(|e| format!("linking it to {BY_IF}'s tcx ingress (kernel 6.6+): {e}"))?;
    Ok(Bypass {
        _link: link,
        _program: program,
    })
}

fn fd_u32(fd: &OwnedFd) -> u32 {
    use std::os::fd::AsRawFd as _;
    fd.as_raw_fd() as u32
}
