//! The watcher's verdict on each interface ("filtering", "interface gone", ...), what it
//! says on stderr when that changes, and the small state file next to the instance's
//! description through which `xdpsieve status` and the metrics see it.

use std::{fmt, fs, io, path::Path};

use serde::{Deserialize, Serialize};

/// Whether an interface is filtered by xdpsieve right now, and if not, why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Health {
    /// The program runs on every packet the interface receives, as far as xdpsieve can tell.
    Filtering,
    /// The interface was deleted; xdpsieve attaches again if it comes back under its name.
    InterfaceGone,
    /// The interface came back but attaching to it failed.
    NotReattached { reason: String },
    /// xdpsieve's program is no longer on the interface; `program` is what is there instead.
    DetachedFromOutside { program: Option<u32> },
    /// The rx queue count grew and the program could not be set up on the new queues.
    QueuesWithoutProgram { queues: u32 },
    /// The interface received more packets than the program saw in the last check.
    Diverging { unseen: u64, received: u64 },
}

impl Health {
    pub fn is_filtering(&self) -> bool {
        *self == Health::Filtering
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Health::Filtering => f.write_str("filtering"),
            Health::InterfaceGone => f.write_str("interface gone"),
            Health::NotReattached { reason } => write!(f, "back but not filtered: {reason}"),
            Health::DetachedFromOutside { program: None } => f.write_str("detached from outside"),
            Health::DetachedFromOutside { program: Some(id) } => {
                write!(f, "detached from outside (program {id} in its place)")
            }
            Health::QueuesWithoutProgram { queues } => {
                write!(f, "queues without program ({queues} rx queues)")
            }
            Health::Diverging { unseen, received } => write!(
                f,
                "diverging: {unseen} packets unseen (of {received} received in the last check)"
            ),
        }
    }
}

/// What the state file holds for one interface.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceHealth {
    pub interface: String,
    /// Where xdpsieve's program is (or was last) attached.
    pub ifindex: u32,
    #[serde(flatten)]
    pub health: Health,
    /// `health` in words, as `xdpsieve status` prints it.
    pub summary: String,
}

/// Replaces `path` atomically, so a reader never sees half a file.
pub fn write(path: &Path, health: &InterfaceHealth) -> io::Result<()> {
    let tmp = path.with_extension("health.tmp");
    let body = serde_json::to_vec_pretty(health).map_err(io::Error::other)?;
    fs::write(&tmp, body)?;
    fs::rename(&tmp, path)
}

pub fn read(path: &Path) -> Option<InterfaceHealth> {
    serde_json::from_slice(&fs::read(path).ok()?).ok()
}

/// Something the watcher noticed or did; each is one line on stderr.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Deleted {
        interface: String,
    },
    Back {
        interface: String,
        ifindex: u32,
    },
    BackNotFiltered {
        interface: String,
        ifindex: u32,
        reason: String,
    },
    DetachedFromOutside {
        interface: String,
        program: Option<u32>,
    },
    FilteringAgain {
        interface: String,
    },
    QueuesGrew {
        interface: String,
        was: u32,
        now: u32,
        /// None when re-attached, else why not.
        failure: Option<String>,
    },
    QueuesShrank {
        interface: String,
        was: u32,
        now: u32,
    },
    Diverging {
        interface: String,
        unseen: u64,
        received: u64,
        seconds: u64,
    },
    Converged {
        interface: String,
    },
    /// The watcher itself could not look (netlink or counter read failed).
    CannotWatch {
        what: String,
    },
}

impl Event {
    /// Its priority in the journal: a warning when filtering is not what the rules say
    /// (or may not be, unseen), news otherwise.
    pub fn priority(&self) -> crate::base::log::Priority {
        use crate::base::log::Priority;
        match self {
            Event::Deleted { .. }
            | Event::BackNotFiltered { .. }
            | Event::DetachedFromOutside { .. }
            | Event::QueuesGrew { .. }
            | Event::Diverging { .. }
            | Event::CannotWatch { .. } => Priority::Warning,
            Event::Back { .. }
            | Event::FilteringAgain { .. }
            | Event::QueuesShrank { .. }
            | Event::Converged { .. } => Priority::Info,
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Deleted { interface } => write!(
                f,
                "xdpsieve: WARNING: {interface} was deleted; filtering stopped on it \
                 (xdpsieve attaches again if it comes back under this name)"
            ),
            Event::Back { interface, ifindex } => {
                write!(
                    f,
                    "xdpsieve: {interface} is back (ifindex {ifindex}); re-attached"
                )
            }
            Event::BackNotFiltered {
                interface,
                ifindex,
                reason,
            } => write!(
                f,
                "xdpsieve: WARNING: {interface} is back (ifindex {ifindex}) but attaching to it \
                 failed: {reason}; {interface} is NOT filtered"
            ),
            Event::DetachedFromOutside {
                interface,
                program: Some(id),
            } => write!(
                f,
                "xdpsieve: WARNING: the XDP program on {interface} was replaced by program {id} \
                 from outside: {interface} is NOT filtered by xdpsieve (see `bpftool prog show \
                 id {id}`; xdpsieve does not fight the tool that did it: restart xdpsieve once \
                 that tool is stopped)"
            ),
            Event::DetachedFromOutside {
                interface,
                program: None,
            } => write!(
                f,
                "xdpsieve: WARNING: the XDP program on {interface} was detached from outside: \
                 {interface} is NOT filtered by xdpsieve (restart xdpsieve to filter it again)"
            ),
            Event::FilteringAgain { interface } => {
                write!(f, "xdpsieve: {interface} runs xdpsieve's program again")
            }
            Event::QueuesGrew {
                interface,
                was,
                now,
                failure: None,
            } => write!(
                f,
                "xdpsieve: WARNING: {interface} has {now} rx queues now (was {was}); re-attached \
                 so every queue runs the firewall"
            ),
            Event::QueuesGrew {
                interface,
                was,
                now,
                failure: Some(reason),
            } => write!(
                f,
                "xdpsieve: WARNING: {interface} has {now} rx queues now (was {was}) and \
                 re-attaching failed ({reason}): the new queues may run WITHOUT the firewall; \
                 restart xdpsieve or set the queue count back (`ethtool -L {interface} rx {was}`)"
            ),
            Event::QueuesShrank {
                interface,
                was,
                now,
            } => write!(
                f,
                "xdpsieve: {interface} has {now} rx queues now (was {was})"
            ),
            Event::Diverging {
                interface,
                unseen,
                received,
                seconds,
            } => write!(
                f,
                "xdpsieve: WARNING: {interface} received {received} packets in the last \
                 {seconds}s and xdpsieve's program saw {unseen} fewer: traffic is bypassing the \
                 firewall (check `ip -d link show dev {interface}`, `ethtool -l {interface}`)"
            ),
            Event::Converged { interface } => write!(
                f,
                "xdpsieve: {interface}: the program again sees every packet the interface receives"
            ),
            Event::CannotWatch { what } => write!(
                f,
                "xdpsieve: WARNING: cannot watch the interfaces: {what}; a detach or interface \
                 change may go unnoticed"
            ),
        }
    }
}
