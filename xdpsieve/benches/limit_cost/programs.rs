//! The programs the limit benchmark runs, each loaded for one source count: xdpsieve with
//! and without a limit rule (the product's loader, rules from TOML as an operator writes
//! them), and the XDP-Firewall-style limiter (`xdpsieve_bench_xdpfw`, see its module doc in
//! xdpsieve-ebpf). Also the memory their per-source tables take.

use std::os::fd::{AsFd as _, AsRawFd as _};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Map, PerCpuArray, PerCpuValues},
    programs::Xdp,
    util::nr_cpus,
};
use xdpsieve::{
    EBPF_OBJECT,
    configure::loader::{Firewall, Settings},
    configure::rules::RuleSet,
};

/// A rule that never matches the bench's frames (UDP): what the firewall has besides the
/// limit, so "without the limit rule" is a set of one rule and the no-match path.
const OTHER_RULE: &str = "[[rule]]\naction = \"drop\"\nprotocol = \"tcp\"\ndst_port = 1001\n";

/// A program ready for `BPF_PROG_TEST_RUN`.
pub(crate) struct Loaded {
    /// The program to run; valid while `keep` lives.
    pub fd: i32,
    /// What owns the program and its maps.
    keep: Owner,
    /// `memlock` of the per-source table (LIMIT_STATE, or the XDP-Firewall stats maps).
    pub table_memlock: Option<u64>,
}

enum Owner {
    Firewall(Box<Firewall>),
    Ebpf(Box<Ebpf>),
}

impl Loaded {
    /// The program, to attach it.
    pub(crate) fn program(&mut self) -> Result<&mut Xdp, String> {
        match &mut self.keep {
            Owner::Firewall(f) => f.program().map_err(|e| e.to_string()),
            Owner::Ebpf(e) => e
                .program_mut(PROGRAM)
                .ok_or_else(|| format!("the object has no program {PROGRAM}"))?
                .try_into()
                .map_err(|e| format!("{PROGRAM}: {e}")),
        }
    }
}

/// What a contender is.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    /// xdpsieve with only [`OTHER_RULE`].
    NoLimit,
    /// xdpsieve with a limit rule on the frames' UDP port before [`OTHER_RULE`].
    Limit { per_rule: bool, over: bool },
    /// XDP-Firewall's filter `ip_pps` on the same port.
    Xdpfw { over: bool },
}

/// The rate of a limit rule the frames stay within (every packet conforms: the walk goes on
/// to the default verdict, pass), or one they are over after their first packet (drop).
fn rate(over: bool) -> &'static str {
    if over {
        "rate = \"1/h\"\nburst = 1\n"
    } else {
        "rate = \"1000000000/s\"\nburst = 1000000000\n"
    }
}

/// Table entries for `sources` keys: the LRU hash shared by the CPUs can evict before it is
/// full (free elements wait in per-CPU lists), so a table sized exactly loses a few keys.
pub(crate) fn fit(sources: usize) -> usize {
    sources + sources / 4 + 4096
}

/// The TOML of xdpsieve's rules for `kind`, with a table of `max_tracked` keys.
pub(crate) fn rules_toml(kind: Kind, max_tracked: usize) -> String {
    match kind {
        Kind::NoLimit | Kind::Xdpfw { .. } => OTHER_RULE.to_string(),
        Kind::Limit { per_rule, over } => format!(
            "[[rule]]\naction = \"limit\"\nprotocol = \"udp\"\ndst_port = 53\n{}per = \"{}\"\n\
             max_tracked = {}\n\n{OTHER_RULE}",
            rate(over),
            if per_rule { "rule" } else { "src" },
            max_tracked
        ),
    }
}

pub(crate) fn load(kind: Kind, sources: usize) -> Result<Loaded, String> {
    match kind {
        Kind::NoLimit | Kind::Limit { .. } => load_xdpsieve(&rules_toml(kind, fit(sources))),
        Kind::Xdpfw { over } => load_xdpfw(sources, over),
    }
}

/// xdpsieve with these rules, capturing nothing.
pub(crate) fn load_xdpsieve(toml: &str) -> Result<Loaded, String> {
    let rules = RuleSet::from_toml(toml, "limit bench").map_err(|e| e.to_string())?;
    let mut firewall = Firewall::load(&Settings {
        rules,
        capture: 0,
        ..Settings::default()
    })
    .map_err(|e| e.to_string())?;
    let table_memlock = firewall
        .map_mut("LIMIT_STATE")
        .and_then(|m| map_fd(m))
        .and_then(memlock_of);
    let fd = firewall
        .program()
        .map_err(|e| e.to_string())?
        .fd()
        .map_err(|e| e.to_string())?
        .as_fd()
        .as_raw_fd();
    Ok(Loaded {
        fd,
        keep: Owner::Firewall(Box::new(firewall)),
        table_memlock,
    })
}

