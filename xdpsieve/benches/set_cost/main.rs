//! Per-packet cost of looking a source address up in an address set of 1 to 1,000,000
//! prefixes (issue 9), measured in the kernel with `BPF_PROG_TEST_RUN`, every program on
//! the same frames in the same run: the floor (a program that only returns `XDP_PASS`),
//! the kernel's `BPF_MAP_TYPE_LPM_TRIE` (the baseline), and xdpsieve with a rule on the set
//! once it has sets (see `contenders`). Also, per program and set: load time and kernel
//! memory.
//!
//! Sets: IPv4 of 1, 10,000, 100,000 and 1,000,000 prefixes, IPv6 of 1 and 100,000 (the
//! targets compare each family's large set with its 1-prefix set), drawn by
//! `xdpsieve_testkit::prefix_gen` from its fixed seed (lengths as in a BGP table plus a
//! blocklist's host routes; nested prefixes). Frames: 64-byte UDP from `addresses` distinct
//! sources, half inside the set (a random prefix, random host bits or its first or last
//! address), half outside it. Each frame runs `repeat` times per run; a program's figure is
//! the median over addresses of each address's median over runs, with the spread over
//! addresses. The runs go round all frames and programs in turn, so drift hits each alike.
//! Every verdict is checked against the reference model (drop = member).
//!
//! A frame repeated back to back finds the trie's nodes in the CPU cache: these are warm
//! costs, the lower bound of what traffic from many sources would pay. So a second pass,
//! `one_pass` (4,096) further addresses, runs each frame once (repeat 1) through every
//! program in turn: each lookup walks a path the last ones did not, as with traffic from
//! many sources. A single run's time includes the test-run timer's own cost (about that of
//! the floor in the same pass), so compare these figures with the pass's floor, not with
//! the warm ones. Its verdicts are checked too.
//!
//! Run as root: `cargo bench -p xdpsieve --bench set_cost [-- --quick] [--json PATH]
//! [--v4 1,10000] [--v6 1,100000] [--netset DIR]`. `--quick`: sets of 1 and 10,000
//! prefixes of each family, 16 addresses, 10,000 repeats, 1 run, one pass of 256. `--netset DIR` also writes
//! each set as DIR/ipv4-N.netset (for timing the CLI's loading of a set file).

mod contenders;
mod report;

use std::{
    net::IpAddr,
    os::fd::AsRawFd as _,
    path::{Path, PathBuf},
    time::Instant,
};

use xdpsieve_testkit::bpf::{load_floor_program, test_run, verdict_name};
use xdpsieve_testkit::frame;
use xdpsieve_testkit::prefix_gen::{self, Membership, Prefix};
use xdpsieve_testkit::rng::Rng;

use contenders::{CONTENDERS, Loaded};
use report::{AddressNs, Measured, Report, SetResult, Spread, print_table};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;

/// One source address and its frame.
struct Probe {
    addr: IpAddr,
    member: bool,
    frame: Vec<u8>,
}

struct Options {
    quick: bool,
    json: Option<PathBuf>,
    netset: Option<PathBuf>,
    v4: Vec<usize>,
    v6: Vec<usize>,
    repeat: u32,
    runs: usize,
    addresses: usize,
    one_pass: usize,
}

fn options() -> Result<Options, String> {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
    };
    let sizes = |flag: &str, default: &[usize]| -> Result<Vec<usize>, String> {
        value(flag).map_or(Ok(default.to_vec()), |list| {
            list.split(',')
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().map_err(|_| format!("{flag}: not a size: {s}")))
                .collect()
        })
    };
    let quick = args.iter().any(|a| a == "--quick");
    let (v4, v6): (&[usize], &[usize]) = if quick {
        (&[1, 10_000], &[1, 10_000])
    } else {
        (&[1, 10_000, 100_000, 1_000_000], &[1, 100_000])
    };
    Ok(Options {
        quick,
        json: value("--json").map(PathBuf::from),
        netset: value("--netset").map(PathBuf::from),
        v4: sizes("--v4", v4)?,
        v6: sizes("--v6", v6)?,
        repeat: if quick { 10_000 } else { 100_000 },
        runs: if quick { 1 } else { 5 },
        addresses: if quick { 16 } else { 64 },
        one_pass: if quick { 256 } else { 4096 },
    })
}

