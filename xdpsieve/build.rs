//! Builds the XDP program for bpfel-unknown-none with bpf-linker (BTF included), so the
//! library can embed it with `include_bytes_aligned!`, on the nightly toolchain pinned in
//! `xdpsieve-ebpf/rust-toolchain.toml` (which says why it is pinned).

use anyhow::{Context as _, anyhow};

fn main() -> anyhow::Result<()> {
    let metadata_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or_else(|| anyhow!("xdpsieve has no parent directory"))?
        .join("xdpsieve-ebpf");
    let root_dir = metadata_dir
        .to_str()
        .ok_or_else(|| anyhow!("non-UTF-8 path {}", metadata_dir.display()))?;
    let ebpf = aya_build::Package {
        name: "xdpsieve-ebpf",
        root_dir,
        ..Default::default()
    };
    println!("cargo:rerun-if-changed=../xdpsieve-common/src");
    let pin = metadata_dir.join("rust-toolchain.toml");
    println!("cargo:rerun-if-changed={}", pin.display());
    let toolchain = pinned_toolchain(&pin)?;
    aya_build::build_ebpf([ebpf], aya_build::Toolchain::Custom(&toolchain)).with_context(|| {
        format!(
            "building the XDP program failed; `cargo xtask setup` installs the toolchain it \
             needs ({toolchain}, with rust-src) and bpf-linker"
        )
    })
}

/// The `[toolchain] channel` of the eBPF crate's rust-toolchain.toml.
fn pinned_toolchain(pin: &std::path::Path) -> anyhow::Result<String> {
    let text =
        std::fs::read_to_string(pin).with_context(|| format!("reading {}", pin.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("parsing {}", pin.display()))?;
    table
        .get("toolchain")
        .and_then(|t| t.get("channel"))
        .and_then(toml::Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| anyhow!("{} has no [toolchain] channel", pin.display()))
}
