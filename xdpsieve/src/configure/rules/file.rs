//! TOML rule files: read with a size cap from regular files only, walked key by key so that
//! every error names the file, line and column and says in words what the key must hold
//! (no deserializer type names), ids checked for collisions before any is assigned.
//!
//! `host`, `net` and `port` are conditions without a direction (source or destination, as
//! in tcpdump): such a rule becomes one kernel rule per direction, sharing its id and name
//! (see [`super::either`]); the [`MAX_RULES`] limit counts kernel rules.
//!
//! `[[set]]` tables declare address sets, read before the rules whatever their place in
//! the file, so a rule's `src = "@name"` finds its set; a set file's path is relative to
//! the rule file's folder.
//!
//! A configuration file (`crate::configure::config`) may hold its rules itself, in the same
//! form: [`RuleSet::from_config_text`] reads its `default`, `[[set]]` and `[[rule]]` and
//! leaves its other keys to the configuration's reader, which has checked them.

use std::{
    collections::{HashMap, HashSet},
    ops::Range,
    path::Path,
};

use toml::{
    Spanned,
    de::{DeInteger, DeTable, DeValue},
};
use xdpsieve_common::{MAX_RULES, MAX_SNAPLEN, family};

use super::{
    Action, AddrMatch, RuleError, RuleSet, RuleSpec, check_kernel_rules,
    either::{self, Undirected},
    expr::set_index,
    limit, next_id_after,
};
use crate::{
    base::text::{escape, is_unsafe},
    configure::input::{RULE_FILE_CAP, read_regular_file},
    configure::sets::SetSpec,
};

/// A limit rule's keys as read, checked together once the rule's conditions are known
/// (see `file_limit`).
#[derive(Default)]
pub(super) struct Budget {
    pub(super) rate: Option<(limit::LimitRate, Range<usize>)>,
    pub(super) burst: Option<u32>,
    pub(super) per: Option<(String, Range<usize>)>,
    pub(super) max_tracked: Option<u32>,
    /// `ban` (the time), `ban_set`, `allow_set` (set indexes), `ban_rate`, `ban_max`.
    pub(super) ban: Option<(u64, Range<usize>)>,
    pub(super) ban_set: Option<(usize, Range<usize>)>,
    pub(super) allow_set: Option<usize>,
    pub(super) ban_rate: Option<u32>,
    pub(super) ban_max: Option<u32>,
}

/// Longest rule name accepted: names are printed in columns, logs and every pcapng packet.
pub const MAX_NAME_CHARS: usize = 128;

const RULE_KEYS: &str = "id, name, action, mode, protocol, family, src, dst, host, net, \
     src_port, dst_port, port, log, log_rate, sample, snaplen, and for action = \"limit\": rate, \
     burst, per, max_tracked, ban, ban_set, allow_set, ban_rate, ban_max";

impl RuleSet {
    /// Reads a TOML rule file: a regular file of at most [`RULE_FILE_CAP`] bytes, and the
    /// set files it names (relative to its folder).
    pub fn from_file(path: &Path) -> Result<RuleSet, RuleError> {
        let text = read_regular_file(path, RULE_FILE_CAP, "rule file")?;
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        Self::from_toml_in(&text, &path.to_string_lossy(), dir)
    }

    /// Parses a TOML rule file's text; `origin` names it in errors. Set file paths are
    /// taken as they are written (relative ones against the current directory).
    pub fn from_toml(text: &str, origin: &str) -> Result<RuleSet, RuleError> {
        Self::from_toml_in(text, origin, None)
    }

    /// Parses a TOML rule file's text; relative set file paths are taken against `dir`
    /// (the rule file's folder) when given.
    pub fn from_toml_in(
        text: &str,
        origin: &str,
        dir: Option<&Path>,
    ) -> Result<RuleSet, RuleError> {
        let file = RuleFile { text, origin, dir };
        file.rule_set(file.parse()?.get_ref(), Keys::RuleFile)
    }

