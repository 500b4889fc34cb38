//! `cargo xtask package`: the Debian package, for a machine without Rust. Builds the
//! release binary (the XDP program is embedded in it by xdpsieve's build script, so the
//! package needs no toolchain), has that binary write its manual pages (gzipped, as
//! Debian ships them) and its bash, zsh and fish completions, and hands everything to
//! cargo-deb, which reads what goes where from `[package.metadata.deb]` in
//! `xdpsieve/Cargo.toml`: the binary, the unit `dist/xdpsieve.service`, the
//! configuration `dist/xdpsieve.toml` as a conffile, the pages, the completions, the
//! README, and the maintainer scripts of `dist/debian/`.
//!
//! The pages' dates and the archive's timestamps come from `SOURCE_DATE_EPOCH`, the time
//! of the last commit, so that the same commit makes the same package.

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use crate::{cargo, output, run, workspace_root};

/// The variable `cargo xtask test` names the package in for its test
/// (`xdpsieve/tests/package`): the .deb's path, or empty when the build failed.
pub(crate) const PACKAGE_ENV: &str = "XDPSIEVE_DEB";

/// Builds the package; returns the path of the .deb.
pub(crate) fn package() -> Result<PathBuf> {
    let root = workspace_root();
    let epoch = source_date_epoch(&root);
    let with_epoch = |cmd: &mut Command| {
        if let Some(epoch) = &epoch {
            cmd.env("SOURCE_DATE_EPOCH", epoch);
        }
    };
    cargo(&["build", "--release", "--locked", "--package", "xdpsieve"])?;
    let release = target_dir(&root).join("release");
    let binary = release.join("xdpsieve");
    // Where `[package.metadata.deb]` takes them from (`target/release/xdpsieve-dist`),
    // made afresh so that a page of a verb since removed is not packaged.
    let dist = release.join("xdpsieve-dist");
    if dist.exists() {
        fs::remove_dir_all(&dist).with_context(|| format!("removing {}", dist.display()))?;
    }
    let man = dist.join("man");
    for (what, dir) in [("man", &man), ("completions", &dist.join("completions"))] {
        let mut generate = Command::new(&binary);
        generate.arg("generate").arg(what).arg(dir);
        with_epoch(&mut generate);
        output(&mut generate).with_context(|| format!("generating the {what}"))?;
    }
    gzip_pages(&man)?;

    let mut deb = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    deb.args([
        "deb",
        "--package",
        "xdpsieve",
        "--no-build",
        "--locked",
        "--output",
    ])
    .arg(target_dir(&root).join("debian"))
    .current_dir(&root);
    with_epoch(&mut deb);
    let out = output(&mut deb).context("cargo deb (`cargo xtask setup` installs it)")?;
    // cargo-deb prints the path of the package it wrote, last.
    let path = out
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.ends_with(".deb"))
        .map(PathBuf::from)
        .with_context(|| format!("cargo deb named no .deb in its output:\n{out}"))?;
    if !path.is_file() {
        bail!(
            "cargo deb said it wrote {}, which is not there",
            path.display()
        );
    }
    Ok(path)
}

/// Every page in `dir` gzipped in place at the highest level, without the file's name
/// and time in the header (`-n`: the same page makes the same bytes).
fn gzip_pages(dir: &Path) -> Result<()> {
    let mut pages: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    pages.retain(|p| p.extension().is_some_and(|e| e == "8" || e == "5"));
    if pages.is_empty() {
        bail!(
            "`xdpsieve generate man` wrote no page into {}",
            dir.display()
        );
    }
    pages.sort();
    run(Command::new("gzip").args(["-9", "-n", "-f"]).args(&pages))
}

/// The time of the last commit, when the tree is a git checkout.
fn source_date_epoch(root: &Path) -> Option<String> {
    if let Some(epoch) = env::var_os("SOURCE_DATE_EPOCH") {
        return Some(epoch.to_string_lossy().into_owned());
    }
    let out = Command::new("git")
        .args(["log", "-1", "--format=%ct"])
        .current_dir(root)
        .output()
        .ok()?;
    let epoch = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !epoch.is_empty()).then_some(epoch)
}

/// Cargo's target directory: `CARGO_TARGET_DIR` when set, else `target` at the root.
fn target_dir(root: &Path) -> PathBuf {
    env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|dir| {
            if dir.is_absolute() {
                dir
            } else {
                root.join(dir)
            }
        })
        .unwrap_or_else(|| root.join("target"))
}
