//! The `[[set]]` tables of a TOML rule file: each a name and either a set file (read and
//! parsed by `sets`, its path relative to the rule file's folder) or inline `prefixes`.
//! Errors point at the table or key, as the rest of the file's do.

use std::{collections::HashMap, ops::Range, path::PathBuf};

use toml::{
    Spanned,
    de::{DeTable, DeValue},
};

use super::{
    RuleError, RuleSet,
    file::{RuleFile, Value, a},
};
use crate::{
    base::text::escape,
    configure::sets::{MAX_SETS, SetPrefix, SetSource, SetSpec, check_set_name, read_set_file},
};

const SET_KEYS: &str = "name, and one of file or prefixes";

impl RuleFile<'_> {
    /// The `[[set]]` tables, in order, into `set.sets` (and their warnings into
    /// `set.warnings`): names valid and unique, at most [`MAX_SETS`].
    pub(super) fn sets(&self, entries: &[Value<'_>], set: &mut RuleSet) -> Result<(), RuleError> {
        if entries.len() > MAX_SETS {
            return Err(self.error(
                entries[MAX_SETS].span(),
                format!(
                    "{} sets declared; a rule set holds at most {MAX_SETS} (merge lists into \
                     one set: a set may hold any number of prefixes)",
                    entries.len()
                ),
            ));
        }
        let mut first_use: HashMap<String, Range<usize>> = HashMap::new();
        for entry in entries {
            let DeValue::Table(table) = entry.get_ref() else {
                return Err(self.error(
                    entry.span(),
                    format!(
                        "each set must be a table ([[set]] with keys), not {}",
                        a(entry.get_ref().type_str())
                    ),
                ));
            };
            let spec = self.set(table, entry.span(), &mut set.warnings)?;
            if let Some(earlier) = first_use.get(&spec.name) {
                return Err(self.error(
                    table.get("name").map_or(entry.span(), Spanned::span),
                    format!(
                        "duplicate set name `{}`: a set of that name is declared at line {}",
                        spec.name,
                        self.line_of(earlier)
                    ),
                ));
            }
            first_use.insert(spec.name.clone(), entry.span());
            set.sets.push(spec);
        }
        Ok(())
    }

    /// One `[[set]]`: `name`, and `file` or `prefixes`.
    fn set(
        &self,
        table: &DeTable<'_>,
        span: Range<usize>,
        warnings: &mut Vec<String>,
    ) -> Result<SetSpec, RuleError> {
        let Some(name_value) = table.get("name") else {
            return Err(self.error(span, "set has no `name`: add name = \"...\"".into()));
        };
        let name = self.string(name_value, "`name` must be text in quotes")?;
        check_set_name(name).map_err(|m| self.error(name_value.span(), m))?;
        for (key, _) in table.iter() {
            if !matches!(key.get_ref().as_ref(), "name" | "file" | "prefixes") {
                return Err(self.error(
                    key.span(),
                    format!(
                        "unknown key `{}` in a set (a set has {SET_KEYS})",
                        escape(key.get_ref())
                    ),
                ));
            }
        }
        let (prefixes, source) = match (table.get("file"), table.get("prefixes")) {
            (Some(_), Some(_)) | (None, None) => {
                return Err(self.error(
                    span,
                    format!(
                        "set `{name}` needs exactly one of `file` (a set file) or `prefixes` \
                         (a list; `prefixes = []` for a set filled at run time)"
                    ),
                ));
            }
            (Some(file), None) => {
                let written = self.string(file, "`file` must be a path in quotes")?;
                let path = match self.dir {
                    Some(dir) => dir.join(written),
                    None => PathBuf::from(written),
                };
                let parsed = read_set_file(&path)
                    .map_err(|e| self.error(file.span(), format!("set `{name}`: {e}")))?;
                warnings.extend(parsed.warnings);
                (parsed.prefixes, SetSource::File(path))
            }
            (None, Some(list)) => (self.inline_prefixes(name, list)?, SetSource::Inline),
        };
        Ok(SetSpec {
            name: name.to_string(),
            prefixes,
            source,
        })
    }

    /// `prefixes = [...]`: written by hand in the rule file, so host bits set after the
    /// prefix are an error here (as in a rule), not a warning as in a published list.
    fn inline_prefixes(&self, name: &str, list: &Value<'_>) -> Result<Vec<SetPrefix>, RuleError> {
        let expected = "`prefixes` must be a list of prefixes in quotes, \
                        e.g. [\"198.51.100.0/24\", \"2001:db8::/32\"]";
        let DeValue::Array(items) = list.get_ref() else {
            return Err(self.error(
                list.span(),
                format!("{expected}, not {}", a(list.get_ref().type_str())),
            ));
        };
        items
            .iter()
            .map(|item| {
                self.string(item, expected)?
                    .parse::<SetPrefix>()
                    .map_err(|m| self.error(item.span(), format!("set `{name}`: {m}")))
            })
            .collect()
    }
}
