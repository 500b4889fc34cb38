//! The command's shape: the top-level [`Cli`] and its [`Command`]s (each subcommand's flags
//! live in the module that turns them into a plan), and what several subcommands share:
//! the rule flags in command-line order and the rule-file warnings.

use std::path::{Path, PathBuf};

use clap::{ArgMatches, Args, Parser, Subcommand};
use xdpsieve::{
    reload::RuleSources,
    rules::{Action, RuleSet},
};

use crate::{
    check_rules::CheckArgs,
    control::{ReloadArgs, StatusArgs, StopArgs},
    run::RunArgs,
    set::SetArgs,
};

/// XDP firewall that shows exactly what it drops.
///
/// xdpsieve filters packets in the driver (XDP), before tcpdump can see them, and writes the
/// packets it drops (or passes) to a pcap or pcapng file that tcpdump and Wireshark read.
/// Nothing is lost silently: packets the ring buffer had no room for are counted and reported.
#[derive(Parser)]
#[command(name = "xdpsieve", version, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Attach the firewall to interfaces and capture what it drops (or passes).
    Run(Box<RunArgs>),
    /// Parse a rule file and print the rules as the firewall will evaluate them.
    CheckRules(CheckArgs),
    /// Read a running firewall's rules again and put them in force without a gap (as SIGHUP
    /// to `xdpsieve run` does); exits non-zero with the reason when the old rules stay.
    Reload(ReloadArgs),
    /// Remove the firewall from an interface: stop the `xdpsieve run` that records for it,
    /// or remove a firewall left in force by one that died.
    Stop(StopArgs),
    /// Show a running firewall's rules, hit counts, counters, attach mode and uptime,
    /// from another shell (same network namespace), without disturbing it. Needs root.
    Status(StatusArgs),
    /// Change an address set of a running firewall, from any shell, with no reload: add,
    /// del, list, flush. Needs root.
    Set(SetArgs),
    /// Run a self-contained demonstration in two throwaway network namespaces.
    Demo(DemoArgs),
}

#[derive(Args)]
pub struct DemoArgs {
    /// Where to write the demo's capture.
    #[arg(short = 'w', value_name = "FILE", default_value = "xdpsieve-demo.pcap")]
    pub write: PathBuf,

    /// DNS responses to send (1-10000).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub responses: u32,
}

/// Where the rules come from: the file, then `drop` and `pass` in command-line order (from
/// `matches`), then `default`. A reload reads them again from the same sources.
pub fn rule_sources(
    file: Option<&Path>,
    drop: &[String],
    pass: &[String],
    default: Option<Action>,
    matches: &ArgMatches,
) -> RuleSources {
    let indexed = |id: &str, action: Action, values: &[String]| -> Vec<(usize, Action, String)> {
        let indices: Vec<usize> = matches
            .indices_of(id)
            .map(Iterator::collect)
            .unwrap_or_default();
        values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                (
                    indices.get(i).copied().unwrap_or(usize::MAX),
                    action,
                    v.clone(),
                )
            })
            .collect()
    };
    let mut cli_rules = indexed("drop", Action::Drop, drop);
    cli_rules.extend(indexed("pass", Action::Pass, pass));
    cli_rules.sort_by_key(|(index, _, _)| *index);
    let expressions = cli_rules.into_iter().map(|(_, a, e)| (a, e)).collect();
    RuleSources::new(file, expressions, default)
}

/// Lines of set files accepted with a change (host bits masked): said, not fatal.
pub fn warn_about(rules: &RuleSet) {
    for warning in &rules.warnings {
        eprintln!("warning: {warning}");
    }
}
