//! The frame generator: IPv4/UDP frames from the peer to the firewall side (IPv6 ones from
//! many sources for the limit flood), and a sender
//! thread that enters the peer namespace, pins itself to a CPU and writes them to an
//! AF_PACKET socket (PACKET_QDISC_BYPASS, one `send` per frame), paced by busy-waiting or
//! flat out, for a bounded count and time.

use std::{
    ffi::CString,
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    path::PathBuf,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use super::{DST_PORT, FW_V4, PEER_IF, PEER_V4, SELECTED_PORT, sigint::check_interrupted};

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

/// An IPv6/UDP frame of `len` bytes (at least 62) from `src` to `dst`, UDP 53 -> `port`,
/// zeros after. The UDP checksum is left 0 (invalid in IPv6: the firewall's stack drops
/// what gets through, which is all the benches that send these need).
pub(crate) fn udp6_frame(
    len: usize,
    macs: ([u8; 6], [u8; 6]),
    src: [u8; 16],
    dst: [u8; 16],
    port: u16,
) -> Vec<u8> {
    let len = len.max(62);
    let mut f = vec![0u8; len];
    f[0..6].copy_from_slice(&macs.0);
    f[6..12].copy_from_slice(&macs.1);
    f[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
    let ip = &mut f[14..54];
    ip[0] = 0x60;
    ip[4..6].copy_from_slice(&((len - 54) as u16).to_be_bytes());
    ip[6] = 17;
    ip[7] = 64;
    ip[8..24].copy_from_slice(&src);
    ip[24..40].copy_from_slice(&dst);
    let udp = &mut f[54..62];
    udp[0..2].copy_from_slice(&53u16.to_be_bytes());
    udp[2..4].copy_from_slice(&port.to_be_bytes());
    udp[4..6].copy_from_slice(&((len - 54) as u16).to_be_bytes());
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

fn pin_thread(cpu: u32) -> Result<()> {
    let cpu = cpu as usize;
    if cpu >= libc::CPU_SETSIZE as usize {
        bail!("CPU {cpu} is beyond the affinity mask");
    }
    // SAFETY: cpu_set_t is plain bits, all zero the empty set; CPU_SET writes inside it
    // (cpu is below CPU_SETSIZE).
    let set = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        set
    };
    // SAFETY: pid 0 is this thread; the set is a whole cpu_set_t of the size given.
    if unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &raw const set) } != 0 {
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
        xdpsieve_netns::enter(&traffic.netns)?;
        pin_thread(traffic.cpu)?;
        // Protocol 0: a send-only packet socket, it receives nothing.
        // SAFETY: plain syscall.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error()).context("opening an AF_PACKET socket");
        }
        // SAFETY: a new descriptor that nothing else owns.
        let sock = unsafe { OwnedFd::from_raw_fd(fd) };
        let name = CString::new(PEER_IF)?;
        // SAFETY: a NUL-terminated name.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            return Err(io::Error::last_os_error()).context(format!("no {PEER_IF} in the peer"));
        }
        let addr = libc::sockaddr_ll {
            sll_family: libc::AF_PACKET as u16,
            sll_protocol: 0,
            sll_ifindex: i32::try_from(ifindex).context("an interface index past i32")?,
            sll_hatype: 0,
            sll_pkttype: 0,
            sll_halen: 0,
            sll_addr: [0; 8],
        };
        let len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: a sockaddr_ll of the size given, passed as the generic sockaddr bind takes.
        let bound = unsafe { libc::bind(sock.as_raw_fd(), (&raw const addr).cast(), len) };
        if bound != 0 {
            return Err(io::Error::last_os_error()).context(format!("binding to {PEER_IF}"));
        }
        // Straight to the driver (the veth has no qdisc anyway); best effort.
        let one: libc::c_int = 1;
        let len = size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: an int option of the size given.
        unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_QDISC_BYPASS,
                (&raw const one).cast(),
                len,
            )
        };

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
            let n = unsafe { libc::send(sock.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EINTR | libc::EAGAIN | libc::ENOBUFS) => {
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
