//! Ctrl-C: it only sets a flag that every wait checks, so the guards (namespaces, scratch
//! directories, child processes) clean up on the way out. (SIGINT to a child of ours, by
//! its PID, is [`super::Proc::interrupt`].)

use std::sync::{
    Arc, LazyLock,
    atomic::{AtomicBool, Ordering},
};

use anyhow::{Result, bail};

static INTERRUPTED: LazyLock<Arc<AtomicBool>> = LazyLock::new(Arc::default);

/// Ctrl-C only sets a flag: the waits notice it, so the guards clean up on the way out.
pub(crate) fn catch_sigint() {
    if let Err(e) =
        signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&INTERRUPTED))
    {
        eprintln!("warning: Ctrl-C will not clean up the sandbox: {e}");
    }
}

pub(crate) fn check_interrupted() -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    Ok(())
}
