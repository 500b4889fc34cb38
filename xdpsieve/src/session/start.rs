//! The start of a run: claim the interfaces' pin directories, open the outputs, load the
//! program, open its record sources, attach (or take over a firewall left behind), publish
//! the pins and the description for `status`, print the start-up line, start watching the
//! interfaces. A start that fails once the firewall is attached either removes it again
//! (nothing was in force before) or leaves the one taken over in force ([`abandon_start`]).

use std::{
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};

use crate::{
    base::text::{escape, escape_path},
    configure::capture_filter::CompiledFilter,
    configure::flags,
    configure::loader::{FilterHow, Firewall, Settings},
    configure::matcher::{Matching, NotCompiled},
    configure::rules::RuleSet,
    instance::description::{self, Meta, MetaInterface, MetaRule},
    instance::pins::{self, Claim, Found},
    instance::recipe::{Recipe, ReloadState},
    instance::reload,
    observe::metrics::MetricsServer,
    observe::watch::Watcher,
    observe::writer_state::WriterState,
    session::capture_session::{CaptureOutputs, CaptureSession, Stream},
    session::plan::RunPlan,
    write::capture::Interface,
};

/// The flags the signal handlers set; the run loop reads (and clears) them.
pub(super) struct Signals {
    /// SIGINT, SIGTERM: the explicit stop.
    pub stop: Arc<AtomicBool>,
    /// SIGQUIT: the handover, an explicit stop that leaves the firewall in force for the
    /// next run to take over (as `keep_on_stop` does), whatever `keep_on_stop` says. The
    /// unit sends it on `systemctl restart` (`RestartKillSignal=`).
    pub handover: Arc<AtomicBool>,
    /// SIGUSR1, SIGUSR2: a status line.
    pub status_asked: Arc<AtomicBool>,
    /// SIGHUP: a reload.
    pub reload_asked: Arc<AtomicBool>,
}

/// A firewall in force with its recorders, as the start leaves it for the run loop and
/// the finish. The fields drop in the order of declaration, which is the order the one
/// function that ran all of it dropped them in: the interface watcher's and the writers'
/// state files and the metrics server first, the firewall (fail-static: it leaves what is
/// attached in force) last.
pub(super) struct Running {
    pub watcher: Watcher,
    /// The writers' counts for `status` and the metrics; removed on drop.
    pub writer_state: WriterState,
    /// Serves until dropped, at the end of the run.
    pub _metrics: Option<MetricsServer>,
    /// The published description; a reload replaces it.
    pub meta: Meta,
    /// The recording side: sources, capture files, event log.
    pub capture: CaptureSession,
    pub firewall: Firewall,
    pub signals: Signals,
    pub interfaces: Vec<Interface>,
    /// The rules in force; a reload replaces them.
    pub rules: RuleSet,
    pub quiet: bool,
    pub stats_interval: Option<Duration>,
    /// Whether the explicit stop leaves the firewall in force (`--keep-on-stop`).
    pub keep_on_stop: bool,
    /// The interfaces' locks (see [`pins::owner`]): held to the end of the process, after
    /// the firewall is removed or left in force.
    pub owners: Vec<pins::owner::Owner>,
    /// What systemd is told (`NOTIFY_SOCKET`), and its watchdog.
    pub service: super::service::Service,
}

/// `, rotating: -C 1 MB, -W 3 files, -z gzip` for the start-up line.
fn rotation_text(plan: &crate::write::rotation::RotationPlan) -> String {
    let mut parts = Vec::new();
    if let Some(size) = plan.size {
        parts.push(format!("-C {} MB", size / crate::write::rotation::MEGABYTE));
    }
    if let Some(period) = plan.period {
        parts.push(format!("-G {} s", period.as_secs()));
    }
    if let Some(files) = plan.files {
        parts.push(format!("-W {files} files"));
    }
    if let Some(command) = &plan.command {
        parts.push(format!("-z {}", escape(command)));
    }
    format!(", rotating: {}", parts.join(", "))
}

