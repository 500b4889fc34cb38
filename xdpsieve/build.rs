//! Builds the XDP program for bpfel-unknown-none with the nightly toolchain and bpf-linker
//! (BTF included) so the library can embed it with `include_bytes_aligned!`.

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
    aya_build::build_ebpf([ebpf], aya_build::Toolchain::default()).context(
        "building the XDP program failed; `cargo xtask setup` installs the nightly toolchain, \
         rust-src and bpf-linker it needs",
    )
}
