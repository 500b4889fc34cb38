//! Watching the filtered interfaces, so the firewall never stops filtering without a word.
//!
//! What can take an interface away from the program while xdpsieve keeps running: the
//! interface deleted (and perhaps created again under its name, with a new ifindex), the
//! program detached or replaced by another tool, and on veth an rx queue count grown with
//! `ethtool -L` (on some kernels queues enabled after attach run no XDP program; others
//! install it there too, see `xdpsieve/tests/README.md`). The [`Watcher`] notices each
//! within a second: link notifications (RTMGRP_LINK) trigger an immediate look, and every
//! second it looks anyway (one RTM_GETLINK per interface, and ETHTOOL_GCHANNELS for the
//! queue count, which `ethtool -L` changes without a notification that says so).
//!
//! Reactions: a deleted interface that comes back under its name is attached again (same
//! mode); grown queues are fixed by moving the link to the firewall's twin program, which
//! makes the driver install the program on every queue without a moment unfiltered (see
//! [`crate::configure::relink`]). A detach or replacement from outside is reported loudly
//! and left alone: whoever did it meant it, and two tools taking turns on an interface is
//! worse than one clear warning (`xdpsieve status` shows it until xdpsieve is restarted).
//!
//! Every 5 s a divergence check compares the interface's received packets (IFLA_STATS64
//! rx_packets) with the program's count for it. On veth rx_packets counts every frame that
//! reached the device, XDP_DROP and XDP_PASS alike (the XDP path's per-queue counts plus the
//! peer's transmit count for frames that took the path without XDP, and on recent kernels
//! frames another program put straight onto its receive path with `bpf_redirect_peer`), so
//! with the program on every queue the two move together, and frames that bypass the
//! program show up as the difference. rx_packets is read before the program's counters, so
//! a frame in flight has already been counted by the program (veth updates its counts after
//! the program runs) and cannot cause a false alarm. Drivers that leave XDP-dropped frames out of rx_packets only
//! make the interface's count smaller, which never warns. The warning needs the difference
//! to be at least [`DIVERGENCE_MIN`] packets and 5% of what was received. In skb (generic)
//! mode there is no such check: the program runs after GRO there, once per merged packet,
//! so it legitimately sees fewer packets than the interface received.
//!
//! Every change is one line on stderr ([`Event`]) and the state of each interface is in a
//! small file next to the instance's description ([`health`]), read by `xdpsieve status`
//! and the metrics.

mod divergence;
pub mod health;
pub mod netlink;

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

pub use health::{Event, Health, InterfaceHealth};

use crate::configure::loader::{AttachedMode, Firewall};

/// How often the notification socket is read.
const POLL_EVERY: Duration = Duration::from_millis(100);
/// How often every interface is looked at even without a notification.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// The divergence check's window.
const DIVERGENCE_EVERY: Duration = Duration::from_secs(5);
/// Fewer unseen packets than this are noise, never a warning.
pub const DIVERGENCE_MIN: u64 = 16;
/// Test-only: do not fix grown queues, so a test sees what the kernel leaves on them.
const NO_QUEUE_FIX_ENV: &str = "XDPSIEVE_TEST_NO_QUEUE_REATTACH";

struct Watched {
    name: String,
    /// Where xdpsieve's link is (or was last).
    ifindex: u32,
    /// Native: the program runs once per received frame, so counts can be compared. In skb
    /// mode it runs after GRO, once per merged packet: no divergence check there.
    native: bool,
    /// The last failure to look, so it is said once.
    error: Option<String>,
    /// What the last look found (never `Diverging`: see `diverging`).
    health: Health,
    /// (unseen, received) when the last divergence window found packets the program missed.
    diverging: Option<(u64, u64)>,
    rx_queues: Option<u32>,
    /// A deletion notice arrived since the last look: whatever exists now is new.
    deleted_seen: bool,
    /// (interface rx_packets, program packets) at the start of the divergence window.
    baseline: Option<(u64, u64)>,
    state_file: Option<PathBuf>,
}

/// Watches the interfaces a [`Firewall`] is attached to; call [`Watcher::poll`] often.
pub struct Watcher {
    monitor: Option<netlink::Monitor>,
    interfaces: Vec<Watched>,
    /// The program's counter slots, by ifindex, as loaded (`Settings::ifindexes`).
    slots: Vec<u32>,
    last_poll: Instant,
    last_check: Instant,
    last_divergence: Instant,
    fix_queues: bool,
    monitor_error: Option<String>,
}

