//! The `xdpsieve` command: `run` (filter and capture), `check-rules`, and `demo`.

use std::{
    fs::File,
    io::{self, BufWriter, IsTerminal as _, Write},
    path::PathBuf,
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use clap::{ArgMatches, Args, CommandFactory as _, FromArgMatches as _, Parser, Subcommand};
use xdpsieve::{
    capture::{CaptureWriter, Format, Interface},
    event::{EventFormatter, LogFormat},
    loader::{AttachMode, Firewall, LoaderError, Settings},
    recorder::{EventLog, Recorder},
    rules::{Action, Rate, RuleSet},
    source::{Transport, wait_readable},
    stats::{self, Snapshot, WriterStats},
    status::{Meta, MetaInterface, MetaRule},
};
use xdpsieve_common::{MAX_SNAPLEN, capture};

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
    /// Show a running firewall's rules, hit counts, counters, attach mode and uptime,
    /// from another shell (same network namespace), without disturbing it.
    Status(StatusArgs),
    /// Run a self-contained demonstration in two throwaway network namespaces.
    Demo(DemoArgs),
}

#[derive(Args)]
#[command(after_help = RULE_HELP)]
struct RunArgs {
    /// Interface to attach to; repeat (or separate with commas) for several.
    #[arg(
        short = 'i',
        long = "interface",
        value_name = "IFACE",
        required = true,
        value_delimiter = ','
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
    #[arg(short = 'c', value_name = "COUNT")]
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

    /// Print a status line (rates per verdict, losses) to stderr every SECS seconds.
    #[arg(long, value_name = "SECS")]
    stats_interval: Option<f64>,

    /// Do not print the start-up line.
    #[arg(short = 'q', long)]
    quiet: bool,
}

const RULE_HELP: &str = "\
Rule expressions (tcpdump-like; conditions joined by `and`, all must hold):
  [ip|ip6] [tcp|udp|icmp|icmp6|proto N]
  src|dst host ADDR      src|dst net CIDR      src|dst port P      src|dst portrange A-B
Rules are evaluated in order, first match wins: the --rules file's rules first, then
--drop/--pass in command-line order. A frame whose IP header cannot be parsed is passed
and counted as malformed (the host cannot parse it either). A packet whose TCP/UDP header
cannot be reached is unclassifiable (see --unclassifiable); later fragments take their
first fragment's verdict.

Examples:
  xdpsieve run -i eth0 --drop 'udp src port 53' -w dropped.pcap
  xdpsieve run -i eth0 --rules fw.toml --capture all --format pcapng -w - | tshark -r -";

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

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Which {
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
    fn mask(self) -> u32 {
        match self {
            Which::Dropped => capture::DROPPED,
            Which::Passed => capture::PASSED,
            Which::All => capture::DROPPED | capture::PASSED,
            Which::None => 0,
        }
    }
}

#[derive(Args)]
#[command(after_help = FILE_HELP)]
struct CheckArgs {
    /// The TOML rule file to check.
    file: PathBuf,
}

const FILE_HELP: &str = r#"Rule file format (TOML):
  default = "pass"            # verdict when no rule matches: "pass" or "drop"

  [[rule]]
  id = 10                     # optional; unique, nonzero; assigned in order when absent
  name = "block-dns"          # optional; shown in captures and counters
  action = "drop"             # required: "drop" or "pass"
  protocol = "udp"            # tcp, udp, icmp, icmp6, or a number
  family = "ipv4"             # optional: ipv4 or ipv6 (implied by addresses)
  src = "198.51.100.0/24"     # address or CIDR, IPv4 or IPv6
  dst = "192.0.2.2"
  src_port = 53               # port or "low-high" (tcp and udp only)
  dst_port = "1024-65535"
  log = true                  # log every packet this rule decides (see run --log)
  log_rate = "100/s"          # limit on this rule's records: N/s, N/m, N/h, 0 = none"#;

