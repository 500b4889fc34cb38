//! The `xdpsieve` command: `run` (filter and capture), `reload`, `stop`, `status`,
//! `check-rules`, `set` (live set changes), and `demo`.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::{Result, bail};
use clap::{ArgMatches, Args, CommandFactory as _, FromArgMatches as _, Parser, Subcommand};
use xdpsieve::{
    capture::Format,
    event::LogFormat,
    flags,
    loader::AttachMode,
    reload::RuleSources,
    rules::{Action, Rate},
    session::{RunPlan, Which, check_privileges},
    source::Transport,
    text::{escape, escape_path},
};
use xdpsieve_common::MAX_SNAPLEN;

/// XDP firewall that shows exactly what it drops.
///
/// xdpsieve filters packets in the driver (XDP), before tcpdump can see them, and writes the
/// packets it drops (or passes) to a pcap or pcapng file that tcpdump and Wireshark read.
/// Nothing is lost silently: packets the ring buffer had no room for are counted and reported.
#[derive(Parser)]
#[command(name = "xdpsieve", version, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
#[command(after_help = RUN_HELP)]
struct RunArgs {
    /// Interface to attach to; repeat (or separate with commas) for several.
    #[arg(
        short = 'i',
        long = "interface",
        value_name = "IFACE",
        required = true,
        value_delimiter = ',',
        value_parser = flags::parse_interface_name
    )]
    interfaces: Vec<String>,

    /// TOML rule file (see `xdpsieve check-rules --help` for the format).
    #[arg(long, value_name = "FILE")]
    rules: Option<PathBuf>,

    /// Drop packets matching EXPR, e.g. 'udp src port 53'. Repeatable.
    #[arg(long, value_name = "EXPR")]
    drop: Vec<String>,

    /// Pass packets matching EXPR (ends evaluation for them). Repeatable.
    #[arg(long, value_name = "EXPR")]
    pass: Vec<String>,

    /// Verdict for IP packets no rule matches [default: the rule file's, else pass].
    /// Non-IP frames (ARP, LLDP) always pass.
    #[arg(long, value_name = "drop|pass")]
    default: Option<Action>,

    /// Verdict for IP packets whose L4 header the program cannot reach (IPv6 extension
    /// chain too long or cut short, TCP/UDP header cut short, RFC 1858 tiny TCP fragment)
    /// [default: drop when a rule has a protocol or port condition, else pass].
    #[arg(long, value_name = "POLICY")]
    unclassifiable: Option<Unclassifiable>,

    /// Write captured packets to FILE; `-` writes to standard output.
    #[arg(short = 'w', value_name = "FILE")]
    write: Option<String>,

    /// Bytes of each packet to capture (1-16384). Longer packets keep their true length.
    #[arg(
        short = 's',
        long = "snaplen",
        value_name = "SNAPLEN",
        default_value_t = MAX_SNAPLEN,
        value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_SNAPLEN))
    )]
    snaplen: u32,

    /// Exit after writing COUNT packets.
    #[arg(short = 'c', value_name = "COUNT", value_parser = flags::parse_count)]
    count: Option<u64>,

    /// Which packets to capture [default: dropped with -w, else none].
    #[arg(long, value_name = "WHICH")]
    capture: Option<Which>,

    /// Capture file format. pcapng adds each packet's XDP verdict, rule and receive queue.
    #[arg(long, value_name = "FORMAT", default_value = "pcap")]
    format: Format,

    /// Which packets to log as events (one line each, no packet bytes). Rules with
    /// `log = true` are logged whatever this says.
    #[arg(long, value_name = "WHICH", default_value = "none")]
    log: Which,

    /// Event log format: text lines or JSON lines.
    #[arg(long, value_name = "FORMAT", default_value = "text")]
    log_format: LogFormat,

    /// Write the event log to FILE instead of standard output.
    #[arg(long, value_name = "FILE")]
    log_file: Option<PathBuf>,

    /// Rate limit per rule on its records (events and captures), for rules without their
    /// own `log_rate`: N/s, N/m, N/h, or 0 for unlimited. What it suppresses is counted.
    #[arg(long, value_name = "RATE", default_value = "0")]
    log_rate: Rate,

    /// How records reach userspace: ringbuf (one shared buffer, Linux 5.8+) or perf
    /// (per-CPU buffers, for older kernels).
    #[arg(long, value_name = "TRANSPORT", default_value = "ringbuf")]
    transport: Transport,

    /// XDP attach mode: native (in the driver), skb (generic), or auto (native, else skb).
    #[arg(long, value_name = "MODE", default_value = "auto")]
    mode: AttachMode,

    /// Size of each record buffer (power of two; K, M, G suffixes). Bigger rides out bursts.
    /// With perf it is shared out among the CPUs.
    #[arg(long, value_name = "BYTES", default_value = "8M", value_parser = parse_size)]
    ring_size: u32,

    /// Serve Prometheus metrics at http://ADDR:PORT/metrics (e.g. 127.0.0.1:9470).
    #[arg(long, value_name = "ADDR:PORT")]
    metrics: Option<std::net::SocketAddr>,

    /// Print a status line (rates per verdict, losses) to stderr every SECS seconds
    /// (0.1-86400).
    #[arg(
        long,
        value_name = "SECS",
        value_parser = flags::parse_stats_interval,
        allow_negative_numbers = true
    )]
    stats_interval: Option<f64>,

    /// Do not print the start-up line.
    #[arg(short = 'q', long)]
    quiet: bool,
}

