//! The command line over the configuration file: a flag given wins (even one given its
//! default value), the file fills the rest, built-in defaults stay where neither speaks;
//! the rules stay the file's (read again at a reload) unless --rules replaces them; and
//! every flag of `run` has a key or a reason not to.

use std::{fs, path::Path};

use clap::{ArgMatches, CommandFactory as _, FromArgMatches as _};
use xdpsieve::{
    configure::capture_filter::FilterEngine,
    configure::config::{Config, keys},
    configure::loader::{AttachMode, Transport},
    configure::rules::Rate,
    instance::recipe::FileKind,
    session::plan::Which,
    write::capture::Format,
    write::event_log::LogFormat,
};

use super::fill;
use crate::{
    args::Cli,
    run::{RunArgs, Unclassifiable, plan},
};

/// `xdpsieve run ARGS` as clap parses it.
fn run_args(args: &[&str]) -> (RunArgs, ArgMatches) {
    let argv = ["xdpsieve", "run"].iter().chain(args).copied();
    let matches = Cli::command()
        .try_get_matches_from(argv)
        .unwrap_or_else(|e| panic!("{e}"));
    let run = matches.subcommand_matches("run").expect("run").clone();
    (RunArgs::from_arg_matches(&run).expect("run args"), run)
}

fn config(text: &str) -> Config {
    Config::parse(text.into(), Path::new("/etc/xs/xdpsieve.toml")).unwrap_or_else(|e| panic!("{e}"))
}

/// Every key but the rules, each set to something other than its built-in default.
const FILE: &str = r#"
interfaces = ["eth7"]
mode = "skb"
transport = "perf"
ring_size = "1M"
keep_on_stop = true
quiet = true
unclassifiable = "pass"
[capture]
which = "all"
file = "drops.pcapng"
format = "pcapng"
snaplen = 96
sample = 10
filter = "udp"
filter_engine = "interpreter"
[capture.rotation]
size_mb = 100
seconds = 3600
files = 24
command = "gzip"
[log]
which = "dropped"
file = "events.jsonl"
format = "json"
rate = "100/s"
filter = "icmp"
[metrics]
listen = "127.0.0.1:9470"
stats_interval = 2
"#;

#[test]
fn the_file_fills_what_the_command_line_leaves() {
    let (mut args, matches) = run_args(&["--config", "/etc/xs/xdpsieve.toml"]);
    fill(&mut args, &config(FILE), &matches).unwrap();
    assert_eq!(args.interfaces, ["eth7"]);
    assert_eq!(
        (args.mode, args.transport),
        (AttachMode::Skb, Transport::Perf)
    );
    assert_eq!(args.ring_size, 1 << 20);
    assert!(args.keep_on_stop && args.quiet);
    assert_eq!(args.unclassifiable, Some(Unclassifiable::Pass));
    assert_eq!(args.capture, Some(Which::All));
    assert_eq!(args.write.as_deref(), Some("/etc/xs/drops.pcapng"));
    assert_eq!(args.format, Format::Pcapng);
    assert_eq!((args.snaplen, args.sample), (96, 10));
    assert_eq!(args.filter.as_deref(), Some("udp"));
    assert_eq!(args.filter_engine, FilterEngine::Interpreter);
    assert_eq!(
        (args.file_size, args.rotate_seconds, args.file_count),
        (Some(100), Some(3600), Some(24))
    );
    assert_eq!(args.postrotate_command.as_deref(), Some("gzip"));
    assert_eq!(args.log, Which::Dropped);
    assert_eq!(args.log_format, LogFormat::Json);
    assert_eq!(
        args.log_file.as_deref(),
        Some(Path::new("/etc/xs/events.jsonl"))
    );
    assert_eq!(args.log_rate, "100/s".parse::<Rate>().unwrap());
    assert_eq!(args.log_filter.as_deref(), Some("icmp"));
    assert_eq!(args.metrics, Some("127.0.0.1:9470".parse().unwrap()));
    assert_eq!(args.stats_interval, Some(2.0));
}

