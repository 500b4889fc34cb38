//! Configuration files from arbitrary text: never a panic; a file that reads has values
//! within their keys' bounds, and its inline rules read or fail like a rule file's; an
//! error names the file and a position and carries no control character.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use xdpsieve::{base::text::is_unsafe, configure::config::Config};
use xdpsieve_common::{MAX_RULES, MAX_SNAPLEN};

const ORIGIN: &str = "fuzz/xdpsieve.toml";

/// An error's message: it names the file and a position, and is safe for a terminal.
fn check_error(message: &str) {
    assert!(message.starts_with(&format!("{ORIGIN}:")), "{message}");
    assert!(!message.chars().any(is_unsafe), "{message:?}");
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let config = match Config::parse(text.to_string(), Path::new(ORIGIN)) {
        Ok(config) => config,
        Err(e) => return check_error(&e.to_string()),
    };
    if let Some(interfaces) = &config.interfaces {
        assert!(!interfaces.is_empty());
        assert!(interfaces.iter().all(|i| !i.is_empty() && i.len() < 16));
    }
    if let Some(size) = config.ring_size {
        assert!(size.is_power_of_two() && size >= 4096, "{size}");
    }
    if let Some(snaplen) = config.capture.snaplen {
        assert!((1..=MAX_SNAPLEN).contains(&snaplen));
    }
    assert_ne!(config.capture.sample, Some(0));
    // The rule file a `rules` key names is not read: it is any path at all.
    if config.rule_file.is_none() {
        match config.rule_set() {
            Ok(set) => assert!(set.rules.len() <= MAX_RULES as usize),
            Err(e) => check_error(&e.to_string()),
        }
    }
});
