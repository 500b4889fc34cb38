//! Per-packet cost of the XDP program, measured in the kernel with `BPF_PROG_TEST_RUN`
//! (repeat 1,000,000, median of several runs), beside its peers in the same run: absolute
//! times drift on a shared machine, ratios do not.
//!
//! - the floor: minimal programs that only return `XDP_PASS` or `XDP_DROP`;
//! - xdp-filter (Debian's xdp-tools), the tool an operator would pick instead, on equivalent
//!   rules: loaded on a veth in a namespace of our own, then run by its program id.
//!
//! Frames: IPv4/UDP and IPv6/UDP of 64 bytes, IPv4/TCP of 1500 bytes. Paths: no rule matched,
//! dropped without capture, dropped and captured; with 1, 64 and `MAX_RULES` rules (the
//! deciding rule is the last one, the others never match).
//!
//! Run as root: `cargo bench -p xdpsieve --bench prog_cost [-- --quick] [--json PATH]`;
//! while working on the program, `-- --quick --only-rules 1` measures xdpsieve alone, and
//! `-- --spin SECONDS` runs one path only (IPv4 UDP 64 B, no rule matched) for a profiler:
//! `perf record -g target/release/deps/prog_cost-* --spin 10`.
//! `--quick` uses 200,000 repeats and 3 runs. While capture paths run, a reader thread drains
//! the ring as the real recorder would, and records that still did not fit are reported.
//!
//! Beside the time, each case has the eBPF instructions the verified program executes on
//! its frame (`xdpsieve_testkit::insns`, counted after the timed runs, so on the maps'
//! steady state): a cost that does not drift with the machine. A case the counter cannot
//! follow, or whose emulated verdict differs from the kernel's, has none and says why.
//!
//! Each program loaded also reports how many instructions the verifier processed to accept
//! it (`verified_insns`, the kernel's limit is 1,000,000): the margin before a kernel refuses
//! a configuration, which grows with the ways through the program, not with its length.
//! Besides the timed configurations, one is loaded for this alone: monitor and limit rules
//! with capture and the event log, the heaviest this file knows of.

