//! Swapping the program behind an XDP bpf_link, without ever leaving the interface
//! unfiltered.
//!
//! Why: veth installs an attached XDP program on the rx queues it has when the program is
//! attached; queues enabled later by `ethtool -L DEV rx N` run without it (measured on 6.x:
//! 154 of 200 datagrams to a dropped port reached the socket). The kernel only walks every
//! queue again when the device's program is *installed*, and `BPF_LINK_UPDATE` with the
//! program the link already runs is a no-op ("don't disturb drivers"). So xdpsieve carries
//! two copies of the firewall (`xdpsieve` and `xdpsieve_twin`, same code, same maps) and
//! moves the link to the other copy: the kernel swaps the program in one step (no instant
//! without a program on the old queues) and veth assigns it to every queue, new ones included.
//!
//! Why raw syscalls: aya 0.14 can move a link to another program (`Xdp::attach_to_link`), but
//! it consumes the link, and if the update fails the link is dropped, which detaches the
//! firewall. Here the link stays where it is on failure: the update goes through a second file
//! descriptor of the same link: opened through its pin, or found by its interface among the
//! kernel's links (listing them needs CAP_SYS_ADMIN, which a service runs without).
//!
//! The program's map list is read here too, from a descriptor opened through the program's
//! pin: aya's `ProgramInfo::map_ids` opens the program again by its id, which needs
//! CAP_SYS_ADMIN.

use std::{
    io,
    os::fd::{AsFd as _, AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd},
};

const BPF_OBJ_GET: libc::c_long = 7;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_LINK_UPDATE: libc::c_long = 29;
const BPF_LINK_GET_FD_BY_ID: libc::c_long = 30;
const BPF_LINK_GET_NEXT_ID: libc::c_long = 31;
const BPF_LINK_TYPE_XDP: u32 = 6;
const BPF_F_REPLACE: u32 = 1 << 2;

/// `union bpf_attr`, as 8-byte words so the buffer is aligned; only the first fields of
/// each command are used and the rest must stay zero.
type Attr = [u64; 16];

fn set_u32<const N: usize>(attr: &mut [u64; N], offset: usize, value: u32) {
    let word = &mut attr[offset / 8];
    let mut bytes = word.to_ne_bytes();
    bytes[offset % 8..offset % 8 + 4].copy_from_slice(&value.to_ne_bytes());
    *word = u64::from_ne_bytes(bytes);
}

fn get_u32<const N: usize>(attr: &[u64; N], offset: usize) -> u32 {
    let bytes = attr[offset / 8].to_ne_bytes();
    let mut out = [0u8; 4];
    out.copy_from_slice(&bytes[offset % 8..offset % 8 + 4]);
    u32::from_ne_bytes(out)
}

fn bpf(cmd: libc::c_long, attr: &mut Attr) -> io::Result<libc::c_long> {
    // SAFETY: attr is a zero-initialised bpf_attr-sized buffer that outlives the call; the
    // kernel reads (and for GET_NEXT_ID writes) only within the size given.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.as_mut_ptr(),
            size_of::<Attr>() as libc::c_uint,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc)
}

/// What the kernel says about an XDP link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XdpLinkInfo {
    pub link_id: u32,
    pub program_id: u32,
    pub ifindex: u32,
}

fn link_info(fd: BorrowedFd<'_>) -> io::Result<Option<XdpLinkInfo>> {
    // struct bpf_link_info: type, id, prog_id (u32 each), then a union at offset 16 whose
    // xdp member starts with ifindex.
    let mut info = [0u64; 16];
    let mut attr: Attr = [0; 16];
    set_u32(&mut attr, 0, fd.as_raw_fd() as u32);
    set_u32(&mut attr, 4, size_of_val(&info) as u32);
    attr[1] = info.as_mut_ptr() as u64;
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    let link_type = get_u32(&info, 0);
    if link_type != BPF_LINK_TYPE_XDP {
        return Ok(None);
    }
    Ok(Some(XdpLinkInfo {
        link_id: get_u32(&info, 4),
        program_id: get_u32(&info, 8),
        ifindex: get_u32(&info, 16),
    }))
}

/// What the XDP link pinned at `path` is attached to: `Some(ifindex)`, 0 when the link is
/// defunct (its interface was deleted, or it was detached), `None` when the pin is not an
/// XDP link.
pub fn pinned_link_ifindex(path: &std::path::Path) -> io::Result<Option<u32>> {
    Ok(pinned_link_info(path)?.map(|info| info.ifindex))
}

/// What the kernel says about the XDP link pinned at `path` (`None`: not an XDP link).
/// Its `program_id` is the program in force, whatever swaps happened since it was pinned.
pub fn pinned_link_info(path: &std::path::Path) -> io::Result<Option<XdpLinkInfo>> {
    Ok(pinned_link(path)?.map(|(_, info)| info))
}

