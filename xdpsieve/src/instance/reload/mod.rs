//! Reloading the whole rule set without a gap: `xdpsieve reload` and SIGHUP.
//!
//! The rules are read again from the sources the run started with (its
//! [`crate::instance::recipe::Recipe`]: the rule file, the command-line expressions, the
//! flags), and a new program (the next rule generation) is loaded with them and swapped
//! onto each interface's pinned bpf_link with `bpf_link_update`
//! ([`crate::configure::loader::Firewall::take_over`], as a takeover does). The kernel runs
//! either the old program or the new one for each packet, so every packet is judged
//! entirely by the old rules or entirely by the new ones, and the link (the attachment)
//! never goes away.
//!
//! Why a new program rather than double-buffered tables behind a generation switch or a
//! map-in-map swap: the rule count, the word count of the bitmaps and which fields are
//! classified are `Config`, read-only data the verifier and the compiler fold into the
//! program, so a new rule set needs a new program anyway; and both alternatives would add a
//! lookup (the generation, or the inner map) to every packet, while the swap costs the
//! packet path nothing.
//!
//! What goes on across the swap:
//! - The recording: the new program is loaded with the old one's record rings, perf arrays
//!   and reader heartbeat (aya's `EbpfLoader::map_pin_path` on the pins in the instance's
//!   directory, see [`crate::configure::loader::SHARED_MAPS`]), so the recorder reads on
//!   from the same buffers into the same files and no record is left behind in a ring of
//!   the old program: there is nothing to drain. (`map_pin_path` per map rather than
//!   `pinning = ByName` in the eBPF object: only a reload reuses maps, explicitly; a fresh
//!   run or a takeover must not pick up a dead instance's rings by their names.) Each
//!   record carries its generation's low byte (`Config::generation`), and the recorder
//!   names its rule from that generation's rules ([`crate::write::generations`]): the same
//!   id can be another rule after a reload. The writers stay the run's: a new generation
//!   that sends a stream the run has no writer for (a rule given `log = true` in a run
//!   started without an event log, whose event ring is one page) has those records counted
//!   (`event_no_writer`, see `xdpsieve_common::reader`) instead of sent, and the outcome
//!   says so.
//! - The global and per-interface counters: shared too (the interfaces and their slots do
//!   not change), so they go on exactly.
//! - The per-rule counters (their slots change with the rules): copied into the new
//!   program's map before the swap and topped up after it with what the old program
//!   counted meanwhile ([`crate::instance::takeover::copy_before_swap`],
//!   [`crate::instance::takeover::add_after_swap`]); a rule's counters follow it when it keeps its
//!   name and its match (conditions and action); the counts of an old rule that has no
//!   such successor are reported once in the outcome, as the previous rules'. The top-up
//!   is a read-modify-write of a per-CPU map the new program already counts in, so a hit
//!   counted in the same few microseconds can be lost from a rule's count (not from the
//!   totals); the takeover has the same window.
//! - Not carried: rate-limit state (a rule's budget starts afresh) and the first
//!   fragments' verdicts (a later fragment whose first fragment the old program judged is
//!   judged as one whose first fragment was not seen).
//!
//! A reload that fails before the swap (a rule file that does not parse, a missing set
//! file, too many rules, the verifier's refusal) changes nothing: the new program is
//! dropped unattached and the old one filters on. The outcome is written into the
//! instance's description, where `status` shows it and `xdpsieve reload` waits for it.
//!
//! Who reloads: a live recorder, on SIGHUP (so that it reads the new program's counters
//! and names); when the recorder is gone, `xdpsieve reload` itself, on the pinned state
//! ([`request`]). Either is the owner of the instance's interfaces while it reloads
//! ([`crate::instance::pins::owner`]): the recorder for its life, `reload` for the reload.

pub mod request;

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::{
    configure::loader::Firewall,
    configure::rules::{Rate, RuleSet},
    instance::description::{self, Meta},
    instance::pins::{self, Claim, Found},
    instance::recipe::{ReloadOutcome, Reloader, unix_ns},
    instance::takeover::{self, SlotMap},
};

