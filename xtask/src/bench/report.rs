//! BENCHMARKS.md and benchmarks.json from one run: the machine, the exact commands, the
//! kernel-cost table, the end-to-end tables, and the targets beside what was measured.

use std::{fmt::Write as _, fs, path::Path, process::Command};

use anyhow::Result;
use serde_json::{Value, json};

use super::{
    FRAME_SIZES, Results,
    capture::{Load, Run, Setup},
};
use crate::netbench::{dotted, thousands};

pub(crate) fn load_label(load: Load) -> String {
    match load {
        Load::OneCore => "generator on 1 core, flat out".into(),
        Load::BothCores => "generator on both cores, flat out".into(),
        Load::Paced(rate) => format!("generator on 1 core at {} pps", thousands(rate)),
    }
}

/// Facts about the machine and the tools, as (label, value).
fn machine(root: &Path) -> Vec<(&'static str, String)> {
    let first_line = |cmd: &mut Command| -> String {
        cmd.output()
            .ok()
            .map(|o| {
                let text = if o.stdout.is_empty() {
                    o.stderr
                } else {
                    o.stdout
                };
                String::from_utf8_lossy(&text)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_string()
            })
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "unknown".into())
    };
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
        .map_or("unknown CPU".to_string(), |(_, m)| m.trim().to_string());
    let memory = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let kib: u64 = m
                .lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))?
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()?;
            Some(format!("{:.1} GiB", kib as f64 / (1 << 20) as f64))
        })
        .unwrap_or_else(|| "unknown".into());
    let cpus = crate::netbench::online_cpus().map_or(0, |c| c.len());
    vec![
        ("CPU", format!("{model}, {cpus} online CPUs")),
        ("Memory", memory),
        ("Kernel", first_line(Command::new("uname").args(["-srv"]))),
        (
            "xdpsieve",
            format!(
                "git {} (release build)",
                first_line(
                    Command::new("git")
                        .args(["describe", "--always", "--dirty"])
                        .current_dir(root)
                )
            ),
        ),
        ("rustc", first_line(Command::new("rustc").arg("--version"))),
        (
            "rustc (eBPF)",
            first_line(Command::new("rustc").args(["+nightly", "--version"])),
        ),
        (
            "bpf-linker",
            first_line(Command::new("bpf-linker").arg("--version")),
        ),
        (
            "xdp-tools (xdp-filter, xdpdump)",
            first_line(Command::new("dpkg-query").args(["-W", "-f", "${Version}", "xdp-tools"])),
        ),
        (
            "xdpdump",
            first_line(Command::new("xdpdump").arg("--version")),
        ),
        (
            "tcpdump",
            first_line(Command::new("tcpdump").arg("--version")),
        ),
    ]
}

/// A kernel-cost case from prog_cost's JSON.
fn kernel_ns(kernel: &Value, program: &str, frame: &str, path: &str, rules: u64) -> Option<f64> {
    kernel["cases"].as_array()?.iter().find_map(|c| {
        (c["program"] == program
            && c["frame"] == frame
            && (path.is_empty() || c["path"] == path)
            && (rules == 0 || c["rules"] == rules))
            .then(|| c["ns"].as_f64())
            .flatten()
    })
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "—".into(),
    }
}

fn ns(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| format!("{v:.0}"))
}

/// The run with the median `key` among the repetitions of a setup under a load.
fn median_by(
    runs: &[Run],
    setup: Setup,
    bytes: usize,
    load: Load,
    key: impl Fn(&Run) -> f64,
) -> Option<&Run> {
    let mut matching: Vec<&Run> = runs
        .iter()
        .filter(|r| r.setup == setup && r.frame_bytes == bytes && r.load == load)
        .collect();
    matching.sort_by(|a, b| key(a).total_cmp(&key(b)));
    matching.get(matching.len() / 2).copied()
}

fn by_pps(r: &Run) -> f64 {
    r.pps
}

fn by_cpu(r: &Run) -> f64 {
    r.cpu_ns_per_captured.unwrap_or(0.0)
}

fn by_kept(r: &Run) -> f64 {
    r.kept().unwrap_or(0.0)
}

fn rss(r: &Run) -> String {
    match (r.peak_rss_kib, r.kernel_buffers_rss_kib) {
        (Some(peak), Some(kernel)) => format!(
            "{:.1} MiB ({:.1} in kernel buffers)",
            peak as f64 / 1024.0,
            kernel as f64 / 1024.0
        ),
        (Some(peak), None) => format!("{:.1} MiB", peak as f64 / 1024.0),
        _ => "—".into(),
    }
}

