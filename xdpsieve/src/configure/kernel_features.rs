//! The kernel features the XDP program and its loader use, probed before `run` touches
//! anything: on a kernel without one, the run stops before it claims, loads or attaches,
//! naming each missing feature and the Linux version that brought it, instead of failing
//! later with a verifier log, or worse, attaching in a weaker way (aya falls back to a
//! netlink attachment, which cannot be pinned, when the kernel has no XDP bpf_link).
//!
//! Each probe asks the kernel itself, not its version number: distribution kernels carry
//! features back to older versions. Helpers, map and program types through aya's probes
//! (`aya::sys`, which load a minimal program and read the verifier's answer); program and
//! map flags by creating a minimal program or map with the flag (an older kernel refuses
//! unknown flags with EINVAL); the XDP bpf_link by its kernel type in the kernel's BTF,
//! and by the version only where the kernel publishes no BTF.
//!
//! Tests can make a probe report a feature missing (`XDPSIEVE_TEST_PRETEND_MISSING`, a
//! comma-separated list of [`Feature::key`]s): that only ever makes `run` refuse, and it is
//! how the refusal is tested end to end on a kernel that has everything.

use std::{
    io,
    os::fd::{FromRawFd as _, OwnedFd},
};

use anyhow::{Result, bail};
use aya::{
    maps::MapType,
    programs::ProgramType,
    sys::{BpfHelper, is_helper_supported, is_map_supported, is_program_supported},
};

/// The oldest Linux with every feature below (`bpf_ktime_get_tai_ns`, 6.1, is the newest).
pub const MINIMUM_LINUX: &str = "6.1";

/// The test hook (see the module doc).
const PRETEND_MISSING: &str = "XDPSIEVE_TEST_PRETEND_MISSING";

/// One kernel feature xdpsieve uses.
pub struct Feature {
    /// Short name for the test hook and the README table.
    pub key: &'static str,
    /// What the operator reads.
    pub name: &'static str,
    /// The Linux version that brought it.
    pub since: &'static str,
    /// What xdpsieve uses it for.
    pub used_for: &'static str,
    probe: fn() -> io::Result<bool>,
}

/// Every feature the program and the loader need, oldest first.
pub const FEATURES: &[Feature] = &[
    Feature {
        key: "xdp",
        name: "XDP programs",
        since: "4.8",
        used_for: "the firewall itself",
        probe: || program(ProgramType::Xdp),
    },
    Feature {
        key: "mmapable_array",
        name: "memory-mapped array maps (BPF_F_MMAPABLE)",
        since: "5.5",
        used_for: "live set changes, written straight into the set trie",
        probe: || map_with_flags(BPF_MAP_TYPE_ARRAY, BPF_F_MMAPABLE),
    },
    Feature {
        key: "btf_global_func",
        name: "BTF with global functions",
        since: "5.6",
        used_for: "the capture and log filters, verified as global functions",
        probe: || {
            Ok(aya::features()
                .btf()
                .is_some_and(|btf| btf.btf_func() && btf.btf_func_global()))
        },
    },
    Feature {
        key: "ringbuf",
        name: "the BPF ring buffer (BPF_MAP_TYPE_RINGBUF, bpf_ringbuf_output), in an array of maps",
        since: "5.8",
        used_for: "captured packets (a ring per CPU) and events on their way to the recorder",
        probe: || {
            Ok(map(MapType::RingBuf)?
                && map(MapType::ArrayOfMaps)?
                && helper(BpfHelper::BPF_FUNC_ringbuf_output)?)
        },
    },
    Feature {
        key: "xdp_link",
        name: "XDP bpf_link",
        since: "5.9",
        used_for: "the pinned attachment that keeps the firewall in force when the process dies",
        probe: xdp_link,
    },
    Feature {
        key: "coarse_clock",
        name: "the bpf_ktime_get_coarse_ns helper",
        since: "5.11",
        used_for: "checking that a recorder still reads, on each recorded packet",
        probe: || helper(BpfHelper::BPF_FUNC_ktime_get_coarse_ns),
    },
    Feature {
        key: "bpf_loop",
        name: "the bpf_loop helper",
        since: "5.17",
        used_for: "the capture filter interpreter",
        probe: || helper(BpfHelper::BPF_FUNC_loop),
    },
    Feature {
        key: "xdp_load_bytes",
        name: "the bpf_xdp_load_bytes and bpf_xdp_get_buff_len helpers",
        since: "5.18",
        used_for: "reading packets that span several buffers, for rules and capture",
        probe: || {
            Ok(helper(BpfHelper::BPF_FUNC_xdp_load_bytes)?
                && helper(BpfHelper::BPF_FUNC_xdp_get_buff_len)?)
        },
    },
    Feature {
        key: "xdp_frags",
        name: "multi-buffer XDP (BPF_F_XDP_HAS_FRAGS)",
        since: "5.18",
        used_for: "attaching to interfaces with jumbo frames, and seeing all of them",
        probe: xdp_frags,
    },
    Feature {
        key: "tai_clock",
        name: "the bpf_ktime_get_tai_ns helper",
        since: "6.1",
        used_for: "wall-clock timestamps on captured packets and events",
        probe: || helper(BpfHelper::BPF_FUNC_ktime_get_tai_ns),
    },
];