/// A start that failed once the interfaces were claimed: a fresh firewall is removed again
/// (nothing was in force before), with the pins and descriptions this run made (the run
/// owns the interfaces: nothing of anyone else's is there); one taken over stays in
/// force, as it was before.
fn abandon_start(firewall: &mut Firewall, claims: &[Claim], error: anyhow::Error) -> anyhow::Error {
    if claims.iter().all(|c| matches!(c.found, Found::Nothing)) {
        if firewall.attachments().is_empty() {
            for claim in claims {
                pins::remove(&claim.owner);
            }
            return error;
        }
        firewall.detach_all();
        for claim in claims {
            pins::remove(&claim.owner);
        }
        return error.context("starting failed; the firewall was removed again");
    }
    let names: Vec<&str> = claims.iter().map(|c| c.interface.as_str()).collect();
    error.context(format!(
        "starting failed after taking over the firewall on {0}; it stays in force without a \
         recorder: run again, or remove it with `xdpsieve stop -i IFACE`",
        names.join(", ")
    ))
}

/// Starts the firewall as `plan` says and leaves it in force, recording, watched and
/// published.
pub(super) fn start(plan: RunPlan) -> Result<Running> {
    // Early, and in the run's own terms, when the process cannot load BPF programs.
    crate::configure::privileges::check(crate::configure::privileges::Verb::Run)?;
    // Then what the kernel has, before anything is claimed, loaded or attached: a kernel
    // without a feature the program uses is named as such, not as a verifier log.
    crate::configure::kernel_features::check()?;
    let interfaces = interfaces(&plan.interfaces)?;
    // Claim the interfaces first: one that another process holds (a run, live or starting),
    // or a directory someone else could have filled, is refused before anything is loaded
    // or changed. From here to its end, this run is their owner.
    let claims: Vec<Claim> = interfaces
        .iter()
        .map(|i| pins::claim(&i.name, std::process::id()))
        .collect::<Result<_>>()?;
    // Open the outputs before touching the kernel, so a bad path costs nothing.
    let capture_plan = plan.capture_plan();
    let logging = capture_plan.logging;
    let outputs = CaptureOutputs::open(capture_plan, &interfaces)?;
    let recipe = plan.recipe();
    let generation = reload::first_generation(&claims);
    // The runtime set entries (`xdpsieve set add`) of a firewall taken over carry into the
    // new generation; its set lock is held until the swap (see `instance::sets::carry`).
    let (set_locks, set_runtime) = crate::instance::sets::carry::for_takeover(&claims);
    let mut settings = recipe.settings_with_filters(
        plan.rules.clone(),
        interfaces.iter().map(|i| i.ifindex).collect(),
        generation,
        (plan.capture_filter.clone(), plan.log_filter.clone()),
    );
    settings.set_runtime = set_runtime;
    let signals = Signals::install()?;
    let (mut firewall, capture) = load(&settings, outputs, &interfaces)?;
    let meta_rules = description::rules_of(&plan.rules, plan.log_rate);
    if let Err(e) = crate::instance::takeover::attach_or_take_over(
        &mut firewall,
        &claims,
        &meta_rules,
        plan.mode,
    ) {
        return Err(abandon_start(&mut firewall, &claims, e));
    }
    let meta = describe(&firewall, &plan, meta_rules, generation, recipe);
    let metrics = match publish(&mut firewall, &claims, &meta, &plan) {
        Ok(metrics) => metrics,
        Err(e) => return Err(abandon_start(&mut firewall, &claims, e)),
    };
    // The new set maps are pinned: set changes wait no more and find the new generation.
    set_locks
        .into_iter()
        .for_each(crate::instance::sets::SetLock::retire);
    // The writers' counts for `status` and the metrics; removed with it at the end of run.
    let writer_state = WriterState::new(&meta);
    if !plan.quiet {
        announce(&plan, &firewall, logging);
    }
    // From here on an interface that stops running the program (deleted, detached from
    // outside, queues added) is noticed and reported, and re-attached where possible.
    let watcher = Watcher::new(&firewall, &settings.ifindexes, |name| {
        Some(pins::health_path(name))
    })
    .context("opening a netlink socket to watch the interfaces")?;
    Ok(Running {
        watcher,
        writer_state,
        _metrics: metrics,
        meta,
        capture,
        firewall,
        signals,
        interfaces,
        rules: plan.rules,
        quiet: plan.quiet,
        stats_interval: plan.stats_interval,
        keep_on_stop: plan.keep_on_stop,
        owners: claims.into_iter().map(|c| c.owner).collect(),
        service: super::service::Service::from_env(),
    })
}

