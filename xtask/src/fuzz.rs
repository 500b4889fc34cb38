//! Fuzzing with cargo-fuzz (libFuzzer, on the eBPF build's pinned nightly): the targets in `fuzz/`, each run for a
//! bounded time from its committed seed corpus.
//!
//! The committed corpus (`fuzz/corpus/TARGET`) is given to libFuzzer as a second, read-only
//! directory; what the run discovers goes to `target/fuzz-corpus/TARGET`, so fuzzing never
//! dirties the repository and later runs start from what earlier ones found. A crash
//! leaves its input in `fuzz/artifacts/TARGET/` (ignored by git) and fails the run: add the
//! input to the committed corpus once it is fixed, as a regression.
//!
//! `fuzz/Cargo.lock` is committed with the main workspace's versions (plus libFuzzer's) and
//! checked with `--locked` before the build, so the build never rewrites it.

use std::{fs, path::Path, process::Command};

use anyhow::{Context as _, Result};

use crate::run;

/// Every fuzz target, as named in fuzz/Cargo.toml.
pub(crate) const TARGETS: &[&str] = &[
    "rule_expression",
    "rule_file",
    "config_file",
    "record_decode",
    "capture_roundtrip",
];

/// Seconds per target in `cargo xtask test`.
pub(crate) const CI_SECONDS: u64 = 20;

/// Runs each of `targets` for `seconds`; the first crash (or build failure) is the error.
pub(crate) fn run_targets(root: &Path, targets: &[&str], seconds: u64) -> Result<()> {
    // The eBPF build's pinned nightly: one nightly on a machine.
    let toolchain = crate::setup::ebpf_toolchain()?;
    let plus = format!("+{toolchain}");
    let plus = plus.as_str();
    // One build of every target first: a compile error is not a finding, and says so.
    let nightly = |command: &mut Command| {
        command
            .current_dir(root)
            // `cargo xtask` runs under the stable toolchain's environment; the pin must win.
            .env_remove("RUSTC")
            .env_remove("RUSTUP_TOOLCHAIN");
    };
    // The committed fuzz/Cargo.lock must already say what the build resolves: cargo-fuzz
    // has no `--locked`, so a stale lock would be rewritten by every build (a dirty checkout
    // after each run, and fuzzing with versions nobody committed). It goes stale when the
    // library's dependencies change; refreshing it is one command.
    let mut locked = Command::new("cargo");
    locked.args([
        plus,
        "fetch",
        "--locked",
        "--manifest-path",
        "fuzz/Cargo.toml",
    ]);
    nightly(&mut locked);
    run(&mut locked).context(
        "fuzz/Cargo.lock is out of date with the library's dependencies: refresh it with \
         `cp Cargo.lock fuzz/Cargo.lock && cargo +TOOLCHAIN fetch --manifest-path fuzz/Cargo.toml` \
         (TOOLCHAIN as pinned in xdpsieve-ebpf/rust-toolchain.toml; the workspace's versions, \
         plus libFuzzer's) and commit it",
    )?;
    let mut build = Command::new("cargo");
    build.args([plus, "fuzz", "build", "--debug-assertions"]);
    nightly(&mut build);
    run(&mut build).context(
        "building the fuzz targets failed (a compile error in fuzz/, not a finding): fix the \
         targets for the library's current API",
    )?;
    for target in targets {
        let found = root.join("target/fuzz-corpus").join(target);
        fs::create_dir_all(&found).with_context(|| format!("creating {}", found.display()))?;
        let seeds = root.join("fuzz/corpus").join(target);
        eprintln!("xtask: fuzzing {target} for {seconds} s");
        run(Command::new("cargo")
            // Debug assertions: an integer overflow is a finding, not a silent wrap.
            .args([plus, "fuzz", "run", "--debug-assertions", target])
            .arg(&found)
            .arg(&seeds)
            .args([
                "--".to_string(),
                format!("-max_total_time={seconds}"),
                "-rss_limit_mb=2048".to_string(),
                "-timeout=10".to_string(),
                "-print_final_stats=1".to_string(),
            ])
            .current_dir(root)
            // `cargo xtask` runs under the stable toolchain's environment; the pin must win.
            .env_remove("RUSTC")
            .env_remove("RUSTUP_TOOLCHAIN"))
        .with_context(|| {
            format!(
                "fuzz target {target} failed; its crashing input is in fuzz/artifacts/{target}/ \
                 (reproduce with `cargo +{toolchain} fuzz run {target} FILE`)"
            )
        })?;
    }
    Ok(())
}
