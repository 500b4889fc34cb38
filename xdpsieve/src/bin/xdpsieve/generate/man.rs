//! The command's manual pages, in section 8 (a root-only tool that attaches to the
//! network): `xdpsieve(8)` and one page per subcommand, nested ones included
//! (`xdpsieve-set-add(8)`). clap_mangen renders what clap knows (name, synopsis, the long
//! description, every option with its values and default, the subcommands); this module
//! adds the help clap prints after the options, as NOTES rendered so that its examples and
//! tables keep their lines, the files of the top page, and SEE ALSO.

use std::{
    fs,
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, Result};
use clap::{Command, CommandFactory as _};
use clap_mangen::{
    Man,
    roff::{Inline, Roff, bold, roman},
};
use xdpsieve::{configure::config::DEFAULT_PATH, instance::pins};

use crate::{args::Cli, check_config};

/// The section of every command page.
pub(super) const SECTION: &str = "8";

/// What roff's `.TH` says the pages come from.
pub(super) fn source() -> String {
    format!("xdpsieve {}", env!("CARGO_PKG_VERSION"))
}

/// Writes every command page into `dir`; returns the files written.
pub(super) fn write_pages(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut cmd = Cli::command()
        .disable_help_subcommand(true)
        // check-config's long help ends with every key: on paper, that is xdpsieve.toml(5).
        .mut_subcommand("check-config", |c| {
            c.after_long_help(check_config::man_notes())
        });
    cmd.build();
    let mut written = Vec::new();
    write_tree(&cmd, dir, &[], &mut written)?;
    Ok(written)
}

/// Writes `cmd`'s page into `dir`, then its subcommands' (`parents`: the pages above it).
fn write_tree(
    cmd: &Command,
    dir: &Path,
    parents: &[String],
    written: &mut Vec<PathBuf>,
) -> Result<()> {
    let path = dir.join(format!("{}.{SECTION}", page_name(cmd)));
    fs::write(&path, page(cmd, parents)?).with_context(|| format!("writing {}", path.display()))?;
    written.push(path);
    let mut below = parents.to_vec();
    below.push(page_name(cmd).to_string());
    for sub in subcommands(cmd) {
        write_tree(sub, dir, &below, written)?;
    }
    Ok(())
}

/// `xdpsieve`, `xdpsieve-run`, `xdpsieve-set-add`: what clap_mangen titles the page.
fn page_name(cmd: &Command) -> &str {
    cmd.get_display_name().unwrap_or_else(|| cmd.get_name())
}

/// The subcommands with a page, in `--help`'s order.
fn subcommands(cmd: &Command) -> impl Iterator<Item = &Command> {
    let mut subs: Vec<&Command> = cmd.get_subcommands().filter(|s| !s.is_hide_set()).collect();
    subs.sort_by_key(|s| (s.get_display_order(), s.get_name()));
    subs.into_iter()
}

/// One command's page: clap_mangen's sections, then NOTES, FILES (top page) and SEE ALSO.
fn page(cmd: &Command, parents: &[String]) -> Result<String> {
    let man = Man::new(cmd.clone())
        .section(SECTION)
        .date(date())
        .source(source())
        .manual("System Manager's Manual");
    type Render = fn(&Man, &mut dyn std::io::Write) -> std::io::Result<()>;
    // Not clap_mangen's synopsis, which lists every flag without its value (`[-w ]`):
    // clap's usage line, as `--help` shows it.
    let parts: Vec<Render> = vec![Man::render_title, Man::render_name_section];
    let mut after: Vec<Render> = vec![Man::render_description_section];
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        after.push(Man::render_options_section);
    }
    if subcommands(cmd).next().is_some() {
        after.push(Man::render_subcommands_section);
    }
    let mut out = String::new();
    let render = |parts: &[Render], out: &mut String| -> Result<()> {
        for part in parts {
            let mut buf = Vec::new();
            part(&man, &mut buf).context("rendering a manual page")?;
            let text = String::from_utf8(buf).context("rendering a manual page")?;
            // Each part repeats roff's preamble (the apostrophe string): once is enough.
            if out.is_empty() {
                out.push_str(&text);
            } else {
                out.push_str(without_preamble(&text));
            }
        }
        Ok(())
    };
    render(&parts, &mut out)?;
    let mut roff = Roff::new();
    synopsis(&mut roff, cmd);
    out.push_str(without_preamble(&roff.render()));
    render(&after, &mut out)?;
    let mut roff = Roff::new();
    if let Some(notes) = cmd.get_after_long_help().or_else(|| cmd.get_after_help()) {
        roff.control("SH", ["NOTES"]);
        help_text(&mut roff, &notes.to_string());
    }
    if parents.is_empty() {
        files(&mut roff);
    }
    let mut see: Vec<(String, &str)> = parents.iter().map(|p| (p.clone(), SECTION)).collect();
    see.extend(subcommands(cmd).map(|s| (page_name(s).to_string(), SECTION)));
    see.push(("xdpsieve.toml".into(), "5"));
    if parents.is_empty() || cmd.get_name() == "run" {
        see.extend([
            ("tcpdump".into(), "8"),
            ("pcap-filter".into(), "7"),
            ("bpftool".into(), "8"),
        ]);
    }
    see_also(&mut roff, &see);
    out.push_str(without_preamble(&roff.render()));
    Ok(out)
}