/// Kernel time per frame at the generator's saturated core, from its flat-out rate.
fn ns_per_frame(r: &Run) -> f64 {
    1e9 / r.pps.max(1.0)
}

/// What capture adds per frame in the kernel: the tool's flat-out run against its baseline.
fn added_ns(runs: &[Run], setup: Setup, bytes: usize) -> Option<f64> {
    let tool = median_by(runs, setup, bytes, Load::OneCore, by_pps)?;
    let base = median_by(runs, setup.baseline(), bytes, Load::OneCore, by_pps)?;
    Some(ns_per_frame(tool) - ns_per_frame(base))
}

/// The highest rate found lossless: flat out, a stepped rate, or none tried.
fn lossless_rate(runs: &[Run], setup: Setup, bytes: usize) -> String {
    let flat_out = || {
        runs.iter()
            .filter(move |r| r.setup == setup && r.frame_bytes == bytes && r.load == Load::OneCore)
    };
    if flat_out().all(Run::lossless)
        && let Some(flat) = median_by(runs, setup, bytes, Load::OneCore, by_pps)
    {
        return format!("flat out ({} pps)", thousands(flat.pps as u64));
    }
    let paced: Vec<&Run> = runs
        .iter()
        .filter(|r| r.setup == setup && r.frame_bytes == bytes && matches!(r.load, Load::Paced(_)))
        .collect();
    if let Some(r) = paced.iter().find(|r| r.lossless()) {
        return format!("{} pps", thousands(r.pps as u64));
    }
    match paced.last() {
        Some(r) => format!("below {} pps", thousands(r.pps as u64)),
        None => "—".into(),
    }
}

fn opt(v: Option<u64>) -> String {
    v.map_or("—".into(), thousands)
}

