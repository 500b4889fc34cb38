//! The programs the set benchmark compares on one address set, each loaded with the set's
//! prefixes: the kernel's LPM trie (`xdpsieve_bench_lpm`, the baseline), and, once the set
//! trie is in, xdpsieve with a rule `src = @set` (see `HOOK(issue 9)` below).
//!
//! A contender is a name and a function from prefixes to a loaded program; the harness
//! runs every contender on the same frames, interleaved, so adding one is one line in
//! [`CONTENDERS`] and one load function.

use std::{
    any::Any,
    net::IpAddr,
    os::fd::{AsFd as _, AsRawFd as _},
    time::Instant,
};

use aya::{EbpfLoader, maps::Map, programs::Xdp};
use xdpsieve::EBPF_OBJECT;
use xdpsieve_testkit::prefix_gen::Prefix;

/// A program loaded with one set, ready for `BPF_PROG_TEST_RUN`.
pub(crate) struct Loaded {
    /// The program to run; valid while `keep` lives.
    pub fd: i32,
    /// What owns the program and its maps (an `aya::Ebpf`, a `Firewall`, ...).
    #[expect(dead_code, reason = "never read: held so that `fd` stays open")]
    pub keep: Box<dyn Any>,
    /// From prefixes in memory to a program ready to run, object and verifier included.
    pub load_seconds: f64,
    /// The part of it spent putting the prefixes into the kernel's maps.
    pub fill_seconds: f64,
    /// How the prefixes went in (batch or one syscall each).
    pub fill_method: String,
    /// `memlock` of the maps holding the set, from /proc/self/fdinfo: what the kernel
    /// charges for them.
    pub memlock_bytes: Option<u64>,
    /// Growth of the machine's `Slab` (/proc/meminfo) while the maps filled: the kernel
    /// memory actually allocated, intermediate nodes and allocator rounding included.
    /// Machine-wide, so other processes move it too; meaningful at 100k prefixes and up.
    pub slab_growth_bytes: Option<i64>,
}

pub(crate) struct Contender {
    /// `lpm-trie` or `xdpsieve`: the name in the JSON and in BENCHMARKS.md.
    pub name: &'static str,
    pub load: fn(&[Prefix]) -> Result<Loaded, String>,
}

/// Every program measured on each set, in this order, on the same frames.
pub(crate) const CONTENDERS: &[Contender] = &[
    Contender {
        name: "lpm-trie",
        load: load_lpm_trie,
    },
    // xdpsieve with a rule `src = @set` on the same prefixes.
    Contender {
        name: "xdpsieve",
        load: load_xdpsieve,
    },
];

/// xdpsieve itself: the product's loader with one rule `src net @bench` on a set of the
/// prefixes, the set trie built and written as `run` does it.
fn load_xdpsieve(prefixes: &[Prefix]) -> Result<Loaded, String> {
    use xdpsieve::{
        configure::loader::{Firewall, Settings},
        configure::rules::{Action, RuleSet},
        configure::sets::{SetPrefix, SetSource, SetSpec},
    };
    let started = Instant::now();
    let mut rules = RuleSet {
        sets: vec![SetSpec {
            name: "bench".into(),
            prefixes: prefixes
                .iter()
                .map(|p| SetPrefix {
                    addr: p.addr,
                    prefix_len: p.len,
                })
                .collect(),
            source: SetSource::Inline,
        }],
        ..RuleSet::default()
    };
    rules
        .push_expression(Action::Drop, "src net @bench")
        .map_err(|e| e.to_string())?;
    let slab = slab_bytes();
    let mut firewall = Firewall::load(&Settings {
        rules,
        capture: 0,
        ..Settings::default()
    })
    .map_err(|e| e.to_string())?;
    let load_seconds = started.elapsed().as_secs_f64();
    let slab_growth_bytes = slab.zip(slab_bytes()).map(|(a, b)| b as i64 - a as i64);
    let mut memlock_bytes = Some(0u64);
    for name in [
        "SET_NODES",
        "SET_CLASSES",
        "SET_ENTRIES",
        "SET_RULES",
        "SET_META",
    ] {
        let bytes = firewall
            .map_mut(name)
            .and_then(|m| map_fd(m))
            .and_then(memlock_of);
        memlock_bytes = memlock_bytes.zip(bytes).map(|(a, b)| a + b);
    }
    let fd = firewall
        .program()
        .map_err(|e| e.to_string())?
        .fd()
        .map_err(|e| e.to_string())?
        .as_fd()
        .as_raw_fd();
    Ok(Loaded {
        fd,
        keep: Box::new(firewall),
        load_seconds,
        // The loader builds the trie and writes it through the maps' memory mappings as
        // one step of loading: its whole time is the fill.
        fill_seconds: load_seconds,
        fill_method: "trie built in memory, written through mmap".into(),
        memlock_bytes,
        slab_growth_bytes,
    })
}

