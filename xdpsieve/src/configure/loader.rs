//! Loading the XDP program with its configuration and rules, and attaching it to interfaces
//! through a bpf_link pinned in bpffs, so the firewall stays in force when the process
//! dies, however it dies (fail-static; see [`crate::instance::pins`] for the layout).
//!
//! Only an explicit [`Firewall::detach`] (or [`Firewall::detach_all`]) removes an attachment:
//! it unpins the link and closes it, and the kernel detaches the program. Dropping a
//! `Firewall` (an error return, a panic unwinding) detaches nothing. A firewall left behind
//! is taken over with [`Firewall::take_over`], which swaps the program on the pinned link
//! atomically (`bpf_link_update`): no packet sees the interface without a firewall.
//!
//! Errors say what the operator can do about them: missing privileges, an unknown
//! interface, another XDP program already in place, a driver without native XDP.

use std::{ffi::CString, fmt, io, path::PathBuf};

use aya::{
    Ebpf, EbpfLoader,
    maps::Array,
    programs::{ProgramError, Xdp},
};
use xdpsieve_common::{MAX_INTERFACES, MAX_RULES, MAX_SNAPLEN, Rule, walk::LimitParams};

use crate::{
    EBPF_OBJECT,
    configure::capture_filter::FilterEngine,
    configure::classify,
    configure::ebpf_code,
    configure::matcher::{self, Matching, NotCompiled, RuleEngine},
    configure::sets::kernel::Built,
};

mod attach;
pub mod capture_rings;
mod filters;
mod maps;
mod reattach;
mod settings;
mod shared;
mod tables;
pub use attach::Attachment;
use filters::FilterLoad;
pub use filters::{FilterHow, FilterRun};
pub use maps::{PINNED_MAPS, SET_PINS};
pub use settings::{Settings, Transport};
pub use shared::SHARED_MAPS;

const PROGRAM: &str = "xdpsieve";
/// The same program under a second id (see `configure::relink`), loaded on first use.
const TWIN: &str = "xdpsieve_twin";
/// Where the twin is pinned, next to the link, while the link runs it: the set commands
/// find the program in force through its pin (listing the kernel's programs to find it by
/// id needs CAP_SYS_ADMIN, which a service runs without).
pub const TWIN_PIN: &str = "prog-twin";

/// How to attach: `auto` tries native (driver) mode and falls back to generic (skb) mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum AttachMode {
    #[default]
    Auto,
    #[value(alias = "drv", alias = "driver")]
    Native,
    #[value(alias = "generic")]
    Skb,
}

/// The mode an attachment ended up in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttachedMode {
    Native,
    Skb,
}

impl fmt::Display for AttachedMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AttachedMode::Native => "native",
            AttachedMode::Skb => "skb",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    #[error(
        "permission denied loading the XDP program: xdpsieve needs root, or the capabilities \
         CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON"
    )]
    PermissionDenied,
    #[error("no such network interface: {0}")]
    UnknownInterface(String),
    #[error(
        "interface {0} already has an XDP program attached{1}; see it with `ip -d link show dev \
         {0}` and `bpftool link show`. A program attached through a bpf_link (as xdpsieve and \
         most current tools attach) is NOT removed by `ip link set dev {0} xdp off`: stop the \
         tool that owns it, or remove its link with `bpftool link detach id LINK_ID` (an \
         xdpsieve firewall: `xdpsieve stop -i {0}`, in the namespace it runs in). A program \
         attached through netlink is removed with `ip link set dev {0} xdp off`"
    )]
    /// The interface, and who attached the program there when the caller can tell (see
    /// `pins::name_the_owner`), else nothing.
    AlreadyAttached(String, String),
    #[error(
        "could not pin the XDP link of {interface} at {}; without the pin the firewall would \
         not outlive this process, so it was detached again", path.display()
    )]
    Pin {
        interface: String,
        path: PathBuf,
        #[source]
        source: aya::pin::PinError,
    },
    #[error(
        "could not take over the firewall pinned at {}: {detail}; it is left as it was (still \
         in force). Remove it with `xdpsieve stop -i {interface}` and start again", path.display()
    )]
    TakeOver {
        interface: String,
        path: PathBuf,
        detail: String,
    },
    #[error("interface {interface} does not support native XDP; try --mode skb")]
    NativeUnsupported {
        interface: String,
        #[source]
        source: io::Error,
    },
    #[error("attaching XDP to {interface} failed")]
    Attach {
        interface: String,
        #[source]
        source: ProgramError,
    },
    #[error("snap length {0} is out of range 1..={MAX_SNAPLEN}")]
    Snaplen(u32),
    #[error("sampling 1 in {0}: the rate must be at least 1 (1 records every packet)")]
    Sample(u32),
    #[error("ring buffer size {0} must be a power of two of at least 4096 bytes")]
    RingSize(u32),
    #[error("{0} rules given; the program evaluates at most {MAX_RULES}")]
    TooManyRules(usize),
    #[error("{0} interfaces given; at most {MAX_INTERFACES} get their own counters")]
    TooManyInterfaces(usize),
    #[error("loading the XDP program failed: {0}")]
    Load(String),
    #[error("address sets: {0}")]
    Sets(String),
    /// The kernel refused a program with translated filters (see [`Firewall::load`]).
    #[error("loading the XDP program with its translated filters failed: {0}")]
    TranslatedFilter(String),
    /// The kernel refused a program with compiled rules (see [`Firewall::load`]).
    #[error("loading the XDP program with its compiled rules failed: {0}")]
    CompiledRules(String),
}