pub(crate) fn render(root: &Path, res: &Results) -> Result<(String, String)> {
    let mut md = String::new();
    let kernel = &res.kernel;
    let machine = machine(root);
    let repeat = kernel["repeat"].as_u64().unwrap_or(0);
    let kruns = kernel["runs"].as_u64().unwrap_or(0);
    let max_rules = kernel["max_rules"].as_u64().unwrap_or(0);

    writeln!(md, "# xdpsieve benchmarks\n")?;
    writeln!(
        md,
        "xdpsieve beside the tools an operator would use instead, all measured in one run of \
         `cargo xtask bench{}` ({:.0} s). Absolute times drift on a shared machine; the \
         ratios between tools measured side by side are the result.{}\n",
        if res.quick { " --quick" } else { "" },
        res.elapsed.as_secs_f64(),
        if res.quick {
            " **Quick run: fewer repeats and short runs; for checking the harness, not for \
             quoting.**"
        } else {
            ""
        }
    )?;
    writeln!(md, "## Machine\n")?;
    for (label, value) in &machine {
        writeln!(md, "- {label}: {value}")?;
    }

    // Targets first: the summary a reader wants.
    let targets = targets(res);
    writeln!(md, "\n## Targets\n")?;
    writeln!(md, "| target | peer, same run | xdpsieve | met |")?;
    writeln!(md, "|---|---|---|---|")?;
    for t in &targets {
        writeln!(
            md,
            "| {} | {} | {} | {} |",
            t["target"].as_str().unwrap_or(""),
            t["peer"].as_str().unwrap_or(""),
            t["xdpsieve"].as_str().unwrap_or(""),
            match t["met"].as_bool() {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "—",
            }
        )?;
    }

    writeln!(md, "\n## 1. Per-packet cost in the kernel\n")?;
    writeln!(
        md,
        "`BPF_PROG_TEST_RUN`, repeat {}, median of {kruns} runs, ns per packet. The floor is \
         a program that only returns `XDP_PASS` (the minimal drop program only returns \
         `XDP_DROP`). xdp-filter ({}) is loaded with `xdp-filter load` on a veth in a \
         namespace of its own, given `port 53 --mode src` plus `rules - 1` TCP destination \
         ports that never match, and run by program id; it keeps ports in a hash map, so its \
         cost does not grow with the rules, and it cannot capture. xdpsieve's rules are `src \
         port 53` last, after `rules - 1` rules `tcp dst port N` that never match; its capture \
         goes to a 64 MiB ring drained by a reader thread.",
        thousands(repeat),
        machine
            .iter()
            .find(|(k, _)| k.starts_with("xdp-tools"))
            .map_or("version unknown".into(), |(_, v)| format!("xdp-tools {v}")),
    )?;
    if let Some(missing) = kernel["xdp_filter_missing"].as_str() {
        writeln!(md, "\n**xdp-filter could not be measured:** {missing}")?;
    }
    writeln!(
        md,
        "\nThe largest rule set is the most xdpsieve loads ({max_rules}). Address sets of up \
         to 1M prefixes: see the issue 9 section below.\n"
    )?;
    writeln!(
        md,
        "| frame | path | rules | xdpsieve | xdp-filter | floor | xdpsieve / floor | xdpsieve / minimal drop | xdpsieve / xdp-filter |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|---|---|---|")?;
    let frames = ["IPv4 UDP 64 B", "IPv6 UDP 64 B", "IPv4 TCP 1500 B"];
    let rule_counts: Vec<u64> = {
        let mut v: Vec<u64> = kernel["cases"]
            .as_array()
            .map(|cases| cases.iter().filter_map(|c| c["rules"].as_u64()).collect())
            .unwrap_or_default();
        v.retain(|&r| r > 0);
        v.sort_unstable();
        v.dedup();
        v
    };
    for &rules in &rule_counts {
        for frame in frames {
            for path in ["no-match", "drop", "drop+capture"] {
                let ours = kernel_ns(kernel, "xdpsieve", frame, path, rules);
                let peer_path = if path == "drop+capture" { "drop" } else { path };
                let peer = kernel_ns(kernel, "xdp-filter", frame, peer_path, rules);
                let floor = kernel_ns(kernel, "floor-pass", frame, "", 0);
                let drop = kernel_ns(kernel, "floor-drop", frame, "", 0);
                let peer_cell = if path == "drop+capture" {
                    format!("({} without capture)", ns(peer))
                } else {
                    ns(peer)
                };
                writeln!(
                    md,
                    "| {frame} | {path} | {rules} | {} | {peer_cell} | {} | {} | {} | {} |",
                    ns(ours),
                    ns(floor),
                    ratio(ours, floor),
                    ratio(ours, drop),
                    if path == "drop+capture" {
                        "—".into()
                    } else {
                        ratio(ours, peer)
                    }
                )?;
            }
        }
    }
    let ring_full: u64 = kernel["cases"]
        .as_array()
        .map(|c| c.iter().filter_map(|c| c["ring_full"].as_u64()).sum())
        .unwrap_or(0);
    writeln!(
        md,
        "\nCapture records lost to a full ring during the capture cases: {}.",
        thousands(ring_full)
    )?;
    render_filters(&mut md, kernel)?;

    writeln!(md, "\n## 2. End to end over veth\n")?;
    writeln!(
        md,
        "A veth pair with 2 queues each way between two network namespaces (IPv4 only, \
         {} ↔ {}). In one, a generator thread of `cargo xtask bench` sends IPv4/UDP frames \
         (port 53 → a port with a bound, never-read UDP socket) with one `send` per frame on \
         an AF_PACKET socket with PACKET_QDISC_BYPASS, for {:.1} s per run. In the other runs \
         the tool under test, started fresh for each run, ready before the traffic, and \
         stopped with SIGINT once idle. The veth runs the receive side (NAPI, XDP, taps) on \
         the sender's CPU: with the generator alone on CPU {} and the tool pinned to CPU {}, \
         the generator's rate measures the kernel's cost per frame. Capture files go to {} \
         ({}), so that the tools are measured rather than the disk.",
        dotted(crate::netbench::PEER_V4),
        dotted(crate::netbench::FW_V4),
        res.duration.as_secs_f64(),
        res.gen_cpu,
        res.tool_cpu,
        res.scratch.display(),
        if res.scratch.starts_with("/dev/shm") {
            "tmpfs"
        } else {
            "no tmpfs here"
        },
    )?;
    writeln!(
        md,
        "\n- **in file**: the generator's frames found in the tool's capture file. \
         **reported lost**: what the tool said it lost on exit (xdpsieve: `packets lost`; \
         xdpdump: `packets dropped by perf ring`; tcpdump: `packets dropped by kernel`). \
         **unreported** = sent − dropped by the veth − in file − reported lost.\n\
         - **CPU / captured**: the tool's CPU time (every thread's, from \
         /proc/PID/task/*/schedstat) from just before the traffic until it was idle, over \
         the frames in its file.\n\
         - **kernel cost added**: 10⁹/pps of the tool's run − 10⁹/pps of its baseline \
         (xdpsieve: the same rule without capture; tcpdump: xdpsieve passing without \
         capture; xdpdump: no XDP program), generator on one core flat out.\n\
         - **both cores**: a generator thread on each CPU, the tool unpinned, competing with \
         them; the share of frames in the file, and the rate offered. The rate differs by \
         tool: the cheaper the kernel's path (xdpsieve drops; tcpdump's traffic is passed up \
         the stack), the more frames the generator gets out, and the more the tool must keep.\n\
         - **lossless rate**: the flat-out rate if nothing was lost, else the first of \
         75%, 50%, 25%, 10% of it (quick: 50%, 10%) at which the file held every frame.\n\
         - **peak RSS**: VmHWM of the capturing process; in brackets, how much of it is kernel \
         buffers mapped into the process (BPF ring buffer, perf buffers, packet socket ring), \
         which the kernel holds either way. xdpsieve's 8 MiB ring buffer counts twice: the \
         kernel maps its data pages twice, so that records can wrap around. xdpdump's perf \
         buffers do not count at all (perf maps its pages without charging them to RSS).\n\
         - **Medians**: a full run repeats each flat-out run {} times; the tables show the \
         median run (by CPU per captured frame, by share kept, by rate for the kernel cost), \
         and \"Every run\" lists them all.\n",
        super::REPETITIONS
    )?;
    for bytes in FRAME_SIZES {
        writeln!(md, "### {bytes}-byte frames\n")?;
        writeln!(
            md,
            "| tool | sent | in file | reported lost | unreported | CPU / captured | generator rate | kernel cost added | both cores: kept | lossless rate | peak RSS |"
        )?;
        writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|")?;
        for setup in Setup::TOOLS {
            let Some(r) = median_by(&res.runs, setup, bytes, Load::OneCore, by_cpu) else {
                continue;
            };
            let both = median_by(&res.runs, setup, bytes, Load::BothCores, by_kept);
            writeln!(
                md,
                "| {} | {} | {} ({:.1}%) | {} | {} | {} ns | {} pps | {} ns | {} | {} | {} |",
                setup.label(),
                thousands(r.sent),
                opt(r.in_file),
                r.kept().unwrap_or(0.0),
                opt(r.reported_lost),
                r.unreported_lost.map_or("—".into(), |n| n.to_string()),
                ns(r.cpu_ns_per_captured),
                thousands(
                    median_by(&res.runs, setup, bytes, Load::OneCore, by_pps)
                        .map_or(0, |m| m.pps as u64)
                ),
                added_ns(&res.runs, setup, bytes).map_or("—".into(), |v| format!("{v:+.0}")),
                both.map_or("—".into(), |b| format!(
                    "{:.1}% of {} pps",
                    b.kept().unwrap_or(0.0),
                    thousands(b.pps as u64)
                )),
                lossless_rate(&res.runs, setup, bytes),
                rss(r),
            )?;
        }
        writeln!(md)?;
    }
    writeln!(md, "### Every run\n")?;
    writeln!(
        md,
        "| setup | frame | load | sent | rate (pps) | ns/frame at the sender's core | in file | reported lost | unreported | veth dropped | CPU / captured | peak RSS |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|---|")?;
    for r in &res.runs {
        writeln!(
            md,
            "| {} | {} B | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            if r.repetition > 0 {
                format!("{} (again)", r.setup.label())
            } else {
                r.setup.label().to_string()
            },
            r.frame_bytes,
            load_label(r.load),
            thousands(r.sent),
            thousands(r.pps as u64),
            if r.load == Load::OneCore {
                format!("{:.0}", ns_per_frame(r))
            } else {
                "—".into()
            },
            match r.in_file {
                Some(n) => format!("{} ({:.1}%)", thousands(n), r.kept().unwrap_or(0.0)),
                None => "—".into(),
            },
            opt(r.reported_lost),
            r.unreported_lost.map_or("—".into(), |n| n.to_string()),
            thousands(r.veth_dropped),
            r.cpu_ns_per_captured
                .map_or("—".into(), |v| format!("{v:.0} ns")),
            rss(r),
        )?;
    }

    super::flood::render(&mut md, &res.flood)?;

    super::sets::render(&mut md, &res.sets, &res.sets_command)?;

    writeln!(md, "\n## Commands\n")?;
    writeln!(
        md,
        "Everything above: `cargo xtask bench{}` (as root, after `cargo xtask setup`). Its parts:\n",
        if res.quick { " --quick" } else { "" }
    )?;
    writeln!(md, "- Kernel cost: `{}`", res.kernel_command)?;
    writeln!(md, "- Address sets: `{}`", res.sets_command)?;
    writeln!(md, "- The sandbox:")?;
    for c in &res.sandbox_commands {
        writeln!(md, "  - `{c}`")?;
    }
    writeln!(
        md,
        "- The setups (FILE is the capture file; firewall first, the capturing tool last):"
    )?;
    for (setup, lines) in &res.tool_commands {
        if lines.is_empty() {
            writeln!(md, "  - {}: nothing started", setup.label())?;
        }
        for line in lines {
            writeln!(md, "  - {}: `{line}`", setup.label())?;
        }
    }

    let json = json!({
        "quick": res.quick,
        "seconds": res.elapsed.as_secs_f64(),
        "machine": machine.iter().map(|(k, v)| (k.to_string(), Value::from(v.clone()))).collect::<serde_json::Map<_, _>>(),
        "targets": targets,
        "kernel": res.kernel,
        "sets": res.sets,
        "end_to_end": {
            "seconds_per_run": res.duration.as_secs_f64(),
            "generator_cpu": res.gen_cpu,
            "tool_cpu": res.tool_cpu,
            "runs": res.runs,
            "flood": res.flood,
        },
        "commands": {
            "kernel": res.kernel_command,
            "sets": res.sets_command,
            "sandbox": res.sandbox_commands,
            "setups": res.tool_commands.iter().map(|(s, l)| json!({"setup": s, "commands": l})).collect::<Vec<_>>(),
        },
    });
    Ok((md, serde_json::to_string_pretty(&json)?))
}

