//! rtnetlink, the little of it the watcher needs: link notifications (RTMGRP_LINK) and one
//! link's state by name (RTM_GETLINK), in the process's own network namespace.
//!
//! A raw socket and a small parser rather than netlink-packet-route + netlink-sys: five
//! attributes of one message type are read (about 150 lines here, unit-tested below), while
//! the crates would bring a few dozen thousand lines of generated message types and be
//! among the project's largest dependencies.
//!
//! Also the rx queue count, through the ETHTOOL_GCHANNELS ioctl: link notifications do not
//! say it (IFLA_NUM_RX_QUEUES is the allocated maximum, not the queues in use), and sysfs
//! cannot be trusted for it (`nsenter --net` keeps the host's /sys).

use std::{
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
};

const NETLINK_ROUTE: i32 = 0;
const RTMGRP_LINK: u32 = 1;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const NLMSG_ERROR: u16 = 2;
const NLMSG_HDRLEN: usize = 16;
const IFINFOMSG_LEN: usize = 16;
const IFLA_IFNAME: u16 = 3;
const IFLA_STATS64: u16 = 23;
const IFLA_XDP: u16 = 43;
const IFLA_XDP_ATTACHED: u16 = 2;
const IFLA_XDP_PROG_ID: u16 = 4;
const IFLA_XDP_DRV_PROG_ID: u16 = 5;
const IFLA_XDP_SKB_PROG_ID: u16 = 6;
/// Attribute type bits that are flags, not the type (NLA_F_NESTED, NLA_F_NET_BYTEORDER).
const NLA_TYPE_MASK: u16 = 0x3fff;

/// A link as rtnetlink describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Link {
    pub ifindex: u32,
    pub name: String,
    /// Every XDP program on the link (one per mode; usually zero or one).
    pub xdp_programs: Vec<u32>,
    /// Packets the interface received, XDP-dropped ones included (see the watcher's doc).
    pub rx_packets: Option<u64>,
}

/// A notification: something happened to this link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    Changed(Link),
    Deleted(Link),
    /// The socket's buffer overflowed: notifications were lost, look at everything.
    Overrun,
}