const PROGRAM: &str = "xdpsieve_bench_lpm";
const MAP_V4: &str = "BENCH_LPM_V4";
const MAP_V6: &str = "BENCH_LPM_V6";

/// The kernel LPM trie: one map per family, filled with the set, looked up by source.
fn load_lpm_trie(prefixes: &[Prefix]) -> Result<Loaded, String> {
    let started = Instant::now();
    let count = |v6: bool| prefixes.iter().filter(|p| p.addr.is_ipv6() == v6).count();
    // At least one entry each: a map of zero entries cannot be created.
    let (v4, v6) = (count(false).max(1) as u32, count(true).max(1) as u32);
    let mut ebpf = EbpfLoader::new()
        .map_max_entries(MAP_V4, v4)
        .map_max_entries(MAP_V6, v6)
        .load(EBPF_OBJECT)
        .map_err(|e| format!("loading the object: {e}"))?;
    let fds = [MAP_V4, MAP_V6].map(|name| ebpf.map(name).and_then(map_fd));
    let [Some(fd4), Some(fd6)] = fds else {
        return Err(format!("the object lacks {MAP_V4} or {MAP_V6}"));
    };
    let slab = slab_bytes();
    let filled = Instant::now();
    let (keys4, keys6) = lpm_keys(prefixes);
    let method4 = fill(fd4, &keys4, 8)?;
    let method6 = fill(fd6, &keys6, 20)?;
    let fill_seconds = filled.elapsed().as_secs_f64();
    let slab_growth_bytes = slab.zip(slab_bytes()).map(|(a, b)| b as i64 - a as i64);
    let program: &mut Xdp = ebpf
        .program_mut(PROGRAM)
        .ok_or_else(|| format!("the object has no program {PROGRAM}"))?
        .try_into()
        .map_err(|e| format!("{PROGRAM}: {e}"))?;
    program
        .load()
        .map_err(|e| format!("loading {PROGRAM}: {e}"))?;
    let fd = program
        .fd()
        .map_err(|e| format!("{PROGRAM}: {e}"))?
        .as_fd()
        .as_raw_fd();
    let memlock_bytes = memlock_of(fd4).zip(memlock_of(fd6)).map(|(a, b)| a + b);
    let fill_method = if keys6.is_empty() { method4 } else { method6 };
    Ok(Loaded {
        fd,
        keep: Box::new(ebpf),
        load_seconds: started.elapsed().as_secs_f64(),
        fill_seconds,
        fill_method,
        memlock_bytes,
        slab_growth_bytes,
    })
}

/// The raw fd of a map, whatever its type.
pub(crate) fn map_fd(map: &Map) -> Option<i32> {
    match map {
        Map::LpmTrie(data) | Map::Array(data) | Map::HashMap(data) | Map::PerCpuArray(data) => {
            Some(data.fd().as_fd().as_raw_fd())
        }
        _ => None,
    }
}

/// LPM trie keys (`struct bpf_lpm_trie_key`: u32 prefix length, then the address in
/// network order), IPv4 and IPv6 apart, each a contiguous array as the batch call takes.
fn lpm_keys(prefixes: &[Prefix]) -> (Vec<u8>, Vec<u8>) {
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for p in prefixes {
        match p.addr {
            IpAddr::V4(a) => {
                v4.extend_from_slice(&u32::from(p.len).to_ne_bytes());
                v4.extend_from_slice(&a.octets());
            }
            IpAddr::V6(a) => {
                v6.extend_from_slice(&u32::from(p.len).to_ne_bytes());
                v6.extend_from_slice(&a.octets());
            }
        }
    }
    (v4, v6)
}

/// Elements per `BPF_MAP_UPDATE_BATCH` call: the kernel copies them one by one either way;
/// this bounds one call's time.
const BATCH: usize = 65_536; // as the fill method's text says

