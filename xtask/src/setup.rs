//! `cargo xtask setup`: what building and testing need, installed when missing and quick
//! when present. The toolchain the XDP program is built with is the dated nightly pinned
//! in `xdpsieve-ebpf/rust-toolchain.toml` (that file says why), with the components it
//! lists (`rust-src` for `-Z build-std`, clippy); bpf-linker is built against that
//! toolchain's own LLVM; the Debian packages the tests, the demo and the benchmarks run;
//! cargo-fuzz; cargo-deb, at a pinned version, for `cargo xtask package`.

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};
use serde::Deserialize;

use crate::{is_root, on_path, output, run, succeeds, workspace_root};

/// Debian packages the tests and demo use, with a command that proves each is present.
const PACKAGES: &[(&str, &str)] = &[
    ("iproute2", "ip"),
    ("util-linux", "nsenter"),
    ("tcpdump", "tcpdump"),
    ("tshark", "tshark"),
    ("curl", "curl"),
    // The packet crafter of the evasion tests (tiny fragments, long IPv6 chains).
    ("python3-scapy", "scapy"),
    // The peer the benchmarks measure xdpsieve against.
    ("xdp-tools", "xdp-filter"),
    // The watch tests: queue growth on veth, and a detach from outside.
    ("ethtool", "ethtool"),
    ("bpftool", "bpftool"),
    // The capture-cost bench profiles the capture path (software cpu-clock sampling, with
    // the JIT's symbols).
    ("linux-perf", "perf"),
    // libpcap's headers and link library: the capture filter compiles tcpdump expressions
    // with pcap_compile (the `pcap` crate links it).
    ("libpcap-dev", "pcap-config"),
    // The package test (`tests/package`): the .deb checked, the pages rendered, the
    // completions loaded in their shells.
    ("lintian", "lintian"),
    ("man-db", "man"),
    ("zsh", "zsh"),
    ("fish", "fish"),
    // The service tests (`tests/service`): the unit checked by `systemd-analyze verify`
    // (machines of this kind have it without systemd as PID 1).
    ("systemd", "systemd-analyze"),
];

/// cargo-deb, which builds the Debian package (`cargo xtask package`): pinned, so that
/// the same commit makes the same package (its layout of units and scripts changes
/// between versions).
const CARGO_DEB_VERSION: &str = "3.8.0";

/// Where the eBPF toolchain is pinned, relative to the workspace root.
const PIN: &str = "xdpsieve-ebpf/rust-toolchain.toml";

pub(crate) fn setup() -> Result<()> {
    let pin = ebpf_pin()?;
    ensure_toolchain(&pin)?;
    ensure_bpf_linker(&pin.channel)?;
    ensure_packages()?;
    ensure_cargo_fuzz()?;
    ensure_cargo_deb()?;
    Ok(())
}

/// cargo-deb at [`CARGO_DEB_VERSION`], installed (or replaced) unless it is that one.
fn ensure_cargo_deb() -> Result<()> {
    let installed = Command::new("cargo").args(["deb", "--version"]).output();
    let version = installed
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string());
    if version.as_deref() == Some(&format!("cargo-deb {CARGO_DEB_VERSION}")) {
        return Ok(());
    }
    eprintln!(
        "xtask: installing cargo-deb {CARGO_DEB_VERSION} (builds the Debian package; a minute \
         or two, once)"
    );
    run(Command::new("cargo").args([
        "install",
        "cargo-deb",
        "--locked",
        "--force",
        "--version",
        &format!("={CARGO_DEB_VERSION}"),
    ]))
    .context("installing cargo-deb")
}

/// `[toolchain]` of `xdpsieve-ebpf/rust-toolchain.toml`.
#[derive(Deserialize)]
struct Toolchain {
    channel: String,
    #[serde(default)]
    components: Vec<String>,
}

fn ebpf_pin() -> Result<Toolchain> {
    #[derive(Deserialize)]
    struct Pin {
        toolchain: Toolchain,
    }
    let path = workspace_root().join(PIN);
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let pin: Pin = toml::from_str(&text)
        .with_context(|| format!("{} has no [toolchain] channel", path.display()))?;
    Ok(pin.toolchain)
}

/// Installs cargo-fuzz (which runs the fuzz targets) unless `cargo fuzz` already runs.
fn ensure_cargo_fuzz() -> Result<()> {
    if succeeds(Command::new("cargo").args(["fuzz", "--version"])) {
        return Ok(());
    }
    eprintln!("xtask: installing cargo-fuzz (runs the fuzz targets; a minute or two, once)");
    run(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))
        .context("installing cargo-fuzz")
}

/// The toolchain the XDP program is built with (and clippy checks it with, and fuzzing
/// runs on): the channel pinned in `xdpsieve-ebpf/rust-toolchain.toml`, e.g.
/// `nightly-2026-05-20`. xdpsieve's build script reads the same file.
pub(crate) fn ebpf_toolchain() -> Result<String> {
    Ok(ebpf_pin()?.channel)
}

