//! `xdpsieve run`: its flags, and the checks that turn them into a [`RunPlan`] (the rules
//! loaded, the capture and log targets consistent with each other); the library's
//! [`xdpsieve::session::run`] does the rest. With `--config FILE`, the file gives what the
//! command line does not ([`config_file`]), before the same checks.

mod config_file;

use std::{path::PathBuf, time::Duration};

use anyhow::{Context as _, Result, bail};
use clap::{ArgMatches, Args};
use xdpsieve::{
    configure::capture_filter::{CompiledFilter, FilterEngine},
    configure::config::Config,
    configure::flags,
    configure::loader::AttachMode,
    configure::loader::Transport,
    configure::rules::{Action, Rate, RuleSet},
    instance::recipe::RuleSources,
    session::plan::{RunPlan, Which},
    write::capture::Format,
    write::event_log::LogFormat,
};
use xdpsieve_common::MAX_SNAPLEN;

use xdpsieve::write::rotation::{MEGABYTE, RotationPlan};

use crate::rule_input::{expressions, rule_sources, warn_about};

#[derive(Args)]
#[command(after_help = RUN_HELP)]
pub(crate) struct RunArgs {
    /// Interface to attach to; repeat (or separate with commas) for several.
    #[arg(
        short = 'i',
        long = "interface",
        value_name = "IFACE",
        required_unless_present = "config",
        value_delimiter = ',',
        value_parser = flags::parse_interface_name
    )]
    interfaces: Vec<String>,

    /// Read the run's settings and rules from a TOML configuration file (e.g.
    /// /etc/xdpsieve/xdpsieve.toml; `xdpsieve check-config --help` lists its keys). A flag
    /// given here overrides the file's key; --rules replaces the file's rules, and
    /// --drop/--pass add rules after them.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// At the end of the run (SIGINT, SIGTERM, -c reached), leave the firewall in force,
    /// pinned, as after a crash, instead of removing it: the next `xdpsieve run` takes it
    /// over without a gap; `xdpsieve stop -i IFACE` removes it.
    #[arg(long)]
    keep_on_stop: bool,

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

    /// Rotate by size: before writing a packet, a capture file already larger than MB
    /// million bytes is closed and a new one opened, named as tcpdump names them: the -w
    /// name, then FILE1, FILE2, ... (with -W, FILE0 to FILE<N-1>, zero-padded).
    #[arg(
        short = 'C',
        value_name = "MB",
        value_parser = clap::value_parser!(u64).range(1..=u64::MAX / MEGABYTE)
    )]
    file_size: Option<u64>,

    /// Rotate by time: the first packet SECS seconds or more after a file was opened starts
    /// a new one. The -w name is a strftime(3) pattern, formatted in local time when each
    /// file opens (e.g. -w 'drops-%Y%m%d-%H%M%S.pcap'); without one, each file overwrites
    /// the last, as with tcpdump.
    #[arg(short = 'G', value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    rotate_seconds: Option<u64>,

    /// With -C: keep a ring of N files, overwriting the oldest; with a full disk, the
    /// oldest file of the ring is removed to make room before a write is given up. With
    /// -G alone: stop after N files (the run ends, as with -c).
    #[arg(short = 'W', value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    file_count: Option<u32>,

    /// Run CMD FILE on each finished capture file (with -C or -G), e.g. -z gzip; at the
    /// lowest priority, beside the capture, never holding it up. CMD is one program: give
    /// it a script for flags. Failures and hangs are reported on stderr.
    #[arg(short = 'z', value_name = "CMD")]
    postrotate_command: Option<String>,

    /// Bytes of each packet to capture (1-16384). Longer packets keep their true length.
    #[arg(
        short = 's',
        long = "snaplen",
        value_name = "SNAPLEN",
        default_value_t = MAX_SNAPLEN,
        value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_SNAPLEN))
    )]
    snaplen: u32,

    /// Record 1 in N of the packets selected for capture and logging (the first, then
    /// every Nth, per rule and CPU), for rules without their own `sample`; 1 records all.
    /// What sampling leaves out is counted as sampled_out, not as loss. Applied before
    /// --log-rate.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    sample: u32,

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

    /// How records reach userspace: ringbuf (captures: a ring per CPU; events: one ring)
    /// or perf (one buffer per CPU; slower, see the README).
    #[arg(long, value_name = "TRANSPORT", default_value = "ringbuf")]
    transport: Transport,

    /// XDP attach mode: native (in the driver), skb (generic), or auto (native, else skb).
    #[arg(long, value_name = "MODE", default_value = "auto")]
    mode: AttachMode,

    /// Size of each record buffer (power of two; K, M, G suffixes). Bigger rides out bursts.
    /// The capture rings (one per CPU) and perf's buffers share it out among the CPUs:
    /// each CPU gets the largest power of two in its share. Only the buffers records are sent to
    /// get it: without a capture (or without an event log) that ring is one page.
    #[arg(long, value_name = "BYTES", default_value = "8M", value_parser = flags::parse_size)]
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

    /// Capture only the packets EXPR selects, in tcpdump's filter language (see `man 7
    /// pcap-filter`), e.g. 'tcp port 443 and host 198.51.100.7'. Evaluated in the kernel
    /// before any copy; applies to the event log too unless --log-filter is given.
    #[arg(long, value_name = "EXPR")]
    filter: Option<String>,

    /// Log only the packets EXPR selects (tcpdump's filter language); '' logs all the
    /// rules select, whatever --filter says.
    #[arg(long, value_name = "EXPR")]
    log_filter: Option<String>,

    /// How the kernel runs the filters: translated to eBPF at start (fast), or interpreted
    /// one classic instruction at a time; auto translates and falls back to the interpreter
    /// for what cannot be translated (libpcap's protochain loop, a translation the verifier
    /// refuses), saying so.
    #[arg(long, value_enum, value_name = "ENGINE", default_value_t = FilterEngine::Auto)]
    filter_engine: FilterEngine,

    /// The capture filter as tcpdump takes it: the words after the options, joined with
    /// spaces (instead of --filter).
    #[arg(value_name = "EXPRESSION", trailing_var_arg = true)]
    expression: Vec<String>,
}

