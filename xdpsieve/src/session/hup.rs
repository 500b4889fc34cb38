//! SIGHUP in the run loop: a reload of the rules (see [`crate::instance::reload`]). The new program
//! loads on a thread while the loop goes on draining the rings, which it shares with the
//! old program (the readers go on as they are, naming each record's rule from its own
//! generation); the swap happens in the loop once it is loaded.

use std::sync::atomic::{AtomicBool, Ordering};

use super::service::Service;
use crate::{
    base::text::escape,
    instance::description::Meta,
    instance::reload::{self, InBackground, Reloaded},
};

/// The reload in progress, if any.
#[derive(Default)]
pub(super) struct HupReload {
    pending: Option<InBackground>,
}

impl HupReload {
    /// Starts a reload when `asked` (SIGHUP) and none is in progress, and returns one that
    /// went through, for the loop to adopt. Says on stderr how it went, and tells the
    /// service manager (`RELOADING=1`, then `READY=1` however it ended).
    pub(super) fn poll(
        &mut self,
        asked: &AtomicBool,
        meta: &Meta,
        service: &mut Service,
    ) -> Option<Reloaded> {
        // A SIGHUP during a reload waits for it (the flag stays set): the file may have
        // changed again after the reload read it.
        if self.pending.is_none() && asked.swap(false, Ordering::Relaxed) {
            service.reloading();
            match InBackground::start(meta) {
                Ok(pending) => self.pending = Some(pending),
                Err(e) => {
                    // Recorded, so `xdpsieve reload` does not wait for an answer in vain.
                    reload::record_failure(
                        meta,
                        crate::instance::recipe::unix_ns(),
                        &e,
                        crate::instance::recipe::Reloader::Recorder,
                    );
                    let line = format!("xdpsieve: reload failed: {}", escape(&format!("{e:#}")));
                    crate::base::log::error(&line);
                    service.reloaded(&line);
                }
            }
        }
        if !self.pending.as_ref().is_some_and(InBackground::is_finished) {
            return None;
        }
        match self.pending.take()?.finish(meta) {
            Ok(done) => {
                let line = match &done.meta.reload.last {
                    Some(outcome) => format!("xdpsieve: reloaded: {}", escape(&outcome.message)),
                    None => format!(
                        "xdpsieve: reloaded: generation {}",
                        done.meta.reload.generation
                    ),
                };
                if done.meta.reload.last.is_some() {
                    crate::base::log::info(&line);
                }
                service.reloaded(&line);
                Some(done)
            }
            Err(e) => {
                let line = format!(
                    "xdpsieve: reload failed; still filtering with generation {}: {}",
                    meta.reload.generation,
                    escape(&format!("{e:#}"))
                );
                crate::base::log::error(&line);
                service.reloaded(&line);
                None
            }
        }
    }

    /// Whether a reload is loading.
    pub(super) fn pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Gives up the reload in progress (the run stops without it) and says so.
    pub(super) fn abandon(&mut self, meta: &Meta) {
        if self.pending.take().is_some() {
            crate::base::log::error(format!(
                "xdpsieve: reload abandoned: the run stopped before it loaded; generation {} stays in force",
                meta.reload.generation
            ));
        }
    }
}