    /// Parses the rules a configuration file holds (its text, named `origin` in errors):
    /// its `default`, `[[set]]` and `[[rule]]`, as a rule file has them, relative set file
    /// paths taken against `dir`. Its other keys are the configuration's: skipped here,
    /// so the caller must have checked them (an unknown key must not pass unnoticed).
    pub fn from_config_text(
        text: &str,
        origin: &str,
        dir: Option<&Path>,
    ) -> Result<RuleSet, RuleError> {
        let file = RuleFile { text, origin, dir };
        file.rule_set(file.parse()?.get_ref(), Keys::Config)
    }
}

/// The top-level keys of a rule file: what [`RuleSet::from_config_text`] takes of a
/// configuration file.
pub const RULE_FILE_KEYS: [&str; 3] = ["default", "set", "rule"];

/// Whose top level is being read: a rule file's (every key is a rule file's) or a
/// configuration file's (keys other than [`RULE_FILE_KEYS`] are the configuration's).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Keys {
    RuleFile,
    Config,
}

/// The text being parsed and its name, to turn spans into `file:line:column` errors.
pub(super) struct RuleFile<'a> {
    text: &'a str,
    origin: &'a str,
    /// Where relative set file paths start.
    pub(super) dir: Option<&'a Path>,
}

pub(super) type Value<'i> = Spanned<DeValue<'i>>;