/// `text` without the preamble roff puts first, for a part that follows another.
pub(super) fn without_preamble(text: &str) -> &str {
    text.strip_prefix(PREAMBLE).unwrap_or(text)
}

/// SYNOPSIS: clap's usage lines, the command in bold.
fn synopsis(roff: &mut Roff, cmd: &Command) {
    roff.control("SH", ["SYNOPSIS"]);
    let usage = cmd.clone().render_usage().to_string();
    let usage = usage.strip_prefix("Usage:").unwrap_or(&usage);
    let bin = cmd.get_bin_name().unwrap_or_else(|| cmd.get_name());
    for (i, line) in usage
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        if i > 0 {
            roff.control("br", []);
        }
        match line.strip_prefix(bin) {
            Some(rest) => roff.text([bold(bin), roman(rest)]),
            None => roff.text([roman(line)]),
        };
    }
}

/// What clap_mangen's roff crate writes before each part it renders.
const PREAMBLE: &str = ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n";

/// The files an operator meets, on the top page.
fn files(roff: &mut Roff) {
    roff.control("SH", ["FILES"]);
    let entries = [
        (
            DEFAULT_PATH,
            "The configuration file the packaged service runs (`xdpsieve run --config \
             FILE`), see xdpsieve.toml(5). As shipped it names no interface and filters \
             nothing.",
        ),
        (
            "/var/lib/xdpsieve",
            "The packaged service's capture directory (point capture.file there, see \
             xdpsieve.toml(5)), made by the package for the system user xdpsieve (mode \
             0750). `dpkg --purge` keeps the captures, handed to root.",
        ),
        (
            pins::root::DEFAULT_ROOT,
            "The pins that keep each firewall in force when no process holds it, per network \
             namespace and interface: the bpf_link, the program and its maps. `xdpsieve stop` \
             removes them.",
        ),
        (
            pins::RUN_DIR,
            "Each firewall's description, the lock of its owner, and where the pins are.",
        ),
    ];
    for (path, what) in entries {
        roff.control("TP", []);
        roff.text([bold(path)]);
        roff.text([roman(what)]);
    }
}

/// SEE ALSO: `name(section)`, each name in bold.
pub(super) fn see_also(roff: &mut Roff, pages: &[(String, &str)]) {
    roff.control("SH", ["SEE ALSO"]);
    // Page names are not to be hyphenated (`xdp-sieve-stop(8)`).
    roff.control("nh", []);
    let mut line: Vec<Inline> = Vec::new();
    for (i, (name, section)) in pages.iter().enumerate() {
        let sep = if i + 1 < pages.len() { ", " } else { "" };
        line.push(bold(name.as_str()));
        line.push(roman(format!("({section}){sep}")));
    }
    roff.text(line);
}

/// Help text as roff: prose is filled into paragraphs (a blank line starts a new one);
/// indented lines (examples, tables, the rule-file format) are kept as they are, in an
/// indented block with their relative indentation.
pub(super) fn help_text(roff: &mut Roff, text: &str) {
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    // A paragraph break is due before the next prose line (none before the first).
    let mut pending = false;
    while i < lines.len() {
        let line = lines[i];
        if line.trim().is_empty() {
            pending = true;
            i += 1;
        } else if line.starts_with(' ') {
            let end = lines[i..]
                .iter()
                .position(|l| !l.starts_with(' ') || l.trim().is_empty())
                .map_or(lines.len(), |n| i + n);
            if pending {
                roff.control("PP", []);
            }
            let block = &lines[i..end];
            let indent = block
                .iter()
                .map(|l| l.len() - l.trim_start().len())
                .min()
                .unwrap_or(0);
            roff.control("RS", ["4"]);
            roff.control("nf", []);
            for l in block {
                roff.text([roman(&l[indent..])]);
            }
            roff.control("fi", []);
            roff.control("RE", []);
            pending = true;
            i = end;
        } else {
            if pending {
                roff.control("PP", []);
                pending = false;
            }
            roff.text([roman(line)]);
            i += 1;
        }
    }
}

/// The pages' date: the day of `SOURCE_DATE_EPOCH` when set (the package build sets it to
/// the last commit's, so that the same source makes the same pages), else today, in UTC.
pub(super) fn date() -> String {
    let seconds = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        });
    let (y, m, d) = civil_from_days(seconds / 86_400);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The Gregorian date of day `days` after 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_become_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(59), (1970, 3, 1));
        // 2000-02-29 (a leap day in a century year) and 2100-03-01 (no leap day in 2100).
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(47_541), (2100, 3, 1));
        assert_eq!(civil_from_days(20_454), (2026, 1, 1));
    }

    #[test]
    fn help_text_fills_prose_and_keeps_indented_lines() {
        let mut roff = Roff::new();
        help_text(
            &mut roff,
            "First line\nsame paragraph.\n\nExamples:\n  xdpsieve run -i eth0\n    \
             --rules 'fw.toml'\n.dot starts a line\n\n  after a blank line\n",
        );
        assert_eq!(
            roff.to_roff(),
            "First line\nsame paragraph.\n.PP\nExamples:\n.RS 4\n.nf\nxdpsieve run \\-i eth0\n  \
             \\-\\-rules 'fw.toml'\n.fi\n.RE\n.PP\n\\&.dot starts a line\n.PP\n.RS 4\n.nf\nafter a blank line\n.fi\n.RE\n"
        );
    }
}