/// A reload that went through.
pub struct Reloaded {
    /// The new program, in force on the instance's interfaces.
    pub firewall: Firewall,
    pub rules: RuleSet,
    /// The new description (published).
    pub meta: Meta,
    /// From reading the rules to the last interface swapped.
    pub took: Duration,
}

/// The rule generation a run starts with: 1, or one more than that of the firewall it
/// takes over (so `status` counts on).
pub fn first_generation(claims: &[Claim]) -> u32 {
    claims
        .iter()
        .find_map(|c| match &c.found {
            Found::LeftBehind { meta: Some(m) } => Some(m.reload.generation.max(1) + 1),
            _ => None,
        })
        .unwrap_or(1)
}

/// The next generation, loaded and verified, not in force yet (nothing has changed).
pub struct Prepared {
    firewall: Firewall,
    /// The set lock of the generation in force, whose runtime entries the new one holds.
    set_lock: Option<crate::instance::sets::SetLock>,
    rules: RuleSet,
    default_rate: Rate,
    generation: u32,
    started_ns: u64,
    started: Instant,
    /// How long reading the rules and loading the program took.
    pub load_time: Duration,
    /// Whether the new generation sends capture records, and events.
    sends: (bool, bool),
}

/// Reads the rules of the instance described by `meta` from its recipe and loads them as
/// the next generation, sharing its record buffers. The slow part of a reload (the
/// verifier), so a recorder runs it beside its loop. Changes nothing in force.
pub fn prepare(meta: &Meta) -> Result<Prepared> {
    let started_ns = unix_ns();
    let started = Instant::now();
    let recipe = meta.reload.recipe.as_ref().context(
        "the running instance did not record where its rules come from (started by an older \
         xdpsieve); restart it to change its rules",
    )?;
    let rules = recipe.sources.load().context("reading the rules")?;
    let first = meta
        .interfaces
        .first()
        .context("the instance's description names no interface")?;
    let generation = meta.reload.generation.max(1) + 1;
    let ifindexes = meta.interfaces.iter().map(|i| i.ifindex).collect();
    let mut settings = recipe.settings(rules.clone(), ifindexes, generation)?;
    settings.share_maps_from = Some(pins::pin_dir(&first.name));
    // Entries added at run time (`xdpsieve set add`) carry over: read under the set lock of
    // the generation in force, held until the swap so that none added meanwhile is lost.
    let set_lock = if meta.sets.is_empty() {
        None
    } else {
        let names: Vec<String> = meta.sets.iter().map(|s| s.name.clone()).collect();
        let (lock, runtime) = crate::instance::sets::carry::lock_and_read(&first.name, &names)
            .context("reading the sets' runtime entries to carry them over")?;
        settings.set_runtime = runtime;
        Some(lock)
    };
    let firewall = Firewall::load(&settings).context("loading the new rules")?;
    Ok(Prepared {
        firewall,
        set_lock,
        rules,
        default_rate: settings.default_rate,
        generation,
        started_ns,
        started,
        load_time: started.elapsed(),
        sends: (settings.capture != 0, settings.logs_events()),
    })
}

/// What the run cannot write of what the new generation sends, for the reload's outcome:
/// a stream the run published no writer for (`writers`, see `Firewall::publish_writers`).
/// The program counts those records (`capture_no_writer`, `event_no_writer`) instead of
/// sending them; the operator must hear it from the reload, not from the summary.
fn unwritten(
    writers: Option<u64>,
    (capture, events): (bool, bool),
    rules: &RuleSet,
) -> Vec<String> {
    use xdpsieve_common::reader;
    let Some(writers) = writers else {
        return Vec::new();
    };
    let mut notes = Vec::new();
    if capture && writers & reader::CAPTURE == 0 {
        notes.push(
            "this run writes no capture: its capture records are not sent but counted as not \
             captured (capture_no_writer); restart the run with -w to capture them"
                .to_string(),
        );
    }
    if events && writers & reader::EVENTS == 0 {
        // One name per rule as written (a rule without a direction is several kernel rules).
        let logging: Vec<String> = rules
            .written()
            .into_iter()
            .filter(|(r, _)| r.log)
            .map(|(r, _)| crate::base::text::escape(&r.name).into_owned())
            .collect();
        let which = if logging.is_empty() {
            String::new()
        } else {
            format!(" ({})", logging.join(", "))
        };
        notes.push(format!(
            "this run has no event log (nothing was logged when it started): the events of \
             the rules with log = true{which} are not sent but counted as not logged \
             (event_no_writer); restart the run to log them"
        ));
    }
    notes
}

