//! What the subcommands that read rules share (`run`, `check-rules`, `check-config`): the
//! rule flags in command-line order, and the rule-file warnings.

use std::path::Path;

use clap::ArgMatches;
use xdpsieve::{
    configure::rules::{Action, RuleSet},
    instance::recipe::RuleSources,
};

/// Where the rules come from: the file, then `drop` and `pass` in command-line order (from
/// `matches`), then `default`. A reload reads them again from the same sources.
pub(crate) fn rule_sources(
    file: Option<&Path>,
    drop: &[String],
    pass: &[String],
    default: Option<Action>,
    matches: &ArgMatches,
) -> RuleSources {
    RuleSources::new(file, expressions(drop, pass, matches), default)
}

/// `--drop` and `--pass` as (action, expression), in command-line order (from `matches`).
pub(crate) fn expressions(
    drop: &[String],
    pass: &[String],
    matches: &ArgMatches,
) -> Vec<(Action, String)> {
    let indexed = |id: &str, action: Action, values: &[String]| -> Vec<(usize, Action, String)> {
        let indices: Vec<usize> = matches
            .indices_of(id)
            .map(Iterator::collect)
            .unwrap_or_default();
        values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                (
                    indices.get(i).copied().unwrap_or(usize::MAX),
                    action,
                    v.clone(),
                )
            })
            .collect()
    };
    let mut cli_rules = indexed("drop", Action::Drop, drop);
    cli_rules.extend(indexed("pass", Action::Pass, pass));
    cli_rules.sort_by_key(|(index, _, _)| *index);
    cli_rules.into_iter().map(|(_, a, e)| (a, e)).collect()
}

/// Lines of set files accepted with a change (host bits masked): said, not fatal.
pub(crate) fn warn_about(rules: &RuleSet) {
    for warning in &rules.warnings {
        xdpsieve::base::log::warning(format_args!("warning: {warning}"));
    }
}