/// The loaded program, its maps, and its attachments. Dropping it detaches nothing: the
/// attachments stay in force until [`Firewall::detach`] or [`Firewall::detach_all`].
pub struct Firewall {
    ebpf: Ebpf,
    attachments: Vec<Attachment>,
    transport: Transport,
    ring_bytes: u32,
    /// Interfaces with their own counter slot, in slot order.
    ifindexes: Vec<u32>,
    /// Names of the interfaces attached so far, kept after detaching for the summary.
    interface_names: Vec<(u32, String)>,
    /// Handles of [`SHARED_MAPS`], kept for pinning after the record sources are taken.
    shared: Vec<(String, aya::maps::Map)>,
    /// How each filter runs.
    filter_runs: Vec<FilterRun>,
    /// How the first matching rule is found.
    matching: Matching,
    /// The per-CPU capture rings (see `capture_rings`), until the capture source takes them.
    capture_rings: Vec<aya::maps::MapData>,
}

impl Firewall {
    /// Loads the program with `settings`; the rules are in their map before this returns,
    /// so nothing is attached with a half-filled rule table.
    ///
    /// A load whose compiled rules the kernel refuses is done again with the bitmaps
    /// ([`Firewall::matching`] says why): the compiled rules are only ever a faster way to
    /// the same verdicts. With [`FilterEngine::Auto`], a load whose translated filters the
    /// kernel refuses is done again with the filters interpreted ([`Firewall::filter_runs`]
    /// says why).
    pub fn load(settings: &Settings) -> Result<Firewall, LoaderError> {
        match Self::load_with(settings, settings.rule_engine) {
            Err(LoaderError::CompiledRules(refusal)) => {
                let mut firewall = Self::load_with(settings, RuleEngine::Bitmaps)?;
                firewall.matching = Matching::Bitmaps(NotCompiled::Refused(refusal));
                Ok(firewall)
            }
            loaded => loaded,
        }
    }

    /// [`Firewall::load`] with the rules matched by `rules`.
    fn load_with(settings: &Settings, rules: RuleEngine) -> Result<Firewall, LoaderError> {
        match Self::load_as(settings, rules, settings.filter_engine) {
            Err(LoaderError::TranslatedFilter(refusal))
                if settings.filter_engine == FilterEngine::Auto =>
            {
                let mut firewall = Self::load_as(settings, rules, FilterEngine::Interpreter)?;
                let why = format!("the kernel refused its translation: {refusal}");
                for run in &mut firewall.filter_runs {
                    run.how = FilterHow::Interpreted(why.clone());
                }
                Ok(firewall)
            }
            Err(LoaderError::TranslatedFilter(refusal)) => Err(LoaderError::Load(format!(
                "the kernel refused the translated capture filter ({refusal}); \
                 use --filter-engine auto or interpreter"
            ))),
            loaded => loaded,
        }
    }

