//! A rule file's limit rule: its budget (`rate`, `burst`, `per`, `max_tracked`) and its
//! ban (`ban`, `ban_set`, `allow_set`, `ban_rate`, `ban_max`), read key by key and checked
//! together once the rule's conditions are known (see `limit` for what they mean).

use std::ops::Range;

use super::{
    Action, AddrMatch, RuleError, RuleSet, RuleSpec,
    expr::set_index,
    file::{Budget, RuleFile, Value},
    limit,
};
use crate::{base::text::escape, configure::sets::SetSpec};

impl RuleFile<'_> {
    /// One key of a limit rule's budget or ban (the caller checked the rule limits).
    pub(super) fn limit_key(
        &self,
        key: &toml::Spanned<std::borrow::Cow<'_, str>>,
        value: &Value<'_>,
        sets: &[SetSpec],
        budget: &mut Budget,
    ) -> Result<(), RuleError> {
        let at = |m: String| self.error(value.span(), m);
        match key.get_ref().as_ref() {
            "rate" => {
                let text = self.string(
                    value,
                    "`rate` must be a rate in quotes, e.g. \"1000/s\" or \"10MB/s\"",
                )?;
                budget.rate = Some((limit::parse_rate(text).map_err(at)?, value.span()));
            }
            "burst" => {
                budget.burst = Some(self.whole_number(
                    value,
                    1,
                    u32::MAX,
                    "`burst` must be a whole number >= 1 (packets, or bytes for a byte \
                         rate, that may pass at once)",
                )?);
            }
            "per" => {
                let text = self.string(
                    value,
                    "`per` must be \"src\", \"src/24\", \"src/64\" or \"rule\"",
                )?;
                budget.per = Some((text.to_string(), value.span()));
            }
            "max_tracked" => {
                budget.max_tracked = Some(self.whole_number(
                    value,
                    1,
                    limit::MAX_TRACKED,
                    &format!(
                        "`max_tracked` must be a whole number of keys from 1 to {}",
                        limit::MAX_TRACKED
                    ),
                )?);
            }
            "ban" => {
                let text = self.string(value, "`ban` must be a time in quotes, e.g. \"10m\"")?;
                let time = crate::base::text::parse_timeout(text).map_err(|_| {
                    at(format!(
                        "`ban = \"{}\"` is not a ban time (examples: \"90s\", \"10m\", \
                             \"1h30m\", \"7d\"; 1ms to 366d)",
                        escape(text)
                    ))
                })?;
                budget.ban = Some((time.as_nanos() as u64, key.span()));
            }
            "ban_set" | "allow_set" => {
                let what = format!(
                    "`{}` must name a set declared in this file, e.g. \"banned\"",
                    key.get_ref()
                );
                let text = self.string(value, &what)?;
                let index = set_index(text.strip_prefix('@').unwrap_or(text), sets).map_err(at)?;
                if key.get_ref() == "ban_set" {
                    budget.ban_set = Some((index, value.span()));
                } else {
                    budget.allow_set = Some(index);
                }
            }
            "ban_rate" => {
                budget.ban_rate = Some(self.whole_number(
                    value,
                    1,
                    limit::MAX_BANS,
                    "`ban_rate` must be a whole number of bans per second, at least 1",
                )?);
            }
            "ban_max" => {
                budget.ban_max = Some(self.whole_number(
                    value,
                    1,
                    limit::MAX_BANS,
                    &format!(
                        "`ban_max` must be a whole number of bans from 1 to {}",
                        limit::MAX_BANS
                    ),
                )?);
            }
            _ => {}
        }
        Ok(())
    }

    /// The limit of a rule read with `budget`; `shown` names the rule in errors.
    pub(super) fn limit_of(
        &self,
        mut budget: Budget,
        rule: &RuleSpec,
        shown: &str,
        span: Range<usize>,
    ) -> Result<limit::LimitSpec, RuleError> {
        let Some((rate, _)) = budget.rate else {
            return Err(self.error(
                span,
                format!("{shown} is a limit rule without a `rate`: add e.g. rate = \"1000/s\""),
            ));
        };
        let per = match budget.per.take() {
            Some((text, at)) => {
                limit::parse_per(&text, rule.address_family()).map_err(|m| self.error(at, m))?
            }
            None => limit::Per::Source { v4: 32, v6: 128 },
        };
        Ok(limit::LimitSpec {
            rate,
            burst: budget
                .burst
                .map_or_else(|| limit::LimitSpec::default_burst(rate), u64::from),
            per,
            max_tracked: budget.max_tracked.unwrap_or(limit::DEFAULT_MAX_TRACKED),
            ban: self.ban(&budget, rule, per, shown, span)?,
        })
    }

    /// A limit rule's ban, checked on its own (its place among the rules is checked
    /// once they are all read, see [`RuleFile::check_bans`]).
    fn ban(
        &self,
        budget: &Budget,
        rule: &RuleSpec,
        per: limit::Per,
        shown: &str,
        span: Range<usize>,
    ) -> Result<Option<limit::BanSpec>, RuleError> {
        let (time_ns, at) = match (&budget.ban, &budget.ban_set) {
            (None, None) => {
                if budget.allow_set.is_some()
                    || budget.ban_rate.is_some()
                    || budget.ban_max.is_some()
                {
                    return Err(self.error(
                        span,
                        format!(
                            "{shown} has `allow_set`, `ban_rate` or `ban_max` but bans \
                             nothing: add ban = \"10m\" and ban_set = \"SET\""
                        ),
                    ));
                }
                return Ok(None);
            }
            (Some(_), None) | (None, Some(_)) => {
                return Err(self.error(
                    span,
                    format!(
                        "{shown}: `ban` and `ban_set` go together (how long, and the set \
                         whose drop rule enforces the ban)"
                    ),
                ));
            }
            (Some((time, at)), Some(_)) => (*time, at.clone()),
        };
        if per == limit::Per::Rule {
            return Err(self.error(
                at,
                format!(
                    "{shown} bans with per = \"rule\": there is no key to ban (the whole rule \
                     shares one bucket); use per = \"src\" or \"src/24\""
                ),
            ));
        }
        if rule.mode == limit::Mode::Monitor {
            return Err(self.error(
                at,
                format!(
                    "{shown} is in monitor mode and bans: a monitor rule changes nothing; \
                     remove `ban` or the mode"
                ),
            ));
        }
        let (set, _) = budget.ban_set.clone().unwrap_or_default();
        Ok(Some(limit::BanSpec {
            time_ns,
            set,
            allow_set: budget.allow_set,
            rate: budget.ban_rate.unwrap_or(limit::DEFAULT_BAN_RATE),
            max: budget.ban_max.unwrap_or(limit::DEFAULT_BAN_MAX),
        }))
    }

    /// The place of the limit rule just added (the last of `set.rules`) when it bans: a
    /// drop rule before it must take `src` from the ban set, or a ban would stop nothing
    /// (the packets would meet the limit rule again, and renew the ban for ever). And all
    /// the rules' bans must fit the room the set table keeps.
    pub(super) fn check_bans(&self, set: &RuleSet, span: Range<usize>) -> Result<(), RuleError> {
        let Some((last, earlier)) = set.rules.split_last() else {
            return Ok(());
        };
        let Some(ban) = last.limit.and_then(|l| l.ban) else {
            return Ok(());
        };
        let name = |i: usize| set.sets.get(i).map_or_else(String::new, |s| s.name.clone());
        let enforced = earlier.iter().any(|r| {
            r.action == Action::Drop
                && r.limit.is_none()
                && r.mode == limit::Mode::Enforce
                && r.src == Some(AddrMatch::Set(ban.set))
        });
        if !enforced {
            return Err(self.error(
                span,
                format!(
                    "rule `{}` bans into set {} but no drop rule before it has src = \"@{}\": \
                     a ban would stop nothing. Add, before it: [[rule]] action = \"drop\" \
                     src = \"@{}\"",
                    escape(&last.name),
                    escape(&name(ban.set)),
                    escape(&name(ban.set)),
                    escape(&name(ban.set)),
                ),
            ));
        }
        let total: u64 = set
            .rules
            .iter()
            .filter_map(|r| r.limit.and_then(|l| l.ban))
            .map(|b| u64::from(b.max))
            .sum();
        if total > u64::from(limit::MAX_BANS) {
            return Err(self.error(
                span,
                format!(
                    "the limit rules may hold {total} bans at once (their `ban_max` summed); \
                     at most {} fit the set table: lower `ban_max`",
                    limit::MAX_BANS
                ),
            ));
        }
        Ok(())
    }
}