/// Reloads the instance described by `meta` (whose interfaces the caller owns): the next
/// generation from its recipe, swapped onto its pinned links. `by` says who, for the
/// outcome. On an error before the swap nothing has changed.
pub fn reload(meta: &Meta, by: Reloader) -> Result<Reloaded> {
    commit(prepare(meta)?, meta, by)
}

/// Puts a prepared generation in force: counters copied, the program swapped onto each
/// pinned link, counters topped up, the pins and the description published.
pub fn commit(prepared: Prepared, meta: &Meta, by: Reloader) -> Result<Reloaded> {
    let Prepared {
        mut firewall,
        set_lock,
        rules,
        default_rate,
        generation,
        started_ns,
        started,
        load_time,
        sends,
    } = prepared;
    let first = meta
        .interfaces
        .first()
        .context("the instance's description names no interface")?;
    let dir = pins::pin_dir(&first.name);
    let new_rules = description::rules_of(&rules, default_rate);
    let slots = SlotMap::for_reload(meta, &new_rules);
    let swap_started = Instant::now();
    let carried = takeover::copy_before_swap(&mut firewall, &dir, slots)
        .context("copying the counters into the new program")?;
    let mut swapped: Vec<&str> = Vec::new();
    let mut skipped: Vec<&str> = Vec::new();
    for iface in &meta.interfaces {
        let link = pins::pin_dir(&iface.name).join(pins::LINK_PIN);
        if !link.exists() {
            // The interface is gone; the recorder's watcher attaches again when it returns.
            skipped.push(&iface.name);
            continue;
        }
        if let Err(e) = firewall.take_over(&iface.name, iface.mode, &link) {
            if swapped.is_empty() {
                return Err(e).context("swapping the new program in; nothing changed");
            }
            bail!(
                "{e}; the new rules (generation {generation}) are in force on {} but not on \
                 {}: run `xdpsieve reload` again",
                swapped.join(", "),
                iface.name
            );
        }
        swapped.push(&iface.name);
    }
    if swapped.is_empty() {
        bail!("no interface of the instance has a pinned link; nothing changed");
    }
    let took = started.elapsed();
    let swap_time = swap_started.elapsed();
    // From here on the new rules are in force: what fails now is reported with them, not
    // as a failed reload (the caller must adopt the new program either way).
    let mut warnings: Vec<String> = Vec::new();
    let previous = match takeover::add_after_swap(&mut firewall, carried) {
        Ok(after) => takeover::previous_rules(meta, &after.previous_rules),
        Err(e) => {
            warnings.push(format!("the counters were not all carried over: {e:#}"));
            None
        }
    };
    let mut message = format!(
        "generation {generation} in force on {} ({} rules, default {}) after {:.1} ms \
         (rules read and program loaded in {:.1} ms, swapped in {:.1} ms)",
        swapped.join(", "),
        rules.written().len(),
        rules.default_action,
        took.as_secs_f64() * 1e3,
        load_time.as_secs_f64() * 1e3,
        swap_time.as_secs_f64() * 1e3
    );
    if !skipped.is_empty() {
        message.push_str(&format!(
            "; {} had no link (gone) and get the new rules when attached again",
            skipped.join(", ")
        ));
    }
    for note in unwritten(firewall.published_writers(), sends, &rules) {
        message.push_str(&format!("; note: {note}"));
    }
    if let Some(previous) = previous {
        message.push_str("; ");
        message.push_str(&previous);
    }
    let mut new_meta = meta.clone();
    new_meta.rules = new_rules;
    new_meta.sets = description::sets_of(&rules.sets);
    new_meta.default_action = rules.default_action;
    new_meta.reload.generation = generation;
    new_meta.reload.loaded_unix = unix_ns() / 1_000_000_000;
    new_meta.reload.matching = Some(firewall.matching().to_string());
    let outcome = |message: String| ReloadOutcome {
        started_unix_ns: started_ns,
        ok: true,
        generation,
        took_ms: took.as_secs_f64() * 1e3,
        load_ms: load_time.as_secs_f64() * 1e3,
        swap_ms: swap_time.as_secs_f64() * 1e3,
        message,
        by,
    };
    new_meta.reload.last = Some(Box::new(outcome(message.clone())));
    for iface in &meta.interfaces {
        let dir = pins::pin_dir(&iface.name);
        let published = pins::publish(
            &dir,
            &pins::meta_path(&iface.name),
            &firewall.pinned_maps(),
            &new_meta,
        )
        .and_then(|()| Ok(firewall.pin_program(&dir.join(pins::PROG_PIN))?));
        if let Err(e) = published {
            warnings.push(format!(
                "publishing them for {} failed (status may show the old rules): {e:#}",
                iface.name
            ));
        }
    }
    // The new set maps are pinned: set changes wait no more and find the new generation.
    if let Some(lock) = set_lock {
        lock.retire();
    }
    if !warnings.is_empty() {
        message.push_str(&format!("; warning: {}", warnings.join("; ")));
        new_meta.reload.last = Some(Box::new(outcome(message)));
        for iface in &meta.interfaces {
            let _ = description::write(&pins::meta_path(&iface.name), &new_meta);
        }
    }
    Ok(Reloaded {
        firewall,
        rules,
        meta: new_meta,
        took,
    })
}

