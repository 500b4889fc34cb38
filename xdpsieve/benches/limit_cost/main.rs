//! Per-packet cost of a limit rule (issue 18, point 7), measured in the kernel with
//! `BPF_PROG_TEST_RUN`, beside the same rules without it and beside XDP-Firewall's
//! per-source limiter (`programs`), every program on the same frames in the same run.
//!
//! Sources: 1, 10,000 and 1,000,000 distinct IPv6 addresses (2001:db8::/32; IPv4's
//! documentation ranges hold 768), one 64-byte UDP frame each, to port 53. A test run
//! repeats one frame, so each frame runs once (repeat 1) and the frames go round: for
//! each source count, every program is loaded with its table sized to fit, then a first
//! pass gives each source its first packet (new keys: inserted), then timed passes (the
//! keys tracked) add up to at least `min_runs` runs per program. The programs take turns
//! every `CHUNK` frames, so drift hits each alike; the frames' order is shuffled, so the
//! table is not walked in the order it was filled.
//!
//! A single run's time includes the test-run timer's own cost: the floor (a program that
//! only returns `XDP_PASS`) is run the same way, and figures are given both raw and with
//! the floor's median taken off. Paths: within the limit (every packet conforms; the walk
//! goes on to the default verdict, pass) and over it (after a source's first packet, every
//! packet is dropped); `per = "src"` and `per = "rule"` (one bucket). Verdicts are checked.
//!
//! Also: memory per tracked key (`memlock` of the table at two sizes, from
//! /proc/self/fdinfo), and one bucket charged from both CPUs at once (`contended`).
//!
//! Run as root: `cargo bench -p xdpsieve --bench limit_cost [-- --quick] [--json PATH]
//! [--sources 1,10000]`. `--quick`: 1 and 1,000 sources, 10,000 runs per program. With
//! `--attach`, it holds one program attached to a veth instead (see `attach`).

mod attach;
mod programs;
mod report;

use std::{os::fd::AsRawFd as _, path::PathBuf, time::Instant};

use xdpsieve_testkit::bpf::{load_floor_program, test_run};
use xdpsieve_testkit::frame;
use xdpsieve_testkit::rng::Rng;

use programs::{Kind, Loaded};
use report::{Case, Report, Spread, print_table};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;

/// Frames each program runs before the next takes its turn.
const CHUNK: usize = 1024;

/// Every program measured at each source count, in this order: name, path, what it is.
const CONTENDERS: &[(&str, &str, Option<Kind>)] = &[
    ("floor", "", None),
    ("xdpsieve, no limit rule", "no-match", Some(Kind::NoLimit)),
    (
        "xdpsieve, limit per src",
        "within",
        Some(Kind::Limit {
            per_rule: false,
            over: false,
        }),
    ),
    (
        "xdpsieve, limit per src",
        "over",
        Some(Kind::Limit {
            per_rule: false,
            over: true,
        }),
    ),
    (
        "xdpsieve, limit per rule",
        "within",
        Some(Kind::Limit {
            per_rule: true,
            over: false,
        }),
    ),
    (
        "xdpsieve, limit per rule",
        "over",
        Some(Kind::Limit {
            per_rule: true,
            over: true,
        }),
    ),
    (
        "XDP-Firewall-style",
        "within",
        Some(Kind::Xdpfw { over: false }),
    ),
    (
        "XDP-Firewall-style",
        "over",
        Some(Kind::Xdpfw { over: true }),
    ),
];

struct Options {
    quick: bool,
    json: Option<PathBuf>,
    sources: Vec<usize>,
    min_runs: usize,
    /// `--attach KIND --netns PATH --ifname IF`: hold one program attached (see `attach`).
    attach: Option<(String, PathBuf, String)>,
    attach_sources: usize,
}

fn options() -> Result<Options, String> {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
    };
    let quick = args.iter().any(|a| a == "--quick");
    let default: &[usize] = if quick {
        &[1, 1_000]
    } else {
        &[1, 10_000, 1_000_000]
    };
    let sources_flag = value("--sources").and_then(|s| s.parse().ok());
    let sources = match value("--sources") {
        None => default.to_vec(),
        Some(list) => list
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| match s.parse() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(format!("--sources: not a count: {s}")),
            })
            .collect::<Result<_, _>>()?,
    };
    Ok(Options {
        quick,
        json: value("--json").map(PathBuf::from),
        sources,
        min_runs: if quick { 10_000 } else { 200_000 },
        attach: value("--attach").map(|kind| {
            (
                kind.clone(),
                value("--netns").map_or_else(PathBuf::new, PathBuf::from),
                value("--ifname").cloned().unwrap_or_default(),
            )
        }),
        attach_sources: sources_flag.unwrap_or(65_536),
    })
}