/// Installs the pinned toolchain (minimal profile, with its components) unless it is
/// there, and the components it lacks.
fn ensure_toolchain(pin: &Toolchain) -> Result<()> {
    let toolchain = pin.channel.as_str();
    if !succeeds(Command::new("rustc").args([&format!("+{toolchain}"), "--version"])) {
        eprintln!(
            "xtask: installing {toolchain}, the toolchain the XDP program is built with ({PIN})"
        );
        let mut install = Command::new("rustup");
        install.args(["toolchain", "install", toolchain, "--profile", "minimal"]);
        for component in &pin.components {
            install.args(["--component", component]);
        }
        run(&mut install).with_context(|| {
            format!("the XDP program needs {toolchain} (a nightly, for -Z build-std)")
        })?;
    }
    let installed = output(Command::new("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        toolchain,
    ]))?;
    let missing: Vec<&str> = pin
        .components
        .iter()
        .map(String::as_str)
        .filter(|c| {
            !installed
                .lines()
                .any(|l| l == *c || l.starts_with(&format!("{c}-")))
        })
        .collect();
    if !missing.is_empty() {
        eprintln!("xtask: adding {} to {toolchain}", missing.join(", "));
        run(Command::new("rustup")
            .args(["component", "add", "--toolchain", toolchain])
            .args(&missing))?;
    }
    Ok(())
}

fn sysroot(toolchain: &str) -> Result<PathBuf> {
    let out = output(Command::new("rustc").args([&format!("+{toolchain}"), "--print", "sysroot"]))?;
    Ok(PathBuf::from(out.trim()))
}

/// bpf-linker from crates.io links against an installed LLVM. We point it at the eBPF
/// toolchain's own libLLVM through a prefix of symlinks, kept under CARGO_HOME because the
/// built linker finds libLLVM through that path at run time. The prefix is named after the
/// libLLVM file, so a toolchain with a different LLVM gets a fresh linker; its links are
/// pointed at the pinned toolchain (another toolchain with the same libLLVM may have made
/// them, and may go away).
fn ensure_bpf_linker(toolchain: &str) -> Result<()> {
    let version = output(Command::new("rustc").args([&format!("+{toolchain}"), "-vV"]))?;
    let llvm_major = version
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .and_then(|v| v.split('.').next())
        .with_context(|| format!("`rustc +{toolchain} -vV` did not report an LLVM version"))?
        .to_string();
    let lib_dir = sysroot(toolchain)?.join("lib");
    let libllvm = fs::read_dir(&lib_dir)
        .with_context(|| format!("reading {}", lib_dir.display()))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|name| name.starts_with(&format!("libLLVM.so.{llvm_major}")))
        .with_context(|| format!("no libLLVM.so.{llvm_major}* in {}", lib_dir.display()))?;
    let prefix = cargo_home().join("xdpsieve-llvm").join(&libllvm);
    let prefix_lib = prefix.join("lib");
    fs::create_dir_all(&prefix_lib)?;
    for link in ["libLLVM.so", libllvm.as_str()] {
        point_link(&prefix_lib.join(link), &lib_dir.join(&libllvm))?;
    }
    let marker = prefix.join("bpf-linker-installed");
    if marker.is_file() && succeeds(Command::new("bpf-linker").arg("--version")) {
        return Ok(());
    }
    eprintln!(
        "xtask: building bpf-linker against {toolchain}'s LLVM {llvm_major} (a few minutes, once)"
    );
    run(Command::new("cargo")
        .args([
            "install",
            "bpf-linker",
            "--force",
            "--no-default-features",
            "--features",
        ])
        .arg(format!("llvm-{llvm_major}"))
        .env("LLVM_PREFIX", &prefix))
    .context("installing bpf-linker")?;
    fs::write(&marker, "")?;
    Ok(())
}

/// Makes `link` a symlink to `target`, replacing one that points elsewhere in one rename,
/// so that a bpf-linker starting meanwhile finds the old link or the new, never none.
fn point_link(link: &Path, target: &Path) -> Result<()> {
    if fs::read_link(link).is_ok_and(|current| current == target) {
        return Ok(());
    }
    let name = link.file_name().map(|n| n.to_string_lossy().into_owned());
    let fresh = link.with_file_name(format!(
        ".{}.new-{}",
        name.unwrap_or_default(),
        std::process::id()
    ));
    let _ = fs::remove_file(&fresh);
    std::os::unix::fs::symlink(target, &fresh)
        .with_context(|| format!("linking {}", fresh.display()))?;
    fs::rename(&fresh, link).with_context(|| format!("replacing {}", link.display()))
}

fn ensure_packages() -> Result<()> {
    let missing: Vec<&str> = PACKAGES
        .iter()
        .filter(|(_, command)| !on_path(command))
        .map(|(package, _)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        bail!(
            "missing Debian packages {}; install them as root: apt-get install {}",
            missing.join(", "),
            missing.join(" ")
        );
    }
    eprintln!("xtask: installing {}", missing.join(", "));
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
    .with_context(|| format!("apt-get install {}", missing.join(" ")))
}

fn cargo_home() -> PathBuf {
    env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cargo")
        })
}