fn main() {
    let options = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("set_cost: {e}");
            std::process::exit(2);
        }
    };
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("set_cost needs root (BPF_PROG_TEST_RUN)");
        std::process::exit(1);
    }
    let started = Instant::now();
    let floor = load_floor_program(XDP_PASS as u8).expect("loading the floor program");
    let mut sets = Vec::new();
    let cases = options
        .v4
        .iter()
        .map(|&n| (false, n))
        .chain(options.v6.iter().map(|&n| (true, n)));
    for (ipv6, size) in cases {
        let family = if ipv6 { "IPv6" } else { "IPv4" };
        eprintln!("set_cost: {family}, {size} prefixes");
        let generated = Instant::now();
        let prefixes = if ipv6 {
            prefix_gen::ipv6_set(size, prefix_gen::SEED)
        } else {
            prefix_gen::ipv4_set(size, prefix_gen::SEED)
        };
        let generate_seconds = generated.elapsed().as_secs_f64();
        if let Some(dir) = &options.netset {
            write_netset(dir, family, &prefixes);
        }
        let warm = probes(&prefixes, ipv6, options.addresses, 0);
        let sweep = probes(&prefixes, ipv6, options.one_pass, 1);
        let mut result = measure_set(&options, floor.as_raw_fd(), &prefixes, &warm, &sweep);
        result.family = family;
        result.generate_seconds = generate_seconds;
        sets.push(result);
    }
    let report = Report {
        seed: prefix_gen::SEED,
        quick: options.quick,
        repeat: options.repeat,
        runs: options.runs,
        addresses: options.addresses,
        one_pass: options.one_pass,
        seconds: started.elapsed().as_secs_f64(),
        sets,
    };
    print_table(&report);
    let wrong: usize = report
        .sets
        .iter()
        .flat_map(|s| &s.programs)
        .map(|m| m.wrong_verdicts)
        .sum();
    if let Some(path) = &options.json {
        let text = serde_json::to_string_pretty(&report).expect("serialising the report");
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("set_cost: writing {}: {e}", path.display());
            std::process::exit(1);
        }
    }
    if wrong > 0 {
        eprintln!("set_cost: {wrong} verdicts disagree with the reference model");
        std::process::exit(1);
    }
}

fn write_netset(dir: &Path, family: &str, prefixes: &[Prefix]) {
    let path = dir.join(format!(
        "{}-{}.netset",
        family.to_lowercase(),
        prefixes.len()
    ));
    let title = format!("{family} set of {} prefixes", prefixes.len());
    if let Err(e) = std::fs::create_dir_all(dir)
        .and_then(|()| prefix_gen::write_netset(&path, prefixes, &title))
    {
        eprintln!("set_cost: writing {}: {e}", path.display());
        std::process::exit(1);
    }
}

/// `count` frames, members and non-members alternating, from a seed of their own
/// (`stream` tells the sets of frames of one set apart).
fn probes(prefixes: &[Prefix], ipv6: bool, count: usize, stream: u64) -> Vec<Probe> {
    let model = Membership::new(prefixes);
    let mut rng = Rng::new(prefix_gen::SEED ^ prefixes.len() as u64 ^ (stream << 32));
    let inside = prefix_gen::members(prefixes, count / 2, &mut rng);
    let outside = prefix_gen::non_members(&model, ipv6, count - count / 2, &mut rng);
    let mut probes = Vec::with_capacity(count);
    for i in 0..count {
        let addr = if i % 2 == 0 {
            inside.get(i / 2)
        } else {
            outside.get(i / 2)
        };
        let Some(&addr) = addr.or_else(|| outside.get(i - inside.len())) else {
            continue;
        };
        let frame = match addr {
            IpAddr::V4(a) => frame::Frame::ipv4(a.octets(), [192, 0, 2, 2]),
            IpAddr::V6(a) => frame::Frame::ipv6(
                a.octets(),
                std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2).octets(),
            ),
        }
        .udp(40000, 53)
        .pad_to(64)
        .build();
        probes.push(Probe {
            addr,
            member: model.contains(addr),
            frame,
        });
    }
    probes
}

