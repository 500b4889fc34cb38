//! `run --config FILE`: the file's values laid under the command line. An argument the
//! command line gave itself (clap's `ValueSource::CommandLine`) stays; every other one
//! takes the file's value where the file has the key, else keeps its built-in default. The
//! result is checked as if all of it had been typed (`super::plan`), so the file and the
//! flags share one set of checks and one plan.
//!
//! The rules are not laid here: they stay in the file, which each reload reads again
//! (`super::plan` makes it the rules' source unless --rules is given).

#[cfg(test)]
mod tests;

use clap::{ArgMatches, parser::ValueSource};
use xdpsieve::{
    configure::config::{Config, ConfigError},
    configure::rules::Action,
    session::plan::Which,
    write::capture::Format,
    write::event_log::LogFormat,
};

use super::{RunArgs, Unclassifiable};

/// Whether the command line gave the argument `id` itself (not its default).
fn given(matches: &ArgMatches, id: &str) -> bool {
    matches.value_source(id) == Some(ValueSource::CommandLine)
}

/// Gives `slot` (the argument `id`) the file's `value` unless the command line gave it.
fn lay<T>(slot: &mut T, matches: &ArgMatches, id: &str, value: Option<T>) {
    if let Some(value) = value
        && !given(matches, id)
    {
        *slot = value;
    }
}

/// Fills each argument of `args` the command line did not give (`matches`) from `config`,
/// where the file has its key. Fails on the values only the binary can read (`which`,
/// `format`), naming their place in the file.
pub(super) fn fill(
    args: &mut RunArgs,
    config: &Config,
    matches: &ArgMatches,
) -> Result<(), ConfigError> {
    let m = matches;
    lay(
        &mut args.interfaces,
        m,
        "interfaces",
        config.interfaces.clone(),
    );
    lay(&mut args.mode, m, "mode", config.mode);
    lay(&mut args.transport, m, "transport", config.transport);
    lay(&mut args.ring_size, m, "ring_size", config.ring_size);
    lay(
        &mut args.keep_on_stop,
        m,
        "keep_on_stop",
        config.keep_on_stop,
    );
    lay(&mut args.quiet, m, "quiet", config.quiet);
    let unclassifiable = config.unclassifiable.map(|action| {
        Some(match action {
            Action::Drop => Unclassifiable::Drop,
            Action::Pass => Unclassifiable::Pass,
        })
    });
    lay(
        &mut args.unclassifiable,
        m,
        "unclassifiable",
        unclassifiable,
    );

    let capture = &config.capture;
    let which = capture
        .which
        .as_ref()
        .map(|w| config.choice::<Which>("capture.which", w))
        .transpose()?;
    lay(&mut args.capture, m, "capture", which.map(Some));
    lay(&mut args.write, m, "write", capture.file.clone().map(Some));
    let format = capture
        .format
        .as_ref()
        .map(|f| config.choice::<Format>("capture.format", f))
        .transpose()?;
    lay(&mut args.format, m, "format", format);
    lay(&mut args.snaplen, m, "snaplen", capture.snaplen);
    lay(&mut args.sample, m, "sample", capture.sample);
    // The command line's filter is --filter or the words after the options.
    if !given(m, "expression") {
        lay(
            &mut args.filter,
            m,
            "filter",
            capture.filter.clone().map(Some),
        );
    }
    lay(
        &mut args.filter_engine,
        m,
        "filter_engine",
        capture.filter_engine,
    );
    let rotation = &capture.rotation;
    lay(
        &mut args.file_size,
        m,
        "file_size",
        rotation.size_mb.map(Some),
    );
    lay(
        &mut args.rotate_seconds,
        m,
        "rotate_seconds",
        rotation.seconds.map(Some),
    );
    lay(
        &mut args.file_count,
        m,
        "file_count",
        rotation.files.map(Some),
    );
    lay(
        &mut args.postrotate_command,
        m,
        "postrotate_command",
        rotation.command.clone().map(Some),
    );

    let log = &config.log;
    let which = log
        .which
        .as_ref()
        .map(|w| config.choice::<Which>("log.which", w))
        .transpose()?;
    lay(&mut args.log, m, "log", which);
    let format = log
        .format
        .as_ref()
        .map(|f| config.choice::<LogFormat>("log.format", f))
        .transpose()?;
    lay(&mut args.log_format, m, "log_format", format);
    lay(
        &mut args.log_file,
        m,
        "log_file",
        log.file.clone().map(Some),
    );
    lay(&mut args.log_rate, m, "log_rate", log.rate);
    lay(
        &mut args.log_filter,
        m,
        "log_filter",
        log.filter.clone().map(Some),
    );

    let metrics = &config.metrics;
    lay(&mut args.metrics, m, "metrics", metrics.listen.map(Some));
    lay(
        &mut args.stats_interval,
        m,
        "stats_interval",
        metrics.stats_interval.map(Some),
    );
    Ok(())
}
