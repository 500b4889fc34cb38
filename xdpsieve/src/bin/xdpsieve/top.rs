//! `xdpsieve top`: its flags, into the plan the library's full-screen view runs
//! ([`xdpsieve::observe::top::live`]).

use std::time::Duration;

use anyhow::Result;
use clap::Args;
use xdpsieve::{
    configure::flags,
    observe::top::live::{self, TopPlan},
};

#[derive(Args)]
#[command(after_help = TOP_HELP)]
pub(crate) struct TopArgs {
    /// Interface of the firewall to watch [default: the only one in force].
    #[arg(short = 'i', long = "interface", value_name = "IFACE", value_parser = flags::parse_interface_name)]
    interface: Option<String>,

    /// Seconds between two reads of the counters (0.1-60).
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = flags::parse_top_interval)]
    interval: f64,
}

const TOP_HELP: &str = "\
A full-screen view of a running firewall, refreshed every second: packets seen, dropped and
passed per second; per rule, the packets it dropped (and, for rules that only watch or limit,
would have dropped or found over their limit), the ones dropping most first; the sources
dropped or limited most, in packets and bits per second, when the firewall's program counts
per source; the set entries with a timeout (bans, `xdpsieve set add --timeout`) with their
time left, soonest first; and the records lost, in red while they grow. q, Esc or Ctrl-C
quits.

It reads the pinned state as `xdpsieve status` does, so it works beside a running recorder
and on a firewall left without one, and never changes anything. A reload's new rules show at
the next refresh. It needs a terminal: for a script or a pipe, `xdpsieve status --top N`
prints the same list once (--json for JSON). Needs root (or CAP_BPF): it reads pinned BPF
maps.";

/// Runs the view until the operator quits.
pub(crate) fn top(args: &TopArgs) -> Result<()> {
    live::run(&TopPlan {
        interface: args.interface.clone(),
        interval: Duration::from_secs_f64(args.interval),
    })
}
