//! The `bpf(2)` calls the benchmarks (`prog_cost`, `set_cost`) make directly, for what
//! aya 0.14 does not offer or offers only on programs it loaded itself:
//! `BPF_PROG_TEST_RUN` with a repeat count on any program fd, minimal floor programs,
//! opening a program by id.

use std::os::fd::{FromRawFd as _, OwnedFd};

/// A minimal XDP program: `r0 = verdict; exit`.
pub fn load_floor_program(verdict: u8) -> std::io::Result<OwnedFd> {
    let insns: [u64; 2] = [
        u64::from_le_bytes([0xb7, 0x00, 0, 0, verdict, 0, 0, 0]), // mov r0, verdict
        u64::from_le_bytes([0x95, 0, 0, 0, 0, 0, 0, 0]),          // exit
    ];
    let license = c"GPL";
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&6u32.to_ne_bytes()); // BPF_PROG_TYPE_XDP
    attr[4..8].copy_from_slice(&2u32.to_ne_bytes());
    attr[8..16].copy_from_slice(&(insns.as_ptr() as u64).to_ne_bytes());
    attr[16..24].copy_from_slice(&(license.as_ptr() as u64).to_ne_bytes());
    // SAFETY: BPF_PROG_LOAD (5) with a zero-padded attr whose pointers outlive the call.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, 5, attr.as_ptr(), attr.len()) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new fd that we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Runs `fd` on `frame` `repeat` times; returns (verdict, average ns per run).
pub fn test_run(fd: i32, frame: &[u8], repeat: u32) -> std::io::Result<(u32, u32)> {
    let mut attr = [0u8; 80];
    attr[0..4].copy_from_slice(&(fd as u32).to_ne_bytes());
    attr[8..12].copy_from_slice(&(frame.len() as u32).to_ne_bytes());
    attr[16..24].copy_from_slice(&(frame.as_ptr() as u64).to_ne_bytes());
    attr[32..36].copy_from_slice(&repeat.to_ne_bytes());
    // SAFETY: BPF_PROG_TEST_RUN (10) with a zero-padded attr; data_in outlives the call.
    let ret = unsafe { libc::syscall(libc::SYS_bpf, 10, attr.as_mut_ptr(), attr.len()) };
    if ret < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let retval = u32::from_ne_bytes([attr[4], attr[5], attr[6], attr[7]]);
    let duration = u32::from_ne_bytes([attr[36], attr[37], attr[38], attr[39]]);
    Ok((retval, duration))
}

/// Opens a loaded program by id (BPF_PROG_GET_FD_BY_ID).
pub fn prog_fd_by_id(id: u32) -> std::io::Result<OwnedFd> {
    let mut attr = [0u8; 16];
    attr[0..4].copy_from_slice(&id.to_ne_bytes());
    // SAFETY: BPF_PROG_GET_FD_BY_ID (13) with a zero-padded attr.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, 13, attr.as_ptr(), attr.len()) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new fd that we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

pub fn verdict_name(v: u32) -> &'static str {
    match v {
        0 => "ABORTED",
        1 => "DROP",
        2 => "PASS",
        3 => "TX",
        4 => "REDIRECT",
        _ => "OTHER",
    }
}