#[test]
fn a_flag_given_wins_even_at_its_default_value() {
    let (mut args, matches) = run_args(&[
        "--config",
        "x.toml",
        "-i",
        "fw0",
        "--mode",
        "auto",
        "--transport",
        "ringbuf",
        "--ring-size",
        "8M",
        "--unclassifiable",
        "drop",
        "--capture",
        "dropped",
        "-w",
        "cli.pcap",
        "--format",
        "pcap",
        "-s",
        "16384",
        "--sample",
        "1",
        "--filter",
        "tcp",
        "--filter-engine",
        "auto",
        "-C",
        "5",
        "-G",
        "60",
        "-W",
        "3",
        "-z",
        "xz",
        "--log",
        "none",
        "--log-format",
        "text",
        "--log-file",
        "cli.log",
        "--log-rate",
        "0",
        "--log-filter",
        "",
        "--metrics",
        "[::1]:1",
        "--stats-interval",
        "5",
    ]);
    fill(&mut args, &config(FILE), &matches).unwrap();
    assert_eq!(args.interfaces, ["fw0"]);
    assert_eq!(
        (args.mode, args.transport, args.ring_size),
        (AttachMode::Auto, Transport::RingBuf, 8 << 20)
    );
    assert_eq!(args.unclassifiable, Some(Unclassifiable::Drop));
    assert_eq!(args.capture, Some(Which::Dropped));
    assert_eq!(args.write.as_deref(), Some("cli.pcap"));
    assert_eq!(args.format, Format::Pcap);
    assert_eq!((args.snaplen, args.sample), (16384, 1));
    assert_eq!(args.filter.as_deref(), Some("tcp"));
    assert_eq!(args.filter_engine, FilterEngine::Auto);
    assert_eq!(
        (args.file_size, args.rotate_seconds, args.file_count),
        (Some(5), Some(60), Some(3))
    );
    assert_eq!(args.postrotate_command.as_deref(), Some("xz"));
    assert_eq!((args.log, args.log_format), (Which::None, LogFormat::Text));
    assert_eq!(args.log_file.as_deref(), Some(Path::new("cli.log")));
    assert_eq!(args.log_rate, Rate::UNLIMITED);
    assert_eq!(args.log_filter.as_deref(), Some(""));
    assert_eq!(args.metrics, Some("[::1]:1".parse().unwrap()));
    assert_eq!(args.stats_interval, Some(5.0));
    // Booleans the file sets stay set: a flag can only turn them on.
    assert!(args.keep_on_stop && args.quiet);
}

#[test]
fn neither_says_and_the_built_in_defaults_stay() {
    let (mut args, matches) = run_args(&["--config", "x.toml", "--keep-on-stop"]);
    fill(&mut args, &config("interfaces = [\"eth0\"]\n"), &matches).unwrap();
    assert_eq!(args.interfaces, ["eth0"]);
    assert!(args.keep_on_stop && !args.quiet);
    assert_eq!(
        (args.mode, args.format, args.snaplen),
        (AttachMode::Auto, Format::Pcap, 16384)
    );
    assert_eq!(
        (args.capture, args.write.as_deref(), args.log),
        (None, None, Which::None)
    );
    assert_eq!((args.metrics, args.stats_interval), (None, None));
}

#[test]
fn the_filter_after_the_options_replaces_the_files() {
    let (mut args, matches) = run_args(&["--config", "x.toml", "udp", "port", "53"]);
    fill(&mut args, &config(FILE), &matches).unwrap();
    assert_eq!(args.filter, None);
    assert_eq!(args.expression, ["udp", "port", "53"]);
}