/// The targets, each beside the peer figure and ours from this run.
fn targets(res: &Results) -> Vec<Value> {
    let k = &res.kernel;
    let frame = "IPv4 UDP 64 B";
    let ours = kernel_ns(k, "xdpsieve", frame, "no-match", 1);
    let drop_floor = kernel_ns(k, "floor-drop", frame, "", 0);
    let filter = kernel_ns(k, "xdp-filter", frame, "no-match", 1);
    let ours64 = kernel_ns(k, "xdpsieve", frame, "no-match", 64);
    let filter64 = kernel_ns(k, "xdp-filter", frame, "no-match", 64);
    let met = |a: Option<f64>, b: Option<f64>, factor: f64| a.zip(b).map(|(a, b)| a <= b * factor);
    let mut t = vec![
        json!({
            "target": "kernel, no rule matched (IPv4 UDP 64 B, 1 rule): ≤ 1.5× a minimal drop program",
            "peer": format!("minimal drop: {} ns", ns(drop_floor)),
            "xdpsieve": format!("{} ns ({})", ns(ours), ratio(ours, drop_floor)),
            "met": met(ours, drop_floor, 1.5),
        }),
        json!({
            "target": "kernel, no rule matched (1 rule): ≤ 0.4× xdp-filter",
            "peer": format!("xdp-filter: {} ns", ns(filter)),
            "xdpsieve": format!("{} ns ({})", ns(ours), ratio(ours, filter)),
            "met": met(ours, filter, 0.4),
        }),
        json!({
            "target": "kernel, no rule matched (64 rules): ≤ 0.4× xdp-filter",
            "peer": format!("xdp-filter: {} ns", ns(filter64)),
            "xdpsieve": format!("{} ns ({})", ns(ours64), ratio(ours64, filter64)),
            "met": met(ours64, filter64, 0.4),
        }),
    ];
    for bytes in FRAME_SIZES {
        let cpu = |s| {
            median_by(&res.runs, s, bytes, Load::OneCore, by_cpu)
                .and_then(|r| r.cpu_ns_per_captured)
        };
        let (ours, tcpdump, xdpdump) = (
            cpu(Setup::Xdpsieve),
            cpu(Setup::Tcpdump),
            cpu(Setup::Xdpdump),
        );
        t.push(json!({
            "target": format!("userspace CPU per captured frame, {bytes} B: ≤ tcpdump's"),
            "peer": format!("tcpdump {} ns, xdpdump {} ns", ns(tcpdump), ns(xdpdump)),
            "xdpsieve": format!("{} ns ({} of tcpdump)", ns(ours), ratio(ours, tcpdump)),
            "met": met(ours, tcpdump, 1.0),
        }));
    }
    for bytes in FRAME_SIZES {
        let add = |s| added_ns(&res.runs, s, bytes);
        let (ours, tcpdump, xdpdump) = (
            add(Setup::Xdpsieve),
            add(Setup::Tcpdump),
            add(Setup::Xdpdump),
        );
        let show = |v: Option<f64>| v.map_or("—".into(), |v| format!("{v:+.0} ns"));
        t.push(json!({
            "target": format!("kernel cost capture adds per frame, {bytes} B: ≤ tcpdump's tap"),
            "peer": format!("tcpdump {}, xdpdump {}", show(tcpdump), show(xdpdump)),
            "xdpsieve": show(ours),
            "met": met(ours, tcpdump, 1.0),
        }));
    }
    let kept = |s| median_by(&res.runs, s, 512, Load::BothCores, by_kept).and_then(Run::kept);
    let show = |v: Option<f64>| v.map_or("—".into(), |v| format!("{v:.1}%"));
    t.push(json!({
        "target": "512 B frames, generator on both cores: every frame captured",
        "peer": format!("tcpdump kept {}, xdpdump {}", show(kept(Setup::Tcpdump)), show(kept(Setup::Xdpdump))),
        "xdpsieve": format!("kept {}", show(kept(Setup::Xdpsieve))),
        "met": kept(Setup::Xdpsieve).map(|k| k >= 100.0),
    }));
    let silent = |s: Setup| {
        res.runs
            .iter()
            .filter(|r| r.setup == s)
            .filter_map(|r| r.unreported_lost)
            .map(i64::unsigned_abs)
            .max()
            .unwrap_or(0)
    };
    t.push(json!({
        "target": "no unreported losses in any run",
        "peer": format!("tcpdump at most {}, xdpdump at most {}", thousands(silent(Setup::Tcpdump)), thousands(silent(Setup::Xdpdump))),
        "xdpsieve": format!("at most {}", thousands(silent(Setup::Xdpsieve))),
        "met": silent(Setup::Xdpsieve) == 0,
    }));
    t.push(super::flood::target(&res.flood));
    if !res.sets.is_null() {
        t.extend(super::sets::targets(&res.sets));
    }
    t
}

