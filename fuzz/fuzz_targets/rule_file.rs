//! TOML rule files from arbitrary text: never a panic; a rule set that parses has unique,
//! nonzero ids (the kernel rules of one rule written without a direction share its id,
//! side by side), at most MAX_RULES kernel rules and printable names, and compiles to
//! kernel rules; an error names a position and carries no control character.
#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use xdpsieve::{
    base::text::is_unsafe,
    configure::rules::{Rate, RuleSet},
};
use xdpsieve_common::MAX_RULES;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match RuleSet::from_toml(text, "fuzz.toml") {
        Ok(set) => {
            assert!(set.rules.len() <= MAX_RULES as usize);
            let mut ids = HashSet::new();
            for (rule, _) in set.written() {
                assert!(ids.insert(rule.id), "duplicate id {}", rule.id);
            }
            for rule in &set.rules {
                assert_ne!(rule.id, 0, "rule id 0 is the default verdict's");
                assert!(!rule.name.chars().any(is_unsafe), "{:?}", rule.name);
                assert!(!rule.name.trim().is_empty());
            }
            assert_eq!(set.to_kernel(Rate::UNLIMITED).len(), set.rules.len());
        }
        Err(e) => {
            let message = e.to_string();
            assert!(message.starts_with("fuzz.toml:"), "{message}");
            assert!(!message.chars().any(is_unsafe), "{message:?}");
        }
    }
});