/// Writes a failed reload's outcome into the descriptions of `meta`'s interfaces (the
/// rules in force stay as they were). Returns the outcome.
pub fn record_failure(
    meta: &Meta,
    started_ns: u64,
    error: &anyhow::Error,
    by: Reloader,
) -> ReloadOutcome {
    let outcome = ReloadOutcome {
        started_unix_ns: started_ns,
        ok: false,
        generation: meta.reload.generation,
        took_ms: (unix_ns().saturating_sub(started_ns)) as f64 / 1e6,
        load_ms: 0.0,
        swap_ms: 0.0,
        message: format!(
            "{error:#}; still filtering with generation {}",
            meta.reload.generation
        ),
        by,
    };
    for iface in &meta.interfaces {
        let path = pins::meta_path(&iface.name);
        // The current description (a concurrent writer may have changed more than this).
        let mut current = description::read(&path).unwrap_or_else(|| meta.clone());
        current.reload.last = Some(Box::new(outcome.clone()));
        if let Err(e) = description::write(&path, &current) {
            crate::base::log::warning(format_args!(
                "xdpsieve: warning: cannot record the failed reload in {}: {e:#}",
                path.display()
            ));
        }
    }
    outcome
}

/// A reload by the running recorder (SIGHUP), whose loop goes on draining the rings
/// while the new program loads: [`InBackground::start`], then, once
/// [`InBackground::is_finished`], [`InBackground::finish`].
pub struct InBackground {
    handle: std::thread::JoinHandle<Result<Prepared>>,
    started_ns: u64,
}

impl InBackground {
    /// Starts loading the next generation of `meta`'s instance (the recorder's own: it
    /// owns the interfaces, so nobody else reloads or takes them meanwhile).
    pub fn start(meta: &Meta) -> Result<InBackground> {
        let meta = meta.clone();
        let handle = std::thread::Builder::new()
            .name("xdpsieve-reload".into())
            .spawn(move || prepare(&meta))
            .context("starting the reload thread")?;
        Ok(InBackground {
            handle,
            started_ns: unix_ns(),
        })
    }

    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// Puts the loaded generation in force (or records why it could not be loaded); `meta`
    /// is the description the reload started from.
    pub fn finish(self, meta: &Meta) -> Result<Reloaded> {
        let prepared = match self.handle.join() {
            Ok(prepared) => prepared,
            Err(_) => Err(anyhow::anyhow!("the reload thread panicked")),
        };
        prepared
            .and_then(|p| commit(p, meta, Reloader::Recorder))
            .inspect_err(|e| {
                record_failure(meta, self.started_ns, e, Reloader::Recorder);
            })
    }
}