impl RuleFile<'_> {
    pub(super) fn error(&self, span: Range<usize>, message: String) -> RuleError {
        let (line, column) = line_column(self.text, span.start);
        RuleError::File {
            path: escape(self.origin).into_owned(),
            line,
            column,
            message: escape(&message).into_owned(),
        }
    }

    pub(super) fn line_of(&self, span: &Range<usize>) -> usize {
        line_column(self.text, span.start).0
    }

    /// The text as a TOML document, or an error at the place it stops being TOML.
    fn parse(&self) -> Result<Spanned<DeTable<'_>>, RuleError> {
        DeTable::parse(self.text).map_err(|e| {
            let message = e.message().trim_end().replace('\n', "; ");
            self.error(
                e.span().unwrap_or(0..0),
                format!("not valid TOML: {message}"),
            )
        })
    }

    fn rule_set(&self, document: &DeTable<'_>, keys: Keys) -> Result<RuleSet, RuleError> {
        let mut set = RuleSet::default();
        let mut entries: &[Value<'_>] = &[];
        let mut set_entries: &[Value<'_>] = &[];
        for (key, value) in document.iter() {
            match key.get_ref().as_ref() {
                "default" => {
                    let text = self.string(value, "`default` must be \"drop\" or \"pass\"")?;
                    set.default_action =
                        Action::from_name(text).map_err(|m| self.error(value.span(), m))?;
                }
                "rule" => match value.get_ref() {
                    DeValue::Array(array) => entries = array,
                    _ => {
                        return Err(self.error(
                            value.span(),
                            "`rule` must be a list of rules: write each as a [[rule]] table \
                             (double brackets)"
                                .into(),
                        ));
                    }
                },
                "set" => match value.get_ref() {
                    DeValue::Array(array) => set_entries = array,
                    _ => {
                        return Err(self.error(
                            value.span(),
                            "`set` must be a list of sets: write each as a [[set]] table \
                             (double brackets)"
                                .into(),
                        ));
                    }
                },
                // The configuration's own keys, checked by its reader.
                _ if keys == Keys::Config => {}
                other => {
                    return Err(self.error(
                        key.span(),
                        format!(
                            "unknown key `{}`: a rule file has `default`, [[set]] and [[rule]] \
                             tables",
                            escape(other)
                        ),
                    ));
                }
            }
        }
        self.sets(set_entries, &mut set)?;
        if entries.len() > MAX_RULES as usize {
            return Err(self.error(
                entries[MAX_RULES as usize].span(),
                format!(
                    "{} rules given; the program evaluates at most {MAX_RULES}",
                    entries.len()
                ),
            ));
        }
        let tables = entries
            .iter()
            .map(|entry| match entry.get_ref() {
                DeValue::Table(table) => Ok((table, entry.span())),
                other => Err(self.error(
                    entry.span(),
                    format!(
                        "each rule must be a table ([[rule]] with keys), not {}",
                        a(other.type_str())
                    ),
                )),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let explicit = self.explicit_ids(&tables)?;
        let mut used: HashSet<u32> = explicit.iter().flatten().copied().collect();
        let mut last_assigned = 0;
        for (written, ((table, span), explicit_id)) in tables.into_iter().zip(explicit).enumerate()
        {
            let kernel_rules = self.rule(table, span.clone(), &set.sets)?;
            let id = match explicit_id {
                Some(id) => id,
                None => {
                    let id = next_id_after(last_assigned, |id| used.contains(&id))
                        .ok_or_else(|| self.error(span.clone(), "no rule id is left".into()))?;
                    used.insert(id);
                    last_assigned = id;
                    id
                }
            };
            for mut rule in kernel_rules {
                rule.id = id;
                if rule.name.is_empty() {
                    rule.name = format!("rule-{id}");
                }
                set.rules.push(rule);
                self.check_bans(&set, span.clone())?;
            }
            // Written rules were counted above; kernel rules may be more.
            check_kernel_rules(set.rules.len(), written + 1).map_err(|m| self.error(span, m))?;
        }
        set.check_size()?;
        Ok(set)
    }

    /// Each rule's explicit id, if it has one; each nonzero and unique.
    fn explicit_ids(
        &self,
        tables: &[(&DeTable<'_>, Range<usize>)],
    ) -> Result<Vec<Option<u32>>, RuleError> {
        let mut by_rule = Vec::with_capacity(tables.len());
        let mut first_use: HashMap<u32, (Range<usize>, String)> = HashMap::new();
        for (table, _) in tables {
            let Some(value) = table.get("id") else {
                by_rule.push(None);
                continue;
            };
            let id = match value.get_ref() {
                DeValue::Integer(i) => integer(i).and_then(|i| u32::try_from(i).ok()),
                _ => None,
            }
            .filter(|&id| id != 0)
            .ok_or_else(|| {
                self.error(
                    value.span(),
                    format!(
                        "`id` must be a whole number from 1 to {} (0 is the default verdict's)",
                        u32::MAX
                    ),
                )
            })?;
            let who = match table.get("name").and_then(|n| n.get_ref().as_str()) {
                Some(name) => format!("rule `{}`", escape(name)),
                None => "the rule".to_string(),
            };
            if let Some((earlier, earlier_who)) = first_use.get(&id) {
                return Err(self.error(
                    value.span(),
                    format!(
                        "duplicate rule id {id}: {who} here and {earlier_who} at line {} both use it",
                        self.line_of(earlier)
                    ),
                ));
            }
            first_use.insert(id, (value.span(), who));
            by_rule.push(Some(id));
        }
        Ok(by_rule)
    }

    /// One rule's conditions and options, as its kernel rules (one, or one per direction
    /// of its `host`, `net` and `port`); their id is set by the caller.
    fn rule(
        &self,
        table: &DeTable<'_>,
        span: Range<usize>,
        sets: &[SetSpec],
    ) -> Result<Vec<RuleSpec>, RuleError> {
        let Some(action) = table.get("action") else {
            return Err(self.error(
                span,
                "rule has no `action`: add action = \"drop\" or action = \"pass\"".into(),
            ));
        };
        let action_name =
            self.string(action, "`action` must be \"drop\", \"pass\" or \"limit\"")?;
        let is_limit = action_name == "limit";
        let action = if is_limit {
            Action::Drop
        } else {
            Action::from_name(action_name)
                .map_err(|m| self.error(action.span(), format!("{m} or `limit`")))?
        };
        let mut rule = RuleSpec::new(action);
        let mut budget = Budget::default();
        let mut undirected = Undirected::default();
        for (key, value) in table.iter() {
            let at = |m: String| self.error(value.span(), m);
            match key.get_ref().as_ref() {
                "id" | "action" => {}
                "mode" => {
                    let text = self.string(value, "`mode` must be \"monitor\" or \"enforce\"")?;
                    rule.mode = limit::Mode::from_name(text).map_err(at)?;
                }
                "rate" | "burst" | "per" | "max_tracked" | "ban" | "ban_set" | "allow_set"
                | "ban_rate" | "ban_max"
                    if !is_limit =>
                {
                    return Err(self.error(
                        key.span(),
                        format!(
                            "`{}` belongs to a limit rule: write action = \"limit\"",
                            key.get_ref()
                        ),
                    ));
                }
                "rate" | "burst" | "per" | "max_tracked" | "ban" | "ban_set" | "allow_set"
                | "ban_rate" | "ban_max" => self.limit_key(key, value, sets, &mut budget)?,
                "name" => rule.name = self.name(value)?,
                "protocol" => {
                    let text = self.text_or_number(
                        value,
                        "`protocol` must be tcp, udp, icmp, icmp6 or a number 0-255",
                    )?;
                    rule.protocol = Some(text.parse().map_err(at)?);
                }
                "family" => {
                    rule.family = Some(
                        match self.string(value, "`family` must be \"ipv4\" or \"ipv6\"")? {
                            "ipv4" | "ip" | "inet" => family::IPV4,
                            "ipv6" | "ip6" | "inet6" => family::IPV6,
                            other => {
                                return Err(at(format!(
                                    "unknown family `{}` (expected ipv4 or ipv6)",
                                    escape(other)
                                )));
                            }
                        },
                    );
                }
                "src" | "dst" => {
                    let what = format!(
                        "`{}` must be an address or CIDR in quotes, e.g. \"198.51.100.0/24\", \
                         or a set, e.g. \"@blocklist\"",
                        key.get_ref()
                    );
                    let text = self.string(value, &what)?;
                    let addr = match text.strip_prefix('@') {
                        Some(name) => AddrMatch::Set(set_index(name, sets).map_err(at)?),
                        None => AddrMatch::Prefix(text.parse().map_err(at)?),
                    };
                    if key.get_ref() == "src" {
                        rule.src = Some(addr);
                    } else {
                        rule.dst = Some(addr);
                    }
                }
                "host" | "net" => {
                    let addr = self.undirected_address(key.get_ref(), value, table, sets)?;
                    undirected.addr = Some(addr);
                }
                "port" => {
                    let range = self
                        .text_or_number(value, "`port` must be a port number or \"low-high\"")?
                        .parse()
                        .map_err(at)?;
                    undirected.port = Some(range);
                }
                "src_port" | "dst_port" => {
                    let what = format!("`{}` must be a port number or \"low-high\"", key.get_ref());
                    let range = self.text_or_number(value, &what)?.parse().map_err(at)?;
                    if key.get_ref() == "src_port" {
                        rule.src_port = Some(range);
                    } else {
                        rule.dst_port = Some(range);
                    }
                }
                "log" => {
                    rule.log = value.get_ref().as_bool().ok_or_else(|| {
                        at(format!(
                            "`log` must be true or false, not {}",
                            a(value.get_ref().type_str())
                        ))
                    })?;
                }
                "log_rate" => {
                    let text = self.text_or_number(
                        value,
                        "`log_rate` must be a rate such as \"100/s\", or 0 for unlimited",
                    )?;
                    rule.rate = Some(text.parse().map_err(at)?);
                }
                "sample" => {
                    rule.sample = Some(self.whole_number(
                        value,
                        1,
                        u32::MAX,
                        "`sample` must be a whole number N >= 1 (record 1 in N; 1 records all)",
                    )?);
                }
                "snaplen" => {
                    rule.snaplen = Some(self.whole_number(
                        value,
                        1,
                        MAX_SNAPLEN,
                        &format!(
                            "`snaplen` must be a whole number of bytes from 1 to {MAX_SNAPLEN}"
                        ),
                    )?);
                }
                other => {
                    return Err(self.error(
                        key.span(),
                        format!(
                            "unknown key `{}` in a rule (a rule has {RULE_KEYS})",
                            escape(other)
                        ),
                    ));
                }
            }
        }
        let shown = if rule.name.is_empty() {
            String::from("this rule")
        } else {
            format!("rule `{}`", rule.name)
        };
        if let Some(message) = either::conflict(&rule, &undirected) {
            return Err(self.error(span, format!("{shown}: {message}")));
        }
        if is_limit {
            rule.limit = Some(self.limit_of(budget, &rule, &shown, span.clone())?);
        }
        either::expand(rule, undirected).map_err(|m| self.error(span, format!("{shown} {m}")))
    }

    fn name(&self, value: &Value<'_>) -> Result<String, RuleError> {
        let name = self.string(value, "`name` must be text in quotes")?;
        let problem = if name.trim().is_empty() {
            Some("rule name is empty".to_string())
        } else if name.chars().any(is_unsafe) {
            Some(format!(
                "rule name `{}` contains control or invisible characters; names are printed \
                 on terminals and in captures, so use visible characters only",
                escape(name)
            ))
        } else if name.chars().count() > MAX_NAME_CHARS {
            Some(format!(
                "rule name is longer than {MAX_NAME_CHARS} characters"
            ))
        } else {
            None
        };
        match problem {
            Some(m) => Err(self.error(value.span(), m)),
            None => Ok(name.to_string()),
        }
    }

    /// A string value, or `expected` (plus what was found) at its position.
    pub(super) fn string<'v>(
        &self,
        value: &'v Value<'_>,
        expected: &str,
    ) -> Result<&'v str, RuleError> {
        value.get_ref().as_str().ok_or_else(|| {
            self.error(
                value.span(),
                format!("{expected}, not {}", a(value.get_ref().type_str())),
            )
        })
    }

    /// A TOML integer in `min..=max`; anything else is an error saying `expected`.
    pub(super) fn whole_number(
        &self,
        value: &Value<'_>,
        min: u32,
        max: u32,
        expected: &str,
    ) -> Result<u32, RuleError> {
        let number = match value.get_ref() {
            DeValue::Integer(i) => integer(i).and_then(|n| u32::try_from(n).ok()),
            _ => None,
        };
        match number.filter(|n| (min..=max).contains(n)) {
            Some(n) => Ok(n),
            None => {
                let found = match value.get_ref() {
                    DeValue::Integer(i) => i.as_str().to_string(),
                    other => a(other.type_str()),
                };
                Err(self.error(value.span(), format!("{expected}, not {found}")))
            }
        }
    }

    /// `53` and `"53"` (or `"1000-2000"`, `"udp"`) alike, as text for the value's parser.
    fn text_or_number(&self, value: &Value<'_>, expected: &str) -> Result<String, RuleError> {
        match value.get_ref() {
            DeValue::String(s) => Ok(s.to_string()),
            DeValue::Integer(i) => {
                Ok(integer(i).map_or_else(|| i.as_str().to_string(), |n| n.to_string()))
            }
            other => Err(self.error(
                value.span(),
                format!("{expected}, not {}", a(other.type_str())),
            )),
        }
    }
}

/// A TOML integer's value, `None` past i128 (which no key accepts anyway).
fn integer(i: &DeInteger<'_>) -> Option<i128> {
    i128::from_str_radix(i.as_str(), i.radix()).ok()
}

/// "an integer", "a string": TOML's type names with their article.
pub(crate) fn a(type_name: &str) -> String {
    match type_name.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => format!("an {type_name}"),
        _ => format!("a {type_name}"),
    }
}

/// 1-based line and column of byte `offset` in `text`.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}
