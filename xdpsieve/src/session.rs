//! One run of the firewall, from a validated [`RunPlan`] to the summary: claim the
//! interfaces' pin directories, open the outputs, load the program, open its record
//! sources, attach (or take over a firewall left behind), publish for `status`, then the
//! loop (drain the records, watch the interfaces, beat the heartbeat, answer signals) until
//! an explicit stop; then detach, the final drain, the closing blocks and the summary.
//!
//! The binary (`src/bin/xdpsieve/run.rs`) turns the command line into the plan; everything
//! that touches the kernel, the files or the terminal after that happens here.

use std::{
    io::{self, IsTerminal as _},
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use xdpsieve_common::capture;

use crate::{
    capture::{CaptureWriter, Format, Interface},
    event::{EventFormatter, LogFormat},
    flags,
    loader::{AttachMode, Firewall, LoaderError, Settings},
    output::{RecordWriter, Sink, WRITE_BUFFER},
    pins::{self, Claim, Found},
    recorder::{EventLog, Recorder},
    reload::{self, RuleSources},
    rules::{Action, Rate, RuleSet},
    source::{Transport, wait_readable},
    stats::{self, Snapshot},
    status::{Meta, MetaInterface},
    text::{escape, escape_path},
};

/// What to run, validated: the command line's meaning, with its consistency checked.
#[derive(Debug)]
pub struct RunPlan {
    pub rules: RuleSet,
    /// Where `rules` came from: a reload reads them again from there.
    pub sources: RuleSources,
    pub interfaces: Vec<String>,
    /// Which packets to capture; not `None` only with `write`.
    pub capture: Which,
    /// The capture file; `-` is standard output.
    pub write: Option<String>,
    pub format: Format,
    pub snaplen: u32,
    /// Stop after this many captured packets.
    pub count: Option<u64>,
    /// Which packets to log (rules with `log = true` are logged whatever this says).
    pub log: Which,
    pub log_format: LogFormat,
    /// The event log's file; standard output when absent.
    pub log_file: Option<PathBuf>,
    pub log_rate: Rate,
    pub transport: Transport,
    pub mode: AttachMode,
    pub ring_size: u32,
    pub metrics: Option<SocketAddr>,
    pub stats_interval: Option<Duration>,
    pub quiet: bool,
    /// The verdict for unclassifiable packets; `None` for the default (see
    /// `Settings::unclassifiable_action`).
    pub unclassifiable: Option<Action>,
}

/// Which packets to capture or log, by verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Which {
    /// Packets the firewall drops.
    Dropped,
    /// Packets the firewall passes.
    Passed,
    /// Every packet.
    All,
    /// Nothing (filter and count only).
    None,
}

impl Which {
    /// Bits of `xdpsieve_common::capture`.
    pub fn mask(self) -> u32 {
        match self {
            Which::Dropped => capture::DROPPED,
            Which::Passed => capture::PASSED,
            Which::All => capture::DROPPED | capture::PASSED,
            Which::None => 0,
        }
    }
}

mod hup;

/// Names the rules of `generation` in the capture's comments and the event log.
fn name_generation(
    recorder: &mut Option<Recorder<Sink>>,
    event_log: &mut Option<EventLog<Sink>>,
    generation: u32,
    rules: &RuleSet,
) {
    if let Some(r) = recorder {
        r.add_generation(generation, rules);
    }
    if let Some(l) = event_log {
        l.add_generation(generation, rules);
    }
}

/// Records in one drain above which the reader does not pause before the next: it is
/// behind, and a millisecond's pause lets the ring fill further.
const BUSY_DRAIN: u64 = 4096;

/// How often the run loop tells the program a recorder is reading (see
/// `Firewall::heartbeat`); well under `READER_TIMEOUT_NS`.
const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(100);

