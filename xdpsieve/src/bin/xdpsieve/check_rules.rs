//! `xdpsieve check-rules`: loads a rule file (and `--drop`/`--pass` rules) exactly as `run`
//! would and prints what the firewall will evaluate; its help is the rule-file format.

use std::path::PathBuf;

use anyhow::Result;
use clap::{ArgMatches, Args};
use xdpsieve::base::text::escape_path;

use crate::rule_input::{rule_sources, warn_about};

#[derive(Args)]
#[command(after_help = FILE_HELP)]
pub(crate) struct CheckArgs {
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
  action = "drop"             # required: "drop", "pass" or "limit" (below)
  mode = "monitor"            # optional: mark what it would do, drop nothing; evaluation
                              # goes on ["enforce"]
  protocol = "udp"            # tcp, udp, icmp, icmp6, or a number
  family = "ipv4"             # optional: ipv4 or ipv6 (implied by addresses)
  src = "198.51.100.0/24"     # address or CIDR, IPv4 or IPv6, or a set: "@blocklist"
  dst = "192.0.2.2"
  # host = "192.0.2.2"        # without a direction: source or destination (as tcpdump's
  # net = "@blocklist"        # `host`, `net`, `port`); a rule with one is a kernel rule
  # port = 53                 # per direction (2, or 4 with an address and a port), one
                              # id and count; not beside src/dst (or src_port/dst_port)
  src_port = 53               # port or "low-high" (tcp and udp only)
  dst_port = "1024-65535"
  log = true                  # log every packet this rule decides (see run --log)
  log_rate = "100/s"          # limit on this rule's records: N/s, N/m, N/h, 0 = none
  sample = 100                # record 1 in N of this rule's packets (before log_rate);
                              # 1 = all [default: run --sample]
  snaplen = 96                # bytes captured of this rule's packets, 1-16384
                              # [default: run -s]

  [[rule]]                    # a limit: drops only what is over a budget; the rest goes
  action = "limit"            # on to the next rules
  protocol = "udp"
  dst_port = 53
  rate = "1000/s"             # required: packets N/s, N/m, N/h, or bytes "10MB/s"
  burst = 2000                # what may pass at once [default: one unit of the rate]
  per = "src"                 # key: "src", "src/24", "src/64", "src/24,src/64", or
                              # "rule" (one bucket: spoofed floods) ["src"]
  max_tracked = 65536         # keys tracked at once, least recently seen forgotten first;
                              # about 120 bytes of kernel memory each [65536]

Command-line rules take the same after their conditions: --drop 'udp dst port 53 limit
1000/s burst 2000 per src max-tracked 65536', --drop 'tcp dst port 22 monitor'."#;

/// Loads the rules as `run` would and prints them as the firewall will evaluate them.
pub(crate) fn check_rules(args: &CheckArgs, matches: &ArgMatches) -> Result<()> {
    let set = rule_sources(args.file.as_deref(), &args.drop, &args.pass, None, matches).load()?;
    warn_about(&set);
    let origin = args
        .file
        .as_deref()
        .map_or_else(|| "command line".into(), escape_path);
    print!("{}", set.listing(&origin));
    Ok(())
}