fn socket(groups: u32) -> io::Result<OwnedFd> {
    // SAFETY: plain socket call; the result is checked before use.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just created and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_nl is plain data; zero is a valid starting value.
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as u16;
    addr.nl_groups = groups;
    // SAFETY: addr is a valid sockaddr_nl of the size given.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const addr).cast(),
            size_of::<libc::sockaddr_nl>() as u32,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

fn recv(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf is valid for writes of its length.
    let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Subscribed to link notifications; read without blocking.
pub struct Monitor {
    fd: OwnedFd,
    buf: Vec<u8>,
}

impl Monitor {
    pub fn open() -> io::Result<Monitor> {
        Ok(Monitor {
            fd: socket(RTMGRP_LINK)?,
            buf: vec![0; 64 << 10],
        })
    }

    /// The notifications waiting now (none when nothing happened).
    pub fn notices(&mut self) -> io::Result<Vec<Notice>> {
        let mut out = Vec::new();
        loop {
            match recv(&self.fd, &mut self.buf) {
                Ok(n) => parse_messages(&self.buf[..n], &mut out),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(out),
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => out.push(Notice::Overrun),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

fn parse_messages(mut data: &[u8], out: &mut Vec<Notice>) {
    while data.len() >= NLMSG_HDRLEN {
        let len = u32_at(data, 0) as usize;
        let kind = u16_at(data, 4);
        if len < NLMSG_HDRLEN || len > data.len() {
            return;
        }
        let body = &data[NLMSG_HDRLEN..len];
        match kind {
            RTM_NEWLINK => out.extend(parse_link(body).map(Notice::Changed)),
            RTM_DELLINK => out.extend(parse_link(body).map(Notice::Deleted)),
            _ => {}
        }
        data = &data[align(len).min(data.len())..];
    }
}

/// The link called `name` now, or None when there is none.
pub fn get_link(name: &str) -> io::Result<Option<Link>> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains('\0') {
        return Ok(None);
    }
    let fd = socket(0)?;
    let mut request = Vec::with_capacity(64);
    let attr_len = 4 + name.len() + 1;
    let total = NLMSG_HDRLEN + IFINFOMSG_LEN + align(attr_len);
    request.extend((total as u32).to_ne_bytes());
    request.extend(RTM_GETLINK.to_ne_bytes());
    request.extend((libc::NLM_F_REQUEST as u16).to_ne_bytes());
    request.extend(1u32.to_ne_bytes()); // sequence
    request.extend(0u32.to_ne_bytes()); // port id: the kernel fills it in
    request.extend([0u8; IFINFOMSG_LEN]); // any family, any index: look up by name
    request.extend((attr_len as u16).to_ne_bytes());
    request.extend(IFLA_IFNAME.to_ne_bytes());
    request.extend(name.as_bytes());
    request.resize(total, 0);
    // SAFETY: request is valid for reads of its length.
    let sent = unsafe { libc::send(fd.as_raw_fd(), request.as_ptr().cast(), request.len(), 0) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = vec![0u8; 64 << 10];
    let n = wait_recv(&fd, &mut buf)?;
    let data = &buf[..n];
    if data.len() < NLMSG_HDRLEN {
        return Err(io::Error::other("short rtnetlink reply"));
    }
    let len = (u32_at(data, 0) as usize).min(data.len());
    match u16_at(data, 4) {
        NLMSG_ERROR if len >= NLMSG_HDRLEN + 4 => {
            let errno = -(u32_at(data, NLMSG_HDRLEN) as i32);
            match errno {
                0 => Ok(None),
                libc::ENODEV => Ok(None),
                e => Err(io::Error::from_raw_os_error(e)),
            }
        }
        RTM_NEWLINK => Ok(parse_link(&data[NLMSG_HDRLEN..len])),
        other => Err(io::Error::other(format!(
            "unexpected rtnetlink reply type {other}"
        ))),
    }
}

/// The reply to our own request comes at once; a bounded wait covers a busy kernel.
fn wait_recv(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    let mut pollfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let ready = unsafe { libc::poll(&mut pollfd, 1, 1000) };
    if ready < 0 {
        return Err(io::Error::last_os_error());
    }
    if ready == 0 {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "no rtnetlink reply within a second",
        ));
    }
    recv(fd, buf)
}

fn parse_link(body: &[u8]) -> Option<Link> {
    if body.len() < IFINFOMSG_LEN {
        return None;
    }
    let mut link = Link {
        ifindex: u32_at(body, 4),
        ..Link::default()
    };
    for (kind, value) in attributes(&body[IFINFOMSG_LEN..]) {
        match kind {
            IFLA_IFNAME => {
                let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
                link.name = String::from_utf8_lossy(&value[..end]).into_owned();
            }
            // struct rtnl_link_stats64 starts with rx_packets.
            IFLA_STATS64 if value.len() >= 8 => link.rx_packets = Some(u64_at(value, 0)),
            IFLA_XDP => {
                let mut attached = 0u8;
                for (kind, value) in attributes(value) {
                    match kind {
                        IFLA_XDP_ATTACHED if !value.is_empty() => attached = value[0],
                        IFLA_XDP_PROG_ID | IFLA_XDP_DRV_PROG_ID | IFLA_XDP_SKB_PROG_ID
                            if value.len() >= 4 =>
                        {
                            let id = u32_at(value, 0);
                            if id != 0 && !link.xdp_programs.contains(&id) {
                                link.xdp_programs.push(id);
                            }
                        }
                        _ => {}
                    }
                }
                if attached == 0 {
                    link.xdp_programs.clear();
                }
            }
            _ => {}
        }
    }
    Some(link)
}

/// (type, value) of each attribute in `data`; stops at the first malformed one.
fn attributes(mut data: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if data.len() < 4 {
            return None;
        }
        let len = u16_at(data, 0) as usize;
        if len < 4 || len > data.len() {
            return None;
        }
        let item = (u16_at(data, 2) & NLA_TYPE_MASK, &data[4..len]);
        data = &data[align(len).min(data.len())..];
        Some(item)
    })
}

fn align(len: usize) -> usize {
    (len + 3) & !3
}

fn u16_at(data: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([data[at], data[at + 1]])
}

fn u32_at(data: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&data[at..at + 4]);
    u32::from_ne_bytes(b)
}

fn u64_at(data: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&data[at..at + 8]);
    u64::from_ne_bytes(b)
}

