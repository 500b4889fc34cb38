//! The walk of a configuration file's TOML document, key by key, section by section: each
//! key's name checked against [`super::keys`], its type and value checked where it is, so
//! every error names the file, line and column and says in words what the key must hold
//! (as a rule file's do: `crate::configure::rules`).

use std::{
    ops::Range,
    path::{Path, PathBuf},
};

use toml::{
    Spanned,
    de::{DeTable, DeValue},
};
use xdpsieve_common::MAX_SNAPLEN;

use super::{
    Capture, Config, ConfigError, Log, Metrics, Rotation, choose, error_in, keys, resolve,
};
use crate::{
    base::text::escape,
    configure::capture_filter::{CompiledFilter, FilterEngine},
    configure::flags,
    configure::loader::{AttachMode, Transport},
    configure::rules::{Action, Rate, with_article},
};

type Value<'i> = Spanned<DeValue<'i>>;

/// Reads the document `text` into `config` (whose path it is).
pub(super) fn read_into(config: &mut Config, text: &str) -> Result<(), ConfigError> {
    let path = config.path.clone();
    let doc = Doc {
        text,
        path: &path,
        dir: config.dir().map(Path::to_path_buf),
    };
    let document = DeTable::parse(text).map_err(|e| {
        let message = e.message().trim_end().replace('\n', "; ");
        doc.error(
            e.span().unwrap_or(0..0),
            format!("not valid TOML: {message}"),
        )
    })?;
    doc.top(document.get_ref(), config)
}

/// The text being read, to place errors, and where its relative paths start.
struct Doc<'a> {
    text: &'a str,
    path: &'a Path,
    dir: Option<PathBuf>,
}

