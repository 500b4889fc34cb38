//! `limit_cost --attach KIND --netns PATH --ifname IF [--sources N]`: the flood part of
//! `cargo xtask bench` (xtask/src/bench/limits) needs the programs of this bench attached
//! to a veth in its sandbox. This loads one — `floor`, `no-limit`, `limit-src` (a table
//! of N keys plus headroom) or `xdpfw` — attaches it in native mode inside the namespace,
//! prints `attached`, and holds it until its standard input closes (then the attachment
//! goes with the process).

use std::{ffi::CString, io::Read as _, os::fd::AsRawFd as _, path::Path};

use aya::programs::{Xdp, xdp::XdpMode};
use xdpsieve_testkit::bpf::{bpf, load_floor_program};

use crate::programs::{self, Kind};

/// `union bpf_attr` for BPF_LINK_CREATE, as far as these fields.
#[repr(C)]
struct LinkCreate {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
}

const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_XDP: u32 = 37;

pub(crate) fn run(kind: &str, netns: &Path, ifname: &str, sources: usize) -> Result<(), String> {
    xdpsieve_netns::enter(netns).map_err(|e| e.to_string())?;
    let name = CString::new(ifname).map_err(|e| e.to_string())?;
    // SAFETY: a NUL-terminated name.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if ifindex == 0 {
        return Err(format!("no interface {ifname} in {}", netns.display()));
    }
    let mut loaded;
    let floor;
    let _link;
    match kind {
        "floor" => {
            floor = load_floor_program(2).map_err(|e| format!("loading the floor: {e}"))?;
            let attr = LinkCreate {
                prog_fd: floor.as_raw_fd() as u32,
                target_ifindex: ifindex,
                attach_type: BPF_XDP,
                flags: 0,
            };
            _link =
                Some(bpf(BPF_LINK_CREATE, &attr).map_err(|e| format!("attaching the floor: {e}"))?);
        }
        _ => {
            let kind = match kind {
                "no-limit" => Kind::NoLimit,
                "limit-src" => Kind::Limit {
                    per_rule: false,
                    over: false,
                },
                "xdpfw" => Kind::Xdpfw { over: false },
                other => return Err(format!("--attach: unknown program {other}")),
            };
            loaded = programs::load(kind, sources)?;
            let program: &mut Xdp = loaded.program()?;
            program
                .attach_to_if_index(ifindex, XdpMode::Driver)
                .map_err(|e| format!("attaching to {ifname}: {e}"))?;
            _link = None;
        }
    }
    println!("attached");
    // Held until the caller closes our standard input (or dies).
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
    Ok(())
}