use std::{
    os::fd::{AsFd as _, AsRawFd as _},
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use serde::Serialize;
use xdpsieve::{
    configure::capture_filter::{CompiledFilter, FilterEngine},
    configure::loader::{Firewall, Settings},
    configure::rules::{Action, RuleSet},
};
use xdpsieve_common::{MAX_RULES, capture};
use xdpsieve_netns::VethPair;
use xdpsieve_testkit::bpf::{load_floor_program, prog_fd_by_id, test_run, verdict_name};
use xdpsieve_testkit::frame;
use xdpsieve_testkit::insns::{self, Program};

const RULE_COUNTS: [usize; 3] = [1, 64, MAX_RULES as usize];
const DECIDING_RULE: &str = "src port 53";

/// A standard frame in two variants: one the deciding rule matches, one nothing matches.
struct Frame {
    name: &'static str,
    matching: Vec<u8>,
    other: Vec<u8>,
}

#[derive(Serialize)]
struct Case {
    /// `floor-pass`, `floor-drop`, `xdpsieve` or `xdp-filter`.
    program: &'static str,
    frame: &'static str,
    /// `no-match`, `drop`, `drop+capture`, or `drop+capture` through a capture filter:
    /// `drop+capture, filter selects` (`udp port 53` or `tcp port 53`, a short program)
    /// and `drop+capture, long filter rejects` (see [`LONG_FILTER`]), each followed by
    /// `, translated` or `, interpreted`.
    path: &'static str,
    /// Classic BPF instructions of the capture filter on this path, if any.
    filter_insns: Option<usize>,
    rules: usize,
    ns: u32,
    /// eBPF instructions executed on the frame (see the file header), or None with
    /// `insns_missing` saying why.
    insns: Option<u64>,
    insns_missing: Option<String>,
    verdict: &'static str,
    /// Capture records written and lost to a full ring (capture paths only).
    captured: Option<u64>,
    ring_full: Option<u64>,
}

#[derive(Serialize)]
struct Report {
    repeat: u32,
    runs: usize,
    max_rules: u32,
    xdp_filter_missing: Option<String>,
    seconds: f64,
    cases: Vec<Case>,
    verified: Vec<Verified>,
}

/// What the verifier processed to accept one loaded configuration.
#[derive(Serialize)]
struct Verified {
    config: String,
    /// How the rules are matched (`Firewall::matching`).
    matching: String,
    /// None when the kernel does not report it (before 5.16).
    verified_insns: Option<u32>,
}

fn verified(config: String, firewall: &mut Firewall) -> Verified {
    let matching = firewall.matching().to_string();
    let verified_insns = firewall
        .program()
        .ok()
        .and_then(|p| p.info().ok())
        .and_then(|info| info.verified_instruction_count());
    Verified {
        config,
        matching,
        verified_insns,
    }
}

/// The heaviest configuration for the verifier this file knows of: a monitor rule, a
/// limit rule and a drop rule, capturing drops and logging every verdict. Loaded only to
/// be verified.
fn verify_heaviest() -> Verified {
    let rules = RuleSet::from_toml(
        "[[rule]]\naction = \"drop\"\nmode = \"monitor\"\nprotocol = \"udp\"\ndst_port = 7\n\
         [[rule]]\naction = \"limit\"\nprotocol = \"udp\"\ndst_port = 9\nrate = \"1/h\"\n\
         burst = 10\n[[rule]]\naction = \"drop\"\nprotocol = \"udp\"\ndst_port = 53\n",
        "prog_cost",
    )
    .expect("the bench's rules");
    let settings = Settings {
        rules,
        capture: capture::DROPPED,
        log: capture::DROPPED | capture::PASSED,
        ..Settings::default()
    };
    let config = "monitor, limit and drop rules; drops captured, every verdict logged".into();
    match Firewall::load(&settings) {
        Ok(mut firewall) => verified(config, &mut firewall),
        Err(e) => Verified {
            config,
            matching: format!("refused: {}", e.to_string().lines().last().unwrap_or("")),
            verified_insns: None,
        },
    }
}

struct Bench {
    repeat: u32,
    runs: usize,
}

impl Bench {
    /// Median over `runs` of the average ns per run; and the verdict.
    fn time(&self, fd: i32, frame: &[u8]) -> std::io::Result<(u32, &'static str)> {
        let mut times = Vec::with_capacity(self.runs);
        let mut verdict = 0;
        for _ in 0..self.runs {
            let (v, ns) = test_run(fd, frame, self.repeat)?;
            verdict = v;
            times.push(ns);
        }
        times.sort_unstable();
        Ok((times[times.len() / 2], verdict_name(verdict)))
    }
}

/// The instructions `counter` executes on `frame`, checked against the kernel's verdict:
/// (count, why there is none).
fn count_insns(
    counter: &Result<Program, insns::Error>,
    frame: &[u8],
    verdict: &str,
) -> (Option<u64>, Option<String>) {
    let counted = counter
        .as_ref()
        .map_err(ToString::to_string)
        .and_then(|p| p.count(frame).map_err(|e| e.to_string()))
        .and_then(|c| {
            if verdict_name(c.verdict) == verdict {
                Ok(c.insns)
            } else {
                Err(format!(
                    "the emulated verdict {} differs from the kernel's {verdict}",
                    verdict_name(c.verdict)
                ))
            }
        });
    match counted {
        Ok(n) => (Some(n), None),
        Err(e) => {
            eprintln!("prog_cost: no instruction count: {e}");
            (None, Some(e))
        }
    }
}

fn frames() -> Vec<Frame> {
    let v4 = || frame::Frame::ipv4([198, 51, 100, 53], [192, 0, 2, 2]);
    let v6 = || {
        let resolver = std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x53).octets();
        let host = std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2).octets();
        frame::Frame::ipv6(resolver, host)
    };
    vec![
        Frame {
            name: "IPv4 UDP 64 B",
            matching: v4().udp(53, 40000).pad_to(64).build(),
            other: v4().udp(1234, 40000).pad_to(64).build(),
        },
        Frame {
            name: "IPv6 UDP 64 B",
            matching: v6().udp(53, 40000).pad_to(64).build(),
            other: v6().udp(1234, 40000).pad_to(64).build(),
        },
        Frame {
            name: "IPv4 TCP 1500 B",
            matching: v4().tcp(53, 40000).pad_to(1500).build(),
            other: v4().tcp(1234, 40000).pad_to(1500).build(),
        },
    ]
}

/// Filler rule `i` (from 1): TCP to a port the test frames never use.
fn filler_port(i: usize) -> u16 {
    1000 + i as u16
}

/// A capture filter of more than 30 classic instructions that turns the test frames down
/// late: it walks hosts, nets, port ranges and TCP flags before it rejects.
const LONG_FILTER: &str = "(host 203.0.113.9 or net 198.51.100.128/25 or net 10.0.0.0/8) \
     and (tcp[tcpflags] & (tcp-syn|tcp-fin) != 0 or udp portrange 2000-2100 \
     or icmp[icmptype] == icmp-echo) and not vlan and len > 60";

