//! The `xdpsieve` command: `run` (filter and capture), `reload`, `stop`, `status`, `top`,
//! `check-rules`, `check-config`, `set` (live set changes), and `demo`; and, for the
//! package build, `generate` (manual pages and shell completions).
//!
//! This binary only parses the command line and turns each subcommand's arguments into a
//! plan the library runs (as ripgrep's low-level arguments become high-level ones):
//!
//! - [`args`]: the command's shape (`Cli`, `Command`) and what several subcommands share
//!   (the rule flags in command-line order);
//! - [`run`]: `run`'s flags, checked against each other into a
//!   [`xdpsieve::session::plan::RunPlan`];
//! - [`check_rules`]: `check-rules` and the rule-file format its help shows;
//! - [`check_config`]: `check-config`, which checks a configuration file as `run --config`
//!   does, and whose help is the file's key reference;
//! - [`control`]: `reload`, `stop` and `status`, which act on a running firewall;
//! - [`top`]: `top`, the full-screen view of one;
//! - [`set`]: `set add|del|list|flush` into a live set change;
//! - [`generate`]: `generate man|completions DIR`, for packaging (not in `--help`).

mod args;
mod check_config;
mod check_rules;
mod control;
mod generate;
mod rule_input;
mod run;
mod set;
mod top;

use std::process::ExitCode;

use clap::{CommandFactory as _, FromArgMatches as _};
use xdpsieve::base::text::escape;

use crate::args::{Cli, Command};

/// Prints the error `text` (possibly several lines) with the characters of each line
/// escaped, each line an error for the journal.
fn eprint_escaped(text: &str) {
    let lines: Vec<_> = text.split('\n').map(escape).collect();
    xdpsieve::base::log::error(lines.join("\n"));
}

fn main() -> ExitCode {
    // Large allocations always from mmap, returned to the kernel when freed. By default
    // glibc raises that threshold to the size of the last large block freed: the kernel
    // BTF parsed by the feature probe (about 17 MB) then made the loader's second parse come
    // from the heap, which kept it, and a run's peak RSS grew from 28 to 47 MiB.
    // SAFETY: mallopt only sets an allocator parameter; nothing is allocated yet.
    unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024) };
    let mut args = std::env::args_os();
    // Before the parse: `generate` is no verb of `Cli` (generate's doc says why).
    if args.nth(1).is_some_and(|verb| verb == generate::VERB) {
        return finish(generate::generate(args));
    }
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
    // The order of --drop and --pass is only in the matches (clap's structs keep each
    // flag's values apart): the subcommands that take them get their matches too.
    let sub_matches = |name: &str| {
        matches
            .subcommand_matches(name)
            .cloned()
            .unwrap_or_default()
    };
    let result = match cli.command {
        Command::Run(args) => {
            run::plan(*args, &sub_matches("run")).and_then(xdpsieve::session::run)
        }
        Command::CheckRules(args) => check_rules::check_rules(&args, &sub_matches("check-rules")),
        Command::CheckConfig(args) => check_config::check_config(&args),
        Command::Reload(args) => control::reload(&args),
        Command::Stop(args) => control::stop(&args),
        Command::Status(args) => control::status(&args),
        Command::Top(args) => top::top(&args),
        Command::Set(args) => set::set(args),
        Command::Demo(args) => xdpsieve::sandbox::demo::run(&args.write, args.responses),
    };
    finish(result)
}

/// The exit status of a verb's result, its error said on stderr.
fn finish(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprint_escaped(&format!("xdpsieve: error: {e:#}\n"));
            ExitCode::FAILURE
        }
    }
}
