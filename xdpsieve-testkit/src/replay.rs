//! Frames sent raw out of the peer's interface through an AF_PACKET socket: what a test
//! cannot make a socket send (crafted headers, spoofed sources), as it is, tags included.

use std::{
    ffi::CString,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    time::Duration,
};

use xdpsieve_netns::VethPair;

/// Sends each frame of `frames` (name, bytes) from the peer's interface, pausing `pause`
/// after every `every` frames so the veth's queue never overflows. Panics with the frame's
/// name when one cannot be sent.
pub fn replay(net: &VethPair, frames: &[(&str, Vec<u8>)], every: usize, pause: Duration) {
    net.peer
        .run(|| -> std::io::Result<()> {
            // Protocol 0: a send-only packet socket.
            // SAFETY: plain syscall.
            let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // SAFETY: a new descriptor nothing else owns.
            let sock = unsafe { OwnedFd::from_raw_fd(fd) };
            let name = CString::new(VethPair::PEER_IF).expect("no NUL");
            // SAFETY: a NUL-terminated name.
            let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
            if ifindex == 0 {
                return Err(std::io::Error::last_os_error());
            }
            // SAFETY: all-zero is a valid sockaddr_ll.
            let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            addr.sll_family = libc::AF_PACKET as u16;
            addr.sll_ifindex = ifindex as i32;
            // SAFETY: a sockaddr_ll of the size given.
            let bound = unsafe {
                libc::bind(
                    sock.as_raw_fd(),
                    (&raw const addr).cast(),
                    size_of::<libc::sockaddr_ll>() as u32,
                )
            };
            if bound != 0 {
                return Err(std::io::Error::last_os_error());
            }
            for (i, (name, frame)) in frames.iter().enumerate() {
                // SAFETY: a buffer of the length given.
                let sent =
                    unsafe { libc::send(sock.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
                if sent != frame.len() as isize {
                    return Err(std::io::Error::other(format!(
                        "sending `{name}` ({} bytes): {}",
                        frame.len(),
                        std::io::Error::last_os_error()
                    )));
                }
                if (i + 1) % every.max(1) == 0 {
                    std::thread::sleep(pause);
                }
            }
            Ok(())
        })
        .expect("entering the peer namespace")
        .expect("replaying the frames");
}
