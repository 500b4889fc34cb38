//! Project tasks: `setup` (toolchain and test tools), `build`, `package` (the Debian
//! package), `test` (the CI gate), `demo`, `fuzz`, `bench`.
//!
//! `setup` is idempotent and quick when everything is present; `test` and `demo` run it
//! first, so the README's two commands work on a fresh machine.

mod bench;
mod bench_events;
mod fuzz;
mod netbench;
mod package;
mod setup;
mod watchdog;

use std::{
    env,
    ffi::OsStr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "xdpsieve project tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what building and testing need: the pinned nightly the XDP program is built
    /// with (xdpsieve-ebpf/rust-toolchain.toml) with rust-src, bpf-linker built against its
    /// own LLVM, the Debian packages the tests use, cargo-fuzz.
    Setup,
    /// Build xdpsieve (release) with its embedded XDP program.
    Build,
    /// Build the Debian package (target/debian/xdpsieve_VERSION_ARCH.deb): the release
    /// binary, the systemd unit, the configuration as a conffile, the manual pages and the
    /// bash, zsh and fish completions. Installs on a machine without Rust.
    Package,
    /// The CI gate: setup, formatting, clippy, the Debian package, every test (root tests
    /// included, the package's among them), and each fuzz target for a bounded time.
    Test {
        /// Extra arguments for `cargo test` (after `--`).
        #[arg(last = true)]
        cargo_args: Vec<String>,
    },
    /// Run the sandboxed demo (needs root).
    Demo,
    /// Fuzz the parsers and decoders (cargo-fuzz, nightly) from the committed corpus.
    Fuzz {
        /// One target [default: every one in turn].
        #[arg(value_parser = clap::builder::PossibleValuesParser::new(fuzz::TARGETS))]
        target: Option<String>,
        /// Seconds per target.
        #[arg(long, value_name = "SECS", default_value_t = 60,
              value_parser = clap::value_parser!(u64).range(1..=86_400))]
        time: u64,
    },
    /// Benchmark xdpsieve beside xdp-filter, xdpdump and tcpdump (needs root): per-packet
    /// cost in the kernel, capture end to end over veth, address sets beside the kernel's
    /// LPM trie, limit rules beside XDP-Firewall's limiter, and the capture path's cost
    /// under a veth flood (bpf_stats, perf). Writes BENCHMARKS.md and
    /// benchmarks.json (about 9 minutes; `--quick` about 1.5).
    Bench {
        /// Fewer repeats and shorter runs, to check the harness (under 2 minutes).
        #[arg(long)]
        quick: bool,
        /// Where to write the report [default: the repository root; with --quick,
        /// target/bench-quick].
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Run only one part.
        #[arg(long, value_name = "PART")]
        only: Option<bench::Part>,
    },
    /// Benchmark the event log over ring buffer and perf (needs root): highest lossless
    /// event rate, reader CPU time per event, and loss accounting at max rate.
    BenchEvents {
        /// Fewer frames per step (under a minute).
        #[arg(long)]
        quick: bool,
    },
}