impl Doc<'_> {
    fn error(&self, span: Range<usize>, message: String) -> ConfigError {
        error_in(self.path, self.text, span.start, message)
    }

    /// The keys of `table`, each checked to be a key of `section`; `read` takes each
    /// known key's name (as the reference spells it) and value.
    fn keys<'t, 'i>(
        &self,
        section: &str,
        table: &'t DeTable<'i>,
        mut read: impl FnMut(&'static str, &'t Value<'i>) -> Result<(), ConfigError>,
    ) -> Result<(), ConfigError> {
        for (key, value) in table.iter() {
            let name = key.get_ref().as_ref();
            let Some(known) = keys::name_in(section, name) else {
                let place = if section.is_empty() {
                    "a configuration file has".to_string()
                } else {
                    format!("[{section}] has")
                };
                return Err(self.error(
                    key.span(),
                    format!(
                        "unknown key `{}`: {place} {}",
                        escape(name),
                        keys::listed(section)
                    ),
                ));
            };
            read(known, value)?;
        }
        Ok(())
    }

    fn top(&self, table: &DeTable<'_>, config: &mut Config) -> Result<(), ConfigError> {
        let mut rule_file_at = None;
        self.keys("", table, |name, value| {
            match name {
                "interfaces" => config.interfaces = Some(self.interfaces(value)?),
                "mode" => config.mode = Some(self.choice::<AttachMode>("mode", value)?),
                "transport" => {
                    config.transport = Some(self.choice::<Transport>("transport", value)?);
                }
                "ring_size" => {
                    let text = self.text_or_number(name, value)?;
                    config.ring_size = Some(self.parsed(name, value, flags::parse_size(&text))?);
                }
                "keep_on_stop" => config.keep_on_stop = Some(self.boolean(name, value)?),
                "quiet" => config.quiet = Some(self.boolean(name, value)?),
                "unclassifiable" => {
                    config.unclassifiable = Some(self.choice::<Action>(name, value)?);
                }
                "rules" => {
                    if value.get_ref().is_array() {
                        return Err(self.error(
                            value.span(),
                            "`rules` names a rule file (rules = \"fw.toml\"); write each rule \
                             here as a [[rule]] table"
                                .into(),
                        ));
                    }
                    config.rule_file = Some(self.path_value(name, value)?);
                    config.rule_file_at = value.span().start;
                    rule_file_at = Some(value.span());
                }
                "default" => {
                    let text = self.string(name, value)?;
                    config.default = Some(self.parsed(name, value, Action::from_name(text))?);
                }
                // Read by the rules' reader (`Config::rule_set`), which checks them.
                "set" | "rule" => config.inline_rules = true,
                "capture" => self.capture(self.table(name, value)?, &mut config.capture)?,
                "log" => self.log(self.table(name, value)?, &mut config.log)?,
                "metrics" => self.metrics(self.table(name, value)?, &mut config.metrics)?,
                _ => return Err(self.unread(name, value)),
            }
            Ok(())
        })?;
        if let Some(span) = rule_file_at
            && config.inline_rules
        {
            return Err(self.error(
                span,
                "`rules` names a rule file, and this file has [[rule]] or [[set]] tables too: \
                 keep the rules in one place (here, or in the rule file)"
                    .into(),
            ));
        }
        Ok(())
    }

    fn capture(&self, table: &DeTable<'_>, capture: &mut Capture) -> Result<(), ConfigError> {
        self.keys("capture", table, |name, value| {
            match name {
                "which" => capture.which = Some(self.located("capture.which", value)?),
                "file" => {
                    let text = self.nonempty("capture.file", value)?;
                    capture.file = Some(if text == "-" {
                        text.to_string()
                    } else {
                        resolve(self.dir.as_deref(), text)
                            .to_string_lossy()
                            .into_owned()
                    });
                }
                "format" => capture.format = Some(self.located("capture.format", value)?),
                "snaplen" => {
                    capture.snaplen =
                        Some(
                            self.whole("capture.snaplen", value, 1, u64::from(MAX_SNAPLEN))? as u32,
                        );
                }
                "sample" => {
                    capture.sample =
                        Some(self.whole("capture.sample", value, 1, u64::from(u32::MAX))? as u32);
                }
                "filter" => capture.filter = Some(self.filter("capture.filter", value)?),
                "filter_engine" => {
                    capture.filter_engine =
                        Some(self.choice::<FilterEngine>("capture.filter_engine", value)?);
                }
                "rotation" => self.rotation(
                    self.table("capture.rotation", value)?,
                    &mut capture.rotation,
                )?,
                _ => return Err(self.unread(name, value)),
            }
            Ok(())
        })
    }

    fn rotation(&self, table: &DeTable<'_>, rotation: &mut Rotation) -> Result<(), ConfigError> {
        self.keys("capture.rotation", table, |name, value| {
            let key = format!("capture.rotation.{name}");
            match name {
                // As -C: in million bytes, so that the bytes fit in 64 bits.
                "size_mb" => {
                    rotation.size_mb = Some(self.whole(&key, value, 1, u64::MAX / 1_000_000)?);
                }
                "seconds" => rotation.seconds = Some(self.whole(&key, value, 1, u64::MAX)?),
                "files" => {
                    rotation.files = Some(self.whole(&key, value, 1, u64::from(u32::MAX))? as u32);
                }
                "command" => {
                    let text = self.nonempty(&key, value)?;
                    // A bare name is looked up in PATH, as -z does; a relative path with a
                    // `/` starts from this file's directory, as the file's other paths do.
                    rotation.command = Some(if text.contains('/') {
                        resolve(self.dir.as_deref(), text)
                            .to_string_lossy()
                            .into_owned()
                    } else {
                        text.to_string()
                    });
                }
                _ => return Err(self.unread(name, value)),
            }
            Ok(())
        })
    }

    fn log(&self, table: &DeTable<'_>, log: &mut Log) -> Result<(), ConfigError> {
        self.keys("log", table, |name, value| {
            match name {
                "which" => log.which = Some(self.located("log.which", value)?),
                "file" => log.file = Some(self.path_value("log.file", value)?),
                "format" => log.format = Some(self.located("log.format", value)?),
                "rate" => {
                    let text = self.text_or_number("log.rate", value)?;
                    log.rate = Some(self.parsed("log.rate", value, text.parse::<Rate>())?);
                }
                // Empty is meaningful here: log all the rules select.
                "filter" => log.filter = Some(self.filter("log.filter", value)?),
                _ => return Err(self.unread(name, value)),
            }
            Ok(())
        })
    }

    fn metrics(&self, table: &DeTable<'_>, metrics: &mut Metrics) -> Result<(), ConfigError> {
        self.keys("metrics", table, |name, value| {
            match name {
                "listen" => {
                    let text = self.string("metrics.listen", value)?;
                    metrics.listen = Some(text.trim().parse().map_err(|_| {
                        self.error(
                            value.span(),
                            format!(
                                "`metrics.listen` must be ADDR:PORT, e.g. \"127.0.0.1:9470\" or \
                                 \"[::1]:9470\", not \"{}\"",
                                escape(text)
                            ),
                        )
                    })?);
                }
                "stats_interval" => {
                    let text = self.number("metrics.stats_interval", value)?;
                    let secs = flags::parse_stats_interval(&text).map_err(|m| {
                        self.error(value.span(), format!("`metrics.stats_interval` {m}"))
                    })?;
                    metrics.stats_interval = Some(secs);
                }
                _ => return Err(self.unread(name, value)),
            }
            Ok(())
        })
    }

    /// A key the reference lists that this walk has no arm for: a bug, said as one.
    fn unread(&self, name: &str, value: &Value<'_>) -> ConfigError {
        self.error(
            value.span(),
            format!("`{name}` is documented but not read: please report this"),
        )
    }

    /// `interfaces`: a non-empty array of distinct interface names.
    fn interfaces(&self, value: &Value<'_>) -> Result<Vec<String>, ConfigError> {
        let expected = "`interfaces` must be a list of interface names, e.g. [\"eth0\"]";
        let DeValue::Array(items) = value.get_ref() else {
            return Err(self.error(
                value.span(),
                format!(
                    "{expected}, not {}",
                    with_article(value.get_ref().type_str())
                ),
            ));
        };
        if items.is_empty() {
            return Err(self.error(
                value.span(),
                format!("{expected}: it names none (leave it out to give them with -i)"),
            ));
        }
        let mut names: Vec<String> = Vec::with_capacity(items.len());
        for item in items {
            let name = self.string("interfaces", item)?;
            let name = self.parsed("interfaces", item, flags::parse_interface_name(name))?;
            if names.contains(&name) {
                return Err(self.error(item.span(), format!("interface {name} is named twice")));
            }
            names.push(name);
        }
        Ok(names)
    }

    /// A filter expression, compiled by libpcap to check it; empty is kept (no filter).
    fn filter(&self, key: &str, value: &Value<'_>) -> Result<String, ConfigError> {
        let text = self.string(key, value)?;
        CompiledFilter::compile(text)
            .map_err(|e| self.error(value.span(), format!("`{key}`: {e}")))?;
        Ok(text.to_string())
    }

    /// A path, relative ones made relative to the file's directory.
    fn path_value(&self, key: &str, value: &Value<'_>) -> Result<PathBuf, ConfigError> {
        let text = self.nonempty(key, value)?;
        Ok(resolve(self.dir.as_deref(), text))
    }

    /// A string value kept as written with its place (read later: `Config::choice`).
    fn located(&self, key: &str, value: &Value<'_>) -> Result<Spanned<String>, ConfigError> {
        let text = self.string(key, value)?;
        Ok(Spanned::new(value.span(), text.to_string()))
    }

    /// A string naming one of `T`'s values.
    fn choice<T: clap::ValueEnum>(&self, key: &str, value: &Value<'_>) -> Result<T, ConfigError> {
        let text = self.string(key, value)?;
        choose(key, text).map_err(|m| self.error(value.span(), m))
    }

    /// A value's parser result, its error placed at the value and naming `key`.
    fn parsed<T>(
        &self,
        key: &str,
        value: &Value<'_>,
        result: Result<T, String>,
    ) -> Result<T, ConfigError> {
        result.map_err(|m| self.error(value.span(), format!("`{key}`: {m}")))
    }

    fn table<'t, 'i>(
        &self,
        key: &str,
        value: &'t Value<'i>,
    ) -> Result<&'t DeTable<'i>, ConfigError> {
        value.get_ref().as_table().ok_or_else(|| {
            self.error(
                value.span(),
                format!(
                    "`{key}` must be a table: write [{key}] on a line of its own, its keys \
                     below it; not {}",
                    with_article(value.get_ref().type_str())
                ),
            )
        })
    }

    fn string<'v>(&self, key: &str, value: &'v Value<'_>) -> Result<&'v str, ConfigError> {
        value.get_ref().as_str().ok_or_else(|| {
            self.error(
                value.span(),
                format!(
                    "`{key}` must be text in quotes, not {}",
                    with_article(value.get_ref().type_str())
                ),
            )
        })
    }

    fn nonempty<'v>(&self, key: &str, value: &'v Value<'_>) -> Result<&'v str, ConfigError> {
        match self.string(key, value)? {
            "" => Err(self.error(value.span(), format!("`{key}` is empty"))),
            text => Ok(text),
        }
    }

    fn boolean(&self, key: &str, value: &Value<'_>) -> Result<bool, ConfigError> {
        value.get_ref().as_bool().ok_or_else(|| {
            self.error(
                value.span(),
                format!(
                    "`{key}` must be true or false, not {}",
                    with_article(value.get_ref().type_str())
                ),
            )
        })
    }

    /// A TOML integer in `min..=max`.
    fn whole(&self, key: &str, value: &Value<'_>, min: u64, max: u64) -> Result<u64, ConfigError> {
        let number = value
            .get_ref()
            .as_integer()
            .and_then(|i| i128::from_str_radix(i.as_str(), i.radix()).ok())
            .and_then(|n| u64::try_from(n).ok());
        match number.filter(|n| (min..=max).contains(n)) {
            Some(n) => Ok(n),
            None => {
                let found = match value.get_ref() {
                    DeValue::Integer(i) => i.as_str().to_string(),
                    other => with_article(other.type_str()),
                };
                Err(self.error(
                    value.span(),
                    format!("`{key}` must be a whole number from {min} to {max}, not {found}"),
                ))
            }
        }
    }

    /// `"8M"` and `8388608` alike, as text for a flag's parser.
    fn text_or_number(&self, key: &str, value: &Value<'_>) -> Result<String, ConfigError> {
        match value.get_ref() {
            DeValue::String(s) => Ok(s.to_string()),
            DeValue::Integer(i) => Ok(integer_text(i)),
            other => Err(self.error(
                value.span(),
                format!(
                    "`{key}` must be text in quotes or a whole number, not {}",
                    with_article(other.type_str())
                ),
            )),
        }
    }

    /// `60` and `0.5` alike, as text for a flag's parser.
    fn number(&self, key: &str, value: &Value<'_>) -> Result<String, ConfigError> {
        match value.get_ref() {
            DeValue::Integer(i) => Ok(integer_text(i)),
            DeValue::Float(f) => Ok(f.as_str().to_string()),
            other => Err(self.error(
                value.span(),
                format!(
                    "`{key}` must be a number, not {}",
                    with_article(other.type_str())
                ),
            )),
        }
    }
}

/// A TOML integer in decimal (`0x10` as `16`), as a flag's parser reads numbers.
fn integer_text(i: &toml::de::DeInteger<'_>) -> String {
    i128::from_str_radix(i.as_str(), i.radix())
        .map_or_else(|_| i.as_str().to_string(), |n| n.to_string())
}