/// Writes `keys` (each `key_size` bytes; value 1 byte) into the map: in batches if the
/// kernel supports them for this map type, else one `BPF_MAP_UPDATE_ELEM` each. Returns
/// how it went in.
fn fill(map: i32, keys: &[u8], key_size: usize) -> Result<String, String> {
    let total = keys.len() / key_size;
    let values = vec![1u8; BATCH];
    let mut done = 0;
    let mut batched = true;
    while done < total {
        let n = (total - done).min(BATCH);
        let chunk = &keys[done * key_size..(done + n) * key_size];
        if batched {
            match update_batch(map, chunk, &values[..n], n) {
                Ok(()) => {
                    done += n;
                    continue;
                }
                Err((0, e)) if done == 0 && batch_unsupported(&e) => batched = false,
                Err((written, e)) => {
                    return Err(format!(
                        "BPF_MAP_UPDATE_BATCH after {} prefixes: {e}",
                        done + written
                    ));
                }
            }
        }
        for (i, key) in chunk.chunks_exact(key_size).enumerate() {
            update_elem(map, key, &values[0])
                .map_err(|e| format!("BPF_MAP_UPDATE_ELEM of prefix {}: {e}", done + i + 1))?;
        }
        done += n;
    }
    Ok(if batched {
        "BPF_MAP_UPDATE_BATCH, 65,536 prefixes per call".into()
    } else {
        "BPF_MAP_UPDATE_ELEM, one call per prefix (this kernel has no batch update for LPM \
         tries)"
            .into()
    })
}

fn batch_unsupported(e: &std::io::Error) -> bool {
    const ENOTSUPP: i32 = 524; // the kernel-internal code bpf(2) can return
    matches!(
        e.raw_os_error(),
        Some(libc::EINVAL | libc::EOPNOTSUPP | ENOTSUPP)
    )
}

/// BPF_MAP_UPDATE_BATCH (26); on error, how many elements the kernel wrote.
fn update_batch(
    map: i32,
    keys: &[u8],
    values: &[u8],
    count: usize,
) -> Result<(), (usize, std::io::Error)> {
    let mut attr = [0u8; 56];
    // in_batch, out_batch stay 0; keys, values, count, map_fd, elem_flags, flags.
    attr[16..24].copy_from_slice(&(keys.as_ptr() as u64).to_ne_bytes());
    attr[24..32].copy_from_slice(&(values.as_ptr() as u64).to_ne_bytes());
    attr[32..36].copy_from_slice(&(count as u32).to_ne_bytes());
    attr[36..40].copy_from_slice(&(map as u32).to_ne_bytes());
    // SAFETY: BPF_MAP_UPDATE_BATCH with a zero-padded attr; keys and values hold `count`
    // elements of the map's key and value sizes and outlive the call.
    let ret = unsafe { libc::syscall(libc::SYS_bpf, 26, attr.as_mut_ptr(), attr.len()) };
    if ret < 0 {
        let e = std::io::Error::last_os_error();
        let written = u32::from_ne_bytes([attr[32], attr[33], attr[34], attr[35]]) as usize;
        return Err((written, e));
    }
    Ok(())
}

/// BPF_MAP_UPDATE_ELEM (2), flags BPF_ANY.
fn update_elem(map: i32, key: &[u8], value: &u8) -> std::io::Result<()> {
    let mut attr = [0u8; 32];
    attr[0..4].copy_from_slice(&(map as u32).to_ne_bytes());
    attr[8..16].copy_from_slice(&(key.as_ptr() as u64).to_ne_bytes());
    attr[16..24].copy_from_slice(&(std::ptr::from_ref(value) as u64).to_ne_bytes());
    // SAFETY: BPF_MAP_UPDATE_ELEM with a zero-padded attr; key and value outlive the call.
    let ret = unsafe { libc::syscall(libc::SYS_bpf, 2, attr.as_ptr(), attr.len()) };
    if ret < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// `memlock` of a map fd, in bytes (what the kernel charges for the map).
pub(crate) fn memlock_of(fd: i32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("memlock:"))?
        .trim()
        .parse()
        .ok()
}

/// The machine's `Slab` from /proc/meminfo, in bytes.
pub(crate) fn slab_bytes() -> Option<u64> {
    let kib: u64 = std::fs::read_to_string("/proc/meminfo")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Slab:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}
