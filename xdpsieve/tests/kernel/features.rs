//! The kernel feature probes `run` makes before it touches anything, judged against the
//! kernel itself: the program loads here (every other test in this binary proves it, and
//! this one loads it too), so each feature it uses is present, and a probe that says
//! otherwise, or cannot answer, is wrong.

use xdpsieve::configure::{kernel_features, loader::Settings};
use xdpsieve_testkit::gate::root_or_skip;

use crate::support::load;

#[test]
fn every_probe_finds_what_the_loaded_program_uses() {
    if !root_or_skip() {
        return;
    }
    let _fw = load(&Settings::default());
    for probed in kernel_features::probe_all() {
        assert_eq!(
            probed.present,
            Ok(true),
            "the probe for {} (Linux {}) disagrees with the kernel that loaded the program",
            probed.feature.name,
            probed.feature.since
        );
    }
    assert!(kernel_features::check().is_ok());
}