const RUN_HELP: &str = "\
The firewall is fail-static: it stays in force (pinned in bpffs; `xdpsieve status --json`
says where) if this process dies in any way (panic, abort, OOM kill, SIGKILL); only the
recording stops. It is removed by SIGINT/SIGTERM to this process (Ctrl-C; with --keep-on-stop
it stays, as after a crash) or by `xdpsieve stop -i IFACE` from another shell, which also
removes a firewall left behind by a process that died. A new `xdpsieve run` on such an
interface takes the firewall over without a gap and carries its counters on (a rule's only to
the same rule: same name, same match). One run at a time owns an interface: another is
refused and told which pid holds it. `xdpsieve reload -i IFACE` (or SIGHUP) reads the rules
again (with --config, from the file) and swaps them in without a gap.

Rule expressions (tcpdump-like; conditions joined by `and`, all must hold):
  [ip|ip6] [tcp|udp|icmp|icmp6|proto N]
  src|dst host ADDR      src|dst net CIDR      src|dst port P      src|dst portrange A-B
  src|dst net @SET       (a set the --rules file declares with [[set]])
Without src/dst, host, net, port and portrange mean either direction, as in tcpdump:
`udp port 53` is source or destination port 53; `host A and port 53` takes every pairing.
Such a rule is one kernel rule per direction (2, or 4), with one id, name and count; the
1024-rule limit counts kernel rules, and its log rate and sampling apply per direction.
Rules are evaluated in order, first match wins: the --rules file's rules first, then
--drop/--pass in command-line order. A frame whose IP header cannot be parsed is passed
and counted as malformed (the host cannot parse it either). A packet whose TCP/UDP header
cannot be reached is unclassifiable (see --unclassifiable); later fragments take their
first fragment's verdict.

Capture filters (tcpdump's language, evaluated in the kernel; packets it does not select
cost no copy and are counted as `not selected`, not as lost):
  xdpsieve run -i eth0 --drop 'udp' -w dropped.pcap 'udp port 53 and not net 192.0.2.0/24'

Examples:
  xdpsieve run -i eth0 --drop 'udp src port 53' -w dropped.pcap
  xdpsieve run -i eth0 --drop 'host 198.51.100.7' --drop 'udp port 53' -w dropped.pcap
  xdpsieve run -i eth0 --rules fw.toml -w drops.pcap -C 100 -W 10 -z gzip
  xdpsieve run -i eth0 --rules fw.toml -w 'drops-%Y%m%d-%H%M.pcapng' --format pcapng -G 3600
  xdpsieve run -i eth0 --rules fw.toml --capture all --format pcapng -w - | tshark -r -

Signals:
  SIGINT, SIGTERM   detach (unless --keep-on-stop), write the closing blocks, print the
                    summary, exit
  SIGQUIT           hand over: as SIGTERM with --keep-on-stop (the firewall stays in force
                    for the next run to take over without a gap); systemctl restart sends it
  SIGUSR1, SIGUSR2  print a status line to stderr (as --stats-interval does) and go on
  SIGHUP            reload the rules (as `xdpsieve reload`: see its --help) and go on
A capture or log output that fails (disk full, I/O error, the reader of -w - gone) stops
with one line on stderr; filtering goes on, and the records not written are counted. With
-C/-G and -W, a full disk first removes the oldest finished file of the ring.";

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