const RUN_HELP: &str = "\
The firewall is fail-static: it stays in force (pinned in /sys/fs/bpf/xdpsieve/) if this
process dies in any way (panic, abort, OOM kill, SIGKILL); only the recording stops. It is
removed by SIGINT/SIGTERM to this process (Ctrl-C) or by `xdpsieve stop -i IFACE` from another
shell, which also removes a firewall left behind by a process that died. A new `xdpsieve run`
on such an interface takes the firewall over without a gap and carries its counters on.
`xdpsieve reload -i IFACE` (or SIGHUP) reads the rules again and swaps them in without a gap.

Rule expressions (tcpdump-like; conditions joined by `and`, all must hold):
  [ip|ip6] [tcp|udp|icmp|icmp6|proto N]
  src|dst host ADDR      src|dst net CIDR      src|dst port P      src|dst portrange A-B
  src|dst net @SET       (a set the --rules file declares with [[set]])
Rules are evaluated in order, first match wins: the --rules file's rules first, then
--drop/--pass in command-line order. A frame whose IP header cannot be parsed is passed
and counted as malformed (the host cannot parse it either). A packet whose TCP/UDP header
cannot be reached is unclassifiable (see --unclassifiable); later fragments take their
first fragment's verdict.

Examples:
  xdpsieve run -i eth0 --drop 'udp src port 53' -w dropped.pcap
  xdpsieve run -i eth0 --rules fw.toml --capture all --format pcapng -w - | tshark -r -

Signals:
  SIGINT, SIGTERM   detach, write the closing blocks, print the summary, exit
  SIGUSR1, SIGUSR2  print a status line to stderr (as --stats-interval does) and go on
  SIGHUP            reload the rules (as `xdpsieve reload`: see its --help) and go on
A capture or log output that fails (disk full, I/O error, the reader of -w - gone) stops
with one line on stderr; filtering goes on, and the records not written are counted.";

/// `--unclassifiable`: what happens to packets the rules cannot judge on their ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Unclassifiable {
    /// Let the rules judge them on the fields that parsed (port rules never match).
    Pass,
    /// Drop them before any rule: nothing can slip past a port rule.
    Drop,
}

impl Unclassifiable {
    fn action(self) -> Action {
        match self {
            Unclassifiable::Pass => Action::Pass,
            Unclassifiable::Drop => Action::Drop,
        }
    }
}

#[derive(Args)]
#[command(after_help = FILE_HELP)]
struct CheckArgs {
    /// The TOML rule file to check.
    #[arg(required_unless_present_any = ["drop", "pass"])]
    file: Option<PathBuf>,

    /// Also check a rule as `run --drop EXPR` adds it (after the file's). Repeatable.
    #[arg(long, value_name = "EXPR")]
    drop: Vec<String>,

    /// Also check a rule as `run --pass EXPR` adds it. Repeatable.
    #[arg(long, value_name = "EXPR")]
    pass: Vec<String>,
}

const FILE_HELP: &str = r#"Rule file format (TOML):
  default = "pass"            # verdict when no rule matches: "pass" or "drop"

  [[set]]                     # an address set (at most 64), IPv4 and IPv6 mixed
  name = "blocklist"          # letters, digits, _ . - (at most 64); rules say "@blocklist"
  file = "drop.netset"        # one prefix or address per line, '#'/';' comments (FireHOL
                              # .netset, Spamhaus DROP); relative to this file's folder
  # or: prefixes = ["198.51.100.0/24", "2001:db8:bad::/48"]

  [[rule]]
  id = 10                     # optional; unique, nonzero; assigned in order when absent
  name = "block-dns"          # optional; shown in captures and counters (visible
                              # characters only, at most 128)
  action = "drop"             # required: "drop" or "pass"
  protocol = "udp"            # tcp, udp, icmp, icmp6, or a number
  family = "ipv4"             # optional: ipv4 or ipv6 (implied by addresses)
  src = "198.51.100.0/24"     # address or CIDR, IPv4 or IPv6, or a set: "@blocklist"
  dst = "192.0.2.2"
  src_port = 53               # port or "low-high" (tcp and udp only)
  dst_port = "1024-65535"
  log = true                  # log every packet this rule decides (see run --log)
  log_rate = "100/s"          # limit on this rule's records: N/s, N/m, N/h, 0 = none"#;