    /// One load with the rules matched by `rule_engine` and the filters run by `engine`:
    /// the settings checked against what the program can hold, its tables built, the
    /// object loaded with its configuration, generated code and map sizes, the rules,
    /// tables and sets written into its maps, then the program through the verifier.
    fn load_as(
        settings: &Settings,
        rule_engine: RuleEngine,
        engine: FilterEngine,
    ) -> Result<Firewall, LoaderError> {
        let rules = settings.kernel_rules()?;
        raise_memlock_limit();
        let tables = classify::build(&settings.rules.rules, &settings.rules.sets);
        let set_tables = set_tables(settings, &tables)?;
        let mut filters = filters::plan(
            settings.config(rules.len(), &tables),
            settings.capture_filter.as_ref(),
            settings.log_filter.as_ref(),
            engine,
        )
        .map_err(LoaderError::Load)?;
        let (matching, compiled) = matcher::plan(&settings.rules.rules, rule_engine);
        let mut functions = std::mem::take(&mut filters.functions);
        if let Some(code) = compiled {
            filters.config.rules_compiled = 1;
            functions.push((xdpsieve_common::matcher::FUNCTION, code));
        }
        let object = match functions.is_empty() {
            true => None,
            false => Some(
                ebpf_code::object::place(EBPF_OBJECT, &functions)
                    .map_err(|e| LoaderError::Load(format!("writing generated code: {e}")))?,
            ),
        };
        let object_bytes = object.as_ref().map_or(EBPF_OBJECT, |o| o.bytes());
        let (limits, tracked) = settings.limits();
        let (mut ebpf, capture_rings) = load_object(
            settings,
            &filters,
            object_bytes,
            set_tables.as_ref(),
            tracked,
        )?;
        let mut shared = shared::handles(&ebpf)?;
        shared.extend(capture_rings::handles(&capture_rings)?);
        fill_maps(&mut ebpf, &rules, &limits, &tables, set_tables.as_ref())?;
        verify(
            &mut ebpf,
            filters.config.rules_compiled != 0,
            filters.config.filter_translated != 0,
        )?;
        Ok(Firewall {
            ebpf,
            attachments: Vec::new(),
            transport: settings.transport,
            ring_bytes: settings.ring_bytes,
            ifindexes: settings.ifindexes.clone(),
            interface_names: Vec::new(),
            shared,
            filter_runs: filters.runs,
            matching,
            capture_rings,
        })
    }
}