/// The README's table of the features (a test keeps the README equal to it).
pub fn markdown() -> String {
    let mut table = String::from("| feature | since | used for |\n| --- | --- | --- |\n");
    for f in FEATURES {
        table.push_str(&format!(
            "| {} | Linux {} | {} |\n",
            f.name, f.since, f.used_for
        ));
    }
    table
}

/// What one probe found.
pub struct Probed {
    pub feature: &'static Feature,
    /// Present, missing, or the probe failed (its error).
    pub present: Result<bool, String>,
}

/// Runs every probe (the test hook applied).
pub fn probe_all() -> Vec<Probed> {
    let pretend = std::env::var(PRETEND_MISSING).unwrap_or_default();
    FEATURES
        .iter()
        .map(|feature| {
            let present = if pretend.split(',').any(|key| key.trim() == feature.key) {
                Ok(false)
            } else {
                (feature.probe)().map_err(|e| e.to_string())
            };
            Probed { feature, present }
        })
        .collect()
}

/// Stops, naming what is missing, unless every feature is there. `release` is the
/// kernel's (`uname -r`), for the message.
pub fn require(probed: &[Probed], release: &str) -> Result<()> {
    let mut lines = Vec::new();
    for p in probed {
        let f = p.feature;
        match &p.present {
            Ok(true) => {}
            Ok(false) => lines.push(format!(
                "  - {} (Linux {}), for {}",
                f.name, f.since, f.used_for
            )),
            Err(e) => lines.push(format!(
                "  - {} (Linux {}), for {}: the probe failed: {e}",
                f.name, f.since, f.used_for
            )),
        }
    }
    if lines.is_empty() {
        return Ok(());
    }
    bail!(
        "this kernel (Linux {release}) lacks what xdpsieve needs; nothing was attached:\n{}\n\
         xdpsieve needs Linux {MINIMUM_LINUX} or later (or a kernel with these features \
         backported). A probe that failed rather than answered is often a seccomp or LSM \
         policy refusing bpf(2): run xdpsieve where it may load BPF programs.",
        lines.join("\n")
    )
}

/// Probes everything and stops when something is missing (see [`require`]).
pub fn check() -> Result<()> {
    require(&probe_all(), &kernel_release())
}

/// `uname -r`, or "unknown".
fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

fn io_error(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

fn program(program_type: ProgramType) -> io::Result<bool> {
    is_program_supported(program_type).map_err(io_error)
}

fn map(map_type: MapType) -> io::Result<bool> {
    is_map_supported(map_type).map_err(io_error)
}

fn helper(helper: BpfHelper) -> io::Result<bool> {
    is_helper_supported(ProgramType::Xdp, helper).map_err(io_error)
}

/// The kernel's own type for an XDP bpf_link, in its BTF; by the version where the kernel
/// publishes no BTF (`/sys/kernel/btf/vmlinux` needs CONFIG_DEBUG_INFO_BTF).
fn xdp_link() -> io::Result<bool> {
    match aya::Btf::from_sys_fs() {
        Ok(btf) => Ok(btf
            .id_by_type_name_kind("bpf_xdp_link", aya_obj::btf::BtfKind::Struct)
            .is_ok()),
        Err(_) => {
            let version = aya::util::KernelVersion::current().map_err(io_error)?;
            Ok(version >= aya::util::KernelVersion::new(5, 9, 0))
        }
    }
}

// The first fields of `union bpf_attr` for the two commands below (include/uapi/linux/bpf.h).
// The kernel takes a shorter attribute than its own and reads the rest as zero.
const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_MAP_TYPE_ARRAY: u32 = 2;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_F_MMAPABLE: u32 = 1 << 10;
const BPF_F_XDP_HAS_FRAGS: u32 = 1 << 5;

#[repr(C)]
struct MapCreate {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
}

#[repr(C)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
}

