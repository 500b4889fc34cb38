//! The configuration file of a run (`xdpsieve run --config FILE`, by default
//! `/etc/xdpsieve/xdpsieve.toml`): everything `run`'s flags say, in TOML, and the rules, in
//! the file itself or in a rule file it names.
//!
//! The reader checks what it can without the rest of the run: every key's name (against
//! [`keys::KEYS`], the one table the documentation is made from), its TOML type and its
//! value, each error naming the file, line and column as a rule file's do; relative paths
//! are made relative to the file's directory. A [`Config`] holds what the file said, each
//! key `None` when absent: the binary lays it under the command line (a flag given there
//! wins) and checks the whole as it checks the flags alone. Four values are kept as
//! written, with their place, for the binary to read with the value enums of the layers
//! above (`capture.which`, `capture.format`, `log.which`, `log.format`: see
//! [`Config::choice`]).
//!
//! The rules are read by [`Config::rule_set`], at the start of a run and again at each
//! reload (`crate::instance::recipe::RuleSources`), which reads the whole file again: a
//! broken file is refused by a reload as by a start, and the old rules stay.

pub mod keys;
#[cfg(test)]
mod tests;
mod walk;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use toml::Spanned;

use crate::{
    base::text::escape,
    configure::capture_filter::FilterEngine,
    configure::input::{ReadFileError, read_regular_file},
    configure::loader::{AttachMode, Transport},
    configure::rules::{Action, Rate, RuleError, RuleSet, line_column},
};

/// Where a packaged xdpsieve looks for its configuration.
pub const DEFAULT_PATH: &str = "/etc/xdpsieve/xdpsieve.toml";

/// Largest configuration file read: it may hold the rules, so a rule file's cap.
pub const CONFIG_FILE_CAP: u64 = crate::configure::input::RULE_FILE_CAP;

/// A value as written, with its place in the file (byte offsets).
pub type Located<T> = Spanned<T>;