impl Watcher {
    /// Starts watching every interface `firewall` is attached to. `slots` are the ifindexes
    /// the program counts separately; `state_file` names each interface's health file
    /// (None: no file).
    pub fn new(
        firewall: &Firewall,
        slots: &[u32],
        state_file: impl Fn(&str) -> Option<PathBuf>,
    ) -> std::io::Result<Watcher> {
        let monitor = netlink::Monitor::open()?;
        let now = Instant::now();
        let mut watcher = Watcher {
            monitor: Some(monitor),
            interfaces: firewall
                .attachments()
                .iter()
                .map(|a| Watched {
                    name: a.interface.clone(),
                    ifindex: a.ifindex,
                    native: a.mode == AttachedMode::Native,
                    error: None,
                    health: Health::Filtering,
                    diverging: None,
                    rx_queues: netlink::rx_queues(&a.interface),
                    deleted_seen: false,
                    baseline: None,
                    state_file: state_file(&a.interface),
                })
                .collect(),
            slots: slots.to_vec(),
            last_poll: now,
            last_check: now,
            last_divergence: now,
            fix_queues: std::env::var_os(NO_QUEUE_FIX_ENV).is_none(),
            monitor_error: None,
        };
        watcher.sample_baselines(firewall);
        for w in &watcher.interfaces {
            write_state(w);
        }
        Ok(watcher)
    }

    /// The health of each watched interface.
    pub fn health(&self) -> Vec<(String, Health)> {
        self.interfaces
            .iter()
            .map(|w| (w.name.clone(), w.effective()))
            .collect()
    }

    /// Reads notifications and looks at the interfaces when due; cheap when nothing is due.
    /// Returns what changed, one [`Event`] per stderr line.
    pub fn poll(&mut self, firewall: &mut Firewall) -> Vec<Event> {
        let mut events = Vec::new();
        if self.last_poll.elapsed() < POLL_EVERY {
            return events;
        }
        self.last_poll = Instant::now();
        let mut look_now = self.read_notices(&mut events);
        if self.last_check.elapsed() >= CHECK_EVERY {
            look_now = true;
        }
        if look_now {
            self.last_check = Instant::now();
            let before: Vec<Health> = self.interfaces.iter().map(Watched::effective).collect();
            for i in 0..self.interfaces.len() {
                self.look(i, firewall, &mut events);
            }
            if self.last_divergence.elapsed() >= DIVERGENCE_EVERY {
                self.last_divergence = Instant::now();
                self.check_divergence(firewall, &mut events);
            }
            for (w, old) in self.interfaces.iter().zip(before) {
                if w.effective() != old {
                    write_state(w);
                }
            }
        }
        events
    }

    /// True when a notice concerns a watched interface (or notices were lost).
    fn read_notices(&mut self, events: &mut Vec<Event>) -> bool {
        let Some(monitor) = self.monitor.as_mut() else {
            return false;
        };
        let notices = match monitor.notices() {
            Ok(n) => n,
            Err(e) => {
                // Keep looking every second; say once that notifications stopped.
                let what = format!("reading link notifications: {e}");
                if self.monitor_error.as_deref() != Some(&what) {
                    events.push(Event::CannotWatch { what: what.clone() });
                    self.monitor_error = Some(what);
                }
                return true;
            }
        };
        let mut relevant = false;
        for notice in notices {
            match notice {
                netlink::Notice::Overrun => relevant = true,
                netlink::Notice::Changed(link) | netlink::Notice::Deleted(link)
                    if !self.concerns(&link) => {}
                netlink::Notice::Changed(_) => relevant = true,
                netlink::Notice::Deleted(link) => {
                    relevant = true;
                    for w in &mut self.interfaces {
                        if w.name == link.name || w.ifindex == link.ifindex {
                            w.deleted_seen = true;
                        }
                    }
                }
            }
        }
        relevant
    }

    fn concerns(&self, link: &netlink::Link) -> bool {
        self.interfaces
            .iter()
            .any(|w| w.name == link.name || w.ifindex == link.ifindex)
    }