/// A capture filter on the bench's path: the path name, the expression, how it runs.
type Filter = (&'static str, &'static str, FilterEngine);

/// The capture-filter paths, at 1 rule: one that selects the dropped frame (its protocol
/// and port 53) and a long one that rejects it, each translated and interpreted.
fn filters_for(frame: &Frame) -> [Filter; 4] {
    let short = if frame.name.contains("TCP") {
        "tcp port 53"
    } else {
        "udp port 53"
    };
    [
        (
            "drop+capture, filter selects, translated",
            short,
            FilterEngine::Translated,
        ),
        (
            "drop+capture, filter selects, interpreted",
            short,
            FilterEngine::Interpreter,
        ),
        (
            "drop+capture, long filter rejects, translated",
            LONG_FILTER,
            FilterEngine::Translated,
        ),
        (
            "drop+capture, long filter rejects, interpreted",
            LONG_FILTER,
            FilterEngine::Interpreter,
        ),
    ]
}

/// `--spin SECONDS`: the 1-rule program (capturing drops) runs the IPv4 UDP 64 B frame no
/// rule matches, and nothing else, for `SECONDS`: for `perf record` to see that one path,
/// where the bench's runs mix every case's program.
fn spin(seconds: u64) {
    let (settings, _) = settings_for(1, true, None);
    let mut firewall = Firewall::load(&settings).expect("loading xdpsieve (are you root?)");
    let fd = firewall
        .program()
        .expect("program")
        .fd()
        .expect("fd")
        .as_fd()
        .as_raw_fd();
    let frames = frames();
    let frame = &frames[0].other;
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut runs = 0u64;
    let mut ns = Vec::new();
    while Instant::now() < end {
        let (_, took) = test_run(fd, frame, 1_000_000).expect("test run");
        ns.push(took);
        runs += 1;
    }
    ns.sort_unstable();
    eprintln!(
        "prog_cost: spun {runs} million runs of {} (no rule matched), median {} ns",
        frames[0].name,
        ns.get(ns.len() / 2).copied().unwrap_or(0)
    );
}

/// The bench's xdpsieve configuration: `rules - 1` rules that never match, then the
/// deciding rule; drops captured or not, through `filter` if any. Also the filter's length.
fn settings_for(
    rules: usize,
    capture_drops: bool,
    filter: Option<Filter>,
) -> (Settings, Option<usize>) {
    let mut set = RuleSet::default();
    for i in 1..rules {
        set.push_expression(Action::Drop, &format!("tcp dst port {}", filler_port(i)))
            .expect("filler rule");
    }
    set.push_expression(Action::Drop, DECIDING_RULE)
        .expect("deciding rule");
    let compiled = filter.map(|(_, expr, _)| {
        CompiledFilter::compile(expr)
            .expect("the bench's filter compiles")
            .expect("the bench's filter is not empty")
    });
    let filter_insns = compiled.as_ref().map(|f| f.insns.len());
    let settings = Settings {
        rules: set,
        capture: if capture_drops { capture::DROPPED } else { 0 },
        capture_filter: compiled,
        filter_engine: filter.map_or(FilterEngine::Auto, |(_, _, engine)| engine),
        ring_bytes: 64 << 20,
        ..Settings::default()
    };
    (settings, filter_insns)
}

/// xdpsieve with `rules` rules, capturing drops or not: every frame through it.
fn measure_xdpsieve(
    bench: &Bench,
    rules: usize,
    capture_drops: bool,
    frames: &[Frame],
) -> (Vec<Case>, Verified) {
    measure_xdpsieve_with(bench, rules, capture_drops, frames, None)
}

/// The same with a capture filter (capturing drops), for one frame.
fn measure_filtered(bench: &Bench, frame: &Frame, filter: Filter) -> Vec<Case> {
    measure_xdpsieve_with(bench, 1, true, std::slice::from_ref(frame), Some(filter)).0
}

