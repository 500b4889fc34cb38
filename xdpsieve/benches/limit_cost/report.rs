//! The limit benchmark's report: what each program cost per packet at each source count
//! (JSON, for `cargo xtask bench`, and a table on stdout), the memory per tracked key, and
//! one bucket charged from both CPUs at once.

use serde::Serialize;
use xdpsieve_testkit::bpf::test_run;

use crate::programs::{self, KeyMemory, Kind};

/// Order statistics of ns per run.
#[derive(Serialize, Clone, Copy)]
pub(crate) struct Spread {
    pub p25: u32,
    pub median: u32,
    pub p75: u32,
    pub mean: f64,
}

impl Spread {
    pub(crate) fn of(mut v: Vec<u32>) -> Option<Spread> {
        if v.is_empty() {
            return None;
        }
        v.sort_unstable();
        let at = |q: usize| v[(v.len() - 1) * q / 100];
        let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64;
        Some(Spread {
            p25: at(25),
            median: at(50),
            p75: at(75),
            mean,
        })
    }
}

#[derive(Serialize)]
pub(crate) struct Case {
    pub program: &'static str,
    /// `within` the limit, `over` it, `no-match`, or "" for the floor.
    pub path: &'static str,
    pub sources: usize,
    /// Timed runs (each one frame, repeat 1), keys already tracked.
    pub runs: usize,
    pub ns: Option<Spread>,
    /// The first pass: each source's first packet (a new key to insert).
    pub first_packet_ns: Option<Spread>,
    /// The floor's median in the same timed passes.
    pub floor_ns: Option<u32>,
    /// `memlock` of the per-source table as loaded for this source count.
    pub table_memlock: Option<u64>,
    pub wrong_verdicts: u64,
    pub error: Option<String>,
}

/// One frame repeated from one CPU, then from both at once (each thread pinned).
#[derive(Serialize)]
pub(crate) struct Contended {
    pub program: &'static str,
    pub repeat: u32,
    /// ns per packet, one thread alone.
    pub one_cpu_ns: Option<u32>,
    /// ns per packet of each of the two threads running together.
    pub two_cpus_ns: Vec<u32>,
    pub error: Option<String>,
}

#[derive(Serialize)]
pub(crate) struct Report {
    pub quick: bool,
    pub min_runs: usize,
    pub chunk: usize,
    /// `limit::BYTES_PER_TRACKED_KEY`, the figure `check-rules` uses.
    pub bytes_per_tracked_key_formula: u64,
    pub seconds: f64,
    pub cases: Vec<Case>,
    pub memory: Vec<KeyMemory>,
    pub contended: Vec<Contended>,
}

/// Programs charging one key: a limit per rule and per source (one source), the
/// XDP-Firewall-style counters, and the rules without a limit for the machine's own share.
pub(crate) fn contended(repeat: u32) -> Vec<Contended> {
    let within = |per_rule| Kind::Limit {
        per_rule,
        over: false,
    };
    let cases: [(&'static str, Kind); 4] = [
        ("xdpsieve, no limit rule", Kind::NoLimit),
        ("xdpsieve, limit per rule, within", within(true)),
        ("xdpsieve, limit per src, 1 source, within", within(false)),
        (
            "XDP-Firewall-style, 1 source, within",
            Kind::Xdpfw { over: false },
        ),
    ];
    let frame = crate::frames(1).remove(0);
    cases
        .into_iter()
        .map(|(program, kind)| {
            let loaded = match programs::load(kind, 1) {
                Ok(l) => l,
                Err(e) => {
                    return Contended {
                        program,
                        repeat,
                        one_cpu_ns: None,
                        two_cpus_ns: Vec::new(),
                        error: Some(e),
                    };
                }
            };
            let run = |cpu: usize| {
                pin_to(cpu);
                test_run(loaded.fd, &frame, repeat).map(|(_, ns)| ns).ok()
            };
            let one_cpu_ns = run(0);
            let two_cpus_ns = std::thread::scope(|s| {
                let threads: Vec<_> = (0..2).map(|cpu| s.spawn(move || run(cpu))).collect();
                threads
                    .into_iter()
                    .filter_map(|t| t.join().ok().flatten())
                    .collect()
            });
            Contended {
                program,
                repeat,
                one_cpu_ns,
                two_cpus_ns,
                error: None,
            }
        })
        .collect()
}

fn pin_to(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET writes within it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set);
    }
}

pub(crate) fn print_table(report: &Report) {
    println!(
        "BPF_PROG_TEST_RUN, repeat 1 per frame, at least {} timed runs per program",
        report.min_runs
    );
    println!(
        "{:>9} {:<26} {:<9} {:>7} {:>7} {:>9} {:>9}  first packet",
        "sources", "program", "path", "median", "mean", "- floor", "vs none"
    );
    for c in &report.cases {
        let Some(ns) = c.ns else {
            println!(
                "{:>9} {:<26} {:<9} not measured: {}",
                c.sources,
                c.program,
                c.path,
                c.error.as_deref().unwrap_or("")
            );
            continue;
        };
        let net = |median: u32| i64::from(median) - i64::from(c.floor_ns.unwrap_or(0));
        let none = report
            .cases
            .iter()
            .find(|o| o.sources == c.sources && o.path == "no-match")
            .and_then(|o| o.ns)
            .map(|o| net(o.median));
        let ratio = none.filter(|&n| n > 0).map_or(String::new(), |n| {
            format!("{:.2}x", net(ns.median) as f64 / n as f64)
        });
        println!(
            "{:>9} {:<26} {:<9} {:>7} {:>7.1} {:>9} {:>9}  {}{}",
            c.sources,
            c.program,
            c.path,
            ns.median,
            ns.mean,
            net(ns.median),
            ratio,
            c.first_packet_ns.map_or(0, |f| f.median),
            if c.wrong_verdicts > 0 {
                format!("  {} unexpected verdicts", c.wrong_verdicts)
            } else {
                String::new()
            }
        );
    }
    println!(
        "memory per tracked key (formula: {} B):",
        report.bytes_per_tracked_key_formula
    );
    for m in &report.memory {
        println!(
            "  {:<20} {:?} -> {:.1} B/key",
            m.program,
            m.sizes,
            m.bytes_per_key.unwrap_or(f64::NAN)
        );
    }
    println!("one key from one CPU, then from both at once (ns/packet):");
    for c in &report.contended {
        println!(
            "  {:<44} {:>6} {:?} {}",
            c.program,
            c.one_cpu_ns.map_or(String::from("-"), |n| n.to_string()),
            c.two_cpus_ns,
            c.error.as_deref().unwrap_or("")
        );
    }
}
