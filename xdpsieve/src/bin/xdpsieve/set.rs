//! `xdpsieve set add|del|list|flush`: a live change of an address set, turned into a
//! [`SetPlan`] that the library carries out on the firewall's pinned state.

use std::{path::PathBuf, time::Duration};

use anyhow::Result;
use clap::{Args, Subcommand};
use xdpsieve::{
    configure::flags,
    configure::privileges::{Verb, check},
    instance::sets::command::{SetOp, SetPlan},
};

#[derive(Args)]
#[command(after_help = SET_HELP)]
pub(crate) struct SetArgs {
    #[command(subcommand)]
    op: SetCommand,
}

#[derive(Subcommand)]
pub(crate) enum SetCommand {
    /// Add prefixes to a set: the next packet from (or to) them meets the rules naming it.
    /// Adding one that is there renews its timeout.
    #[command(after_help = SET_HELP)]
    Add(SetAddArgs),
    /// Remove prefixes from a set. One that is not in the set is an error, and then
    /// nothing is removed.
    #[command(after_help = SET_HELP)]
    Del(SetChangeArgs),
    /// List a set's entries: prefix, origin (file or runtime) and time left.
    #[command(after_help = SET_HELP)]
    List(SetListArgs),
    /// Remove every entry of a set (its file's too, until a restart or reload).
    #[command(after_help = SET_HELP)]
    Flush(SetNameArgs),
}

#[derive(Args)]
pub(crate) struct SetNameArgs {
    /// The set, as named in the rule file (`[[set]] name`); `@name` works too.
    #[arg(value_name = "NAME")]
    name: String,

    /// The firewall's interface; needed only when several xdpsieve instances run.
    #[arg(short = 'i', long = "interface", value_name = "IFACE", value_parser = flags::parse_interface_name)]
    interface: Option<String>,
}

#[derive(Args)]
pub(crate) struct SetChangeArgs {
    #[command(flatten)]
    set: SetNameArgs,

    /// Prefixes or addresses (a bare address is a /32 or /128), IPv4 and IPv6.
    #[arg(value_name = "PREFIX")]
    prefixes: Vec<String>,

    /// Also the prefixes in FILE: one per line, `#` and `;` comments (the set-file format).
    #[arg(long, value_name = "FILE")]
    from_file: Option<PathBuf>,

    /// Also write the change into the set's file, so that it survives a restart (only for
    /// a set read from a file, not for one given inline in the rule file).
    #[arg(long)]
    save: bool,
}

#[derive(Args)]
pub(crate) struct SetAddArgs {
    #[command(flatten)]
    change: SetChangeArgs,

    /// Remove the entries again after this long: 90s, 10m, 1h30m, 7d [default: never].
    #[arg(long, value_name = "DURATION", value_parser = xdpsieve::instance::sets::text::parse_timeout)]
    timeout: Option<Duration>,
}

#[derive(Args)]
pub(crate) struct SetListArgs {
    #[command(flatten)]
    set: SetNameArgs,

    /// Print JSON: {"interface", "set", "count", "entries": [{"prefix", "origin",
    /// "expires_in_ms"}]}.
    #[arg(long)]
    json: bool,
}

const SET_HELP: &str = "\
Set changes act on the firewall's pinned state: they work from any shell in the firewall's
network namespace, while `xdpsieve run` records for it or after it died, and take effect
for the next packet. Concurrent changes are serialised (a lock per rule generation).

What survives what:
  - a restart (`xdpsieve stop`, then `run`) keeps what the rule file and its set files say:
    runtime changes are lost unless made with --save (which writes them into the set file);
  - a reload and a takeover (a new `run` on a firewall whose recorder died) keep the
    entries added at run time, with their time left.
Entries with --timeout are removed when it passes: by the running `xdpsieve run` (checked
every 100 ms); with no recorder, when any `xdpsieve set` command or a new run touches the
sets (every set command first removes what is overdue).

Examples:
  xdpsieve set add blocklist 198.51.100.7 2001:db8:bad::/48 --timeout 10m
  xdpsieve set add blocklist --from-file new-bans.txt
  xdpsieve set del blocklist 198.51.100.7
  xdpsieve set list blocklist --json
  xdpsieve set flush blocklist -i eth0";

/// Turns `xdpsieve set ...` into a plan for the library.
pub(crate) fn set(args: SetArgs) -> Result<()> {
    check(Verb::Set)?;
    let change = |c: SetChangeArgs| (c.set, c.prefixes, c.from_file, c.save);
    let (op, (name, prefixes, from_file, save)) = match args.op {
        SetCommand::Add(a) => (SetOp::Add { timeout: a.timeout }, change(a.change)),
        SetCommand::Del(a) => (SetOp::Del, change(a)),
        SetCommand::List(a) => (
            SetOp::List { json: a.json },
            (a.set, Vec::new(), None, false),
        ),
        SetCommand::Flush(a) => (SetOp::Flush, (a, Vec::new(), None, false)),
    };
    let plan = SetPlan {
        op,
        set: name.name,
        interface: name.interface,
        prefixes,
        from_file,
        save,
    };
    println!("{}", xdpsieve::instance::sets::command::run(&plan)?);
    Ok(())
}
