//! The subcommands that act on a running firewall from another shell: `reload`, `stop`
//! and `status` (with `--top N`, the busiest rules and sources). Each is a call into the
//! library.

use anyhow::{Result, bail};
use clap::Args;
use xdpsieve::{
    base::text::escape,
    configure::flags,
    configure::privileges::{Verb, check},
    observe::top,
};

#[derive(Args)]
#[command(after_help = STOP_HELP)]
pub(crate) struct StopArgs {
    /// Interface whose firewall to remove.
    #[arg(
        short = 'i',
        long = "interface",
        value_name = "IFACE",
        required = true,
        value_parser = flags::parse_interface_name
    )]
    interface: String,
}

const STOP_HELP: &str = "\
If an `xdpsieve run` records for the interface, it gets SIGTERM (as from Ctrl-C): it detaches,
writes its summary and removes its pins, and stop waits for it (it stops on all its interfaces).
A run started with --keep-on-stop leaves its firewall in force instead; stop then removes it
from this interface as one left behind. If that process died and left the firewall in force,
stop removes the pinned link (which detaches the program) and the pins. Run it in the network namespace the firewall runs in.
`ip link set dev IFACE xdp off` does not remove a firewall attached through a bpf_link.";

#[derive(Args)]
#[command(after_help = RELOAD_HELP)]
pub(crate) struct ReloadArgs {
    /// Interface of the firewall to reload [default: the only one running].
    #[arg(short = 'i', long = "interface", value_name = "IFACE", value_parser = flags::parse_interface_name)]
    interface: Option<String>,

    /// The firewall started with this configuration file: the one on its first interface
    /// (the service's `ExecReload=`).
    #[arg(long, value_name = "FILE", conflicts_with = "interface")]
    config: Option<std::path::PathBuf>,
}

const RELOAD_HELP: &str = "\
The rules are read again from where `xdpsieve run` read them: the --rules file as it is now
(and the set files it names), then the --drop/--pass expressions and --default given to run;
the capture, log and other flags stay as they were. The new rules are loaded as a new program
and swapped onto the interface's link atomically: every packet is judged entirely by the old
rules or entirely by the new ones, and the interface is never without a firewall. Capture
and event log go on in the same files; each record names the rule of the rule set that
judged it. Counters go on; a rule's counters follow it when it keeps its name.

If the rules do not load (a syntax error, a missing set file, too many rules, the verifier's
refusal), nothing changes: the old rules stay in force, and reload prints the reason and exits
with status 1. With a live `xdpsieve run`, reload sends it SIGHUP and waits for its answer;
on a firewall whose recorder died (still in force), reload does the work itself.
`xdpsieve status` shows the rule generation, when it was loaded and the last reload's result.

--config FILE finds the firewall by the first of the file's `interfaces`, so the service's
reload acts on the service's firewall even when another xdpsieve runs here. A file that cannot
be read is not the reload's concern at this point: the only running firewall is asked, and it
reads the file and says why it refused it.";

#[derive(Args)]
#[command(after_help = STATUS_HELP)]
pub(crate) struct StatusArgs {
    /// Only this interface [default: every running instance].
    #[arg(short = 'i', long = "interface", value_name = "IFACE", value_parser = flags::parse_interface_name)]
    interface: Option<String>,

    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,

    /// Instead of the status, what `xdpsieve top` shows, measured over one second: drop
    /// rates per rule, the N sources dropped or limited most (packets and bits per
    /// second), the timed set entries (bans) with their time left, and the losses.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1000))]
    top: Option<u16>,

    /// Seconds between the two reads of --top (0.1-60).
    #[arg(long, value_name = "SECS", default_value = "1", hide = true, requires = "top",
          value_parser = flags::parse_top_interval)]
    interval: f64,
}

const STATUS_HELP: &str = "\
--top N reads the counters twice, one second apart, and prints rates: per rule, the packets it
dropped (and, for a rule that only watches or limits, would have dropped or found over its
limit), the N sources dropped most when the firewall's program counts per source, the set
entries with a timeout, soonest to expire first, and the records lost. `xdpsieve top` shows
the same on a full screen, refreshed every second. Per-source figures are not in the metrics:
one series per address would grow without bound under a spoofed flood.";

/// Asks the running firewall (or, with no recorder, the pinned state) to read its rules
/// again; an error when the old rules stay.
pub(crate) fn reload(args: &ReloadArgs) -> Result<()> {
    check(Verb::Reload)?;
    let from_config = args.config.as_deref().and_then(|file| {
        xdpsieve::configure::config::Config::read(file)
            .ok()?
            .interfaces?
            .into_iter()
            .next()
    });
    let interface = args.interface.as_deref().or(from_config.as_deref());
    let outcome = xdpsieve::instance::reload::request::request(interface)?;
    if !outcome.ok {
        bail!("reload failed: {}", outcome.message);
    }
    println!("xdpsieve: reloaded: {}", escape(&outcome.message));
    Ok(())
}

/// Removes the firewall from `args.interface` (see `STOP_HELP`).
pub(crate) fn stop(args: &StopArgs) -> Result<()> {
    check(Verb::Stop)?;
    println!("{}", xdpsieve::instance::stop::stop(&args.interface)?);
    Ok(())
}

/// Prints the running instances' status, or their top lists, as text or JSON.
pub(crate) fn status(args: &StatusArgs) -> Result<()> {
    if let Some(n) = args.top {
        let n = usize::from(n);
        let interval = std::time::Duration::from_secs_f64(args.interval);
        let models = top::text::status_top(args.interface.as_deref(), n, interval)?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&models)?);
        } else {
            print!("{}", top::text::render(&models, n));
        }
        return Ok(());
    }
    let statuses = xdpsieve::observe::status::read_status(args.interface.as_deref())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&statuses)?);
    } else {
        print!("{}", xdpsieve::observe::status::render(&statuses));
    }
    Ok(())
}