    /// Compares interface `i` as it is now with what xdpsieve set up, and reacts.
    fn look(&mut self, i: usize, firewall: &mut Firewall, events: &mut Vec<Event>) {
        let w = &mut self.interfaces[i];
        let link = match netlink::get_link(&w.name) {
            Ok(link) => {
                w.error = None;
                link
            }
            Err(e) => {
                // Said once, not every second.
                let what = format!("asking the kernel about {}: {e}", w.name);
                if w.error.as_deref() != Some(&what) {
                    events.push(Event::CannotWatch { what: what.clone() });
                    w.error = Some(what);
                }
                return;
            }
        };
        let deleted_seen = std::mem::take(&mut w.deleted_seen);
        let gone = matches!(
            w.health,
            Health::InterfaceGone | Health::NotReattached { .. }
        );
        let Some(link) = link else {
            if !gone {
                w.health = Health::InterfaceGone;
                events.push(Event::Deleted {
                    interface: w.name.clone(),
                });
            }
            return;
        };
        let ours = firewall.program_ids();
        let runs_ours = link.xdp_programs.iter().any(|id| ours.contains(id));
        // The same device still running our program is filtered, whatever notices said
        // (say, renamed away and back).
        let still_ours = link.ifindex == w.ifindex && runs_ours;
        if (link.ifindex != w.ifindex || deleted_seen || gone) && !still_ours {
            if !gone {
                // Deleted and created again between two looks.
                events.push(Event::Deleted {
                    interface: w.name.clone(),
                });
            }
            match firewall.reattach(&w.name, link.ifindex) {
                Ok(_) => {
                    w.ifindex = link.ifindex;
                    w.health = Health::Filtering;
                    w.rx_queues = netlink::rx_queues(&w.name);
                    w.baseline = None;
                    w.diverging = None;
                    events.push(Event::Back {
                        interface: w.name.clone(),
                        ifindex: link.ifindex,
                    });
                }
                Err(e) => {
                    let reason = crate::instance::pins::name_the_owner(e).to_string();
                    let health = Health::NotReattached {
                        reason: reason.clone(),
                    };
                    if w.health != health {
                        events.push(Event::BackNotFiltered {
                            interface: w.name.clone(),
                            ifindex: link.ifindex,
                            reason,
                        });
                        w.health = health;
                    }
                }
            }
            return;
        }
        if !runs_ours {
            let program = link
                .xdp_programs
                .iter()
                .find(|id| !ours.contains(id))
                .copied();
            let health = Health::DetachedFromOutside { program };
            if w.health != health {
                events.push(Event::DetachedFromOutside {
                    interface: w.name.clone(),
                    program,
                });
                w.health = health;
            }
            return;
        }
        if matches!(
            w.health,
            Health::DetachedFromOutside { .. }
                | Health::InterfaceGone
                | Health::NotReattached { .. }
        ) {
            w.health = Health::Filtering;
            events.push(Event::FilteringAgain {
                interface: w.name.clone(),
            });
        }
        self.look_at_queues(i, firewall, events);
    }

    fn look_at_queues(&mut self, i: usize, firewall: &mut Firewall, events: &mut Vec<Event>) {
        let fix_queues = self.fix_queues;
        let w = &mut self.interfaces[i];
        let Some(now) = netlink::rx_queues(&w.name) else {
            return;
        };
        let was = w.rx_queues.replace(now);
        let retry = matches!(w.health, Health::QueuesWithoutProgram { .. });
        let grew = was.is_some_and(|was| now > was);
        if let Some(was) = was
            && now < was
        {
            events.push(Event::QueuesShrank {
                interface: w.name.clone(),
                was,
                now,
            });
        }
        if !grew && !retry {
            return;
        }
        let result = if fix_queues {
            firewall
                .refresh_queues(&w.name)
                .map_err(|e| format!("{e:#}"))
        } else {
            Err(format!("re-attaching is disabled by {NO_QUEUE_FIX_ENV}"))
        };
        // A failed retry says nothing new; a grown count always gets its line.
        if grew || result.is_ok() {
            events.push(Event::QueuesGrew {
                interface: w.name.clone(),
                was: was.unwrap_or(now),
                now,
                failure: result.clone().err(),
            });
        }
        w.health = match result {
            Ok(()) => {
                // Packets that bypassed before the fix are not news once it is reported.
                w.baseline = None;
                w.diverging = None;
                Health::Filtering
            }
            Err(_) => Health::QueuesWithoutProgram { queues: now },
        };
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        for w in &self.interfaces {
            if let Some(path) = &w.state_file {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

impl Watched {
    /// The program should be on the interface: the packet counts should agree.
    fn program_expected(&self) -> bool {
        self.native
            && matches!(
                self.health,
                Health::Filtering | Health::QueuesWithoutProgram { .. }
            )
    }

    /// What status and metrics show: a divergence outranks the rest while the program is
    /// meant to be there.
    fn effective(&self) -> Health {
        match self.diverging {
            Some((unseen, received)) if self.program_expected() => {
                Health::Diverging { unseen, received }
            }
            _ => self.health.clone(),
        }
    }
}

fn write_state(w: &Watched) {
    let Some(path) = &w.state_file else { return };
    let health = w.effective();
    let state = InterfaceHealth {
        interface: w.name.clone(),
        ifindex: w.ifindex,
        summary: health.to_string(),
        health,
    };
    if let Err(e) = health::write(path, &state) {
        crate::base::log::warning(format_args!(
            "xdpsieve: warning: cannot write {} ({e}); `xdpsieve status` will not show {}'s \
             health",
            path.display(),
            w.name
        ));
    }
}
