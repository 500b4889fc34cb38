//! `cargo xtask bench [--quick]`: xdpsieve beside the tools an operator would use instead,
//! every figure taken in the same run and reported as a ratio to its peers.
//!
//! 1. Per-packet cost in the kernel (`BPF_PROG_TEST_RUN`): the `prog_cost` bench of the
//!    xdpsieve crate, beside an empty program and xdp-filter.
//! 2. End to end over veth (`capture`): xdpsieve capturing its drops, xdpdump, and tcpdump
//!    on traffic the firewall passes; frames in the file, losses reported and not, CPU per
//!    captured frame, kernel cost per frame, the lossless rate, peak RSS; and (`flood`,
//!    issue 10) what a capture filter selecting 1% of a 64-byte flood keeps of it.
//! 3. Address sets (`sets`, issue 9): the `set_cost` bench, lookup cost in sets of 1 to
//!    1,000,000 prefixes beside the kernel's LPM trie, load time and kernel memory.
//! 4. Limit rules (`limits`, issue 18): the `limit_cost` bench, a limit rule's cost at 1 to
//!    1,000,000 sources beside no limit and XDP-Firewall's limiter, memory per key; and a
//!    flood from random sources over veth, timed by bpf_stats.
//! 5. Capture cost under a veth flood (`capture_cost`, issue 19): the real `xdpsieve run`
//!    dropping a 64- and a 1500-byte flood with and without capture, timed by bpf_stats
//!    beside an XDP_PASS floor, and a perf profile of the capture path.
//!
//! Writes BENCHMARKS.md and benchmarks.json (to the repository root for a full run, to
//! target/bench-quick for `--quick`, or to `--out DIR`).

mod capture;
mod capture_cost;
mod flood;
mod limits;
mod live;
mod mix;
mod pcap;
mod progress;
mod report;
mod sets;

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::netbench::{SCRATCH_BASES, Sandbox, catch_sigint, check_interrupted, preflight};
use capture::{Load, Run, Setup};

