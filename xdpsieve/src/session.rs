//! One run of the firewall, from a validated [`RunPlan`] to the summary, in three parts:
//!
//! - `start`: claim the interfaces' pin directories, open the outputs
//!   ([`capture_session`]), load the program, open its record sources, attach (or take
//!   over a firewall left behind), publish for `status`, print the start-up line;
//! - `run_loop`: drain the records, watch the interfaces, beat the heartbeat, expire
//!   timed set entries, answer signals (and `hup`: reload on SIGHUP), until an explicit
//!   stop;
//! - `finish`: detach (or, when the loop itself failed, leave the firewall in force),
//!   the final drain, the closing blocks and the summary.
//!
//! The recording side (sources, recorder, capture files and their rotation, event log, and
//! its shutdown order) is one object, [`capture_session::CaptureSession`], which the loop and the
//! finish drive and which runs without a kernel in its tests.
//!
//! The binary (`src/bin/xdpsieve/run.rs`) turns the command line into the plan; everything
//! that touches the kernel, the files or the terminal after that happens here.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::Result;
use xdpsieve_common::capture;

use crate::{
    configure::capture_filter::{CompiledFilter, FilterEngine},
    configure::loader::AttachMode,
    configure::loader::Transport,
    configure::rules::{Action, Rate, RuleSet},
    instance::recipe::{Recipe, RuleSources},
    write::capture::Format,
    write::event_log::LogFormat,
};

pub mod capture_session;
mod finish;
mod hup;
mod run_loop;
mod start;

/// What to run, validated: the command line's meaning, with its consistency checked.
#[derive(Debug)]
pub struct RunPlan {
    pub rules: RuleSet,
    /// Where `rules` came from: a reload reads them again from there.
    pub sources: RuleSources,
    pub interfaces: Vec<String>,
    /// Which packets to capture; not `None` only with `write`.
    pub capture: Which,
    /// The capture file; `-` is standard output. With `rotation`, the pattern of the
    /// files' names (see [`crate::write::rotation`]).
    pub write: Option<String>,
    /// `-C`, `-G`, `-W`, `-z`: the capture's files rotate (never with `-w -`).
    pub rotation: Option<crate::write::rotation::RotationPlan>,
    pub format: Format,
    pub snaplen: u32,
    /// Record one in this many of the packets selected (`--sample`); 1 records all.
    pub sample: u32,
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
    /// The capture filter (`--filter`, or the trailing expression).
    pub capture_filter: Option<CompiledFilter>,
    /// The event log's filter: the capture filter unless `--log-filter` gave another.
    pub log_filter: Option<CompiledFilter>,
    /// How the filters run in the kernel (`--filter-engine`).
    pub filter_engine: FilterEngine,
}

impl RunPlan {
    /// The capture file's snap length: `-s`, or a rule's `snaplen` when one asks for more
    /// (the program cuts each packet to its rule's; the file must not cut it again). Fixed
    /// for the run: a reload that raises a rule's `snaplen` past it is cut to it.
    pub fn file_snaplen(&self) -> u32 {
        self.rules
            .rules
            .iter()
            .filter_map(|r| r.snaplen)
            .fold(self.snaplen, u32::max)
    }

    /// What the run's description keeps of the plan to build its program again (a reload),
    /// and what its first generation's settings are made from.
    pub fn recipe(&self) -> Recipe {
        Recipe {
            sources: self.sources.clone(),
            capture: self.capture.mask(),
            log: self.log.mask(),
            snaplen: self.snaplen,
            sample: self.sample,
            ring_bytes: self.ring_size,
            transport: self.transport,
            default_rate: self.log_rate,
            unclassifiable: self.unclassifiable,
            capture_filter: self.capture_filter.as_ref().map(|f| f.expression.clone()),
            log_filter: self.log_filter.as_ref().map(|f| f.expression.clone()),
            filter_engine: self.filter_engine,
        }
    }

    /// What the recording side needs of the plan.
    pub fn capture_plan(&self) -> capture_session::CapturePlan {
        capture_session::CapturePlan {
            capture: self.capture.mask() != 0,
            write: self.write.clone(),
            rotation: self.rotation.clone(),
            format: self.format,
            file_snaplen: self.file_snaplen(),
            count: self.count,
            logging: self.log.mask() != 0 || self.rules.rules.iter().any(|r| r.log),
            log_format: self.log_format,
            log_file: self.log_file.clone(),
        }
    }
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

/// Fails early, and clearly, when the process cannot load BPF programs.
pub fn check_privileges() -> Result<()> {
    crate::configure::privileges::check(crate::configure::privileges::Verb::Run)
}

/// Runs the firewall as `plan` says, until an explicit stop (or a failure of the loop
/// itself, which leaves the firewall in force).
pub fn run(plan: RunPlan) -> Result<()> {
    let mut running = start::start(plan)?;
    // An error here (not a failure of the waiting, which the finish handles) ends the run
    // at once: the firewall stays in force, as on any end that is not an explicit stop.
    let loop_result = run_loop::run_loop(&mut running)?;
    finish::finish(running, loop_result)
}