/// `-C`, `-G`, `-W`, `-z`, checked against the capture they rotate.
fn rotation_plan(args: &RunArgs, capturing: bool) -> Result<Option<RotationPlan>> {
    let rotates = args.file_size.is_some() || args.rotate_seconds.is_some();
    if !rotates {
        if args.file_count.is_some() {
            bail!("-W limits the files of a rotating capture: give -C MB or -G SECS with it");
        }
        if args.postrotate_command.is_some() {
            bail!(
                "-z runs on each file a rotating capture finishes: give -C MB or -G SECS with it"
            );
        }
        return Ok(None);
    }
    match args.write.as_deref() {
        None => bail!("-C and -G rotate the capture file: give -w FILE"),
        Some("-") => bail!(
            "-C and -G rotate capture files, and standard output (-w -) is no file: give -w FILE, \
             or rotate the output of the program reading the pipe"
        ),
        Some(_) if !capturing => {
            bail!("-C and -G rotate the capture, but --capture none captures nothing")
        }
        Some(_) => {}
    }
    Ok(Some(RotationPlan {
        size: args.file_size.map(|mb| mb * MEGABYTE),
        period: args.rotate_seconds.map(Duration::from_secs),
        files: args.file_count,
        command: args.postrotate_command.clone(),
    }))
}

/// Checks the run arguments (with `--config`, laid over the file's values) against each
/// other and turns them into the plan the library runs (`matches` says which arguments the
/// command line gave, and the order of --drop and --pass).
pub(crate) fn plan(mut args: RunArgs, matches: &ArgMatches) -> Result<RunPlan> {
    let config = args.config.as_deref().map(Config::read).transpose()?;
    let Some(config) = config else {
        let sources = rule_sources(
            args.rules.as_deref(),
            &args.drop,
            &args.pass,
            args.default,
            matches,
        );
        let rules = sources.load()?;
        return checked(args, sources, rules);
    };
    config_file::fill(&mut args, &config, matches)?;
    if args.interfaces.is_empty() {
        bail!(
            "{}: no interface to filter on: set interfaces = [\"eth0\"] (the interfaces to \
             attach to) in the file, or give -i IFACE",
            config.path.display()
        );
    }
    // The file's rules, read again from it at each reload, unless --rules replaces them.
    let cli_rules = expressions(&args.drop, &args.pass, matches);
    let sources = match &args.rules {
        Some(file) => RuleSources::new(Some(file), cli_rules, args.default),
        None => RuleSources::from_config(&config.path, cli_rules, args.default),
    };
    // Errors in the rules name their file and line; those of the arguments together name
    // flags, which the file may have given.
    let rules = sources.load()?;
    let path = config.path.clone();
    checked(args, sources, rules).with_context(|| {
        format!(
            "{} with the command line (`xdpsieve check-config --help` gives each key's flag)",
            path.display()
        )
    })
}

/// [`plan`] once the arguments are complete and `rules` read from `sources`: the
/// arguments checked against each other.
fn checked(args: RunArgs, sources: RuleSources, rules: RuleSet) -> Result<RunPlan> {
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
    let rotation = rotation_plan(&args, capture_mask != 0)?;
    let (capture_filter, log_filter) = filters(
        args.filter.as_deref(),
        &args.expression,
        args.log_filter.as_deref(),
    )?;
    if let Some(f) = &capture_filter
        && capture_mask == 0
        && !logging
    {
        bail!(
            "the capture filter `{}` chooses what is recorded, but nothing is: give -w FILE \
             (or --log)",
            f.expression
        );
    }
    if args.log_filter.is_some() && !logging {
        bail!("--log-filter chooses what is logged, but nothing is: give --log WHICH");
    }
    Ok(RunPlan {
        rules,
        sources: sources.absolute(),
        interfaces: args.interfaces,
        capture: capture_which,
        write: args.write,
        rotation,
        format: args.format,
        snaplen: args.snaplen,
        sample: args.sample,
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
        capture_filter,
        log_filter,
        filter_engine: args.filter_engine,
        keep_on_stop: args.keep_on_stop,
    })
}

/// The capture filter (`--filter` or the trailing expression, not both) and the log's,
/// compiled: a bad expression stops here, before anything is loaded.
fn filters(
    flag: Option<&str>,
    trailing: &[String],
    log_flag: Option<&str>,
) -> Result<(Option<CompiledFilter>, Option<CompiledFilter>)> {
    let trailing = (!trailing.is_empty()).then(|| trailing.join(" "));
    let capture = match (flag, trailing.as_deref()) {
        (Some(_), Some(t)) => bail!(
            "a capture filter is given twice, with --filter and after the options (`{t}`): \
             give one"
        ),
        (Some(e), None) | (None, Some(e)) => CompiledFilter::compile(e)?,
        (None, None) => None,
    };
    let log = match log_flag {
        Some(e) => CompiledFilter::compile(e)?,
        None => capture.clone(),
    };
    Ok((capture, log))
}