const _: () = assert!(size_of::<MapCreate>() == 20);
const _: () = assert!(size_of::<ProgLoad>() == 48);

/// `bpf(cmd, attr)`: a new descriptor (closed on return), `Ok(false)` for EINVAL (the
/// kernel does not know what was asked), the error otherwise.
fn bpf_create<T>(cmd: libc::c_long, attr: &T) -> io::Result<bool> {
    // SAFETY: `attr` is a live, initialised `#[repr(C)]` prefix of `union bpf_attr` of the
    // size passed; the kernel only reads it (both commands copy it in).
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            std::ptr::from_ref(attr),
            size_of::<T>() as libc::c_uint,
        )
    };
    if fd < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EINVAL) => Ok(false),
            _ => Err(e),
        };
    }
    // SAFETY: the kernel just returned this descriptor, which nothing else owns.
    drop(unsafe { OwnedFd::from_raw_fd(fd as i32) });
    Ok(true)
}

fn map_with_flags(map_type: u32, map_flags: u32) -> io::Result<bool> {
    let attr = MapCreate {
        map_type,
        key_size: 4,
        value_size: 8,
        max_entries: 1,
        map_flags,
    };
    bpf_create(BPF_MAP_CREATE, &attr)
}

/// An XDP program of two instructions (`r0 = XDP_PASS; exit`) loaded with the
/// multi-buffer flag.
fn xdp_frags() -> io::Result<bool> {
    // BPF_ALU64 | BPF_MOV | BPF_K into r0, then BPF_JMP | BPF_EXIT.
    let insns: [u64; 2] = [0xb7 | (2 << 32), 0x95];
    let license = c"GPL";
    let attr = ProgLoad {
        prog_type: BPF_PROG_TYPE_XDP,
        insn_cnt: 2,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 0,
        log_size: 0,
        log_buf: 0,
        kern_version: 0,
        prog_flags: BPF_F_XDP_HAS_FRAGS,
    };
    bpf_create(BPF_PROG_LOAD, &attr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probed(present: &[Result<bool, String>]) -> Vec<Probed> {
        FEATURES
            .iter()
            .zip(present)
            .map(|(feature, present)| Probed {
                feature,
                present: present.clone(),
            })
            .collect()
    }

    #[test]
    fn all_present_is_fine() {
        let all = vec![Ok(true); FEATURES.len()];
        assert!(require(&probed(&all), "6.18.0").is_ok());
    }

    #[test]
    fn a_missing_feature_is_named_with_its_version() {
        let mut present = vec![Ok(true); FEATURES.len()];
        let loop_at = FEATURES.iter().position(|f| f.key == "bpf_loop").unwrap();
        present[loop_at] = Ok(false);
        let failed_at = FEATURES.iter().position(|f| f.key == "xdp_link").unwrap();
        present[failed_at] = Err("Operation not permitted (os error 1)".into());
        let e = require(&probed(&present), "5.15.0")
            .unwrap_err()
            .to_string();
        assert!(e.contains("this kernel (Linux 5.15.0)"), "{e}");
        assert!(e.contains("the bpf_loop helper (Linux 5.17)"), "{e}");
        assert!(e.contains("XDP bpf_link (Linux 5.9)"), "{e}");
        assert!(
            e.contains("the probe failed: Operation not permitted"),
            "{e}"
        );
        assert!(e.contains("nothing was attached"), "{e}");
        assert!(e.contains("Linux 6.1 or later"), "{e}");
        assert!(!e.contains("ring buffer"), "{e}");
    }

    #[test]
    fn the_minimum_is_the_newest_feature() {
        let version = |v: &str| -> (u32, u32) {
            let (major, minor) = v.split_once('.').unwrap();
            (major.parse().unwrap(), minor.parse().unwrap())
        };
        let newest = FEATURES.iter().map(|f| version(f.since)).max().unwrap();
        assert_eq!(newest, version(MINIMUM_LINUX));
    }

    #[test]
    fn the_readme_lists_every_feature() {
        let readme = include_str!("../../../README.md");
        assert!(
            readme.contains(&markdown()),
            "README.md's kernel table differs from kernel_features::FEATURES; put this in:\n{}",
            markdown()
        );
        assert!(readme.contains(&format!("Linux {MINIMUM_LINUX} or later")));
    }

    #[test]
    fn keys_are_unique() {
        for (i, a) in FEATURES.iter().enumerate() {
            assert!(
                FEATURES[i + 1..].iter().all(|b| b.key != a.key),
                "{}",
                a.key
            );
        }
    }
}