#[derive(Args)]
#[command(after_help = STOP_HELP)]
struct StopArgs {
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
If that process died and left the firewall in force, stop removes the pinned link (which
detaches the program) and the pins. Run it in the network namespace the firewall runs in.
`ip link set dev IFACE xdp off` does not remove a firewall attached through a bpf_link.";

#[derive(Args)]
#[command(after_help = RELOAD_HELP)]
struct ReloadArgs {
    /// Interface of the firewall to reload [default: the only one running].
    #[arg(short = 'i', long = "interface", value_name = "IFACE", value_parser = flags::parse_interface_name)]
    interface: Option<String>,
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
`xdpsieve status` shows the rule generation, when it was loaded and the last reload's result.";

#[derive(Args)]
struct StatusArgs {
    /// Only this interface [default: every running instance].
    #[arg(short = 'i', long = "interface", value_name = "IFACE", value_parser = flags::parse_interface_name)]
    interface: Option<String>,

    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
#[command(after_help = SET_HELP)]
struct SetArgs {
    #[command(subcommand)]
    op: SetCommand,
}

#[derive(Subcommand)]
enum SetCommand {
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
struct SetNameArgs {
    /// The set, as named in the rule file (`[[set]] name`); `@name` works too.
    #[arg(value_name = "NAME")]
    name: String,

    /// The firewall's interface; needed only when several xdpsieve instances run.
    #[arg(short = 'i', long = "interface", value_name = "IFACE", value_parser = flags::parse_interface_name)]
    interface: Option<String>,
}

#[derive(Args)]
struct SetChangeArgs {
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
struct SetAddArgs {
    #[command(flatten)]
    change: SetChangeArgs,

    /// Remove the entries again after this long: 90s, 10m, 1h30m, 7d [default: never].
    #[arg(long, value_name = "DURATION", value_parser = xdpsieve::configure::sets::live::text::parse_timeout)]
    timeout: Option<Duration>,
}

#[derive(Args)]
struct SetListArgs {
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

#[derive(Args)]
struct DemoArgs {
    /// Where to write the demo's capture.
    #[arg(short = 'w', value_name = "FILE", default_value = "xdpsieve-demo.pcap")]
    write: PathBuf,

