//! A rule file's `host` and `net`: an address without a direction, read from TOML (the
//! expansion into one kernel rule per direction is `either`'s).

use toml::de::DeTable;

use super::{
    AddrMatch, RuleError,
    expr::set_index,
    file::{RuleFile, Value},
};
use crate::{base::text::escape, configure::sets::SetSpec};

impl RuleFile<'_> {
    /// A rule table's `host` or `net` (`key`; the other may not be in `table`): an
    /// address without a direction, literal (one address for `host`) or, for `net`, a set
    /// of `sets`.
    pub(super) fn undirected_address(
        &self,
        key: &str,
        value: &Value<'_>,
        table: &DeTable<'_>,
        sets: &[SetSpec],
    ) -> Result<AddrMatch, RuleError> {
        let at = |m: String| self.error(value.span(), m);
        let host = key == "host";
        if table.get(if host { "net" } else { "host" }).is_some() {
            return Err(at(
                "give `host` or `net`, not both: each is an address without a \
                 direction (`net` takes a CIDR or a set too)"
                    .into(),
            ));
        }
        let what = if host {
            "`host` must be an address in quotes, e.g. \"198.51.100.7\""
        } else {
            "`net` must be an address or CIDR in quotes, e.g. \"198.51.100.0/24\", or a set, \
             e.g. \"@blocklist\""
        };
        let text = self.string(value, what)?;
        match text.strip_prefix('@') {
            Some(_) if host => Err(at(format!(
                "`host` takes one address; a set is matched with `net`: write net = \"{}\"",
                escape(text)
            ))),
            Some(name) => Ok(AddrMatch::Set(set_index(name, sets).map_err(at)?)),
            None if host && text.contains('/') => Err(at(format!(
                "`host` takes an address, not `{}`: use `net`",
                escape(text)
            ))),
            None => Ok(AddrMatch::Prefix(text.parse().map_err(at)?)),
        }
    }
}
