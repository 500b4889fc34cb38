//! What each subcommand needs of the process's privileges, checked before it touches
//! anything, and named in the subcommand's own terms when it is missing: `run` loads and
//! attaches the XDP program; `set`, `status`, `reload` and `stop` open the running
//! firewall's pinned maps or signal its recorder, and an operator told that they failed
//! "loading the XDP program" would look for the wrong cause.
//!
//! The check reads the effective capabilities (`CapEff` in `/proc/self/status`); when they
//! cannot be read it lets the kernel answer.
//!
//! CAP_SYS_ADMIN is needed by none of them (handles are duplicated or opened through their
//! pins, never by id), and CAP_KILL by none up front: signalling the recorder needs it only
//! when the recorder runs as another user, and a service's `ExecReload=` runs as the
//! service's own user. The service tests (`tests/service/privilege.rs`) run every verb with
//! exactly the unit's capabilities.

use anyhow::{Result, bail};

use crate::configure::loader::LoaderError;

const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// The subcommands that need privileges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Run,
    Reload,
    Stop,
    Status,
    Top,
    Set,
}

/// One capability a verb needs, with the older one that also grants it (CAP_SYS_ADMIN
/// covered BPF before CAP_BPF existed).
struct Need {
    name: &'static str,
    caps: &'static [u32],
}

const BPF: Need = Need {
    name: "CAP_BPF",
    caps: &[CAP_BPF, CAP_SYS_ADMIN],
};
/// The verifier lets only CAP_PERFMON (or CAP_SYS_ADMIN) spill pointers to the stack and
/// do the pointer arithmetic the program does: without it the load fails ("attempt to
/// corrupt spilled pointer on stack").
const PERFMON: Need = Need {
    name: "CAP_PERFMON",
    caps: &[CAP_PERFMON, CAP_SYS_ADMIN],
};
const NET_ADMIN: Need = Need {
    name: "CAP_NET_ADMIN",
    caps: &[CAP_NET_ADMIN],
};

impl Verb {
    fn name(self) -> &'static str {
        match self {
            Verb::Run => "run",
            Verb::Reload => "reload",
            Verb::Stop => "stop",
            Verb::Status => "status",
            Verb::Top => "top",
            Verb::Set => "set",
        }
    }

    /// The capabilities the verb needs, and what for.
    fn needs(self) -> (&'static [Need], &'static str) {
        match self {
            Verb::Run => (
                &[BPF, NET_ADMIN, PERFMON],
                "it loads and attaches the XDP program",
            ),
            Verb::Reload => (
                &[BPF, NET_ADMIN, PERFMON],
                "it signals the running xdpsieve, or, when its recorder is gone, loads the new \
                 rules and swaps them onto the pinned link itself",
            ),
            Verb::Stop => (
                &[BPF],
                "it signals the running xdpsieve, or, when its recorder is gone, removes the \
                 firewall's pinned link and maps",
            ),
            Verb::Status | Verb::Top => (&[BPF], "it reads pinned BPF maps"),
            Verb::Set => (
                &[BPF],
                "it changes the running firewall's sets in its pinned BPF maps",
            ),
        }
    }
}

/// The effective capabilities of this process; `None` when they cannot be read.
fn effective() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
}

/// What is missing for `verb` with the effective capabilities `cap_eff`, as the message
/// for the operator; `None` when nothing is.
fn missing(verb: Verb, cap_eff: u64) -> Option<String> {
    let (needs, why) = verb.needs();
    let has = |need: &Need| need.caps.iter().any(|&cap| cap_eff & (1 << cap) != 0);
    if needs.iter().all(has) {
        return None;
    }
    let names: Vec<&str> = needs.iter().map(|n| n.name).collect();
    let caps = match names.as_slice() {
        [one] => format!("the capability {one}"),
        [init @ .., last] => format!("the capabilities {} and {last}", init.join(", ")),
        [] => String::new(),
    };
    Some(format!(
        "xdpsieve {} needs root ({why}), or {caps}: run it with sudo",
        verb.name()
    ))
}

/// What to add to a failed signal to the recorder `pid` when it runs as another user (the
/// uid of its /proc entry): who may signal it. Empty otherwise.
pub fn signal_hint(pid: u32) -> String {
    use std::os::unix::fs::MetadataExt as _;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    match std::fs::metadata(format!("/proc/{pid}")) {
        Ok(meta) if meta.uid() != me => format!(
            " (it runs as uid {}, this command as uid {me}: run it as that user, e.g. the \
             service's, or as root, or with CAP_KILL)",
            meta.uid()
        ),
        _ => String::new(),
    }
}

/// With this set in the environment, the check is skipped and the kernel answers: how the
/// service tests measure what the kernel itself refuses without each capability, so the
/// needs above are measured, not assumed.
const SKIP_ENV: &str = "XDPSIEVE_SKIP_CAPABILITY_CHECK";

/// Fails early, and clearly, when the process lacks what `verb` needs.
pub fn check(verb: Verb) -> Result<()> {
    if std::env::var_os(SKIP_ENV).is_some() {
        return Ok(());
    }
    let Some(cap_eff) = effective() else {
        return Ok(()); // cannot tell; the kernel will say
    };
    match missing(verb, cap_eff) {
        // `run`'s refusal is the loader's, as when the kernel itself refuses the load.
        Some(_) if verb == Verb::Run => bail!(LoaderError::PermissionDenied),
        Some(message) => bail!(message),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: u64 = u64::MAX >> 23;

    #[test]
    fn each_verb_names_what_it_needs_and_never_a_load_it_does_not_do() {
        for verb in [Verb::Reload, Verb::Stop, Verb::Status, Verb::Set] {
            let message = missing(verb, 0).expect("nobody lacks something");
            assert!(
                message.starts_with(&format!("xdpsieve {} needs root (", verb.name())),
                "{message}"
            );
            assert!(!message.contains("loading the XDP program"), "{message}");
            assert_eq!(missing(verb, ROOT), None, "{verb:?}");
        }
        assert_eq!(
            missing(Verb::Set, 0).unwrap(),
            "xdpsieve set needs root (it changes the running firewall's sets in its pinned BPF \
             maps), or the capability CAP_BPF: run it with sudo"
        );
        assert!(missing(Verb::Reload, 0).unwrap().ends_with(
            "or the capabilities CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON: run it with sudo"
        ));
        // CAP_SYS_ADMIN grants what CAP_BPF does on kernels before 5.8.
        let old_admin = 1 << CAP_SYS_ADMIN | 1 << CAP_NET_ADMIN;
        assert_eq!(missing(Verb::Run, old_admin), None);
        let service = 1 << CAP_BPF | 1 << CAP_NET_ADMIN | 1 << CAP_PERFMON;
        assert_eq!(missing(Verb::Run, service), None);
        assert!(missing(Verb::Run, 1 << CAP_BPF | 1 << CAP_NET_ADMIN).is_some());
        // Signalling a recorder of the same user needs no CAP_KILL (see the module doc).
        assert_eq!(missing(Verb::Stop, 1 << CAP_BPF), None);
        assert!(missing(Verb::Stop, 1 << CAP_NET_ADMIN).is_some());
    }
}
