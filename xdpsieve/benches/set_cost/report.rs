//! What the set benchmark reports: the JSON `cargo xtask bench` reads (see
//! `xtask/src/bench/sets.rs`) and the table it prints.

use serde::Serialize;

#[derive(Serialize)]
pub(crate) struct Report {
    pub seed: u64,
    pub quick: bool,
    pub repeat: u32,
    pub runs: usize,
    pub addresses: usize,
    pub one_pass: usize,
    pub seconds: f64,
    pub sets: Vec<SetResult>,
}

#[derive(Serialize)]
pub(crate) struct SetResult {
    /// `IPv4` or `IPv6`.
    pub family: &'static str,
    pub prefixes: usize,
    /// Prefixes of each length in this set, for the record.
    pub lengths: Vec<(u8, usize)>,
    pub generate_seconds: f64,
    /// The floor program on this set's frames (median over addresses).
    pub floor_ns: Option<u32>,
    /// The floor in the one-shot pass.
    pub floor_one_pass_ns: Option<Spread>,
    pub programs: Vec<Measured>,
}

/// Order statistics of ns per packet over the addresses.
#[derive(Serialize, Clone, Copy)]
pub(crate) struct Spread {
    pub min: u32,
    pub p25: u32,
    pub median: u32,
    pub p75: u32,
    pub max: u32,
}

impl Spread {
    pub(crate) fn of(mut v: Vec<u32>) -> Option<Spread> {
        if v.is_empty() {
            return None;
        }
        v.sort_unstable();
        let at = |q: usize| v[(v.len() - 1) * q / 100];
        Some(Spread {
            min: v[0],
            p25: at(25),
            median: at(50),
            p75: at(75),
            max: v[v.len() - 1],
        })
    }
}

#[derive(Serialize)]
pub(crate) struct Measured {
    /// `lpm-trie` or `xdpsieve`.
    pub program: &'static str,
    /// Why it was not measured.
    pub error: Option<String>,
    /// Over all addresses; members and non-members apart.
    pub ns: Option<Spread>,
    pub ns_members: Option<Spread>,
    pub ns_non_members: Option<Spread>,
    /// Each of `one_pass` addresses run once (colder caches; see the module's doc).
    pub one_pass_ns: Option<Spread>,
    /// Verdicts that disagree with the reference model (must be 0).
    pub wrong_verdicts: usize,
    pub load_seconds: Option<f64>,
    pub fill_seconds: Option<f64>,
    pub fill_method: Option<String>,
    pub memlock_bytes: Option<u64>,
    pub slab_growth_bytes: Option<i64>,
    pub per_address: Vec<AddressNs>,
}

#[derive(Serialize)]
pub(crate) struct AddressNs {
    pub addr: String,
    pub member: bool,
    pub ns: u32,
    pub verdict: &'static str,
}

pub(crate) fn print_table(report: &Report) {
    println!(
        "BPF_PROG_TEST_RUN, repeat {}, runs per address: {}, {} addresses (half members); ns per packet, \
         median over addresses [p25-p75] (members / non-members); one pass of {} addresses \
         at repeat 1: median (floor's)",
        report.repeat, report.runs, report.addresses, report.one_pass
    );
    println!(
        "{:<5} {:>9} {:<9} {:>5} {:>12} {:>11} {:>10} {:>6} {:>8} {:>11} {:>11}  notes",
        "set",
        "prefixes",
        "program",
        "floor",
        "ns [p25-p75]",
        "mem/non",
        "one pass",
        "wrong",
        "load s",
        "memlock MiB",
        "slab MiB"
    );
    let mib = |b: f64| b / f64::from(1 << 20);
    for set in &report.sets {
        for m in &set.programs {
            let (ns, split) = match (m.ns, m.ns_members, m.ns_non_members) {
                (Some(a), Some(i), Some(o)) => (
                    format!("{} [{}-{}]", a.median, a.p25, a.p75),
                    format!("{}/{}", i.median, o.median),
                ),
                _ => ("—".into(), "—".into()),
            };
            let once = m
                .one_pass_ns
                .zip(set.floor_one_pass_ns)
                .map_or("—".into(), |(o, f)| {
                    format!("{} ({})", o.median, f.median)
                });
            println!(
                "{:<5} {:>9} {:<9} {:>5} {:>12} {:>11} {:>10} {:>6} {:>8} {:>11} {:>11}  {}",
                set.family,
                set.prefixes,
                m.program,
                set.floor_ns.map_or("—".into(), |n| n.to_string()),
                ns,
                split,
                once,
                m.wrong_verdicts,
                m.load_seconds.map_or("—".into(), |s| format!("{s:.3}")),
                m.memlock_bytes
                    .map_or("—".into(), |b| format!("{:.1}", mib(b as f64))),
                m.slab_growth_bytes
                    .map_or("—".into(), |b| format!("{:.1}", mib(b as f64))),
                m.error
                    .as_deref()
                    .or(m.fill_method.as_deref())
                    .unwrap_or(""),
            );
        }
    }
}
