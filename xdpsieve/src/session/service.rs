//! The run as a systemd service (`Type=notify`): what it tells the service manager through
//! `NOTIFY_SOCKET` (sd_notify(3)), with the `sd-notify` crate. Outside systemd (no
//! `NOTIFY_SOCKET`) every call here does nothing.
//!
//! - `READY=1` once the start returned: the program is attached (or a firewall left behind
//!   was taken over) and the recorder reads its rings. systemd holds back the units ordered
//!   after xdpsieve until then, and a `systemctl restart` waits for it.
//! - `STATUS=` the live line `--stats-interval` prints, every [`STATUS_INTERVAL`], so that
//!   `systemctl status xdpsieve` shows the rates and losses of the last seconds.
//! - `RELOADING=1` when a reload (SIGHUP, `xdpsieve reload`) starts, then `READY=1` when it
//!   ended, whether the new rules went in or the old ones stayed (`xdpsieve reload`, the
//!   unit's `ExecReload=`, says which and fails for the latter).
//! - `STOPPING=1` when an explicit stop (or a handover) begins: the drain, the closing
//!   blocks and the summary follow.
//! - `WATCHDOG=1` from the run loop, twice per `WATCHDOG_USEC` (when `WATCHDOG_PID` is unset
//!   or this process): a recorder stuck anywhere in its loop (a write that blocks, a lock
//!   never released) stops feeding it, and systemd kills it (`WatchdogSec=`) and starts
//!   another (`Restart=on-failure`), which takes the pinned firewall over; the firewall
//!   filters all along, since it never depended on the process (fail-static).
//!
//! Why the crate rather than libsystemd: it is the whole protocol (a datagram of
//! `KEY=VALUE` lines to a unix socket) without linking C, and it reads
//! `WATCHDOG_USEC`/`WATCHDOG_PID` as sd_watchdog_enabled(3) does. It connects to a socket
//! path only (systemd gives system services `/run/systemd/notify`); an abstract socket
//! (`@name`) fails to connect, which is warned about once, and the run goes on.

use std::time::{Duration, Instant};

use sd_notify::NotifyState;

/// How often `STATUS=` is refreshed.
pub(super) const STATUS_INTERVAL: Duration = Duration::from_secs(5);

/// The service manager's end of a run (see the module doc).
pub(super) struct Service {
    /// Whether `NOTIFY_SOCKET` is set: without it nothing is sent, nor computed for it.
    notifying: bool,
    /// How often to feed the watchdog: half its timeout, as sd_watchdog_enabled(3) advises.
    watchdog: Option<Duration>,
    last_ping: Instant,
    last_status: Instant,
    /// One warning about a notification that could not be sent, not one per send.
    warned: bool,
}

impl Service {
    /// Reads the environment systemd gave the process.
    pub(super) fn from_env() -> Service {
        let notifying = std::env::var_os("NOTIFY_SOCKET").is_some();
        Service {
            notifying,
            watchdog: notifying
                .then(sd_notify::watchdog_enabled)
                .flatten()
                .filter(|timeout| !timeout.is_zero())
                .map(|timeout| timeout / 2),
            last_ping: Instant::now(),
            last_status: Instant::now(),
            warned: false,
        }
    }

    /// Whether a service manager listens: the caller computes a status line only then.
    pub(super) fn notifying(&self) -> bool {
        self.notifying
    }

    fn send(&mut self, states: &[NotifyState<'_>]) {
        if !self.notifying {
            return;
        }
        if let Err(e) = sd_notify::notify(states)
            && !std::mem::replace(&mut self.warned, true)
        {
            crate::base::log::warning(format_args!(
                "xdpsieve: warning: cannot notify the service manager (NOTIFY_SOCKET): {e}"
            ));
        }
    }

    /// Attached and recording: `READY=1`, with a first status.
    pub(super) fn ready(&mut self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
        self.last_status = Instant::now();
        self.last_ping = Instant::now();
    }

    /// A reload started.
    pub(super) fn reloading(&mut self) {
        self.send(&[
            NotifyState::Reloading,
            NotifyState::Status("reloading the rules"),
        ]);
    }

    /// The reload ended (`status` says how): ready again.
    pub(super) fn reloaded(&mut self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
        self.last_status = Instant::now();
    }

    /// An explicit stop began.
    pub(super) fn stopping(&mut self, status: &str) {
        self.send(&[NotifyState::Stopping, NotifyState::Status(status)]);
    }

    /// Feeds the watchdog when it is due; called from every turn of the run loop.
    pub(super) fn tick(&mut self) {
        if let Some(every) = self.watchdog
            && self.last_ping.elapsed() >= every
        {
            self.send(&[NotifyState::Watchdog]);
            self.last_ping = Instant::now();
        }
    }

    /// Whether a new `STATUS=` is due.
    pub(super) fn status_due(&self) -> bool {
        self.notifying && self.last_status.elapsed() >= STATUS_INTERVAL
    }

    /// The live line, as `STATUS=`.
    pub(super) fn status(&mut self, line: &str) {
        self.send(&[NotifyState::Status(line)]);
        self.last_status = Instant::now();
    }
}
