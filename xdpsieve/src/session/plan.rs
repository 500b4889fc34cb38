//! What a run is to do: the command line's meaning ([`RunPlan`]), validated by the binary
//! (`src/bin/xdpsieve/run.rs`), and what the parts of the run take of it: the recipe its
//! program is built from ([`RunPlan::recipe`]) and the recording side's plan
//! ([`RunPlan::capture_plan`]).

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use xdpsieve_common::capture;

use crate::{
    configure::capture_filter::{CompiledFilter, FilterEngine},
    configure::loader::AttachMode,
    configure::loader::Transport,
    configure::rules::{Action, Rate, RuleSet},
    instance::recipe::{Recipe, RuleSources},
    session::capture_session::CapturePlan,
    write::capture::Format,
    write::event_log::LogFormat,
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
    /// The end of the run (SIGINT, SIGTERM, `-c` reached) leaves the firewall in force,
    /// as a crash does, for the next run to take over (`--keep-on-stop`).
    pub keep_on_stop: bool,
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
    pub fn capture_plan(&self) -> CapturePlan {
        CapturePlan {
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
