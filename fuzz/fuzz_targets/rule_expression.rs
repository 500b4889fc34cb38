//! Command-line rule expressions from arbitrary text: never a panic; a rule that parses
//! prints (`conditions()`) as an expression that parses back to the same rule; ids are
//! never 0; nothing printed (names, errors) carries a control character.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xdpsieve::{
    base::text::is_unsafe,
    configure::rules::{Action, Rate, RuleSet, parse_expression},
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(rule) = parse_expression(Action::Drop, text) {
        let printed = rule.conditions();
        let again = parse_expression(Action::Drop, &printed)
            .unwrap_or_else(|e| panic!("{printed:?} (from {text:?}) does not parse back: {e}"));
        assert_eq!(again, rule, "{text:?} printed as {printed:?}");
        let _ = rule.to_kernel(Rate::UNLIMITED);
    }
    let mut set = RuleSet::default();
    match set.push_expression(Action::Pass, text) {
        Ok(()) => {
            let rule = &set.rules[0];
            assert_ne!(rule.id, 0);
            assert!(!rule.name.chars().any(is_unsafe), "{:?}", rule.name);
        }
        Err(e) => {
            let message = e.to_string();
            assert!(!message.chars().any(is_unsafe), "{message:?}");
        }
    }
});