fn main() -> Result<()> {
    match Cli::parse().task {
        Task::Setup => setup::setup(),
        Task::Build => {
            setup::setup()?;
            cargo(&["build", "--release", "--package", "xdpsieve"])
        }
        Task::Package => {
            setup::setup()?;
            let deb = package::package()?;
            println!("{}", deb.display());
            Ok(())
        }
        Task::Test { cargo_args } => {
            setup::setup()?;
            cargo(&["fmt", "--all", "--check"])?;
            cargo(&[
                "clippy",
                "--workspace",
                "--exclude",
                "xdpsieve-ebpf",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ])?;
            clippy_ebpf()?;
            // The package is built here, from this checkout, and its test
            // (`xdpsieve/tests/package`) installs it: PACKAGE_ENV names it, or is empty when
            // the build failed (the test then fails rather than building it again).
            let package = package::package();
            let deb = match &package {
                Ok(deb) => deb.as_os_str().to_owned(),
                Err(_) => Default::default(),
            };
            // Every test binary runs even when one before it fails, and so do fuzzing and the
            // bench smoke run: one run shows everything that is wrong, and still fails.
            let mut args = vec![
                "test",
                "--workspace",
                "--exclude",
                "xdpsieve-ebpf",
                "--no-fail-fast",
            ];
            if !cargo_args.is_empty() {
                args.push("--");
                args.extend(cargo_args.iter().map(String::as_str));
            }
            let tests = cargo_test(&args, &[(package::PACKAGE_ENV, deb.as_os_str())]);
            let fuzzing = fuzz::run_targets(&workspace_root(), fuzz::TARGETS, fuzz::CI_SECONDS);
            let bench = bench_smoke();
            all_passed(&[
                ("package", package.map(drop)),
                ("tests", tests),
                ("fuzzing", fuzzing),
                ("bench smoke run", bench),
            ])
        }
        Task::Demo => {
            setup::setup()?;
            cargo(&["build", "--release", "--package", "xdpsieve"])?;
            let binary = workspace_root().join("target/release/xdpsieve");
            run(Command::new(binary).arg("demo"))
        }
        Task::Fuzz { target, time } => {
            setup::setup()?;
            let targets: Vec<&str> = match &target {
                Some(t) => vec![t.as_str()],
                None => fuzz::TARGETS.to_vec(),
            };
            fuzz::run_targets(&workspace_root(), &targets, time)
        }
        Task::Bench { quick, out, only } => {
            setup::setup()?;
            cargo(&["build", "--release", "--package", "xdpsieve"])?;
            let root = workspace_root();
            let out = out.unwrap_or_else(|| {
                if quick {
                    root.join("target/bench-quick")
                } else {
                    root.clone()
                }
            });
            bench::run(&root, &bench::Options { quick, out, only }).map(drop)
        }
        Task::BenchEvents { quick } => {
            setup::setup()?;
            cargo(&["build", "--release", "--package", "xdpsieve"])?;
            bench_events::run(&workspace_root(), quick)
        }
    }
}

/// The CI smoke run of `bench --quick`: the harness runs end to end and its report has
/// every table and every peer. Nothing about speed is checked.
fn bench_smoke() -> Result<()> {
    if !is_root() && env::var_os("CI").is_none() {
        eprintln!("xtask: bench smoke run skipped: it needs root (under CI it fails instead)");
        return Ok(());
    }
    cargo(&["build", "--release", "--package", "xdpsieve"])?;
    let root = workspace_root();
    let out = root.join("target/bench-smoke");
    let markdown = bench::run(
        &root,
        &bench::Options {
            quick: true,
            out: out.clone(),
            only: None,
        },
    )
    .context("bench smoke run (cargo xtask bench --quick)")?;
    bench::check_report(&markdown, &out.join("benchmarks.json"))?;
    println!("bench smoke run: ok ({})", markdown.display());
    Ok(())
}

/// The XDP program only builds for the BPF target, with its pinned nightly toolchain.
fn clippy_ebpf() -> Result<()> {
    let root = workspace_root();
    let toolchain = format!("+{}", setup::ebpf_toolchain()?);
    run(Command::new("cargo")
        .args([
            toolchain.as_str(),
            "clippy",
            "--release",
            "--target",
            "bpfel-unknown-none",
            "-Z",
            "build-std=core",
            "--target-dir",
        ])
        .arg(root.join("target/ebpf-clippy"))
        .args(["--", "-D", "warnings"])
        .current_dir(root.join("xdpsieve-ebpf"))
        .env_remove("RUSTC")
        .env_remove("RUSTUP_TOOLCHAIN"))
}

/// Whether xtask runs as root (the tests and benchmarks that need it fail or skip).
fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn on_path(command: &str) -> bool {
    env::var_os("PATH")
        .map(|paths| env::split_paths(&paths).any(|dir| dir.join(command).is_file()))
        .unwrap_or(false)
        || Path::new("/usr/sbin").join(command).is_file()
        || Path::new("/sbin").join(command).is_file()
}

fn cargo(args: &[&str]) -> Result<()> {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    run(Command::new(cargo).args(args).current_dir(workspace_root()))
}