/// The set maps of the load: the rule file's sets with the runtime entries carried over
/// (`None` without sets). An entry whose set the rule file no longer declares is refused:
/// it would be dropped without a word.
fn set_tables(
    settings: &Settings,
    tables: &classify::Tables,
) -> Result<Option<Built>, LoaderError> {
    let (set_tables, orphans) = Built::for_sets(
        &settings.rules.sets,
        tables.set_rules(),
        &settings.set_runtime,
    )
    .map_err(|e| LoaderError::Sets(e.to_string()))?;
    if !orphans.is_empty() {
        return Err(LoaderError::Sets(format!(
            "{} runtime entries belong to sets the rule file no longer declares ({}); \
             declare them again or remove the entries with `xdpsieve set del`",
            orphans.len(),
            orphans
                .iter()
                .map(|o| format!("@{} {}", o.set, o.prefix.addr()))
                .take(5)
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(set_tables)
}

/// Loads the object (`object_bytes`: with the generated code written in, if any) with its
/// configuration, the filter interpreter's table and the sizes of its rings and set maps;
/// a reload's program gets the maps it shares with the running one. Nothing is verified
/// yet: the program itself is loaded by [`verify`].
fn load_object(
    settings: &Settings,
    filters: &FilterLoad,
    object_bytes: &[u8],
    set_tables: Option<&Built>,
    tracked_keys: u32,
) -> Result<(Ebpf, Vec<aya::maps::MapData>), LoaderError> {
    let (capture_ring, event_ring) = settings.ring_sizes(page_size());
    let mut loader = EbpfLoader::new();
    loader
        .override_global("CONFIG", &filters.config, true)
        .map_max_entries("CAPTURE_RINGS", capture_rings::cpus()?)
        .map_max_entries("EVENT_RING", event_ring)
        .map_max_entries("LIMIT_STATE", tracked_keys);
    if let Some(table) = &filters.table {
        loader.override_global("FILTER_PROGRAMS", &**table, true);
    }
    if let Some(sets) = set_tables {
        loader
            .map_max_entries("SET_NODES", sets.node_capacity())
            .map_max_entries("SET_ENTRIES", sets.entry_capacity())
            .map_max_entries("SET_CLASSES", xdpsieve_common::sets::MAX_CLASSES);
    }
    if let Some(dir) = &settings.share_maps_from {
        shared::share_from(&mut loader, dir)?;
    }
    let mut ebpf = loader
        .load(object_bytes)
        .map_err(|e| load_error(&e, &log_tail(&e.to_string(), 30)))?;
    let rings = match &settings.share_maps_from {
        // A reload: the running program's rings, through the array pinned with it.
        Some(dir) => capture_rings::pinned(dir)?,
        None => capture_rings::fill(&mut ebpf, capture_ring, page_size())?,
    };
    Ok((ebpf, rings))
}

/// Writes the rules, the matching tables and the sets into the loaded object's maps,
/// before the program can run: nothing is attached with a half-filled rule table.
fn fill_maps(
    ebpf: &mut Ebpf,
    rules: &[Rule],
    limits: &[(u32, LimitParams)],
    tables: &classify::Tables,
    set_tables: Option<&Built>,
) -> Result<(), LoaderError> {
    let map = ebpf
        .map_mut("RULES")
        .ok_or_else(|| LoaderError::Load("the object has no RULES map".into()))?;
    let mut table: Array<_, Rule> =
        Array::try_from(map).map_err(|e| LoaderError::Load(e.to_string()))?;
    for (index, rule) in rules.iter().enumerate() {
        table
            .set(index as u32, rule, 0)
            .map_err(|e| LoaderError::Load(format!("writing rule {index}: {e}")))?;
    }
    if !limits.is_empty() {
        let map = ebpf
            .map_mut("LIMITS")
            .ok_or_else(|| LoaderError::Load("the object has no LIMITS map".into()))?;
        let mut table: Array<_, LimitParams> =
            Array::try_from(map).map_err(|e| LoaderError::Load(e.to_string()))?;
        for (index, params) in limits {
            table.set(*index, params, 0).map_err(|e| {
                LoaderError::Load(format!("writing the limit of rule {index}: {e}"))
            })?;
        }
    }
    tables::write(ebpf, tables)?;
    if let Some(sets) = set_tables {
        sets.write(ebpf)
            .map_err(|e| LoaderError::Sets(format!("{e:#}")))?;
    }
    Ok(())
}

/// Loads the program into the kernel, through the verifier. A refusal of a program with
/// `compiled` rules or `translated` filters is told apart, so that the caller may load
/// again with the bitmaps or the filters interpreted (the rules first).
fn verify(ebpf: &mut Ebpf, compiled: bool, translated: bool) -> Result<(), LoaderError> {
    program_of(ebpf)?.load().map_err(|e| {
        if errno_in(&e) == Some(libc::EPERM) {
            return LoaderError::PermissionDenied;
        }
        if compiled {
            LoaderError::CompiledRules(filters::refusal(&e.to_string(), errno_in(&e)))
        } else if translated {
            // Most likely the verifier on the translation (its complexity limit).
            LoaderError::TranslatedFilter(filters::refusal(&e.to_string(), errno_in(&e)))
        } else {
            load_error(&e, &log_tail(&e.to_string(), 40))
        }
    })
}

/// The system's page size: the smallest ring buffer the kernel makes.
fn page_size() -> u32 {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u32::try_from(page).unwrap_or(4096)
}

/// CLOCK_MONOTONIC in ns, the clock of `bpf_ktime_get_ns`.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we pass; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

fn program_of(ebpf: &mut Ebpf) -> Result<&mut Xdp, LoaderError> {
    program_of_name(ebpf, PROGRAM)
}

fn program_of_name<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut Xdp, LoaderError> {
    ebpf.program_mut(name)
        .ok_or_else(|| LoaderError::Load(format!("the object has no program `{name}`")))?
        .try_into()
        .map_err(|e: ProgramError| LoaderError::Load(e.to_string()))
}

/// Resolves an interface name without panicking on odd input (aya's attach unwraps).
pub fn ifindex_of(interface: &str) -> Result<u32, LoaderError> {
    let name =
        CString::new(interface).map_err(|_| LoaderError::UnknownInterface(interface.into()))?;
    // SAFETY: name is a valid NUL-terminated string.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if ifindex == 0 {
        return Err(LoaderError::UnknownInterface(interface.into()));
    }
    Ok(ifindex)
}

fn errno_in(error: &(dyn std::error::Error + 'static)) -> Option<i32> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            return io.raw_os_error();
        }
        current = e.source();
    }
    None
}

fn load_error(error: &(dyn std::error::Error + 'static), detail: &str) -> LoaderError {
    // EACCES from BPF_PROG_LOAD is the verifier's rejection, not a missing privilege.
    match errno_in(error) {
        Some(libc::EPERM) => LoaderError::PermissionDenied,
        _ => LoaderError::Load(detail.to_string()),
    }
}

/// The last `lines` lines of a (possibly megabytes long) verifier log.
fn log_tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    let mut tail = all[start..].join("\n");
    if start > 0 {
        tail = format!("[{start} earlier lines omitted]\n{tail}");
    }
    tail
}

/// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK; later ones ignore it.
fn raise_memlock_limit() {
    let limit = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: plain setrlimit call with a valid struct; failure only matters on old kernels,
    // where the load error that follows explains itself.
    unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &limit) };
}
