//! `xdpsieve.toml(5)`: the configuration file's page, made from the key table
//! ([`keys::SECTIONS`], [`keys::of`]) as the README's reference and `check-config --help`
//! are, with how the file and the command line combine, and an example (the README's; a
//! test holds the two together and parses it).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use clap_mangen::roff::{Roff, bold, italic, roman};
use xdpsieve::configure::config::{DEFAULT_PATH, keys};

use super::man::{date, help_text, see_also, source};
use crate::check_config::FILE_RULES;

/// The page's file name.
const FILE: &str = "xdpsieve.toml.5";

/// Writes the page into `dir`.
pub(super) fn write(dir: &Path) -> Result<PathBuf> {
    let path = dir.join(FILE);
    std::fs::write(&path, page()).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

const DESCRIPTION: &str = "\
One TOML file holds everything `xdpsieve run` takes on its command line: the interfaces, the
capture and its rotation, the event log, the metrics, sampling, and the rules with their
address sets (written in the file, or the path of a rule file). The packaged service runs
`xdpsieve run --config /etc/xdpsieve/xdpsieve.toml`; the file as shipped names no
interface and has no rule, so it filters nothing until it is edited. `xdpsieve
check-config FILE` checks a file as that run would, without the kernel or privileges, and
prints what the run would do.";

const PRECEDENCE: &str = "\
A flag given on the command line wins, then the file's key, then the built-in default.
--rules replaces the file's rules (its `rules`, `default`, [[set]] and [[rule]]); --default
replaces its `default`; --drop and --pass add rules after the file's. A boolean the file
sets to true (`keep_on_stop`, `quiet`) cannot be turned off from the command line: edit the
file. -c has no key: it is for one-off runs.

  xdpsieve run --config /etc/xdpsieve/xdpsieve.toml -i eth1 -w /tmp/debug.pcap

runs the file's rules on eth1 rather than on the file's interfaces, and captures into
/tmp/debug.pcap rather than into capture.file.";

const RULES: &str = "\
The rules are either in a rule file the `rules` key names, or in this file itself exactly as
a rule file writes them (top-level `default`, [[set]] and [[rule]] tables), not both. A
[[rule]] table has the keys id, name, action, protocol, family, src, dst, host, net,
src_port, dst_port, port, log, log_rate, sample and snaplen (host, net and port without a
direction: source or destination); a [[set]] table has name, and file or
prefixes. `xdpsieve check-rules --help` and xdpsieve-check-rules(8) describe them. First
match wins; a packet no rule matches gets `default`.";

/// The example of the page and of the README's "Configuration file" section.
const EXAMPLE: &str = r#"interfaces = ["eth0"]
keep_on_stop = true
default = "pass"

[capture]
file = "/var/lib/xdpsieve/drops-%Y%m%d-%H%M%S.pcapng"
format = "pcapng"

[capture.rotation]
seconds = 3600
files = 168

[log]
which = "dropped"
file = "/var/log/xdpsieve/events.jsonl"
format = "json"
rate = "100/s"

[metrics]
listen = "127.0.0.1:9470"

[[set]]
name = "blocklist"
file = "blocklist.netset"

[[rule]]
name = "block-listed"
action = "drop"
src = "@blocklist"
"#;

/// The page, in roff.
pub(super) fn page() -> String {
    let mut roff = Roff::new();
    roff.control(
        "TH",
        [
            "xdpsieve.toml",
            "5",
            date().as_str(),
            source().as_str(),
            "File Formats Manual",
        ],
    );
    roff.control("SH", ["NAME"]);
    roff.text([roman(
        "xdpsieve.toml - configuration file of an xdpsieve run",
    )]);
    roff.control("SH", ["SYNOPSIS"]);
    roff.text([bold(DEFAULT_PATH)]);
    roff.control("SH", ["DESCRIPTION"]);
    help_text(&mut roff, DESCRIPTION);
    roff.control("PP", []);
    help_text(&mut roff, FILE_RULES);
    roff.control("SH", ["PRECEDENCE"]);
    help_text(&mut roff, PRECEDENCE);
    roff.control("SH", ["KEYS"]);
    keys_reference(&mut roff);
    roff.control("SH", ["RULES AND SETS"]);
    help_text(&mut roff, RULES);
    roff.control("SH", ["EXAMPLE"]);
    roff.text([roman(
        "Attach to eth0, drop what comes from the addresses listed in blocklist.netset \
         (beside the file), keep a week of hourly pcapng files and a JSON event log, serve \
         metrics on the loopback, and leave the firewall in force when the service stops:",
    )]);
    roff.control("RS", ["4"]);
    roff.control("nf", []);
    for line in EXAMPLE.lines() {
        roff.text([roman(line)]);
    }
    roff.control("fi", []);
    roff.control("RE", []);
    roff.control("SH", ["FILES"]);
    roff.control("TP", []);
    roff.text([bold(DEFAULT_PATH)]);
    roff.text([roman(
        "The file the packaged service runs; a conffile, kept across upgrades as edited.",
    )]);
    see_also(
        &mut roff,
        &[
            ("xdpsieve".into(), "8"),
            ("xdpsieve-run".into(), "8"),
            ("xdpsieve-check-config".into(), "8"),
            ("xdpsieve-check-rules".into(), "8"),
            ("xdpsieve-reload".into(), "8"),
            ("pcap-filter".into(), "7"),
            ("strftime".into(), "3"),
        ],
    );
    roff.render()
}

/// Per section, its title and what it holds, then each key: name and type, meaning,
/// default and flag.
fn keys_reference(roff: &mut Roff) {
    for (section, about) in keys::SECTIONS {
        let title = if section.is_empty() {
            "Top level".to_string()
        } else {
            format!("[{section}]")
        };
        roff.control("SS", [title.as_str()]);
        roff.text([roman(about)]);
        for key in keys::of(section) {
            roff.control("TP", []);
            roff.text([bold(key.name), roman(": "), italic(key.kind)]);
            roff.text([roman(key.meaning)]);
            roff.control("br", []);
            let mut line = vec![roman(format!("Default: {}.", key.default))];
            if !key.flag.is_empty() {
                line.push(roman(" Flag: "));
                for (i, flag) in key.flag.split(", ").enumerate() {
                    if i > 0 {
                        line.push(roman(", "));
                    }
                    line.push(bold(flag));
                }
                line.push(roman("."));
            }
            roff.text(line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xdpsieve::configure::config::Config;

    #[test]
    fn every_key_is_on_the_page() {
        let page = page();
        for key in keys::KEYS {
            assert!(
                page.contains(&format!("\\fB{}\\fR: \\fI", key.name)),
                "xdpsieve.toml(5) does not list `{}`",
                key.name
            );
        }
        for (section, _) in keys::SECTIONS.iter().filter(|(s, _)| !s.is_empty()) {
            assert!(page.contains(&format!(".SS [{section}]\n")), "{section}");
        }
    }

    #[test]
    fn the_example_is_valid_and_is_the_readmes() {
        let c = Config::parse(
            EXAMPLE.to_string(),
            Path::new("/etc/xdpsieve/xdpsieve.toml"),
        )
        .unwrap_or_else(|e| panic!("the example does not read: {e}"));
        assert_eq!(c.interfaces.as_deref(), Some(&["eth0".to_string()][..]));
        let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
        let readme = std::fs::read_to_string(&readme).expect("README.md");
        assert!(
            readme.contains(&format!("```toml\n{EXAMPLE}```\n")),
            "README.md's \"Configuration file\" section must show the example of \
             xdpsieve.toml(5) (generate/config_page.rs, EXAMPLE) exactly"
        );
    }
}