/// The XDP link pinned at `path`, with a descriptor of its own (`None`: not an XDP link).
pub fn pinned_link(path: &std::path::Path) -> io::Result<Option<(OwnedFd, XdpLinkInfo)>> {
    let fd = obj_get(path)?;
    Ok(link_info(fd.as_fd())?.map(|info| (fd, info)))
}

/// A descriptor of the BPF object pinned at `path`.
fn obj_get(path: &std::path::Path) -> io::Result<OwnedFd> {
    use std::os::unix::ffi::OsStrExt as _;
    let name = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let mut attr: Attr = [0; 16];
    attr[0] = name.as_ptr() as u64;
    let fd = bpf(BPF_OBJ_GET, &mut attr)?;
    // SAFETY: BPF_OBJ_GET returned a new file descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// The id of the program pinned at `path` and the ids of the maps it uses.
pub fn pinned_program_maps(path: &std::path::Path) -> io::Result<(u32, Vec<u32>)> {
    // struct bpf_prog_info: id at offset 4, nr_map_ids at 52, map_ids (a pointer) at 56.
    let fd = obj_get(path)?;
    let query = |map_ids: &mut [u32]| -> io::Result<(u32, u32)> {
        let mut info = [0u64; 32];
        if !map_ids.is_empty() {
            set_u32(&mut info, 52, map_ids.len() as u32);
            info[7] = map_ids.as_mut_ptr() as u64;
        }
        let mut attr: Attr = [0; 16];
        set_u32(&mut attr, 0, fd.as_raw_fd() as u32);
        set_u32(&mut attr, 4, size_of_val(&info) as u32);
        attr[1] = info.as_mut_ptr() as u64;
        bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
        Ok((get_u32(&info, 4), get_u32(&info, 52)))
    };
    let (_, count) = query(&mut [])?;
    let mut ids = vec![0u32; count as usize];
    let (id, now) = query(&mut ids)?;
    // A program's maps are fixed at load; the kernel fills at most the room given.
    ids.truncate(now.min(count) as usize);
    Ok((id, ids))
}

/// The XDP link on `ifindex` that runs one of `program_ids`, with a descriptor of its own.
pub fn find_link(ifindex: u32, program_ids: &[u32]) -> io::Result<Option<(OwnedFd, XdpLinkInfo)>> {
    let mut id = 0u32;
    loop {
        let mut attr: Attr = [0; 16];
        set_u32(&mut attr, 0, id);
        match bpf(BPF_LINK_GET_NEXT_ID, &mut attr) {
            Ok(_) => id = get_u32(&attr, 4),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
            Err(e) => return Err(e),
        }
        let mut attr: Attr = [0; 16];
        set_u32(&mut attr, 0, id);
        let fd = match bpf(BPF_LINK_GET_FD_BY_ID, &mut attr) {
            // SAFETY: the kernel just returned this descriptor to us; nobody else owns it.
            Ok(fd) => unsafe { OwnedFd::from_raw_fd(fd as i32) },
            // Gone between the two calls.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(e),
        };
        if let Some(info) = link_info(fd.as_fd())?
            && info.ifindex == ifindex
            && program_ids.contains(&info.program_id)
        {
            return Ok(Some((fd, info)));
        }
    }
}

/// Moves `link` from `old_program` to `new_program` in one step; fails (changing nothing)
/// when the link no longer runs `old_program`.
pub fn update_link(
    link: BorrowedFd<'_>,
    new_program: BorrowedFd<'_>,
    old_program: BorrowedFd<'_>,
) -> io::Result<()> {
    let mut attr: Attr = [0; 16];
    set_u32(&mut attr, 0, link.as_raw_fd() as u32);
    set_u32(&mut attr, 4, new_program.as_raw_fd() as u32);
    set_u32(&mut attr, 8, BPF_F_REPLACE);
    set_u32(&mut attr, 12, old_program.as_raw_fd() as u32);
    bpf(BPF_LINK_UPDATE, &mut attr).map(|_| ())
}

const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;

/// The ids of the maps in an array of maps (`fd`, `len` slots), skipping empty slots.
/// Raw, because aya opens each inner map by its id, which needs CAP_SYS_ADMIN; a takeover
/// only needs to know which rings are the program's (it opens them by their pins).
pub fn inner_map_ids(fd: BorrowedFd<'_>, len: u32) -> io::Result<Vec<u32>> {
    let mut ids = Vec::new();
    for key in 0..len {
        let mut value = 0u32;
        // union bpf_attr for map elements: map_fd (u32), padding, key, value (pointers).
        let mut attr: Attr = [0; 16];
        set_u32(&mut attr, 0, fd.as_raw_fd() as u32);
        attr[1] = std::ptr::from_ref(&key) as u64;
        attr[2] = std::ptr::from_mut(&mut value) as u64;
        match bpf(BPF_MAP_LOOKUP_ELEM, &mut attr) {
            Ok(_) => ids.push(value),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(ids)
}
