//! The `bpf(2)` calls the benchmarks (`prog_cost`, `set_cost`) make directly, for what
//! aya 0.14 does not offer or offers only on programs it loaded itself:
//! `BPF_PROG_TEST_RUN` with a repeat count on any program fd, minimal floor programs,
//! opening a program by id; and loading a few hand-written instructions (the watch tests'
//! `bpf_redirect_peer` bypass).

use std::os::fd::{FromRawFd as _, OwnedFd};

/// `union bpf_attr` for BPF_PROG_LOAD, as far as these fields (the kernel zero-extends a
/// shorter attribute than its own).
#[repr(C)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
}

/// Loads `insns` as a GPL program of type `prog_type`; the error holds the verifier's log.
pub fn load_program(prog_type: u32, insns: &[u64]) -> Result<OwnedFd, String> {
    let license = c"GPL";
    let mut log = vec![0u8; 4096];
    let attr = ProgLoad {
        prog_type,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 1,
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
    };
    bpf(5, &attr).map_err(|e| {
        let log = String::from_utf8_lossy(&log);
        format!("{e}: {}", log.trim_end_matches('\0'))
    })
}

/// `bpf(cmd, attr)` for a command that returns a new descriptor (BPF_PROG_LOAD,
/// BPF_LINK_CREATE, ...).
pub fn bpf<T>(cmd: libc::c_long, attr: &T) -> std::io::Result<OwnedFd> {
    // SAFETY: attr is a live, initialised bpf_attr prefix of the size given; the pointers
    // it holds outlive the call.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, cmd, std::ptr::from_ref(attr), size_of::<T>()) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor to us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// One eBPF instruction with an immediate: `code dst, imm`.
pub fn insn(code: u8, dst: u8, imm: i32) -> u64 {
    u64::from(code) | u64::from(dst) << 8 | u64::from(imm as u32) << 32
}

/// A minimal XDP program: `r0 = verdict; exit`.
pub fn load_floor_program(verdict: u8) -> std::io::Result<OwnedFd> {
    // mov r0, verdict; exit.
    let insns = [insn(0xb7, 0, i32::from(verdict)), insn(0x95, 0, 0)];
    load_program(6, &insns).map_err(std::io::Error::other) // BPF_PROG_TYPE_XDP
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
