//! `xdpsieve check-config [FILE]`: checks a configuration file as `xdpsieve run --config
//! FILE` would (the same parse and the same checks, into the same plan), then what needs
//! no kernel and no privilege: that the directories the capture and the event log go to
//! exist, that a `-z` command is there. Prints what the run would do; exits 1 at the first
//! problem. Its help is the key reference ([`xdpsieve::configure::config::keys`]).

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, bail};
use clap::{Args, FromArgMatches as _};
use xdpsieve::{
    base::text::{escape, escape_path},
    configure::config::{Config, DEFAULT_PATH, keys},
    configure::flags,
    session::plan::RunPlan,
    write::rotation,
};

use crate::run::RunArgs;

#[derive(Args)]
#[command(after_long_help = long_help(), after_help = SHORT_HELP)]
pub(crate) struct CheckConfigArgs {
    /// The configuration file to check.
    #[arg(value_name = "FILE", default_value = DEFAULT_PATH)]
    file: PathBuf,
}

const SHORT_HELP: &str = "Every key of the file, with its type, default and flag: --help.";

/// How the file and the command line combine: the long help's first paragraph, and the
/// start of xdpsieve.toml(5).
pub(crate) const FILE_RULES: &str = "\
The file is TOML. `xdpsieve run --config FILE` runs it; a flag given on the command line
overrides the file's key (command line, then file, then built-in default); --rules replaces
the file's rules and --drop/--pass add rules after them. Paths in the file are relative to
its directory. Unknown keys are errors naming the file, line and column. A reload (SIGHUP,
`xdpsieve reload`) reads the file again, checks it whole and takes its rules (`rules`,
`default`, [[set]], [[rule]]); the other keys take effect at the next start.";

/// The help after the flags: how the file and the command line combine, then every key.
fn long_help() -> String {
    format!("{FILE_RULES}\n\nKeys:\n\n{}", keys::plain(90).trim_end())
}

/// The long help on paper (xdpsieve-check-config(8)): the keys are xdpsieve.toml(5)'s.
pub(crate) fn man_notes() -> String {
    format!(
        "{FILE_RULES}\n\nEvery key, with its type, default, flag and meaning: xdpsieve.toml(5)."
    )
}

/// Checks `args.file` as `run --config` would, and the paths it names; prints the run.
pub(crate) fn check_config(args: &CheckConfigArgs) -> Result<()> {
    // `--config=FILE`: a FILE that starts with `-` is still the flag's value.
    let mut config = OsString::from("--config=");
    config.push(&args.file);
    let argv: Vec<OsString> = vec!["run".into(), config];
    // The run's own parse of a command line that gives nothing but the file (its
    // arguments alone: `run` takes nothing from the top-level command).
    let run_matches = RunArgs::augment_args(clap::Command::new("run"))
        .try_get_matches_from(argv)
        .context("building the run's arguments")?;
    let run_args = RunArgs::from_arg_matches(&run_matches)?;
    let plan = crate::run::plan(run_args, &run_matches)?;
    check_paths(&plan)?;
    // Read again for what the plan does not keep: whether the rules are in the file.
    let config = Config::read(&args.file)?;
    print!(
        "{}",
        describe(&args.file, config.rule_file.as_deref(), &plan)
    );
    Ok(())
}

/// The directories the outputs go to exist (a run would fail to open its files), and a
/// `-z` command named by its path is there.
fn check_paths(plan: &RunPlan) -> Result<()> {
    if let Some(pattern) = plan.write.as_deref().filter(|w| *w != "-") {
        // The first file's name, as the rotation will make it (strftime with -G).
        let (time, width) = match &plan.rotation {
            Some(r) => (
                r.period.map(|_| unix_now()),
                rotation::number_width(r.files),
            ),
            None => (None, 0),
        };
        let first = rotation::file_name(pattern, time, 0, width)
            .with_context(|| format!("capture file `{}`", escape(pattern)))?;
        directory_exists(Path::new(&first), "capture file")?;
    }
    if let Some(log) = &plan.log_file {
        directory_exists(log, "event log")?;
    }
    if let Some(command) = plan.rotation.as_ref().and_then(|r| r.command.as_deref())
        && command.contains('/')
        && !Path::new(command).is_file()
    {
        bail!(
            "the -z command (capture.rotation.command) {} is not a file",
            escape(command)
        );
    }
    Ok(())
}