/// Rx queues in use on `name` (rx-only plus combined channels), or None when the driver
/// does not say (no ETHTOOL_GCHANNELS).
pub fn rx_queues(name: &str) -> Option<u32> {
    const ETHTOOL_GCHANNELS: u32 = 0x3c;
    #[repr(C)]
    #[derive(Default)]
    struct Channels {
        cmd: u32,
        max_rx: u32,
        max_tx: u32,
        max_other: u32,
        max_combined: u32,
        rx_count: u32,
        tx_count: u32,
        other_count: u32,
        combined_count: u32,
    }
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return None;
    }
    let mut channels = Channels {
        cmd: ETHTOOL_GCHANNELS,
        ..Channels::default()
    };
    // SAFETY: ifreq is plain data; zero is valid.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(name.as_bytes()) {
        *dst = *src as libc::c_char;
    }
    ifr.ifr_ifru.ifru_data = (&raw mut channels).cast();
    // SAFETY: plain socket call, checked.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: fd was just created; OwnedFd closes it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifr names the interface and points at `channels`, which outlives the call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCETHTOOL, &mut ifr) };
    (rc == 0).then_some(channels.rx_count + channels.combined_count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend(((4 + value.len()) as u16).to_ne_bytes());
        out.extend(kind.to_ne_bytes());
        out.extend(value);
        out.resize(align(out.len()), 0);
        out
    }

    fn message(kind: u16, ifindex: u32, attrs: &[Vec<u8>]) -> Vec<u8> {
        let mut body = vec![0u8; IFINFOMSG_LEN];
        body[4..8].copy_from_slice(&ifindex.to_ne_bytes());
        for a in attrs {
            body.extend(a);
        }
        let mut out = Vec::new();
        out.extend(((NLMSG_HDRLEN + body.len()) as u32).to_ne_bytes());
        out.extend(kind.to_ne_bytes());
        out.extend([0u8; 10]);
        out.extend(body);
        out
    }

    #[test]
    fn link_messages_give_name_programs_and_rx_packets() {
        let mut xdp = attr(IFLA_XDP_ATTACHED, &[1]);
        xdp.extend(attr(IFLA_XDP_PROG_ID, &42u32.to_ne_bytes()));
        let mut stats = 1234u64.to_ne_bytes().to_vec();
        stats.extend([0u8; 64]);
        let mut data = message(
            RTM_NEWLINK,
            7,
            &[
                attr(IFLA_IFNAME, b"fw0\0"),
                attr(IFLA_XDP | 0x8000, &xdp),
                attr(IFLA_STATS64, &stats),
            ],
        );
        data.extend(message(RTM_DELLINK, 8, &[attr(IFLA_IFNAME, b"eth1\0")]));
        let mut out = Vec::new();
        parse_messages(&data, &mut out);
        assert_eq!(
            out,
            vec![
                Notice::Changed(Link {
                    ifindex: 7,
                    name: "fw0".into(),
                    xdp_programs: vec![42],
                    rx_packets: Some(1234),
                }),
                Notice::Deleted(Link {
                    ifindex: 8,
                    name: "eth1".into(),
                    ..Link::default()
                }),
            ]
        );
    }

    #[test]
    fn truncated_messages_and_attributes_are_ignored() {
        let data = message(RTM_NEWLINK, 7, &[attr(IFLA_IFNAME, b"fw0\0")]);
        let mut out = Vec::new();
        parse_messages(&data[..data.len() - 3], &mut out);
        assert!(out.is_empty());
        let mut bad = message(RTM_NEWLINK, 7, &[]);
        bad.extend([200, 0, 3, 0]); // attribute longer than the message
        let len = bad.len() as u32;
        bad[0..4].copy_from_slice(&len.to_ne_bytes());
        parse_messages(&bad, &mut out);
        assert_eq!(out.len(), 1);
        assert!(matches!(&out[0], Notice::Changed(l) if l.name.is_empty() && l.ifindex == 7));
    }
}
