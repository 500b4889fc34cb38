//! The command's shape: the top-level [`Cli`] and its [`Command`]s (each subcommand's flags
//! live in the module that turns them into a plan; what several share is in
//! `rule_input`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::{
    check_config::CheckConfigArgs,
    check_rules::CheckArgs,
    control::{ReloadArgs, StatusArgs, StopArgs},
    run::RunArgs,
    set::SetArgs,
    top::TopArgs,
};

/// XDP firewall that shows exactly what it drops.
///
/// xdpsieve filters packets in the driver (XDP), before tcpdump can see them, and writes the
/// packets it drops (or passes) to a pcap or pcapng file that tcpdump and Wireshark read.
/// Nothing is lost silently: packets the ring buffer had no room for are counted and reported.
#[derive(Parser)]
#[command(name = "xdpsieve", version, max_term_width = 100)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Attach the firewall to interfaces and capture what it drops (or passes).
    Run(Box<RunArgs>),
    /// Parse a rule file and print the rules as the firewall will evaluate them.
    CheckRules(CheckArgs),
    /// Check a configuration file as `xdpsieve run --config FILE` would, without the
    /// kernel or privileges, and print what the run would do; --help lists every key.
    CheckConfig(CheckConfigArgs),
    /// Read a running firewall's rules again and put them in force without a gap (as SIGHUP
    /// to `xdpsieve run` does); exits non-zero with the reason when the old rules stay.
    Reload(ReloadArgs),
    /// Remove the firewall from an interface: stop the `xdpsieve run` that records for it,
    /// or remove a firewall left in force by one that died.
    Stop(StopArgs),
    /// Show a running firewall's rules, hit counts, counters, attach mode and uptime,
    /// from another shell (same network namespace), without disturbing it. Needs root.
    Status(StatusArgs),
    /// A live full-screen view of a running firewall: drop rates per rule, the sources
    /// dropped most, bans with their time left, losses; refreshed every second. Needs root.
    Top(TopArgs),
    /// Change an address set of a running firewall, from any shell, with no reload: add,
    /// del, list, flush. Needs root.
    Set(SetArgs),
    /// Run a self-contained demonstration in two throwaway network namespaces.
    Demo(DemoArgs),
}

#[derive(Args)]
pub(crate) struct DemoArgs {
    /// Where to write the demo's capture.
    #[arg(short = 'w', value_name = "FILE", default_value = "xdpsieve-demo.pcap")]
    pub write: PathBuf,

    /// DNS responses to send (1-10000).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub responses: u32,
}