fn measure_xdpsieve_with(
    bench: &Bench,
    rules: usize,
    capture_drops: bool,
    frames: &[Frame],
    filter: Option<Filter>,
) -> (Vec<Case>, Verified) {
    let (settings, filter_insns) = settings_for(rules, capture_drops, filter);
    let mut firewall = Firewall::load(&settings).expect("loading xdpsieve (are you root?)");
    let verified = verified(
        format!(
            "{rules} rule(s), {}",
            if capture_drops {
                "drops captured"
            } else {
                "no capture"
            }
        ),
        &mut firewall,
    );
    let mut source = firewall.take_capture_source().expect("capture source");
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if source.drain(|bytes| {
                    std::hint::black_box(bytes);
                }) == 0
                {
                    std::thread::sleep(Duration::from_micros(50));
                }
            }
        })
    };
    let (fd, counter) = {
        let prog = firewall
            .program()
            .expect("program")
            .fd()
            .expect("fd")
            .as_fd();
        (prog.as_raw_fd(), Program::open(prog))
    };
    let mut cases = Vec::new();
    for frame in frames {
        let mut paths = vec![(
            if capture_drops {
                "drop+capture"
            } else {
                "drop"
            },
            &frame.matching,
        )];
        if let Some((path, _, _)) = filter {
            paths = vec![(path, &frame.matching)];
        } else if capture_drops {
            // Nothing is captured on this path; measured once, with the capture map present.
            paths.insert(0, ("no-match", &frame.other));
        }
        for (path, bytes) in paths {
            let before = firewall.counters().expect("counters");
            let (ns, verdict) = bench.time(fd, bytes).expect("test run");
            let after = firewall.counters().expect("counters");
            let (insns, insns_missing) = count_insns(&counter, bytes, verdict);
            let capturing = path.starts_with("drop+capture");
            cases.push(Case {
                program: "xdpsieve",
                frame: frame.name,
                path,
                filter_insns,
                rules,
                ns,
                insns,
                insns_missing,
                verdict,
                captured: capturing.then(|| after.captured - before.captured),
                ring_full: capturing.then(|| after.capture_lost - before.capture_lost),
            });
        }
    }
    stop.store(true, Ordering::Relaxed);
    reader.join().expect("reader");
    (cases, verified)
}