#[derive(Args)]
struct StatusArgs {
    /// Only this interface [default: every running instance].
    #[arg(short = 'i', long = "interface", value_name = "IFACE")]
    interface: Option<String>,

    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct DemoArgs {
    /// Where to write the demo's capture.
    #[arg(short = 'w', value_name = "FILE", default_value = "xdpsieve-demo.pcap")]
    write: PathBuf,

    /// DNS responses to send.
    #[arg(long, default_value_t = 5)]
    responses: u32,
}

/// Output buffer of the capture file and the event log. Small on purpose: the records are
/// copied from the ring into it and from it into the page cache, and a buffer that stays
/// in the CPU's cache makes both copies cheap. With 1 MiB, 512-byte captures cost the
/// writer 2-4x the CPU per packet at full rate (and lost packets); with 16 KiB it keeps up
/// where tcpdump does (`cargo xtask bench`).
const WRITE_BUFFER: usize = 16 << 10;

/// Records in one drain above which the reader does not pause before the next: it is
/// behind, and a millisecond's pause lets the ring fill further.
const BUSY_DRAIN: u64 = 4096;

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

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
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
        Command::CheckRules(args) => check_rules(&args),
        Command::Status(args) => status(&args),
        Command::Demo(args) => xdpsieve::demo::run(&args.write, args.responses),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xdpsieve: error: {e:#}");
            ExitCode::FAILURE
        }
    }
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

fn check_rules(args: &CheckArgs) -> Result<()> {
    let set = RuleSet::from_file(&args.file)?;
    println!(
        "{}: {} rules, default {}",
        args.file.display(),
        set.rules.len(),
        set.default_action
    );
    for rule in &set.rules {
        println!(
            "  {:>4}  {:<24} {:<4}  {}",
            rule.id,
            rule.name,
            rule.action,
            rule.conditions()
        );
    }
    Ok(())
}

/// Builds the rule set: the file's rules, then --drop/--pass in command-line order.
fn build_rules(args: &RunArgs, matches: &ArgMatches) -> Result<RuleSet> {
    let mut set = match &args.rules {
        Some(path) => RuleSet::from_file(path)?,
        None => RuleSet::default(),
    };
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
    let mut cli_rules = indexed("drop", Action::Drop, &args.drop);
    cli_rules.extend(indexed("pass", Action::Pass, &args.pass));
    cli_rules.sort_by_key(|(index, _, _)| *index);
    for (_, action, expr) in cli_rules {
        set.push_expression(action, &expr)?;
    }
    if let Some(default) = args.default {
        set.default_action = default;
    }
    Ok(set)
}

/// Fails early, and clearly, when the process cannot load BPF programs.
fn check_privileges() -> Result<()> {
    const CAP_NET_ADMIN: u32 = 12;
    const CAP_SYS_ADMIN: u32 = 21;
    const CAP_BPF: u32 = 39;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let Some(cap_eff) = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
    else {
        return Ok(()); // cannot tell; the kernel will say
    };
    let has = |cap: u32| cap_eff & (1 << cap) != 0;
    if !has(CAP_NET_ADMIN) || !(has(CAP_BPF) || has(CAP_SYS_ADMIN)) {
        bail!(LoaderError::PermissionDenied);
    }
    Ok(())
}

fn open_output(path: &str) -> Result<Box<dyn Write>> {
    if path == "-" {
        let stdout = io::stdout();
        if stdout.is_terminal() {
            bail!(
                "refusing to write a binary capture to a terminal; redirect `-w -` to a file or a pipe"
            );
        }
        return Ok(Box::new(stdout.lock()));
    }
    let file = File::create(path).with_context(|| format!("cannot open output file {path}"))?;
    Ok(Box::new(file))
}