/// Loads every contender with `prefixes` and runs all of them and the floor on `probes`,
/// then once on each of `sweep`.
fn measure_set(
    options: &Options,
    floor: i32,
    prefixes: &[Prefix],
    probes: &[Probe],
    sweep: &[Probe],
) -> SetResult {
    let loaded: Vec<Result<Loaded, String>> = CONTENDERS
        .iter()
        .map(|c| {
            eprintln!("set_cost:   loading {}", c.name);
            (c.load)(prefixes)
        })
        .collect();
    // times[program][probe][run]; program 0 is the floor.
    let mut times = vec![vec![Vec::with_capacity(options.runs); probes.len()]; loaded.len() + 1];
    let mut verdicts = vec![vec![0u32; probes.len()]; loaded.len()];
    let mut errors: Vec<Option<String>> =
        loaded.iter().map(|l| l.as_ref().err().cloned()).collect();
    for _ in 0..options.runs {
        for (p, probe) in probes.iter().enumerate() {
            if let Ok((_, ns)) = test_run(floor, &probe.frame, options.repeat) {
                times[0][p].push(ns);
            }
            for (c, program) in loaded.iter().enumerate() {
                let Ok(program) = program else { continue };
                match test_run(program.fd, &probe.frame, options.repeat) {
                    Ok((verdict, ns)) => {
                        times[c + 1][p].push(ns);
                        verdicts[c][p] = verdict;
                    }
                    Err(e) => errors[c] = Some(format!("BPF_PROG_TEST_RUN: {e}")),
                }
            }
        }
    }
    // One pass, repeat 1: once[program][probe]; program 0 is the floor.
    let mut once = vec![Vec::with_capacity(sweep.len()); loaded.len() + 1];
    let mut once_wrong = vec![0usize; loaded.len()];
    for probe in sweep {
        if let Ok((_, ns)) = test_run(floor, &probe.frame, 1) {
            once[0].push(ns);
        }
        for (c, program) in loaded.iter().enumerate() {
            let Ok(program) = program else { continue };
            match test_run(program.fd, &probe.frame, 1) {
                Ok((verdict, ns)) => {
                    once[c + 1].push(ns);
                    once_wrong[c] += usize::from(!right_verdict(probe, verdict));
                }
                Err(e) => errors[c] = Some(format!("BPF_PROG_TEST_RUN: {e}")),
            }
        }
    }
    let mut once = once.into_iter().map(Spread::of);
    let floor_one_pass_ns = once.next().flatten();
    let median = |runs: &Vec<u32>| {
        let mut r = runs.clone();
        r.sort_unstable();
        r.get(r.len() / 2).copied()
    };
    let per_probe: Vec<Vec<Option<u32>>> = times
        .iter()
        .map(|program| program.iter().map(median).collect())
        .collect();
    let spread = |program: usize, which: Option<bool>| {
        Spread::of(
            probes
                .iter()
                .zip(&per_probe[program])
                .filter(|(probe, _)| which.is_none_or(|m| probe.member == m))
                .filter_map(|(_, ns)| *ns)
                .collect(),
        )
    };
    let programs = CONTENDERS
        .iter()
        .zip(loaded)
        .enumerate()
        .map(|(c, (contender, loaded))| {
            let ok = loaded.as_ref().ok();
            let wrong_verdicts = if ok.is_some() {
                probes
                    .iter()
                    .zip(&verdicts[c])
                    .filter(|&(probe, &v)| !right_verdict(probe, v))
                    .count()
                    + once_wrong[c]
            } else {
                0
            };
            Measured {
                program: contender.name,
                error: errors[c].take(),
                ns: spread(c + 1, None),
                ns_members: spread(c + 1, Some(true)),
                ns_non_members: spread(c + 1, Some(false)),
                one_pass_ns: once.next().flatten(),
                wrong_verdicts,
                load_seconds: ok.map(|l| l.load_seconds),
                fill_seconds: ok.map(|l| l.fill_seconds),
                fill_method: ok.map(|l| l.fill_method.clone()),
                memlock_bytes: ok.and_then(|l| l.memlock_bytes),
                slab_growth_bytes: ok.and_then(|l| l.slab_growth_bytes),
                per_address: probes
                    .iter()
                    .zip(&per_probe[c + 1])
                    .zip(&verdicts[c])
                    .filter_map(|((probe, ns), &v)| {
                        Some(AddressNs {
                            addr: probe.addr.to_string(),
                            member: probe.member,
                            ns: (*ns)?,
                            verdict: verdict_name(v),
                        })
                    })
                    .collect(),
            }
        })
        .collect();
    let mut lengths: Vec<(u8, usize)> = Vec::new();
    for p in prefixes {
        match lengths.iter_mut().find(|(l, _)| *l == p.len) {
            Some((_, n)) => *n += 1,
            None => lengths.push((p.len, 1)),
        }
    }
    lengths.sort_unstable();
    SetResult {
        family: "",
        prefixes: prefixes.len(),
        lengths,
        generate_seconds: 0.0,
        floor_ns: spread(0, None).map(|s| s.median),
        floor_one_pass_ns,
        programs,
    }
}

/// Drop for a member, pass for the rest.
fn right_verdict(probe: &Probe, verdict: u32) -> bool {
    verdict == if probe.member { XDP_DROP } else { XDP_PASS }
}
