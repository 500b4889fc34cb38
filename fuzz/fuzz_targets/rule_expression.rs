//! Command-line rule expressions from arbitrary text: never a panic; a rule that parses
//! prints (as written) as an expression that parses back to the same kernel rules, and
//! each kernel rule's own conditions (`conditions()`) parse back to it alone; at most
//! `MAX_KERNEL_RULES_PER_RULE` kernel rules, all with one id, never 0; nothing printed
//! (names, errors) carries a control character.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xdpsieve::{
    base::text::is_unsafe,
    configure::rules::{
        Action, Either, MAX_KERNEL_RULES_PER_RULE, Rate, RuleSet, RuleSpec, parse_expression,
    },
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(rules) = parse_expression(Action::Drop, text) {
        assert!((1..=MAX_KERNEL_RULES_PER_RULE).contains(&rules.len()));
        let printed = rules[0].written_conditions_with(&[]);
        let again = parse_expression(Action::Drop, &printed)
            .unwrap_or_else(|e| panic!("{printed:?} (from {text:?}) does not parse back: {e}"));
        assert_eq!(again, rules, "{text:?} printed as {printed:?}");
        for rule in &rules {
            let own = rule.conditions();
            let alone = parse_expression(Action::Drop, &own)
                .unwrap_or_else(|e| panic!("{own:?} (from {text:?}) does not parse back: {e}"));
            let directed = RuleSpec {
                either: Either::default(),
                ..rule.clone()
            };
            assert_eq!(alone, vec![directed], "{text:?}: kernel rule {own:?}");
            let _ = rule.to_kernel(Rate::UNLIMITED);
        }
    }
    let mut set = RuleSet::default();
    match set.push_expression(Action::Pass, text) {
        Ok(()) => {
            let rule = &set.rules[0];
            assert_ne!(rule.id, 0);
            assert!(set.rules.iter().all(|r| r.id == rule.id && r.name == rule.name));
            assert!(!rule.name.chars().any(is_unsafe), "{:?}", rule.name);
        }
        Err(e) => {
            let message = e.to_string();
            assert!(!message.chars().any(is_unsafe), "{message:?}");
        }
    }
});
