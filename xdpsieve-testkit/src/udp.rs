//! Counting what real UDP sockets behind the firewall received; pinning a sender to one
//! CPU.

use std::net::UdpSocket;

/// Datagrams waiting on `socket` (each read waits up to its timeout).
pub fn received(socket: &UdpSocket) -> u64 {
    let mut buf = vec![0u8; 65536];
    let mut n = 0;
    while socket.recv(&mut buf).is_ok() {
        n += 1;
    }
    n
}

/// Pins the calling thread to the first CPU it may run on. A sender that does this has
/// its frames received, and recorded, on one CPU: each CPU has its own capture ring, and
/// records of two CPUs can reach the file out of order (as with xdpdump), so a test that
/// checks the order of what it sent must send from one CPU.
pub fn pin_to_one_cpu() {
    // SAFETY: plain libc calls on a zeroed cpu_set_t for this thread (pid 0).
    unsafe {
        let mut allowed: libc::cpu_set_t = std::mem::zeroed();
        assert_eq!(
            libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut allowed),
            0
        );
        let cpu = (0..libc::CPU_SETSIZE as usize)
            .find(|&c| libc::CPU_ISSET(c, &allowed))
            .expect("some CPU allowed");
        let mut one: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut one);
        assert_eq!(
            libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &one),
            0,
            "pinning the sender: {}",
            std::io::Error::last_os_error()
        );
    }
}