pub(crate) struct Options {
    pub(crate) quick: bool,
    pub(crate) out: PathBuf,
    /// Run only one part (the report leaves the other's tables empty).
    pub(crate) only: Option<Part>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Part {
    /// Per-packet cost in the kernel (BPF_PROG_TEST_RUN).
    Kernel,
    /// Capture end to end over veth.
    Capture,
    /// Address sets: lookup cost beside the kernel LPM trie, load time, memory.
    Sets,
    /// Limit rules: cost per packet by source count beside XDP-Firewall's limiter, memory
    /// per key, a flood from random sources.
    Limits,
    /// Capture cost under a veth flood: bpf_stats with and without capture, perf profile.
    CaptureCost,
}

/// Everything one run measured, for the report.
pub(crate) struct Results {
    pub(crate) quick: bool,
    pub(crate) kernel: serde_json::Value,
    pub(crate) kernel_command: String,
    /// The set_cost bench's JSON report (Null when not run).
    pub(crate) sets: serde_json::Value,
    pub(crate) sets_command: String,
    /// The limit_cost bench's JSON (`kernel`) and the flood's runs (`flood`); Null when
    /// not run.
    pub(crate) limits: serde_json::Value,
    pub(crate) limits_command: String,
    /// Issue 19: run time per packet under a veth flood with and without capture, and the
    /// profile (Null when not run).
    pub(crate) capture_cost: serde_json::Value,
    pub(crate) runs: Vec<Run>,
    /// Issue 10: a 64-byte flood captured through a filter selecting 1%, and without one.
    pub(crate) flood: Vec<flood::FloodRun>,
    /// Per tool, the command lines it ran with (`FILE` for the capture file).
    pub(crate) tool_commands: Vec<(Setup, Vec<String>)>,
    pub(crate) sandbox_commands: Vec<String>,
    pub(crate) duration: Duration,
    /// Where the capture files were written.
    pub(crate) scratch: PathBuf,
    pub(crate) elapsed: Duration,
    pub(crate) gen_cpu: u32,
    pub(crate) tool_cpu: u32,
}

/// Runs of each setup at full rate in a full run (the report takes medians).
pub(crate) const REPETITIONS: u32 = 3;

/// Frame sizes of the end-to-end runs.
pub(crate) const FRAME_SIZES: [usize; 2] = [64, 512];

pub(crate) fn run(root: &Path, options: &Options) -> Result<PathBuf> {
    let (xdpsieve, gen_cpu, tool_cpu) = preflight(
        "bench",
        "BPF_PROG_TEST_RUN, network namespaces, XDP",
        &[
            ("tcpdump", "tcpdump"),
            ("xdpdump", "xdp-tools"),
            ("xdp-filter", "xdp-tools"),
        ],
        root,
    )?;
    fs::create_dir_all(&options.out)
        .with_context(|| format!("creating {}", options.out.display()))?;
    catch_sigint();
    let started = Instant::now();

    let only = |part| options.only.is_none_or(|o| o == part);
    let bench_args = |name| {
        let mut args = vec!["bench", "-p", "xdpsieve", "--bench", name, "--"];
        if options.quick {
            args.push("--quick");
        }
        args
    };
    let kernel_args = bench_args("prog_cost");
    let kernel_command = format!("cargo {} --json prog_cost.json", kernel_args.join(" "));
    let kernel = if only(Part::Kernel) {
        eprintln!("bench: per-packet cost in the kernel (BPF_PROG_TEST_RUN)");
        run_json_bench(root, &options.out, "prog_cost", &kernel_args)?
    } else {
        serde_json::Value::Null
    };
    check_interrupted()?;
    let sets_args = bench_args("set_cost");
    let sets_command = format!("cargo {} --json set_cost.json", sets_args.join(" "));
    let sets = if only(Part::Sets) {
        eprintln!("bench: address sets beside the kernel LPM trie (BPF_PROG_TEST_RUN)");
        let mut sets = run_json_bench(root, &options.out, "set_cost", &sets_args)?;
        check_interrupted()?;
        eprintln!("bench: reloads and bulk set changes under traffic");
        let live = live::measure(&xdpsieve, Path::new(SCRATCH_BASES[0]), options.quick)?;
        if let Some(object) = sets.as_object_mut() {
            object.insert("live".into(), live);
        }
        sets
    } else {
        serde_json::Value::Null
    };
    check_interrupted()?;
    let limits_args = bench_args("limit_cost");
    let limits_command = format!("cargo {} --json limit_cost.json", limits_args.join(" "));
    let limits = if only(Part::Limits) {
        eprintln!("bench: limit rules beside XDP-Firewall's limiter (BPF_PROG_TEST_RUN)");
        let kernel = run_json_bench(root, &options.out, "limit_cost", &limits_args)?;
        check_interrupted()?;
        eprintln!("bench: limit rules under a flood from random sources (bpf_stats)");
        let (flood_time, rounds) = if options.quick {
            (Duration::from_millis(500), 1)
        } else {
            (Duration::from_secs(2), REPETITIONS)
        };
        let flood = limits::flood::measure(root, gen_cpu, flood_time, rounds)?;
        serde_json::json!({ "kernel": kernel, "flood": flood })
    } else {
        serde_json::Value::Null
    };
    check_interrupted()?;
    let capture_cost = if only(Part::CaptureCost) {
        eprintln!("bench: capture cost under a veth flood (bpf_stats, perf)");
        let (flood_time, rounds, profile_time) = if options.quick {
            (Duration::from_millis(500), 1, Duration::from_secs(1))
        } else {
            (Duration::from_secs(2), 5, Duration::from_secs(3))
        };
        capture_cost::measure(
            root,
            &xdpsieve,
            gen_cpu,
            tool_cpu,
            flood_time,
            rounds,
            profile_time,
        )?
    } else {
        serde_json::Value::Null
    };
    check_interrupted()?;

    let duration = if options.quick {
        Duration::from_millis(500)
    } else {
        Duration::from_secs(2)
    };
    // Capture files on tmpfs: the tools are measured, not the disk.
    let shm = Path::new(SCRATCH_BASES[1]);
    let scratch = if shm.is_dir() {
        shm
    } else {
        Path::new(SCRATCH_BASES[0])
    };
    let sandbox = Sandbox::create("capture", 2, scratch)?;
    let bench = capture::Bench {
        sandbox: &sandbox,
        xdpsieve: &xdpsieve,
        duration,
        gen_cpu,
        tool_cpu,
        mix: None,
    };
    let steps: &[f64] = if options.quick {
        &[0.5, 0.1]
    } else {
        &[0.75, 0.5, 0.25, 0.1]
    };
    // Runs at full rate vary by tens of percent from one to the next on a shared machine:
    // the report takes the median of these.
    let repetitions = if options.quick { 1 } else { REPETITIONS };
    let mut runs = Vec::new();
    let sizes: &[usize] = if only(Part::Capture) {
        &FRAME_SIZES
    } else {
        &[]
    };
    for &frame_bytes in sizes {
        for repetition in 0..repetitions {
            for setup in Setup::BASELINES {
                runs.push(measure(
                    &bench,
                    setup,
                    frame_bytes,
                    Load::OneCore,
                    repetition,
                )?);
            }
        }
        for setup in Setup::TOOLS {
            let mut flat_out = Vec::new();
            for repetition in 0..repetitions {
                for load in [Load::OneCore, Load::BothCores] {
                    let run = measure(&bench, setup, frame_bytes, load, repetition)?;
                    if load == Load::OneCore {
                        flat_out.push((run.lossless(), run.pps));
                    }
                    runs.push(run);
                }
            }
            // The lossless rate: step the generator down from its (median) flat-out rate.
            flat_out.sort_by(|a, b| a.1.total_cmp(&b.1));
            let top = flat_out[flat_out.len() / 2].1;
            if flat_out.iter().any(|(lossless, _)| !lossless) {
                for share in steps {
                    let rate = (top * share) as u64;
                    let run = measure(&bench, setup, frame_bytes, Load::Paced(rate), 0)?;
                    let done = run.lossless();
                    runs.push(run);
                    if done {
                        break;
                    }
                }
            }
        }
    }
    let flood = if only(Part::Capture) {
        flood::measure(&bench, repetitions)?
    } else {
        Vec::new()
    };
    let file = PathBuf::from("FILE");
    let tool_commands = Setup::TOOLS
        .iter()
        .chain(Setup::BASELINES.iter())
        .map(|&setup| {
            let lines = bench
                .commands(setup, &file, &tool_cpu.to_string())
                .iter()
                .map(|(_, cmd)| crate::netbench::shell_line(cmd))
                .collect();
            (setup, lines)
        })
        .collect();
    let sandbox_commands = sandbox.commands.clone();
    drop(sandbox);

    let results = Results {
        quick: options.quick,
        kernel,
        kernel_command,
        sets,
        sets_command,
        limits,
        limits_command,
        capture_cost,
        runs,
        flood,
        tool_commands,
        sandbox_commands,
        duration,
        scratch: scratch.to_path_buf(),
        elapsed: started.elapsed(),
        gen_cpu,
        tool_cpu,
    };
    let (mut markdown, json) = report::render(root, &results)?;
    let md_path = options.out.join("BENCHMARKS.md");
    // Studies written by hand (before/after comparisons of one change, interleaved runs)
    // sit below the marker in the repository's file and are kept, not measured again.
    if let Ok(old) = fs::read_to_string(root.join("BENCHMARKS.md"))
        && let Some(at) = old.find(HAND_WRITTEN)
    {
        markdown.push('\n');
        markdown.push_str(&old[at..]);
    }
    fs::write(&md_path, &markdown).with_context(|| format!("writing {}", md_path.display()))?;
    let json_path = options.out.join("benchmarks.json");
    fs::write(&json_path, json).with_context(|| format!("writing {}", json_path.display()))?;
    eprintln!(
        "bench: wrote {} and {} in {:.0} s",
        md_path.display(),
        json_path.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(md_path)
}

/// Everything after this line in BENCHMARKS.md is hand-written and kept by a new run.
const HAND_WRITTEN: &str =
    "<!-- Hand-written studies below: kept as they are by `cargo xtask bench`. -->";

/// Runs a bench of the xdpsieve crate that writes a JSON report (`--json FILE`); returns it.
fn run_json_bench(root: &Path, out: &Path, name: &str, args: &[&str]) -> Result<serde_json::Value> {
    let json = out.join(format!("{name}.json"));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    crate::run(
        Command::new(cargo)
            .args(args)
            .arg("--json")
            .arg(&json)
            .current_dir(root),
    )?;
    let text = fs::read_to_string(&json).with_context(|| format!("reading {}", json.display()))?;
    let _ = fs::remove_file(&json);
    serde_json::from_str(&text).with_context(|| format!("parsing {}", json.display()))
}

fn measure(
    bench: &capture::Bench<'_>,
    setup: Setup,
    frame_bytes: usize,
    load: Load,
    repetition: u32,
) -> Result<Run> {
    let what = format!(
        "{}, {frame_bytes} B, {}",
        setup.label(),
        report::load_label(load)
    );
    eprintln!("bench: {what}");
    let run = bench
        .run(setup, frame_bytes, load, repetition)
        .with_context(|| format!("end-to-end run: {what}"))?;
    eprintln!("bench:   {}", progress::one_line(&run));
    Ok(run)
}

/// Checks that a report has every table and every peer (the CI smoke run); nothing about
/// the numbers themselves.
pub(crate) fn check_report(markdown: &Path, json: &Path) -> Result<()> {
    let md =
        fs::read_to_string(markdown).with_context(|| format!("reading {}", markdown.display()))?;
    let mut expected = vec![
        "## Targets".to_string(),
        "## 1. Per-packet cost in the kernel".to_string(),
        "## 2. End to end over veth".to_string(),
        sets::SECTION.to_string(),
        limits::SECTION.to_string(),
        flood::SECTION.to_string(),
        capture_cost::SECTION.to_string(),
        report::MODEL_SECTION.to_string(),
        "## Commands".to_string(),
    ];
    for setup in Setup::TOOLS {
        expected.push(format!("| {} |", setup.label()));
    }
    for bytes in FRAME_SIZES {
        expected.push(format!("### {bytes}-byte frames"));
    }
    for (bytes, factor) in capture_cost::TARGETS {
        expected.push(format!(
            "| veth flood (bpf_stats), {bytes} B: drop+capture ≤ {factor}× drop |"
        ));
    }
    for text in &expected {
        if !md.contains(text.as_str()) {
            bail!("{} lacks `{text}`", markdown.display());
        }
    }
    let report: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(json).with_context(|| format!("reading {}", json.display()))?,
    )
    .with_context(|| format!("parsing {}", json.display()))?;
    let cases = report["kernel"]["cases"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    for program in ["floor-pass", "floor-drop", "xdpsieve", "xdp-filter"] {
        if !cases
            .iter()
            .any(|c| c["program"] == program && c["ns"].as_u64().is_some())
        {
            bail!("{}: no kernel cost measured for {program}", json.display());
        }
    }
    // The instruction counts: every xdpsieve case of the three frames and paths (the
    // capture-filter cases included) and the floor must have one.
    for c in cases.iter().filter(|c| {
        c["program"] == "xdpsieve"
            || c["program"]
                .as_str()
                .is_some_and(|p| p.starts_with("floor"))
    }) {
        if c["insns"].as_u64().is_none() {
            bail!(
                "{}: no instruction count for {} {} {} at {} rules: {}",
                json.display(),
                c["program"],
                c["frame"],
                c["path"],
                c["rules"],
                c["insns_missing"].as_str().unwrap_or("no reason given")
            );
        }
    }
    // The verifier's figure for the heaviest configuration: it must have loaded (a refusal
    // is the regression this figure is there to show).
    let verified = report["kernel"]["verified"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    if !verified.iter().any(|v| {
        v["config"]
            .as_str()
            .is_some_and(|c| c.starts_with("monitor"))
    }) {
        bail!(
            "{}: no verifier figure for the heaviest configuration",
            json.display()
        );
    }
    if let Some(refused) = verified.iter().find(|v| {
        v["matching"]
            .as_str()
            .is_some_and(|m| m.starts_with("refused"))
    }) {
        bail!(
            "{}: the kernel refused {}",
            json.display(),
            refused["config"]
        );
    }
    sets::check(&report["sets"]).with_context(|| format!("{}", json.display()))?;
    limits::check(&report["limits"]).with_context(|| format!("{}", json.display()))?;
    capture_cost::check(&report["capture_cost"]).with_context(|| format!("{}", json.display()))?;
    let runs = report["end_to_end"]["runs"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    for setup in [
        "xdpsieve",
        "xdpsieve-pcapng",
        "xdpdump",
        "tcpdump",
        "base-drop",
        "base-pass",
        "base-none",
    ] {
        for bytes in FRAME_SIZES {
            if !runs.iter().any(|r| {
                r["setup"] == setup && r["frame_bytes"] == bytes && r["sent"].as_u64() > Some(0)
            }) {
                bail!(
                    "{}: no end-to-end run of {setup} with {bytes} B frames",
                    json.display()
                );
            }
        }
    }
    let flood = report["end_to_end"]["flood"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    for filtered in [true, false] {
        if !flood
            .iter()
            .any(|f| f["filter"].is_string() == filtered && f["sent"].as_u64() > Some(0))
        {
            bail!(
                "{}: no run of the 64-byte flood {}",
                json.display(),
                if filtered {
                    "through the capture filter"
                } else {
                    "without a filter"
                }
            );
        }
    }
    Ok(())
}