/// The directory `file` goes into exists and is a directory.
fn directory_exists(file: &Path, what: &str) -> Result<()> {
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        bail!(
            "the {what} {} goes into {}, which is not a directory here: create it (the run \
             does not)",
            escape_path(file),
            escape_path(dir)
        );
    }
    Ok(())
}

/// `8388608` as `8M`, as --ring-size takes it.
fn size(bytes: u32) -> String {
    match bytes {
        b if b % (1 << 30) == 0 => format!("{}G", b >> 30),
        b if b % (1 << 20) == 0 => format!("{}M", b >> 20),
        b if b % (1 << 10) == 0 => format!("{}K", b >> 10),
        b => b.to_string(),
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// What the run would do, for the operator: a few lines, then the rules as `check-rules`
/// lists them.
fn describe(file: &Path, rule_file: Option<&Path>, plan: &RunPlan) -> String {
    let mut out = format!("{}: ok\n", escape_path(file));
    // Said, not refused: the file may be checked on another host than the one it is for.
    let present = |name: &str| {
        let c = std::ffi::CString::new(name).unwrap_or_default();
        // SAFETY: a NUL-terminated name; no privilege needed.
        if unsafe { libc::if_nametoindex(c.as_ptr()) } == 0 {
            format!("{} (not on this host now)", escape(name))
        } else {
            escape(name).into_owned()
        }
    };
    let interfaces: Vec<String> = plan.interfaces.iter().map(|i| present(i)).collect();
    out += &format!(
        "  interfaces  {}; mode {}, transport {}, rings of {}\n",
        interfaces.join(", "),
        flags::value_name(plan.mode),
        flags::value_name(plan.transport),
        size(plan.ring_size)
    );
    let capture = match &plan.write {
        Some(file) if plan.capture.mask() != 0 => {
            let target = if file == "-" {
                "standard output".to_string()
            } else {
                escape(file).into_owned()
            };
            let mut text = format!(
                "{} packets to {target} ({}, snaplen {})",
                flags::value_name(plan.capture),
                plan.format,
                plan.snaplen
            );
            if let Some(r) = &plan.rotation {
                text += &format!(
                    ", rotating{}{}{}{}",
                    r.size
                        .map(|s| format!(" every {} MB", s / rotation::MEGABYTE))
                        .unwrap_or_default(),
                    r.period
                        .map(|p| format!(" every {} s", p.as_secs()))
                        .unwrap_or_default(),
                    r.files.map(|n| format!(", {n} files")).unwrap_or_default(),
                    r.command
                        .as_deref()
                        .map(|c| format!(", then {}", escape(c)))
                        .unwrap_or_default(),
                );
            }
            text
        }
        _ => "none".into(),
    };
    out += &format!("  capture     {capture}\n");
    let logging = plan.capture_plan().logging;
    let log = if logging {
        format!(
            "{} events, {}, to {}",
            flags::value_name(plan.log),
            flags::value_name(plan.log_format),
            plan.log_file
                .as_deref()
                .map_or_else(|| "standard output".into(), escape_path)
        )
    } else {
        "none".into()
    };
    out += &format!("  event log   {log}\n");
    if let Some(addr) = plan.metrics {
        out += &format!("  metrics     http://{addr}/metrics\n");
    }
    if let Some(every) = plan.stats_interval {
        out += &format!("  status      a line every {} s\n", every.as_secs_f64());
    }
    out += &format!(
        "  on stop     {}\n",
        if plan.keep_on_stop {
            "the firewall stays in force (keep_on_stop)"
        } else {
            "the firewall is removed"
        }
    );
    let origin = match rule_file {
        Some(path) => escape_path(path),
        None => format!("rules in {}", escape_path(file)),
    };
    out + &plan.rules.listing(&origin)
}
