//! The `bpf(2)` calls the instruction counter needs, on programs and maps it did not load:
//! a program's verified (xlated) instructions and map ids, a map's shape, one element's
//! value. Read only: nothing here writes a map.

use std::os::fd::{AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd};

use super::Error;

const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_MAP_GET_FD_BY_ID: libc::c_long = 14;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;

/// `bpf(cmd, attr)`; the raw return value.
fn sys(cmd: libc::c_long, attr: &mut [u8]) -> std::io::Result<i64> {
    // SAFETY: attr is a live, zero-padded bpf_attr of the length given; every pointer the
    // callers store in it points to a buffer that outlives the call and is as long as the
    // length stored beside it.
    let ret = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) };
    if ret < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(ret)
}

fn put_u32(buf: &mut [u8], at: usize, v: u32) {
    buf[at..at + 4].copy_from_slice(&v.to_ne_bytes());
}

fn put_u64(buf: &mut [u8], at: usize, v: u64) {
    buf[at..at + 8].copy_from_slice(&v.to_ne_bytes());
}

fn get_u32(buf: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(buf[at..at + 4].try_into().expect("4 bytes"))
}

/// BPF_OBJ_GET_INFO_BY_FD into `info` (the kernel fills what it knows).
fn obj_info(fd: i32, info: &mut [u8]) -> std::io::Result<()> {
    let mut attr = [0u8; 16];
    put_u32(&mut attr, 0, fd as u32);
    put_u32(&mut attr, 4, info.len() as u32);
    put_u64(&mut attr, 8, info.as_mut_ptr() as u64);
    sys(BPF_OBJ_GET_INFO_BY_FD, &mut attr).map(drop)
}

/// What the counter takes from `struct bpf_prog_info`.
pub(super) struct ProgInfo {
    pub(super) id: u32,
    pub(super) prog_type: u32,
    pub(super) name: String,
    /// The verified program as the kernel dumps it (`bpf_insn_prepare_dump`).
    pub(super) insns: Vec<u64>,
    pub(super) map_ids: Vec<u32>,
}

/// `struct bpf_prog_info` offsets (linux/bpf.h).
const PI_TYPE: usize = 0;
const PI_ID: usize = 4;
const PI_XLATED_LEN: usize = 20;
const PI_XLATED_INSNS: usize = 32;
const PI_NR_MAP_IDS: usize = 52;
const PI_MAP_IDS: usize = 56;
const PI_NAME: usize = 64;
const PROG_INFO_LEN: usize = 232;

/// The program's xlated instructions and map ids: a first call for the sizes, a second
/// for the arrays.
pub(super) fn prog_info(prog: BorrowedFd<'_>) -> Result<ProgInfo, Error> {
    let fd = prog.as_raw_fd();
    let mut info = [0u8; PROG_INFO_LEN];
    obj_info(fd, &mut info)
        .map_err(|e| Error::new(format!("BPF_OBJ_GET_INFO_BY_FD on program fd {fd}: {e}")))?;
    let xlated_len = get_u32(&info, PI_XLATED_LEN) as usize;
    let nr_maps = get_u32(&info, PI_NR_MAP_IDS) as usize;
    if xlated_len == 0 {
        return Err(Error::new(format!(
            "program fd {fd}: the kernel shows no xlated instructions (needs root, or \
             kernel.kptr_restrict / bpf_dump_raw_ok refuses)"
        )));
    }
    let mut insns = vec![0u64; xlated_len.div_ceil(8)];
    let mut map_ids = vec![0u32; nr_maps];
    let mut second = [0u8; PROG_INFO_LEN];
    put_u32(&mut second, PI_XLATED_LEN, xlated_len as u32);
    put_u64(&mut second, PI_XLATED_INSNS, insns.as_mut_ptr() as u64);
    put_u32(&mut second, PI_NR_MAP_IDS, nr_maps as u32);
    put_u64(&mut second, PI_MAP_IDS, map_ids.as_mut_ptr() as u64);
    obj_info(fd, &mut second).map_err(|e| {
        Error::new(format!(
            "BPF_OBJ_GET_INFO_BY_FD on program fd {fd} (instructions): {e}"
        ))
    })?;
    let name = &second[PI_NAME..PI_NAME + 16];
    let name = String::from_utf8_lossy(name.split(|&b| b == 0).next().unwrap_or_default());
    Ok(ProgInfo {
        id: get_u32(&second, PI_ID),
        prog_type: get_u32(&second, PI_TYPE),
        name: name.into_owned(),
        insns,
        map_ids,
    })
}