fn run(args: RunArgs, matches: &ArgMatches) -> Result<()> {
    let rules = build_rules(&args, matches)?;
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
            "--capture {capture_which:?} needs a capture file: give -w FILE (or -w - for standard output)"
        );
    }
    if capture_mask == 0 && args.count.is_some() {
        bail!("-c counts captured packets, but nothing is captured (give -w FILE)");
    }
    if logging && args.log_file.is_none() && args.write.as_deref() == Some("-") {
        bail!("the capture goes to standard output, so the event log cannot: give --log-file FILE");
    }
    if let Some(secs) = args.stats_interval
        && !(secs > 0.0 && secs.is_finite())
    {
        bail!("--stats-interval must be a positive number of seconds");
    }
    check_privileges()?;
    let mut interfaces = Vec::new();
    for name in &args.interfaces {
        let ifindex = xdpsieve::loader::ifindex_of(name)?;
        if interfaces.iter().any(|i: &Interface| i.ifindex == ifindex) {
            bail!("interface {name} given twice");
        }
        interfaces.push(Interface {
            ifindex,
            name: name.clone(),
        });
    }
    // Open the outputs before touching the kernel, so a bad path costs nothing.
    let capture_out = match &args.write {
        Some(path) if capture_mask != 0 => Some(open_output(path)?),
        _ => None,
    };
    let log_out: Option<Box<dyn Write>> = match (&args.log_file, logging) {
        (_, false) => None,
        (Some(path), true) => {
            Some(Box::new(File::create(path).with_context(|| {
                format!("cannot open log file {}", path.display())
            })?))
        }
        (None, true) => Some(Box::new(io::stdout().lock())),
    };

    let settings = Settings {
        rules: rules.clone(),
        capture: capture_mask,
        log: log_mask,
        snaplen: args.snaplen,
        ring_bytes: args.ring_size,
        transport: args.transport,
        default_rate: args.log_rate,
        ifindexes: interfaces.iter().map(|i| i.ifindex).collect(),
        unclassifiable: args.unclassifiable.map(Unclassifiable::action),
    };
    // Before attaching: a signal that arrives once the program is live must end in a clean
    // detach and a summary, not in the default action.
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .context("installing signal handler")?;
    }
    let mut firewall = Firewall::load(&settings)?;
    // Open the record sources before attaching: a perf slot without a reader makes the
    // program's output fail, which would count packets as lost that no buffer refused.
    let mut recorder = match capture_out {
        Some(output) => {
            let out = BufWriter::with_capacity(WRITE_BUFFER, output);
            let writer = CaptureWriter::new(args.format, out, args.snaplen, &interfaces)
                .context("writing the capture file header")?;
            Some(Recorder::new(
                firewall.take_capture_source()?,
                writer,
                &rules,
                args.count,
            ))
        }
        None => None,
    };
    let mut event_log = match log_out {
        Some(out) => {
            let names: Vec<(u32, String)> = interfaces
                .iter()
                .map(|i| (i.ifindex, i.name.clone()))
                .collect();
            let formatter = EventFormatter::new(args.log_format, &rules, &names);
            let out = BufWriter::with_capacity(WRITE_BUFFER, out);
            Some(EventLog::new(firewall.take_event_source()?, formatter, out))
        }
        None => None,
    };
    for interface in &interfaces {
        firewall.attach(&interface.name, args.mode)?;
    }

    let meta = Meta {
        pid: std::process::id(),
        pid_start: xdpsieve::status::process_start(std::process::id()).unwrap_or(0),
        started_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs(),
        version: env!("CARGO_PKG_VERSION").into(),
        interfaces: firewall
            .attachments()
            .iter()
            .map(|a| MetaInterface {
                name: a.interface.clone(),
                ifindex: a.ifindex,
                mode: a.mode.to_string(),
            })
            .collect(),
        transport: format!("{:?}", args.transport).to_lowercase(),
        default_action: rules.default_action.to_string(),
        rules: rules
            .rules
            .iter()
            .map(|r| MetaRule {
                id: r.id,
                name: r.name.clone(),
                action: r.action.to_string(),
                conditions: r.conditions(),
                log: r.log,
                rate: r.rate.unwrap_or(args.log_rate).to_string(),
            })
            .collect(),
    };
    // Removed (pins and description) when this guard drops, at the end of run.
    let _published = xdpsieve::status::publish(&firewall.counter_maps(), &meta)?;
    let _metrics = match args.metrics {
        Some(addr) => {
            let server = xdpsieve::metrics::serve(addr, meta.clone())?;
            if !args.quiet {
                eprintln!("xdpsieve: metrics at http://{}/metrics", server.addr);
            }
            Some(server)
        }
        None => None,
    };
    if !args.quiet {
        let attached: Vec<String> = firewall
            .attachments()
            .iter()
            .map(|a| format!("{} ({})", a.interface, a.mode))
            .collect();
        let target = match &args.write {
            Some(path) if capture_mask != 0 => format!(
                "capturing {} packets to {} ({}, snaplen {})",
                format!("{capture_which:?}").to_lowercase(),
                if path == "-" { "standard output" } else { path },
                args.format,
                args.snaplen
            ),
            _ => "not capturing".into(),
        };
        let log = if logging {
            format!(
                "; logging {} events{}",
                format!("{:?}", args.log).to_lowercase(),
                args.log_file
                    .as_ref()
                    .map(|p| format!(" to {}", p.display()))
                    .unwrap_or_default()
            )
        } else {
            String::new()
        };
        eprintln!(
            "xdpsieve: filtering on {}: {} rules, default {}; {target}{log} (transport {:?})",
            attached.join(", "),
            rules.rules.len(),
            rules.default_action,
            args.transport
        );
    }

    let mut fds = Vec::new();
    fds.extend(recorder.iter().flat_map(|r| r.source().fds()));
    fds.extend(event_log.iter().flat_map(|l| l.source().fds()));
    let interval = args.stats_interval.map(Duration::from_secs_f64);
    let mut last_stats = (std::time::Instant::now(), Snapshot::default());
    let mut loop_result: io::Result<()> = Ok(());
    while !stop.load(Ordering::Relaxed) && !recorder.as_ref().is_some_and(Recorder::limit_reached) {
        let step = (|| -> io::Result<()> {
            if wait_readable(&fds, Duration::from_millis(100))? {
                let mut drained = 0;
                if let Some(r) = recorder.as_mut() {
                    drained += r.drain()?;
                }
                if let Some(l) = event_log.as_mut() {
                    drained += l.drain()?;
                }
                if drained > 0 && drained < BUSY_DRAIN {
                    // Let records gather: under steady traffic a wakeup, a write and a
                    // flush per record would cost more than the record itself. The
                    // buffers hold far more than a millisecond of traffic. A drain this
                    // large means the reader is behind: it goes straight on instead.
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            Ok(())
        })();
        if let Err(e) = step {
            loop_result = Err(e);
            break;
        }
        if let Some(interval) = interval
            && last_stats.0.elapsed() >= interval
        {
            let perf_lost = recorder.as_ref().map_or(0, |r| r.source().perf_lost())
                + event_log.as_ref().map_or(0, |l| l.source().perf_lost());
            let now = firewall.snapshot(rules.rules.len(), perf_lost)?;
            let secs = last_stats.0.elapsed().as_secs_f64();
            eprintln!("{}", stats::interval_line(&last_stats.1, &now, secs));
            last_stats = (std::time::Instant::now(), now);
        }
    }

    // Detach first, then drain: every record the program produced is accounted for.
    firewall.detach_all();
    let mut writer_stats = WriterStats::default();
    let mut perf_lost = 0;
    if let Some(mut log) = event_log {
        if loop_result.is_ok() {
            loop_result = log.drain().map(|_| ());
        }
        (writer_stats.logged, writer_stats.undecodable) = log.counts();
        perf_lost += log.source().perf_lost();
    }
    if let Some(mut r) = recorder {
        if loop_result.is_ok() {
            loop_result = r.drain().map(|_| ());
        }
        let capture_stats = r.stats();
        writer_stats.written = capture_stats.written;
        writer_stats.past_count = capture_stats.past_count;
        writer_stats.undecodable += capture_stats.undecodable;
        perf_lost += r.source().perf_lost();
        let per_interface = firewall.interface_counters()?;
        if loop_result.is_ok() {
            loop_result = r.finish().and_then(|mut writer| {
                for (interface, counters) in interfaces.iter().zip(&per_interface) {
                    writer.write_interface_statistics(interface.ifindex, counters)?;
                }
                writer.flush()
            });
        }
    }
    let snapshot = firewall.snapshot(rules.rules.len(), perf_lost)?;
    eprint!("{}", stats::summary(&snapshot, &writer_stats, &rules));
    match loop_result {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
            eprintln!("xdpsieve: the reader of standard output went away; stopped");
            Ok(())
        }
        Err(e) => Err(e).context("writing the capture or the log"),
        Ok(()) => Ok(()),
    }
}