/// Why a configuration file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Read(#[from] ReadFileError),
    #[error("{path}:{line}:{column}: {message}")]
    At {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    /// In the rules it holds or names.
    #[error(transparent)]
    Rules(#[from] RuleError),
}

/// What a configuration file says; `None` (or empty) where it says nothing.
#[derive(Debug, Default)]
pub struct Config {
    /// The file, as named.
    pub path: PathBuf,
    /// Its text, to place later errors and to read its rules from.
    text: String,
    pub interfaces: Option<Vec<String>>,
    pub mode: Option<AttachMode>,
    pub transport: Option<Transport>,
    pub ring_size: Option<u32>,
    pub keep_on_stop: Option<bool>,
    pub quiet: Option<bool>,
    pub unclassifiable: Option<Action>,
    /// `rules`: a rule file (made relative to this file's directory).
    pub rule_file: Option<PathBuf>,
    /// Where `rules` is written, to name it when its file cannot be read.
    rule_file_at: usize,
    /// `default`.
    pub default: Option<Action>,
    /// Whether the file holds `[[set]]` or `[[rule]]` tables.
    pub inline_rules: bool,
    pub capture: Capture,
    pub log: Log,
    pub metrics: Metrics,
}

/// `[capture]`.
#[derive(Debug, Default)]
pub struct Capture {
    /// A `session::plan::Which` name, unchecked: see [`Config::choice`].
    pub which: Option<Located<String>>,
    /// `-`, or a path (relative ones made relative to the file's directory).
    pub file: Option<String>,
    /// A `write::capture::Format` name, unchecked: see [`Config::choice`].
    pub format: Option<Located<String>>,
    pub snaplen: Option<u32>,
    pub sample: Option<u32>,
    /// An expression libpcap compiled.
    pub filter: Option<String>,
    pub filter_engine: Option<FilterEngine>,
    pub rotation: Rotation,
}

/// `[capture.rotation]`.
#[derive(Debug, Default)]
pub struct Rotation {
    /// Million bytes.
    pub size_mb: Option<u64>,
    pub seconds: Option<u64>,
    pub files: Option<u32>,
    pub command: Option<String>,
}

/// `[log]`.
#[derive(Debug, Default)]
pub struct Log {
    /// A `session::plan::Which` name, unchecked: see [`Config::choice`].
    pub which: Option<Located<String>>,
    pub file: Option<PathBuf>,
    /// A `write::event_log::LogFormat` name, unchecked: see [`Config::choice`].
    pub format: Option<Located<String>>,
    pub rate: Option<Rate>,
    /// An expression libpcap compiled, or empty (log all the rules select).
    pub filter: Option<String>,
}

/// `[metrics]`.
#[derive(Debug, Default)]
pub struct Metrics {
    pub listen: Option<SocketAddr>,
    pub stats_interval: Option<f64>,
}

impl Config {
    /// Reads and checks the configuration file at `path`: a regular file of at most
    /// [`CONFIG_FILE_CAP`] bytes. The rules are not read yet: see [`Config::rule_set`].
    pub fn read(path: &Path) -> Result<Config, ConfigError> {
        let text = read_regular_file(path, CONFIG_FILE_CAP, "configuration file")?;
        Config::parse(text, path)
    }

    /// Checks `text` as the configuration file at `path` (whose directory relative paths
    /// start from).
    pub fn parse(text: String, path: &Path) -> Result<Config, ConfigError> {
        let mut config = Config {
            path: path.to_path_buf(),
            ..Config::default()
        };
        walk::read_into(&mut config, &text)?;
        config.text = text;
        Ok(config)
    }

    /// The directory relative paths start from; `None` for the current one.
    pub fn dir(&self) -> Option<&Path> {
        self.path.parent().filter(|d| !d.as_os_str().is_empty())
    }

    /// The rules the file gives: those of the rule file `rules` names (its default
    /// overridden by `default`), or the file's own `default`, `[[set]]` and `[[rule]]`
    /// (none: no rule, default pass).
    pub fn rule_set(&self) -> Result<RuleSet, ConfigError> {
        match &self.rule_file {
            Some(file) => {
                let mut set = RuleSet::from_file(file).map_err(|e| match e {
                    RuleError::Read(e) => self.error_at(self.rule_file_at, format!("`rules`: {e}")),
                    other => other.into(),
                })?;
                if let Some(default) = self.default {
                    set.default_action = default;
                }
                Ok(set)
            }
            None => Ok(RuleSet::from_config_text(
                &self.text,
                &self.path.to_string_lossy(),
                self.dir(),
            )?),
        }
    }

    /// One of the values kept as written (`which`, `format`), read as `T` (a value enum of
    /// the layer above): an error naming `key` (`capture.format`), its place and the
    /// names `T` has when it is none of them.
    pub fn choice<T: clap::ValueEnum>(
        &self,
        key: &str,
        value: &Located<String>,
    ) -> Result<T, ConfigError> {
        choose(key, value.get_ref()).map_err(|m| self.error_at(value.span().start, m))
    }

    /// An error at byte `offset` of the file.
    pub fn error_at(&self, offset: usize, message: String) -> ConfigError {
        error_in(&self.path, &self.text, offset, message)
    }
}

/// `text` as one of `T`'s values, or a message naming `key` and the values there are.
fn choose<T: clap::ValueEnum>(key: &str, text: &str) -> Result<T, String> {
    T::from_str(text, false).map_err(|_| {
        let names: Vec<String> = T::value_variants()
            .iter()
            .filter_map(|v| v.to_possible_value())
            .map(|v| format!("\"{}\"", v.get_name()))
            .collect();
        format!(
            "`{key}` must be one of {}, not \"{}\"",
            names.join(", "),
            escape(text)
        )
    })
}

/// An error at byte `offset` of `text`, the file at `path`.
fn error_in(path: &Path, text: &str, offset: usize, message: String) -> ConfigError {
    let (line, column) = line_column(text, offset);
    ConfigError::At {
        path: escape(&path.to_string_lossy()).into_owned(),
        line,
        column,
        message: escape(&message).into_owned(),
    }
}

/// `relative` (a path from the file) against the file's directory `dir`.
fn resolve(dir: Option<&Path>, relative: &str) -> PathBuf {
    match dir {
        Some(dir) if Path::new(relative).is_relative() => dir.join(relative),
        _ => PathBuf::from(relative),
    }
}
