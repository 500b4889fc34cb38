//! Ctrl-C and SIGINT: a Ctrl-C only sets a flag that every wait checks, so the guards
//! (namespaces, scratch directories, child processes) clean up on the way out; and SIGINT,
//! sent by PID, is how a child of ours is asked to stop and print its summary.

use std::{
    io,
    sync::atomic::{AtomicBool, Ordering},
};

use anyhow::{Context as _, Result, bail};

pub(crate) const SIGINT: i32 = 2;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_signal: i32) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Ctrl-C only sets a flag: the waits notice it, so the guards clean up on the way out.
pub(crate) fn catch_sigint() {
    // SAFETY: the handler only stores to an atomic.
    unsafe { signal(SIGINT, on_sigint as extern "C" fn(i32) as usize) };
}

unsafe extern "C" {
    fn signal(signum: i32, handler: usize) -> usize;
    fn kill(pid: i32, sig: i32) -> i32;
}

/// Sends SIGINT to a child of ours, by its PID.
pub(crate) fn interrupt(pid: u32) -> Result<()> {
    // SAFETY: signals our own child, by its PID.
    if unsafe { kill(pid as i32, SIGINT) } != 0 {
        return Err(io::Error::last_os_error()).context(format!("sending SIGINT to pid {pid}"));
    }
    Ok(())
}

pub(crate) fn check_interrupted() -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    Ok(())
}