/// The interfaces named (by their index now), each once.
fn interfaces(names: &[String]) -> Result<Vec<Interface>> {
    let mut interfaces = Vec::new();
    for name in names {
        let ifindex = crate::configure::loader::ifindex_of(name)?;
        if interfaces.iter().any(|i: &Interface| i.ifindex == ifindex) {
            bail!("interface {name} given twice");
        }
        interfaces.push(Interface {
            ifindex,
            name: name.clone(),
        });
    }
    Ok(interfaces)
}

impl Signals {
    /// Installs the handlers that set the flags. Before attaching: a signal that arrives
    /// once the program is live must end in the explicit stop (detach, summary, pins
    /// removed), not in the default action, which would leave the firewall in force without
    /// a recorder. SIGQUIT's default action (a core dump) would leave it in force too, but
    /// without the final drain and the summary: the handover does both. SIGUSR1/2 ask for a status line and SIGHUP for a reload: none of them
    /// may kill the process without its summary. SIGPIPE needs nothing: the Rust runtime
    /// ignores it, so a reader of `-w -` going away is an EPIPE write error.
    fn install() -> Result<Signals> {
        let stop = Arc::new(AtomicBool::new(false));
        let handover = Arc::new(AtomicBool::new(false));
        let status_asked = Arc::new(AtomicBool::new(false));
        let reload_asked = Arc::new(AtomicBool::new(false));
        for (signal, flag) in [
            (signal_hook::consts::SIGINT, &stop),
            (signal_hook::consts::SIGTERM, &stop),
            (signal_hook::consts::SIGQUIT, &handover),
            (signal_hook::consts::SIGUSR1, &status_asked),
            (signal_hook::consts::SIGUSR2, &status_asked),
            (signal_hook::consts::SIGHUP, &reload_asked),
        ] {
            signal_hook::flag::register(signal, Arc::clone(flag))
                .context("installing signal handler")?;
        }
        Ok(Signals {
            stop,
            handover,
            status_asked,
            reload_asked,
        })
    }
}

/// Loads the program with `settings` and opens its record sources into the recording side
/// (`outputs`), then tells the program who reads which stream and beats the heartbeat:
/// everything that must be in place before it is attached.
fn load(
    settings: &Settings,
    outputs: CaptureOutputs,
    interfaces: &[Interface],
) -> Result<(Firewall, CaptureSession)> {
    let mut firewall = Firewall::load(settings)?;
    let probe = firewall.interface_probe()?;
    // Open the record sources before attaching: a perf slot without a reader makes the
    // program's output fail, which would count packets as lost that no buffer refused.
    let mut capture = outputs.into_session(
        |stream| match stream {
            Stream::Capture => Ok(firewall.take_capture_source()?),
            Stream::Events => Ok(firewall.take_event_source()?),
        },
        &settings.rules,
        interfaces,
        settings.generation,
        Some(Box::new(move || probe.read())),
    )?;
    // Ban notices are read whatever the rules: a reload may bring a rule that bans.
    capture.read_notices(
        firewall.take_notice_source()?,
        crate::instance::bans::Banner::new(&settings.rules, settings.generation),
    );
    // Records count as lost for want of a reader once the heartbeat stops (this process
    // died), and those of a stream this run does not write are counted, not sent (a reload
    // may give a rule `log = true`); both are told before the program is live.
    let (writes_capture, writes_events) = capture.streams();
    firewall.publish_writers(writes_capture, writes_events)?;
    firewall.heartbeat()?;
    Ok((firewall, capture))
}