fn main() {
    let options = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("limit_cost: {e}");
            std::process::exit(2);
        }
    };
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("limit_cost needs root (BPF_PROG_TEST_RUN)");
        std::process::exit(1);
    }
    if let Some((kind, netns, ifname)) = &options.attach {
        if let Err(e) = attach::run(kind, netns, ifname, options.attach_sources) {
            eprintln!("limit_cost --attach {kind}: {e}");
            std::process::exit(1);
        }
        return;
    }
    let started = Instant::now();
    let floor = load_floor_program(XDP_PASS as u8).expect("loading the floor program");
    let mut cases = Vec::new();
    for &sources in &options.sources {
        eprintln!("limit_cost: {sources} source(s)");
        cases.extend(measure(&options, floor.as_raw_fd(), sources));
    }
    eprintln!("limit_cost: memory per tracked key");
    let sizes = if options.quick {
        [4_096, 16_384]
    } else {
        [65_536, 262_144]
    };
    let memory = programs::key_memory(sizes);
    eprintln!("limit_cost: one bucket from both CPUs");
    // Long enough that the two threads overlap for nearly all of it.
    let contended = report::contended(if options.quick { 200_000 } else { 2_000_000 });
    let report = Report {
        quick: options.quick,
        min_runs: options.min_runs,
        chunk: CHUNK,
        bytes_per_tracked_key_formula: xdpsieve::configure::rules::limit::BYTES_PER_TRACKED_KEY,
        seconds: started.elapsed().as_secs_f64(),
        cases,
        memory,
        contended,
    };
    print_table(&report);
    let wrong: u64 = report.cases.iter().map(|c| c.wrong_verdicts).sum();
    let failed: Vec<&str> = report
        .cases
        .iter()
        .filter_map(|c| c.error.as_deref())
        .collect();
    if let Some(path) = &options.json {
        let text = serde_json::to_string_pretty(&report).expect("serialising the report");
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("limit_cost: writing {}: {e}", path.display());
            std::process::exit(1);
        }
    }
    if wrong > 0 || !failed.is_empty() {
        eprintln!("limit_cost: {wrong} unexpected verdicts; failures: {failed:?}");
        std::process::exit(1);
    }
}

/// One 64-byte UDP frame from each of `n` sources in 2001:db8:1::/48.
fn frames(n: usize) -> Vec<Vec<u8>> {
    let dst = std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2).octets();
    (0..n as u32)
        .map(|i| {
            let src =
                std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, (i >> 16) as u16, i as u16);
            frame::Frame::ipv6(src.octets(), dst)
                .udp(40000, 53)
                .pad_to(64)
                .build()
        })
        .collect()
}

/// Every contender on `sources` sources: a first pass (new keys), then timed passes.
fn measure(options: &Options, floor: i32, sources: usize) -> Vec<Case> {
    let frames = frames(sources);
    let loaded: Vec<Result<Loaded, String>> = CONTENDERS
        .iter()
        .map(|(_, _, kind)| match kind {
            None => Err(String::new()),
            Some(kind) => programs::load(*kind, sources),
        })
        .collect();
    let fd = |c: usize| -> Option<i32> {
        if c == 0 {
            Some(floor)
        } else {
            loaded[c].as_ref().ok().map(|l| l.fd)
        }
    };
    let mut rng = Rng::new(0x1175 ^ sources as u64);
    let mut order: Vec<usize> = (0..sources).collect();
    let mut first = vec![Vec::with_capacity(sources); CONTENDERS.len()];
    let mut timed = vec![Vec::new(); CONTENDERS.len()];
    let mut wrong = vec![0u64; CONTENDERS.len()];
    let mut errors: Vec<Option<String>> = loaded
        .iter()
        .enumerate()
        .map(|(c, l)| l.as_ref().err().filter(|_| c != 0).cloned())
        .collect();
    let passes = 1 + options.min_runs.div_ceil(sources);
    for pass in 0..passes {
        shuffle(&mut order, &mut rng);
        for chunk in order.chunks(CHUNK) {
            for (c, (_, path, _)) in CONTENDERS.iter().enumerate() {
                let Some(fd) = fd(c) else { continue };
                for &i in chunk {
                    match test_run(fd, &frames[i], 1) {
                        Ok((verdict, ns)) => {
                            if pass == 0 {
                                first[c].push(ns);
                            } else {
                                timed[c].push(ns);
                                wrong[c] += u64::from(verdict != expected(path));
                            }
                        }
                        Err(e) => errors[c] = Some(format!("BPF_PROG_TEST_RUN: {e}")),
                    }
                }
            }
        }
    }
    let floor_ns = Spread::of(timed[0].clone()).map(|s| s.median);
    CONTENDERS
        .iter()
        .enumerate()
        .map(|(c, (program, path, _))| Case {
            program,
            path,
            sources,
            runs: timed[c].len(),
            ns: Spread::of(std::mem::take(&mut timed[c])),
            first_packet_ns: Spread::of(std::mem::take(&mut first[c])),
            floor_ns,
            table_memlock: loaded[c].as_ref().ok().and_then(|l| l.table_memlock),
            wrong_verdicts: wrong[c],
            error: errors[c].take(),
        })
        .collect()
}

/// Within a limit (and the no-match path, and the floor) passes; over it drops.
fn expected(path: &str) -> u32 {
    if path == "over" { XDP_DROP } else { XDP_PASS }
}

fn shuffle(items: &mut [usize], rng: &mut Rng) {
    for i in (1..items.len()).rev() {
        items.swap(i, rng.index(i + 1));
    }
}