#[test]
fn a_bad_name_the_binary_reads_is_placed_in_the_file() {
    for (text, place, words) in [
        (
            "[capture]\nwhich = \"some\"\n",
            "2:9",
            "`capture.which` must be one of \"dropped\", \"passed\", \"all\", \"none\"",
        ),
        (
            "[capture]\nformat = \"pcpang\"\n",
            "2:10",
            "`capture.format` must be one of \"pcap\", \"pcapng\"",
        ),
        ("[log]\nwhich = \"x\"\n", "2:9", "`log.which`"),
        (
            "[log]\nformat = \"xml\"\n",
            "2:10",
            "`log.format` must be one of \"text\", \"json\"",
        ),
    ] {
        let (mut args, matches) = run_args(&["--config", "x.toml"]);
        let e = fill(&mut args, &config(text), &matches)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!("/etc/xs/xdpsieve.toml:{place}: {words}")),
            "{e}"
        );
    }
}

#[test]
fn the_plan_reads_the_rules_from_the_file_unless_rules_replaces_them() {
    let dir = std::env::temp_dir().join(format!("xdpsieve-bin-config-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let file = dir.join("xdpsieve.toml");
    let path = file.to_str().unwrap();
    fs::write(
        &file,
        "interfaces = [\"eth0\"]\nkeep_on_stop = true\n[[rule]]\nname = \"f\"\naction = \"drop\"\nprotocol = \"udp\"\n",
    )
    .unwrap();
    fs::write(
        dir.join("cli.toml"),
        "[[rule]]\nname = \"c\"\naction = \"drop\"\nprotocol = \"tcp\"\n",
    )
    .unwrap();
    let plan_of = |cli: &[&str]| {
        let (args, matches) = run_args(cli);
        plan(args, &matches)
    };
    let p = plan_of(&["--config", path, "--drop", "icmp"]).unwrap();
    assert_eq!(p.sources.file_kind, FileKind::Config);
    assert_eq!(p.sources.file.as_deref(), Some(file.as_path()));
    let names: Vec<&str> = p.rules.rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["f", "drop icmp"]);
    assert!(p.keep_on_stop);
    let cli_rules = dir.join("cli.toml");
    let p = plan_of(&["--config", path, "--rules", cli_rules.to_str().unwrap()]).unwrap();
    assert_eq!(p.sources.file_kind, FileKind::Rules);
    assert_eq!(p.rules.rules[0].name, "c");
    // No interface anywhere: said, naming the file.
    fs::write(&file, "[capture]\nsnaplen = 64\n").unwrap();
    let e = format!("{:#}", plan_of(&["--config", path]).unwrap_err());
    assert!(
        e.contains("xdpsieve.toml: no interface to filter on"),
        "{e}"
    );
    assert_eq!(
        plan_of(&["--config", path, "-i", "fw0"])
            .unwrap()
            .interfaces,
        ["fw0"]
    );
    // Checks between arguments run as for flags alone, naming the file.
    fs::write(
        &file,
        "interfaces = [\"eth0\"]\n[capture.rotation]\nsize_mb = 1\n",
    )
    .unwrap();
    let e = format!("{:#}", plan_of(&["--config", path]).unwrap_err());
    assert!(
        e.contains("xdpsieve.toml with the command line") && e.contains("-C and -G rotate"),
        "{e}"
    );
    assert!(plan_of(&["--config", path, "-w", "/tmp/x.pcap"]).is_ok());
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn every_flag_of_run_has_a_key_or_a_reason_not_to() {
    // Flags with no key: the file itself, one-off runs (-c), rules given on the command
    // line (the file has [[rule]]), the filter's other spelling (capture.filter).
    const NO_KEY: [&str; 4] = ["config", "count", "expression", "help"];
    let cli = Cli::command();
    let run = cli.find_subcommand("run").expect("run");
    for arg in run.get_arguments() {
        let id = arg.get_id().as_str();
        if NO_KEY.contains(&id) {
            continue;
        }
        let spellings: Vec<String> = arg
            .get_long()
            .map(|l| format!("--{l}"))
            .into_iter()
            .chain(arg.get_short().map(|s| format!("-{s}")))
            .collect();
        let documented = keys::KEYS.iter().any(|k| {
            k.flag
                .split(", ")
                .any(|flag| spellings.iter().any(|s| s == flag))
        });
        assert!(
            documented,
            "run's {id} ({spellings:?}) has no key in the reference"
        );
    }
}