/// Issue 10's capture filters: the dropped frame captured without a filter, through a short
/// filter that selects it, and through a long one that turns it down, at 1 rule.
fn render_filters(md: &mut String, kernel: &serde_json::Value) -> std::fmt::Result {
    let filtered: Vec<&serde_json::Value> = kernel["cases"]
        .as_array()
        .map(|cases| {
            cases
                .iter()
                .filter(|c| c["filter_insns"].is_u64())
                .collect()
        })
        .unwrap_or_default();
    if filtered.is_empty() {
        return Ok(());
    }
    writeln!(md, "\n### Capture filters (1 rule)\n")?;
    writeln!(
        md,
        "The frame the rule drops, captured: without a filter, through a short filter that \
         selects it (`udp port 53` or `tcp port 53`) and through a long one that walks hosts, \
         nets, port ranges and TCP flags before it turns the frame down (nothing copied). \
         libpcap compiles both; the kernel runs each both ways: translated to eBPF at start \
         (the default) and interpreted, one classic instruction per `bpf_loop` step (the \
         fallback for what cannot be translated).\n"
    )?;
    writeln!(
        md,
        "| frame | path | classic instructions | xdpsieve | vs capture without a filter |"
    )?;
    writeln!(md, "|---|---|---|---|---|")?;
    for frame in ["IPv4 UDP 64 B", "IPv6 UDP 64 B", "IPv4 TCP 1500 B"] {
        let plain = kernel_ns(kernel, "xdpsieve", frame, "drop+capture", 1);
        writeln!(md, "| {frame} | drop+capture | — | {} | 1.00× |", ns(plain))?;
        for c in filtered.iter().filter(|c| c["frame"] == frame) {
            let ours = c["ns"].as_f64();
            writeln!(
                md,
                "| {frame} | {} | {} | {} | {} |",
                c["path"].as_str().unwrap_or("?"),
                c["filter_insns"],
                ns(ours),
                ratio(ours, plain)
            )?;
        }
    }
    Ok(())
}