/// What this run says about itself, once `firewall` is in force: its process, where it
/// is attached and how, its rules (`meta_rules`) and sets, and the recipe a reload
/// rebuilds them from.
fn describe(
    firewall: &Firewall,
    plan: &RunPlan,
    meta_rules: Vec<MetaRule>,
    generation: u32,
    recipe: Recipe,
) -> Meta {
    Meta {
        pid: std::process::id(),
        pid_start: description::process_start(std::process::id()).unwrap_or(0),
        started_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs(),
        version: env!("CARGO_PKG_VERSION").into(),
        interfaces: firewall
            .attachments()
            .iter()
            .map(|a| MetaInterface {
                name: a.interface.clone(),
                ifindex: a.ifindex,
                mode: a.mode,
            })
            .collect(),
        transport: plan.transport,
        default_action: plan.rules.default_action,
        rules: meta_rules,
        sets: description::sets_of(&plan.rules.sets),
        reload: ReloadState::at_start(generation, recipe, firewall.matching().to_string()),
    }
}

/// Pins the maps and the program and writes the description, for `status`, `set`, a
/// reload and a takeover, and starts the metrics server (`--metrics`). Removed (pins and
/// description) on the explicit stop only, at the end of the run.
fn publish(
    firewall: &mut Firewall,
    claims: &[Claim],
    meta: &Meta,
    plan: &RunPlan,
) -> Result<Option<MetricsServer>> {
    for claim in claims {
        pins::publish(&claim.dir, &claim.meta_file, &firewall.pinned_maps(), meta)?;
        firewall.pin_program(&claim.dir.join(pins::PROG_PIN))?;
    }
    let Some(addr) = plan.metrics else {
        return Ok(None);
    };
    let server = crate::observe::metrics::serve(addr, meta.clone())?;
    if !plan.quiet {
        crate::base::log::info(format_args!(
            "xdpsieve: metrics at http://{}/metrics",
            server.addr
        ));
    }
    Ok(Some(server))
}

/// The start-up line: where the firewall filters, with how many rules, what it captures
/// and logs, and through which transport; then each filter left to the interpreter.
fn announce(plan: &RunPlan, firewall: &Firewall, logging: bool) {
    let rules = &plan.rules;
    let attached: Vec<String> = firewall
        .attachments()
        .iter()
        .map(|a| format!("{} ({})", escape(&a.interface), a.mode))
        .collect();
    // The capture filter in force, as the operator wrote it.
    let matching = |filter: &Option<CompiledFilter>| {
        filter
            .as_ref()
            .map(|f| format!(" matching `{}`", escape(&f.expression)))
            .unwrap_or_default()
    };
    let target = match &plan.write {
        Some(path) if plan.capture.mask() != 0 => {
            format!(
                "capturing {} packets{} to {} ({}, snaplen {})",
                flags::value_name(plan.capture),
                matching(&plan.capture_filter),
                if path == "-" {
                    "standard output".into()
                } else {
                    escape(path)
                },
                plan.format,
                plan.snaplen
            ) + &if plan.sample > 1 {
                format!(", 1 in {} sampled", plan.sample)
            } else {
                String::new()
            } + &plan
                .rotation
                .as_ref()
                .map(rotation_text)
                .unwrap_or_default()
        }
        _ => "not capturing".into(),
    };
    let log = if logging {
        format!(
            "; logging {} events{}{}",
            flags::value_name(plan.log),
            matching(&plan.log_filter),
            plan.log_file
                .as_ref()
                .map(|p| format!(" to {}", escape_path(p)))
                .unwrap_or_default()
        )
    } else {
        String::new()
    };
    crate::base::log::info(format_args!(
        "xdpsieve: filtering on {}: {} rules, default {}; {target}{log} (transport {})",
        attached.join(", "),
        rules.written().len(),
        rules.default_action,
        flags::value_name(plan.transport)
    ));
    // A filter left to the interpreter costs several times the translated one: say so.
    for run in firewall.filter_runs() {
        if matches!(run.how, FilterHow::Interpreted(_)) {
            crate::base::log::info(format_args!("xdpsieve: {run}"));
        }
    }
    // Compiled rules the kernel refused are a bug of ours (the bitmaps judge the same):
    // said, so that it is reported.
    if let Matching::Bitmaps(why @ NotCompiled::Refused(_)) = firewall.matching() {
        crate::base::log::info(format_args!("xdpsieve: rules matched by bitmaps: {why}"));
    }
}