const PROGRAM: &str = "xdpsieve_bench_xdpfw";
const IP_STATS: [&str; 2] = ["BENCH_XDPFW_IP_STATS", "BENCH_XDPFW_IP6_STATS"];
const BLOCK: [&str; 2] = ["BENCH_XDPFW_BLOCK", "BENCH_XDPFW_BLOCK6"];

/// The XDP-Firewall-style limiter with its stats maps sized for `sources` (its
/// `MAX_RL_IP`, sized as [`fit`]) and one filter: UDP to port 53, matched (dropped) once the source's
/// packets in the current second reach `ip_pps` — 1 (every packet: over) or 2^62 (never:
/// within).
pub(crate) fn load_xdpfw(sources: usize, over: bool) -> Result<Loaded, String> {
    let entries = fit(sources) as u32;
    let mut loader = EbpfLoader::new();
    for name in IP_STATS.iter().chain(&BLOCK) {
        loader.map_max_entries(name, entries);
    }
    let mut ebpf = loader
        .load(EBPF_OBJECT)
        .map_err(|e| format!("loading the object: {e}"))?;
    let ncpus = nr_cpus().map_err(|(what, e)| format!("{what}: {e}"))?;
    {
        let map = ebpf
            .map_mut("BENCH_XDPFW_FILTERS")
            .ok_or("the object has no BENCH_XDPFW_FILTERS")?;
        let mut filters: PerCpuArray<_, [u64; 8]> =
            PerCpuArray::try_from(map).map_err(|e| format!("BENCH_XDPFW_FILTERS: {e}"))?;
        let ip_pps = if over { 1 } else { 1 << 62 };
        // set, action (drop), block_time, ip_pps, ip_bps, udp, dport_min, dport_max
        let filter = [1, 0, 0, ip_pps, 0, 1, 53, 53];
        let values = PerCpuValues::try_from(vec![filter; ncpus]).map_err(|e| e.to_string())?;
        filters
            .set(0, values, 0)
            .map_err(|e| format!("writing the filter: {e}"))?;
    }
    let mut table_memlock = Some(0);
    for name in IP_STATS {
        let bytes = ebpf.map(name).and_then(map_fd).and_then(memlock_of);
        table_memlock = table_memlock.zip(bytes).map(|(a, b)| a + b);
    }
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
    Ok(Loaded {
        fd,
        keep: Owner::Ebpf(Box::new(ebpf)),
        table_memlock,
    })
}

/// The kernel memory one tracked key costs, measured: `memlock` of the table at two sizes,
/// the difference over the difference in entries.
#[derive(serde::Serialize)]
pub(crate) struct KeyMemory {
    pub program: &'static str,
    /// (entries, memlock bytes) at each size.
    pub sizes: Vec<(u32, u64)>,
    pub bytes_per_key: Option<f64>,
}

/// Per-key memory of xdpsieve's LIMIT_STATE and of XDP-Firewall's IPv6 stats map.
pub(crate) fn key_memory(sizes: [u32; 2]) -> Vec<KeyMemory> {
    let mut xdpsieve = Vec::new();
    let mut xdpfw = Vec::new();
    for n in sizes {
        let kind = Kind::Limit {
            per_rule: false,
            over: false,
        };
        if let Ok(Some(bytes)) =
            load_xdpsieve(&rules_toml(kind, n as usize)).map(|l| l.table_memlock)
        {
            xdpsieve.push((n, bytes));
        }
        // Both families' stats maps take `n` entries each; the IPv6 one alone is the
        // like-for-like table (an IPv6 key, as the bench's sources are).
        if let Ok(ebpf) = EbpfLoader::new()
            .map_max_entries(IP_STATS[1], n)
            .load(EBPF_OBJECT)
            && let Some(bytes) = ebpf.map(IP_STATS[1]).and_then(map_fd).and_then(memlock_of)
        {
            xdpfw.push((n, bytes));
        }
    }
    let per_key = |s: &[(u32, u64)]| match s {
        [(a, x), (b, y)] if b > a => Some((*y as f64 - *x as f64) / f64::from(b - a)),
        _ => None,
    };
    vec![
        KeyMemory {
            program: "xdpsieve",
            bytes_per_key: per_key(&xdpsieve),
            sizes: xdpsieve,
        },
        KeyMemory {
            program: "xdp-firewall-style",
            bytes_per_key: per_key(&xdpfw),
            sizes: xdpfw,
        },
    ]
}

/// The raw fd of a map, whatever its type.
fn map_fd(map: &Map) -> Option<i32> {
    match map {
        Map::LruHashMap(data) | Map::HashMap(data) | Map::Array(data) => {
            Some(data.fd().as_fd().as_raw_fd())
        }
        _ => None,
    }
}

/// `memlock` of a map fd, in bytes (what the kernel charges for the map).
fn memlock_of(fd: i32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("memlock:"))?
        .trim()
        .parse()
        .ok()
}