/// Runs `cargo ARGS` (a `cargo test --no-fail-fast`), its output passed through under a
/// [`watchdog`] that fails a hung test binary, and closes with the totals over every test
/// binary (cargo's own last line is that of the last binary, often doc tests with 0). Fails
/// naming every test binary that failed, each with the arguments that run it again.
fn cargo_test(args: &[&str], envs: &[(&str, &OsStr)]) -> Result<()> {
    use std::io::{BufRead as _, BufReader};
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut child = Command::new(cargo)
        .args(args)
        .envs(envs.iter().copied())
        .current_dir(workspace_root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running cargo test")?;
    // cargo names each failing binary on stderr as it finishes ("error: test failed, to
    // rerun pass `-p xdpsieve --test evasion`"), a crashed one included.
    let stderr = child.stderr.take();
    let rerun = std::thread::spawn(move || {
        let mut failing = Vec::new();
        for line in stderr
            .into_iter()
            .flat_map(|e| BufReader::new(e).lines().map_while(Result::ok))
        {
            eprintln!("{line}");
            failing.extend(rerun_args(&line));
        }
        failing
    });
    let (mut passed, mut failed, mut ignored) = (0u64, 0u64, 0u64);
    let watchdog = watchdog::Watchdog::start(child.id());
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            println!("{line}");
            watchdog.line(&line);
            if let Some(rest) = line.strip_prefix("test result: ") {
                let count = |word: &str| -> u64 {
                    rest.split(';')
                        .find_map(|part| part.trim().strip_suffix(word))
                        .and_then(|n| n.split_whitespace().last()?.parse().ok())
                        .unwrap_or(0)
                };
                passed += count(" passed");
                failed += count(" failed");
                ignored += count(" ignored");
            }
        }
    }
    let status = child.wait()?;
    let hung = watchdog.finish();
    let failing = rerun
        .join()
        .map_err(|_| anyhow::anyhow!("the reader of cargo's stderr panicked"))?;
    println!("{passed} passed, {failed} failed, {ignored} skipped");
    for said in &hung {
        eprintln!("{said}");
    }
    if !failing.is_empty() {
        bail!(
            "{} of the test binaries failed (the others all ran); run one again with:\n{}",
            failing.len(),
            failing
                .iter()
                .map(|args| format!("  cargo test {args}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    if !status.success() {
        bail!("cargo test failed ({status})");
    }
    Ok(())
}

/// The arguments cargo gives to run a failed test binary again, from its stderr line.
fn rerun_args(line: &str) -> Option<String> {
    let (_, rest) = line.split_once("to rerun pass `")?;
    rest.split_once('`').map(|(args, _)| args.to_string())
}

/// Ok when every stage passed; otherwise says which failed and why, all of them.
fn all_passed(stages: &[(&str, Result<()>)]) -> Result<()> {
    let failed: Vec<&str> = stages
        .iter()
        .filter_map(|(name, result)| {
            let error = result.as_ref().err()?;
            eprintln!("xtask: {name} failed: {error:#}");
            Some(*name)
        })
        .collect();
    if !failed.is_empty() {
        bail!("{} failed (see above)", failed.join(", "));
    }
    Ok(())
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("running {}", describe(cmd)))?;
    if !status.success() {
        bail!("{} failed ({status})", describe(cmd));
    }
    Ok(())
}

fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", describe(cmd)))?;
    if !out.status.success() {
        bail!("{} failed ({})", describe(cmd), out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(OsStr::to_string_lossy)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_binaries_are_named_from_cargos_stderr() {
        let line = "error: test failed, to rerun pass `-p xdpsieve --test evasion`";
        assert_eq!(
            rerun_args(line).as_deref(),
            Some("-p xdpsieve --test evasion")
        );
        assert_eq!(
            rerun_args("     Running tests/watch.rs (target/debug/deps/watch-1)"),
            None
        );
    }

    #[test]
    fn every_failed_stage_is_named() {
        let stages = [
            ("tests", Err(anyhow::anyhow!("two binaries"))),
            ("fuzzing", Ok(())),
            ("bench smoke run", Err(anyhow::anyhow!("no report"))),
        ];
        let error = all_passed(&stages).expect_err("two stages failed");
        assert_eq!(
            error.to_string(),
            "tests, bench smoke run failed (see above)"
        );
        assert!(all_passed(&[("tests", Ok(()))]).is_ok());
    }
}