    /// DNS responses to send (1-10000).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    responses: u32,
}

fn parse_size(text: &str) -> Result<u32, String> {
    let (digits, unit) = match text
        .trim()
        .char_indices()
        .find(|(_, c)| !c.is_ascii_digit())
    {
        Some((i, _)) => text.trim().split_at(i),
        None => (text.trim(), ""),
    };
    let value: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size"))?;
    let scale: u64 = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        other => return Err(format!("unknown size unit `{other}` (use K, M or G)")),
    };
    let bytes = value
        .checked_mul(scale)
        .filter(|&b| b <= 1 << 31)
        .ok_or_else(|| format!("`{text}` is too large (at most 2G)"))?;
    if !bytes.is_power_of_two() || bytes < 4096 {
        return Err(format!("`{text}` must be a power of two of at least 4K"));
    }
    Ok(bytes as u32)
}

/// Prints `text` (possibly several lines) with the characters of each line escaped.
fn eprint_escaped(text: &str) {
    let lines: Vec<_> = text.split('\n').map(escape).collect();
    eprint!("{}", lines.join("\n"));
}

fn main() -> ExitCode {
    let matches = match Cli::command().try_get_matches() {
        Ok(matches) => matches,
        Err(e) if !e.use_stderr() => e.exit(),
        // clap quotes the bad value in its error; it must not reach the terminal raw.
        Err(e) => {
            eprint_escaped(&e.render().to_string());
            return ExitCode::from(2);
        }
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let result = match cli.command {
        Command::Run(args) => {
            let sub = matches
                .subcommand_matches("run")
                .cloned()
                .unwrap_or_default();
            run(*args, &sub)
        }
        Command::CheckRules(args) => {
            let sub = matches
                .subcommand_matches("check-rules")
                .cloned()
                .unwrap_or_default();
            check_rules(&args, &sub)
        }
        Command::Reload(args) => reload(&args),
        Command::Stop(args) => stop(&args),
        Command::Status(args) => status(&args),
        Command::Set(args) => set(args),
        Command::Demo(args) => xdpsieve::demo::run(&args.write, args.responses),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprint_escaped(&format!("xdpsieve: error: {e:#}\n"));
            ExitCode::FAILURE
        }
    }
}

fn reload(args: &ReloadArgs) -> Result<()> {
    check_privileges()?;
    let outcome = xdpsieve::reload::request::request(args.interface.as_deref())?;
    if !outcome.ok {
        bail!("reload failed: {}", outcome.message);
    }
    println!("xdpsieve: reloaded: {}", escape(&outcome.message));
    Ok(())
}

fn stop(args: &StopArgs) -> Result<()> {
    check_privileges()?;
    println!("{}", xdpsieve::stop::stop(&args.interface)?);
    Ok(())
}

/// Turns `xdpsieve set ...` into a plan for the library.
fn set(args: SetArgs) -> Result<()> {
    use xdpsieve::configure::sets::live::command::{SetOp, SetPlan};
    check_privileges()?;
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
    println!("{}", xdpsieve::configure::sets::live::command::run(&plan)?);
    Ok(())
}

fn status(args: &StatusArgs) -> Result<()> {
    let statuses = xdpsieve::status::read_status(args.interface.as_deref())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&statuses)?);
    } else {
        print!("{}", xdpsieve::status::render(&statuses));
    }
    Ok(())
}

fn check_rules(args: &CheckArgs, matches: &ArgMatches) -> Result<()> {
    let set = rule_sources(args.file.as_deref(), &args.drop, &args.pass, None, matches).load()?;
    warn_about(&set);
    println!(
        "{}: {} rules, {} sets, default {}",
        args.file
            .as_deref()
            .map_or_else(|| "command line".into(), escape_path),
        set.rules.len(),
        set.sets.len(),
        set.default_action
    );
    for rule in &set.rules {
        println!(
            "  {:>4}  {:<24} {:<4}  {}",
            rule.id,
            escape(&rule.name),
            rule.action,
            rule.conditions_with(&set.sets)
        );
    }
    print!("{}", set.describe_sets());
    Ok(())
}

/// Where the rules come from: the file, then `drop` and `pass` in command-line order (from
/// `matches`), then `default`. A reload reads them again from the same sources.
fn rule_sources(
    file: Option<&std::path::Path>,
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

/// Checks the run arguments against each other and hands the plan to the library.
fn run(args: RunArgs, matches: &ArgMatches) -> Result<()> {
    let sources = rule_sources(
        args.rules.as_deref(),
        &args.drop,
        &args.pass,
        args.default,
        matches,
    );
    let rules = sources.load()?;
    warn_about(&rules);
    let capture_which = args.capture.unwrap_or(if args.write.is_some() {
        Which::Dropped
    } else {
        Which::None
    });
    let capture_mask = capture_which.mask();
    let log_mask = args.log.mask();
    let logging = log_mask != 0 || rules.rules.iter().any(|r| r.log);
    if capture_mask != 0 && args.write.is_none() {
        bail!(
            "--capture {} needs a capture file: give -w FILE (or -w - for standard output)",
            flags::value_name(capture_which)
        );
    }
    if capture_mask == 0 && args.count.is_some() {
        bail!("-c counts captured packets, but nothing is captured (give -w FILE)");
    }
    if logging && args.log_file.is_none() && args.write.as_deref() == Some("-") {
        bail!("the capture goes to standard output, so the event log cannot: give --log-file FILE");
    }
    xdpsieve::session::run(RunPlan {
        rules,
        sources: sources.absolute(),
        interfaces: args.interfaces,
        capture: capture_which,
        write: args.write,
        format: args.format,
        snaplen: args.snaplen,
        count: args.count,
        log: args.log,
        log_format: args.log_format,
        log_file: args.log_file,
        log_rate: args.log_rate,
        transport: args.transport,
        mode: args.mode,
        ring_size: args.ring_size,
        metrics: args.metrics,
        stats_interval: args.stats_interval.map(Duration::from_secs_f64),
        quiet: args.quiet,
        unclassifiable: args.unclassifiable.map(Unclassifiable::action),
    })
}

/// Lines of set files accepted with a change (host bits masked): said, not fatal.
fn warn_about(rules: &xdpsieve::rules::RuleSet) {
    for warning in &rules.warnings {
        eprintln!("warning: {warning}");
    }
}