/// Opens a program by id (BPF_PROG_GET_FD_BY_ID).
pub(super) fn prog_fd_by_id(id: u32) -> Result<OwnedFd, Error> {
    fd_by_id(BPF_PROG_GET_FD_BY_ID, id)
        .map_err(|e| Error::new(format!("opening program {id}: {e}")))
}

fn fd_by_id(cmd: libc::c_long, id: u32) -> std::io::Result<OwnedFd> {
    let mut attr = [0u8; 16];
    put_u32(&mut attr, 0, id);
    let fd = sys(cmd, &mut attr)?;
    // SAFETY: the kernel just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// A map the program uses: its descriptor and shape (`struct bpf_map_info`).
pub(super) struct MapInfo {
    pub(super) fd: OwnedFd,
    pub(super) id: u32,
    pub(super) map_type: u32,
    pub(super) key_size: u32,
    pub(super) value_size: u32,
    pub(super) max_entries: u32,
    pub(super) name: String,
}

/// Opens map `id` (BPF_MAP_GET_FD_BY_ID) and reads its shape.
pub(super) fn map_info(id: u32) -> Result<MapInfo, Error> {
    let fd = fd_by_id(BPF_MAP_GET_FD_BY_ID, id)
        .map_err(|e| Error::new(format!("opening map {id}: {e}")))?;
    let mut info = [0u8; 88];
    obj_info(fd.as_raw_fd(), &mut info)
        .map_err(|e| Error::new(format!("BPF_OBJ_GET_INFO_BY_FD on map {id}: {e}")))?;
    let name = &info[24..40];
    let name = String::from_utf8_lossy(name.split(|&b| b == 0).next().unwrap_or_default());
    Ok(MapInfo {
        fd,
        id,
        map_type: get_u32(&info, 0),
        key_size: get_u32(&info, 8),
        value_size: get_u32(&info, 12),
        max_entries: get_u32(&info, 16),
        name: name.into_owned(),
    })
}

/// BPF_MAP_LOOKUP_ELEM into `value` (as long as the map's value, or one per possible CPU
/// for a per-CPU map); `Ok(false)` when the key is absent. An LPM trie answers with the
/// longest matching prefix, as the program's lookup does.
pub(super) fn lookup(map: BorrowedFd<'_>, key: &[u8], value: &mut [u8]) -> std::io::Result<bool> {
    let mut attr = [0u8; 32];
    put_u32(&mut attr, 0, map.as_raw_fd() as u32);
    put_u64(&mut attr, 8, key.as_ptr() as u64);
    put_u64(&mut attr, 16, value.as_mut_ptr() as u64);
    match sys(BPF_MAP_LOOKUP_ELEM, &mut attr) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The number of possible CPUs (`/sys/devices/system/cpu/possible`, e.g. `0-3`): how many
/// values a per-CPU map's lookup returns.
pub(super) fn possible_cpus() -> Result<usize, Error> {
    let path = "/sys/devices/system/cpu/possible";
    let text =
        std::fs::read_to_string(path).map_err(|e| Error::new(format!("reading {path}: {e}")))?;
    let mut n = 0;
    for part in text.trim().split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (usize, usize) = a
            .parse()
            .ok()
            .zip(b.parse().ok())
            .ok_or_else(|| Error::new(format!("{path}: cannot parse {text:?}")))?;
        n = n.max(b + 1);
        let _ = a;
    }
    Ok(n)
}