/// xdp-filter on equivalent rules: `port 53 --mode src` (TCP and UDP) plus `rules - 1`
/// TCP destination ports that never match, for each rule count; loaded in a throwaway
/// namespace. Err(reason) when it cannot be loaded.
fn measure_xdp_filter(bench: &Bench, frames: &[Frame]) -> Result<Vec<Case>, String> {
    let net = VethPair::create("xdpfilter", None).map_err(|e| format!("no namespace: {e}"))?;
    let run = |args: &[&str]| {
        net.fw
            .command("xdp-filter")
            .args(args)
            .output()
            .map_err(|e| format!("{e} (apt-get install xdp-tools)"))
            .and_then(|o| {
                if o.status.success() {
                    Ok(())
                } else {
                    Err(format!(
                        "xdp-filter {}: {}",
                        args.join(" "),
                        String::from_utf8_lossy(&o.stderr).trim()
                    ))
                }
            })
    };
    run(&["load", "fw0"])?;
    run(&["port", "53", "--mode", "src"])?;
    let link = net
        .fw
        .ip(&["-d", "link", "show", "dev", "fw0"])
        .map_err(|e| e.to_string())?;
    let id: u32 = link
        .split("prog/xdp id ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no XDP program id in `ip link`: {link}"))?;
    let fd = prog_fd_by_id(id).map_err(|e| format!("opening program {id}: {e}"))?;
    let counter = Program::open(fd.as_fd());
    let mut cases = Vec::new();
    let mut fillers = 1;
    for rules in RULE_COUNTS {
        while fillers < rules {
            let port = filler_port(fillers).to_string();
            run(&["port", &port, "--mode", "dst", "--proto", "tcp"])?;
            fillers += 1;
        }
        for frame in frames {
            for (path, bytes) in [("no-match", &frame.other), ("drop", &frame.matching)] {
                let (ns, verdict) = bench
                    .time(fd.as_raw_fd(), bytes)
                    .map_err(|e| format!("test run: {e}"))?;
                let (insns, insns_missing) = count_insns(&counter, bytes, verdict);
                cases.push(Case {
                    program: "xdp-filter",
                    frame: frame.name,
                    path,
                    filter_insns: None,
                    rules,
                    ns,
                    insns,
                    insns_missing,
                    verdict,
                    captured: None,
                    ring_full: None,
                });
            }
        }
    }
    let _ = run(&["unload", "fw0"]);
    Ok(cases)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let json: Option<PathBuf> = args
        .iter()
        .position(|a| a == "--json")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from);
    let bench = if quick {
        Bench {
            repeat: 200_000,
            runs: 3,
        }
    } else {
        Bench {
            repeat: 1_000_000,
            runs: 5,
        }
    };
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("prog_cost needs root (BPF_PROG_TEST_RUN)");
        std::process::exit(1);
    }
    if let Some(seconds) = args
        .iter()
        .position(|a| a == "--spin")
        .and_then(|i| args.get(i + 1)?.parse().ok())
    {
        spin(seconds);
        return;
    }
    // xdpsieve alone with one rule count, for iterating on the program.
    let only_rules: Option<usize> = args
        .iter()
        .position(|a| a == "--only-rules")
        .and_then(|i| args.get(i + 1)?.parse().ok());
    let started = Instant::now();
    let frames = frames();
    let mut cases = Vec::new();
    let mut verified = Vec::new();
    for (program, verdict) in [("floor-pass", 2u8), ("floor-drop", 1)] {
        let fd = load_floor_program(verdict).expect("loading a floor program");
        let counter = Program::open(fd.as_fd());
        for frame in &frames {
            let (ns, verdict) = bench.time(fd.as_raw_fd(), &frame.other).expect("floor run");
            let (insns, insns_missing) = count_insns(&counter, &frame.other, verdict);
            cases.push(Case {
                program,
                frame: frame.name,
                path: "",
                filter_insns: None,
                rules: 0,
                ns,
                insns,
                insns_missing,
                verdict,
                captured: None,
                ring_full: None,
            });
        }
    }
    for rules in only_rules.map_or(RULE_COUNTS.to_vec(), |n| vec![n]) {
        eprintln!("prog_cost: xdpsieve, {rules} rule(s)");
        for capture_drops in [true, false] {
            let (measured, verifier) = measure_xdpsieve(&bench, rules, capture_drops, &frames);
            cases.extend(measured);
            verified.push(verifier);
        }
        if rules == 1 {
            eprintln!("prog_cost: xdpsieve, 1 rule, capture filters");
            for frame in &frames {
                for filter in filters_for(frame) {
                    cases.extend(measure_filtered(&bench, frame, filter));
                }
            }
        }
    }
    verified.push(verify_heaviest());
    for v in &verified {
        eprintln!(
            "prog_cost: verified {} instructions: {} ({})",
            v.verified_insns
                .map_or_else(|| "?".to_string(), |n| n.to_string()),
            v.config,
            v.matching
        );
    }
    let peer = if only_rules.is_some() {
        Ok(Vec::new())
    } else {
        eprintln!("prog_cost: xdp-filter");
        measure_xdp_filter(&bench, &frames)
    };
    let (xdp_filter_missing, peer) = match peer {
        Ok(peer) => (None, peer),
        Err(e) => {
            eprintln!("prog_cost: xdp-filter left out: {e}");
            (Some(e), Vec::new())
        }
    };
    cases.extend(peer);

    print_table(&bench, &cases);
    let report = Report {
        repeat: bench.repeat,
        runs: bench.runs,
        max_rules: MAX_RULES,
        xdp_filter_missing,
        seconds: started.elapsed().as_secs_f64(),
        cases,
        verified,
    };
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&report).expect("serialising the report");
        if let Err(e) = std::fs::write(&path, text) {
            eprintln!("prog_cost: writing {}: {e}", path.display());
            std::process::exit(1);
        }
    }
}

fn print_table(bench: &Bench, cases: &[Case]) {
    let floor = |frame: &str| {
        cases
            .iter()
            .find(|c| c.program == "floor-pass" && c.frame == frame)
            .map_or(1, |c| c.ns.max(1))
    };
    println!(
        "BPF_PROG_TEST_RUN, repeat {}, median of {} runs",
        bench.repeat, bench.runs
    );
    println!(
        "{:<11} {:<16} {:<13} {:>5} {:>7} {:>9} {:>6} {:>8}  notes",
        "program", "frame", "path", "rules", "ns/pkt", "vs floor", "insns", "verdict"
    );
    for c in cases {
        let mut note = match (c.captured, c.ring_full) {
            (Some(captured), Some(lost)) => format!("captured {captured}, ring full {lost}"),
            _ => String::new(),
        };
        if let Some(n) = c.filter_insns {
            note.push_str(&format!(", filter of {n} classic instructions"));
        }
        if let Some(why) = &c.insns_missing {
            note.push_str(&format!(", no instruction count: {why}"));
        }
        println!(
            "{:<11} {:<16} {:<13} {:>5} {:>7} {:>8.2}x {:>6} {:>8}  {note}",
            c.program,
            c.frame,
            c.path,
            c.rules,
            c.ns,
            f64::from(c.ns) / f64::from(floor(c.frame)),
            c.insns.map_or("-".into(), |n| n.to_string()),
            c.verdict,
        );
    }
}