/// Fails early, and clearly, when the process cannot load BPF programs.
pub fn check_privileges() -> Result<()> {
    const CAP_NET_ADMIN: u32 = 12;
    const CAP_SYS_ADMIN: u32 = 21;
    const CAP_BPF: u32 = 39;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let Some(cap_eff) = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
    else {
        return Ok(()); // cannot tell; the kernel will say
    };
    let has = |cap: u32| cap_eff & (1 << cap) != 0;
    if !has(CAP_NET_ADMIN) || !(has(CAP_BPF) || has(CAP_SYS_ADMIN)) {
        bail!(LoaderError::PermissionDenied);
    }
    Ok(())
}

fn open_output(path: &str) -> Result<Sink> {
    if path == "-" {
        if io::stdout().is_terminal() {
            bail!(
                "refusing to write a binary capture to a terminal; redirect `-w -` to a file or a pipe"
            );
        }
        return Sink::stdout().context("opening standard output");
    }
    Sink::create(path.as_ref()).with_context(|| format!("cannot open output file {path}"))
}

/// A start that failed once the firewall was attached: a fresh firewall is removed again
/// (nothing was in force before); one taken over stays in force, as it was before.
fn abandon_start(firewall: &mut Firewall, claims: &[Claim], error: anyhow::Error) -> anyhow::Error {
    if claims.iter().all(|c| matches!(c.found, Found::Nothing)) {
        if firewall.attachments().is_empty() {
            for claim in claims {
                pins::remove(&claim.interface);
            }
            return error;
        }
        firewall.detach_all();
        for claim in claims {
            pins::remove(&claim.interface);
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

/// Removes the set entries whose timeout passed (through the first interface whose
/// firewall can be read); warns once if that fails.
fn expire_sets(
    expirer: &mut crate::configure::sets::live::command::Expirer,
    interfaces: &[Interface],
    quiet: bool,
    warned: &mut bool,
) {
    let mut error = None;
    for interface in interfaces {
        match expirer.tick(&interface.name) {
            Ok(0) => return,
            Ok(n) => {
                if !quiet {
                    eprintln!("xdpsieve: {n} set entries expired");
                }
                return;
            }
            Err(e) => error = Some(e),
        }
    }
    if let Some(e) = error
        && !std::mem::replace(warned, true)
    {
        eprintln!("xdpsieve: warning: cannot expire timed set entries: {e:#}");
    }
}

/// Runs the firewall as `plan` says, until an explicit stop (or a failure of the loop
/// itself, which leaves the firewall in force).
pub fn run(plan: RunPlan) -> Result<()> {
    let capture_which = plan.capture;
    let capture_mask = capture_which.mask();
    let log_mask = plan.log.mask();
    let mut rules = plan.rules;
    let logging = log_mask != 0 || rules.rules.iter().any(|r| r.log);
    check_privileges()?;
    let mut interfaces = Vec::new();
    for name in &plan.interfaces {
        let ifindex = crate::loader::ifindex_of(name)?;
        if interfaces.iter().any(|i: &Interface| i.ifindex == ifindex) {
            bail!("interface {name} given twice");
        }
        interfaces.push(Interface {
            ifindex,
            name: name.clone(),
        });
    }
    // Claim the pin directories first: a live recorder on an interface, or a directory
    // someone else could have filled, is refused before anything is loaded.
    let mut claims: Vec<Claim> = interfaces
        .iter()
        .map(|i| pins::claim(&i.name, std::process::id()))
        .collect::<Result<_>>()?;
    // Open the outputs before touching the kernel, so a bad path costs nothing.
    let capture_out = match &plan.write {
        Some(path) if capture_mask != 0 => Some(open_output(path)?),
        _ => None,
    };
    let log_out: Option<(Sink, String)> = match (&plan.log_file, logging) {
        (_, false) => None,
        (Some(path), true) => Some((
            Sink::create(path)
                .with_context(|| format!("cannot open log file {}", path.display()))?,
            path.display().to_string(),
        )),
        (None, true) => Some((
            Sink::stdout().context("opening standard output")?,
            "standard output".into(),
        )),
    };

    // A `reload` of a firewall left behind must not run while this run takes it over; its
    // description is read again under the lock (a reload may just have changed it).
    let takeover_locks = reload::lock_for_takeover(&mut claims)?;
    // The runtime set entries (`xdpsieve set add`) of a firewall taken over carry into the
    // new generation; its set lock is held until the swap (see `sets::live::carry`).
    let (set_locks, set_runtime) = crate::configure::sets::live::carry::for_takeover(&claims);
    let generation = reload::first_generation(&claims);
    let settings = Settings {
        rules: rules.clone(),
        capture: capture_mask,
        log: log_mask,
        snaplen: plan.snaplen,
        ring_bytes: plan.ring_size,
        transport: plan.transport,
        default_rate: plan.log_rate,
        ifindexes: interfaces.iter().map(|i| i.ifindex).collect(),
        unclassifiable: plan.unclassifiable,
        set_runtime,
        generation,
        share_maps_from: None,
    };
    // Before attaching: a signal that arrives once the program is live must end in the
    // explicit stop (detach, summary, pins removed), not in the default action, which
    // would leave the firewall in force without a recorder.
    // SIGUSR1/2 ask for a status line and SIGHUP for a reload: none of them may kill the
    // process without its summary. SIGPIPE needs nothing: the Rust
    // runtime ignores it, so a reader of `-w -` going away is an EPIPE write error.
    let stop = Arc::new(AtomicBool::new(false));
    let status_asked = Arc::new(AtomicBool::new(false));
    let reload_asked = Arc::new(AtomicBool::new(false));
    for (signal, flag) in [
        (signal_hook::consts::SIGINT, &stop),
        (signal_hook::consts::SIGTERM, &stop),
        (signal_hook::consts::SIGUSR1, &status_asked),
        (signal_hook::consts::SIGUSR2, &status_asked),
        (signal_hook::consts::SIGHUP, &reload_asked),
    ] {
        signal_hook::flag::register(signal, Arc::clone(flag))
            .context("installing signal handler")?;
    }
    let mut firewall = Firewall::load(&settings)?;
    // Open the record sources before attaching: a perf slot without a reader makes the
    // program's output fail, which would count packets as lost that no buffer refused.
    let mut recorder = match capture_out {
        Some(output) => {
            let writer = CaptureWriter::new(plan.format, output, plan.snaplen, &interfaces);
            let target = match plan.write.as_deref() {
                Some("-") | None => "standard output",
                Some(path) => path,
            };
            Some(Recorder::new(
                firewall.take_capture_source()?,
                writer,
                target,
                &rules,
                plan.count,
            ))
        }
        None => None,
    };
    let mut event_log = match log_out {
        Some((out, target)) => {
            let names: Vec<(u32, String)> = interfaces
                .iter()
                .map(|i| (i.ifindex, i.name.clone()))
                .collect();
            let formatter = EventFormatter::new(plan.log_format, &rules, &names);
            let out = RecordWriter::new(out, WRITE_BUFFER);
            Some(EventLog::new(
                firewall.take_event_source()?,
                formatter,
                out,
                &target,
            ))
        }
        None => None,
    };
    if generation != 1 {
        name_generation(&mut recorder, &mut event_log, generation, &rules);
    }
    // Records count as lost for want of a reader once the heartbeat stops (this process
    // died); it starts before the program is live.
    firewall.heartbeat()?;
    let rule_names: Vec<(u32, String)> =
        rules.rules.iter().map(|r| (r.id, r.name.clone())).collect();
    if let Err(e) =
        crate::takeover::attach_or_take_over(&mut firewall, &claims, &rule_names, plan.mode)
    {
        return Err(abandon_start(&mut firewall, &claims, e));
    }

    let mut meta = Meta {
        pid: std::process::id(),
        pid_start: crate::status::process_start(std::process::id()).unwrap_or(0),
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
                mode: a.mode.to_string(),
            })
            .collect(),
        transport: flags::value_name(plan.transport),
        default_action: rules.default_action.to_string(),
        rules: reload::meta_rules(&rules, plan.log_rate),
        sets: crate::configure::sets::live::meta_sets(&rules.sets),
        reload: reload::ReloadState::at_start(generation, plan.sources.clone(), &settings),
    };
    // Removed (pins and description) on the explicit stop only, at the end of run.
    let started = (|| -> Result<_> {
        for claim in &claims {
            pins::publish(claim, &firewall.pinned_maps(), &meta)?;
            firewall.pin_program(&claim.dir.join(pins::PROG_PIN))?;
        }
        match plan.metrics {
            Some(addr) => {
                let server = crate::metrics::serve(addr, meta.clone())?;
                if !plan.quiet {
                    eprintln!("xdpsieve: metrics at http://{}/metrics", server.addr);
                }
                Ok(Some(server))
            }
            None => Ok(None),
        }
    })();
    let _metrics = match started {
        Ok(metrics) => metrics,
        Err(e) => return Err(abandon_start(&mut firewall, &claims, e)),
    };
    // Published: a reload from now on asks this process (which takes the lock itself).
    drop(takeover_locks);
    set_locks
        .into_iter()
        .for_each(crate::configure::sets::live::SetLock::retire);
    // The writers' counts for `status` and the metrics; removed with it at the end of run.
    let mut writer_state = crate::writer_state::WriterState::new(&meta);
    let mut last_state = (
        std::time::Instant::now()
            .checked_sub(Duration::from_secs(1))
            .unwrap_or_else(std::time::Instant::now),
        0,
    );
    let mut state_warned = false;
    if !plan.quiet {
        let attached: Vec<String> = firewall
            .attachments()
            .iter()
            .map(|a| format!("{} ({})", escape(&a.interface), a.mode))
            .collect();
        let target = match &plan.write {
            Some(path) if capture_mask != 0 => format!(
                "capturing {} packets to {} ({}, snaplen {})",
                flags::value_name(capture_which),
                if path == "-" {
                    "standard output".into()
                } else {
                    escape(path)
                },
                plan.format,
                plan.snaplen
            ),
            _ => "not capturing".into(),
        };
        let log = if logging {
            format!(
                "; logging {} events{}",
                flags::value_name(plan.log),
                plan.log_file
                    .as_ref()
                    .map(|p| format!(" to {}", escape_path(p)))
                    .unwrap_or_default()
            )
        } else {
            String::new()
        };
        eprintln!(
            "xdpsieve: filtering on {}: {} rules, default {}; {target}{log} (transport {})",
            attached.join(", "),
            rules.rules.len(),
            rules.default_action,
            flags::value_name(plan.transport)
        );
    }

    // From here on an interface that stops running the program (deleted, detached from
    // outside, queues added) is noticed and reported, and re-attached where possible.
    let mut watcher = crate::watch::Watcher::new(&firewall, &settings.ifindexes, |name| {
        Some(crate::pins::health_path(name))
    })
    .context("opening a netlink socket to watch the interfaces")?;
    let mut fds = Vec::new();
    fds.extend(recorder.iter().flat_map(|r| r.source().fds()));
    fds.extend(event_log.iter().flat_map(|l| l.source().fds()));
    let interval = plan.stats_interval;
    let mut last_stats = (std::time::Instant::now(), Snapshot::default());
    let writer_stats = |recorder: &mut Option<Recorder<Sink>>, log: &Option<EventLog<Sink>>| {
        let capture = recorder.as_mut().map(Recorder::stats).unwrap_or_default();
        capture.merge(log.as_ref().map(EventLog::stats).unwrap_or_default())
    };
    let mut loop_result: io::Result<()> = Ok(());
    let mut last_heartbeat = std::time::Instant::now();
    // Timed set entries are removed here while a recorder runs (see `sets::live`).
    let mut expirer = crate::configure::sets::live::command::Expirer::default();
    let mut expiry_warned = false;
    let mut hup = hup::HupReload::default();
    while !stop.load(Ordering::Relaxed) && !recorder.as_mut().is_some_and(Recorder::limit_reached) {
        // Only waiting can fail here: a failed output stops itself and says so, and the
        // loop goes on draining (and counting) its records.
        match wait_readable(&fds, Duration::from_millis(100)) {
            Ok(true) => {
                let mut drained = 0;
                if let Some(r) = recorder.as_mut() {
                    drained += r.drain();
                }
                if let Some(l) = event_log.as_mut() {
                    drained += l.drain();
                }
                if drained > 0 && drained < BUSY_DRAIN {
                    // Let records gather: under steady traffic a wakeup, a write and a
                    // flush per record would cost more than the record itself. The
                    // buffers hold far more than a millisecond of traffic. A drain this
                    // large means the reader is behind: it goes straight on instead.
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            Ok(false) => {}
            Err(e) => {
                loop_result = Err(e);
                break;
            }
        }
        for event in watcher.poll(&mut firewall) {
            eprintln!("{event}");
        }
        if last_heartbeat.elapsed() >= HEARTBEAT_INTERVAL {
            if let Err(e) = firewall.heartbeat() {
                eprintln!("xdpsieve: warning: {e}");
            }
            last_heartbeat = std::time::Instant::now();
            if !meta.sets.is_empty() {
                expire_sets(&mut expirer, &interfaces, plan.quiet, &mut expiry_warned);
            }
        }
        // About once a second, and at once when an output fails.
        let failed = usize::from(recorder.as_mut().is_some_and(Recorder::failed))
            + usize::from(event_log.as_ref().is_some_and(EventLog::failed));
        if last_state.0.elapsed() >= Duration::from_secs(1) || failed != last_state.1 {
            if let Err(e) = writer_state.update(&writer_stats(&mut recorder, &event_log))
                && !state_warned
            {
                eprintln!(
                    "xdpsieve: warning: cannot publish the writers' counts for `xdpsieve status`: {e}"
                );
                state_warned = true;
            }
            last_state = (std::time::Instant::now(), failed);
        }
        if let Some(done) = hup.poll(&reload_asked, &meta) {
            (firewall, rules, meta) = (done.firewall, done.rules, done.meta);
            name_generation(
                &mut recorder,
                &mut event_log,
                meta.reload.generation,
                &rules,
            );
        }
        let asked = status_asked.swap(false, Ordering::Relaxed);
        if asked || interval.is_some_and(|i| last_stats.0.elapsed() >= i) {
            let perf_lost = recorder.as_ref().map_or(0, |r| r.source().perf_lost())
                + event_log.as_ref().map_or(0, |l| l.source().perf_lost());
            let now = firewall.snapshot(rules.rules.len(), perf_lost)?;
            let secs = last_stats.0.elapsed().as_secs_f64();
            let written = writer_stats(&mut recorder, &event_log);
            eprintln!(
                "{}",
                stats::interval_line(&last_stats.1, &now, &written, secs)
            );
            last_stats = (std::time::Instant::now(), now);
        }
    }

    // An explicit stop (a signal, -c reached) removes the firewall: detach first, then
    // drain, so every record the program produced is accounted for. A failed output stops
    // only itself (the loop goes on); only a failure of the loop itself ends it otherwise,
    // and that is not a request to stop filtering: the firewall stays in force without a
    // recorder (fail-static).
    let explicit_stop = loop_result.is_ok();
    if explicit_stop {
        firewall.detach_all();
        for interface in &interfaces {
            pins::remove(&interface.name);
        }
    } else {
        for interface in &interfaces {
            eprintln!(
                "xdpsieve: the firewall on {0} stays in force without a recorder; take it over \
                 with `xdpsieve run -i {0} ...` or remove it with `xdpsieve stop -i {0}`",
                interface.name
            );
        }
    }
    let mut perf_lost = 0;
    if let Some(log) = event_log.as_mut() {
        log.drain();
        perf_lost += log.source().perf_lost();
    }
    if let Some(r) = recorder.as_mut() {
        r.drain();
        perf_lost += r.source().perf_lost();
        let per_interface = firewall.interface_counters()?;
        let closing: Vec<_> = interfaces
            .iter()
            .map(|i| i.ifindex)
            .zip(per_interface)
            .collect();
        r.finish(&closing);
    }
    let snapshot = firewall.snapshot(rules.rules.len(), perf_lost)?;
    let written = writer_stats(&mut recorder, &event_log);
    eprint!("{}", stats::summary(&snapshot, &written, &rules));
    loop_result.context("waiting for records")
}
