//! The limit-rule part of the report (issue 18, point 7): the `limit_cost` bench's JSON
//! (per-packet cost of a limit rule at 1 to 1,000,000 sources beside the same rules
//! without it and beside XDP-Firewall's limiter, memory per tracked key, one bucket from
//! two CPUs) and the flood over veth with random sources ([`flood`]).

pub(crate) mod flood;

use std::fmt::Write as _;

use anyhow::{Result, bail};
use serde_json::Value;

use crate::netbench::thousands;

pub(crate) const SECTION: &str = "## Limit rules";

/// The rows of the per-packet table, as the bench names them (program, path).
const ROWS: [(&str, &str); 7] = [
    ("xdpsieve, no limit rule", "no-match"),
    ("xdpsieve, limit per src", "within"),
    ("xdpsieve, limit per src", "over"),
    ("xdpsieve, limit per rule", "within"),
    ("xdpsieve, limit per rule", "over"),
    ("XDP-Firewall-style", "within"),
    ("XDP-Firewall-style", "over"),
];

fn cases(bench: &Value) -> &[Value] {
    bench["cases"].as_array().map_or(&[][..], Vec::as_slice)
}

fn case<'a>(bench: &'a Value, program: &str, path: &str, sources: u64) -> Option<&'a Value> {
    cases(bench).iter().find(|c| {
        c["program"] == program
            && c["path"] == path
            && c["sources"] == sources
            && c["error"].is_null()
    })
}

/// Median ns minus the floor's median in the same passes.
fn net(c: &Value, field: &str) -> Option<f64> {
    Some(c[field]["median"].as_f64()? - c["floor_ns"].as_f64()?)
}

fn source_counts(bench: &Value) -> Vec<u64> {
    let mut counts: Vec<u64> = cases(bench)
        .iter()
        .filter_map(|c| c["sources"].as_u64())
        .collect();
    counts.sort_unstable();
    counts.dedup();
    counts
}

pub(crate) fn render(md: &mut String, limits: &Value, command: &str) -> std::fmt::Result {
    let bench = &limits["kernel"];
    writeln!(md, "\n{SECTION}\n")?;
    if bench.is_null() {
        writeln!(md, "Not measured in this run.")?;
        return Ok(());
    }
    writeln!(
        md,
        "What a limit rule (`action = \"limit\"`, issue 18) costs per packet, beside the same \
         rules without it and beside XDP-Firewall's per-source limiter (gamemann/XDP-Firewall: \
         an `ip_stats` LRU hash keyed by source address, pps/bps over a 1-second window, \
         reproduced as a bench-only program, xdpsieve-ebpf/src/bench_xdpfw.rs). **No peer \
         publishes these figures** (per-packet cost of a per-source limiter as the tracked \
         sources grow, or its memory per key): these are ours, measured in one run on this \
         machine.\n"
    )?;
    writeln!(
        md,
        "### Per packet, in the kernel (`BPF_PROG_TEST_RUN`)\n\n\
         64-byte IPv6/UDP frames to port 53 from N distinct sources in 2001:db8::/32, each frame \
         run once (repeat 1) and the frames in shuffled order; a first pass gives every source \
         its first packet, then at least {} timed runs per program with every key tracked. \
         A run of one frame includes the test-run timer: each cell is the median minus the \
         floor's median in the same passes (a program that only returns XDP_PASS; raw \
         medians in benchmarks.json), then the ratio to the rules without a limit rule. \
         Rules: a limit rule on UDP port 53 (`per = \"src\"` or `\"rule\"`), then a TCP rule \
         that never matches; without the limit, only the TCP rule (the no-match path). \
         *within*: rate 10⁹/s, every packet conforms and evaluation goes on to the default \
         verdict (pass); *over*: rate 1/h burst 1, every packet after a source's first is \
         dropped. XDP-Firewall-style: the same frames, its filter matching once the source's \
         packets this second reach `ip_pps` (never: *within*; 1: *over*). Each table is sized \
         to the source count plus headroom, so no key is evicted.\n",
        bench["min_runs"].as_u64().map_or("?".into(), thousands),
    )?;
    let counts = source_counts(bench);
    write!(md, "| program | path |")?;
    for n in &counts {
        write!(
            md,
            " {} source{} |",
            thousands(*n),
            if *n == 1 { "" } else { "s" }
        )?;
    }
    writeln!(md)?;
    writeln!(md, "|---|---|{}", "---|".repeat(counts.len()))?;
    write!(md, "| floor (raw median) | |")?;
    for n in &counts {
        let floor = cases(bench)
            .iter()
            .find(|c| c["sources"] == *n)
            .and_then(|c| c["floor_ns"].as_u64());
        write!(md, " {} |", floor.map_or("—".into(), |f| format!("{f} ns")))?;
    }
    writeln!(md)?;
    for (program, path) in ROWS {
        write!(md, "| {program} | {path} |")?;
        for &n in &counts {
            let base = case(bench, ROWS[0].0, ROWS[0].1, n).and_then(|c| net(c, "ns"));
            let cell = case(bench, program, path, n).and_then(|c| net(c, "ns"));
            let text = match (cell, base) {
                (Some(v), Some(b)) if b > 0.0 && path != "no-match" => {
                    format!("{v:.0} ns ({:.1}×)", v / b)
                }
                (Some(v), _) => format!("{v:.0} ns"),
                _ => "—".into(),
            };
            write!(md, " {text} |")?;
        }
        writeln!(md)?;
    }
    writeln!(
        md,
        "\nA source's first packet (the first pass: a new key inserted), median minus the \
         floor's median of the timed passes, at the source counts with enough first packets \
         to take a median:\n"
    )?;
    let many: Vec<u64> = counts.iter().copied().filter(|&n| n >= 1_000).collect();
    write!(md, "| program | path |")?;
    for n in &many {
        write!(md, " {} sources |", thousands(*n))?;
    }
    writeln!(md)?;
    writeln!(md, "|---|---|{}", "---|".repeat(many.len()))?;
    for (program, path) in ROWS {
        write!(md, "| {program} | {path} |")?;
        for &n in &many {
            let cell = case(bench, program, path, n).and_then(|c| net(c, "first_packet_ns"));
            write!(
                md,
                " {} |",
                cell.map_or("—".into(), |v| format!("{v:.0} ns"))
            )?;
        }
        writeln!(md)?;
    }
    render_memory(md, bench)?;
    render_contended(md, bench)?;
    render_flood(md, &limits["flood"])?;
    writeln!(
        md,
        "\nCaveats: a shared 2-CPU VM; the test-run timer's cost (the floor row) is about as \
         large as what is measured, so the cells are differences of medians of single runs \
         (whole nanoseconds each); the flood's figures include bpf_stats' own clock pair (the \
         floor row there). Command: `{command}`."
    )
}

fn render_memory(md: &mut String, bench: &Value) -> std::fmt::Result {
    writeln!(
        md,
        "\n### Memory per tracked key\n\n`memlock` of the table (from /proc/self/fdinfo) at \
         two sizes; bytes per key = the difference over the difference in entries. xdpsieve's \
         `check-rules` uses the formula {} B per key (`BYTES_PER_TRACKED_KEY`).\n",
        bench["bytes_per_tracked_key_formula"]
    )?;
    writeln!(
        md,
        "| program | table | sizes (entries: memlock) | bytes per key |"
    )?;
    writeln!(md, "|---|---|---|---|")?;
    for m in bench["memory"].as_array().map_or(&[][..], Vec::as_slice) {
        let sizes: Vec<String> = m["sizes"]
            .as_array()
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .map(|s| {
                format!(
                    "{}: {}",
                    thousands(s[0].as_u64().unwrap_or(0)),
                    thousands(s[1].as_u64().unwrap_or(0))
                )
            })
            .collect();
        let table = if m["program"] == "xdpsieve" {
            "LIMIT_STATE (LRU hash, 24-byte key, 32-byte value)"
        } else {
            "ip6_stats (LRU hash, 16-byte key, 24-byte value)"
        };
        writeln!(
            md,
            "| {} | {table} | {} | {} |",
            m["program"].as_str().unwrap_or("?"),
            sizes.join(", "),
            m["bytes_per_key"]
                .as_f64()
                .map_or("—".into(), |b| format!("{b:.1}"))
        )?;
    }
    Ok(())
}

fn render_contended(md: &mut String, bench: &Value) -> std::fmt::Result {
    let list = bench["contended"].as_array().map_or(&[][..], Vec::as_slice);
    let repeat = list.first().and_then(|c| c["repeat"].as_u64()).unwrap_or(0);
    writeln!(
        md,
        "\n### One key from both CPUs\n\nOne frame, one source, `BPF_PROG_TEST_RUN` repeat {} \
         (ns per packet, timer amortised): from one CPU, then from two threads pinned to each \
         CPU at once. `per = \"rule\"` is one bucket for every packet: the case where CPUs \
         contend.\n",
        thousands(repeat)
    )?;
    writeln!(md, "| program | one CPU | both CPUs (each thread) |")?;
    writeln!(md, "|---|---|---|")?;
    for c in list {
        let both: Vec<String> = c["two_cpus_ns"]
            .as_array()
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .map(|v| format!("{v} ns"))
            .collect();
        writeln!(
            md,
            "| {} | {} | {} |",
            c["program"].as_str().unwrap_or("?"),
            c["one_cpu_ns"]
                .as_u64()
                .map_or("—".into(), |v| format!("{v} ns")),
            if both.is_empty() {
                "—".into()
            } else {
                both.join(", ")
            }
        )?;
    }
    Ok(())
}

fn render_flood(md: &mut String, runs: &Value) -> std::fmt::Result {
    writeln!(
        md,
        "\n### A flood over veth from random sources\n\n64-byte IPv6/UDP frames to port 53, \
         each from a random source in 2001:db8::/32 (cycling through {} of them, so nearly \
         every frame is a new key), {} frames/s from one CPU, through each program attached \
         in native mode; program run time per packet from `kernel.bpf_stats_enabled` \
         (run_time_ns / run_cnt). The limiters track {} keys (plus headroom), so the flood \
         evicts; the limit is never reached (each source sends about once).\n",
        thousands(1 << 20),
        thousands(flood::RATE),
        thousands(flood::LIMIT_SOURCES as u64)
    )?;
    let list = runs.as_array().map_or(&[][..], Vec::as_slice);
    if list.is_empty() {
        writeln!(md, "Not measured in this run.")?;
        return Ok(());
    }
    let median_of = |label: &str| -> Option<f64> {
        let mut v: Vec<f64> = list
            .iter()
            .filter(|r| r["program"] == label)
            .filter_map(|r| r["ns_per_packet"].as_f64())
            .collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    };
    let floor = median_of(flood::PROGRAMS[0].1);
    let none = median_of(flood::PROGRAMS[1].1);
    writeln!(
        md,
        "| program | ns/packet, each run | median | minus floor | vs no limit rule |"
    )?;
    writeln!(md, "|---|---|---|---|---|")?;
    for (_, label) in flood::PROGRAMS {
        let each: Vec<String> = list
            .iter()
            .filter(|r| r["program"] == label)
            .map(|r| {
                r["ns_per_packet"]
                    .as_f64()
                    .map_or("—".into(), |v| format!("{v:.1}"))
            })
            .collect();
        let median = median_of(label);
        let net = median.zip(floor).map(|(m, f)| m - f);
        let ratio = net
            .zip(none.zip(floor).map(|(n, f)| n - f))
            .filter(|(_, b)| *b > 0.0 && label != flood::PROGRAMS[0].1)
            .map(|(n, b)| n / b);
        writeln!(
            md,
            "| {label} | {} | {} | {} | {} |",
            each.join(", "),
            median.map_or("—".into(), |v| format!("{v:.1}")),
            net.map_or("—".into(), |v| format!("{v:.1}")),
            ratio.map_or("—".into(), |r| format!("{r:.1}×"))
        )?;
    }
    let pps: Vec<String> = list
        .iter()
        .filter_map(|r| r["pps"].as_f64())
        .map(|p| format!("{:.0}", p / 1000.0))
        .collect();
    writeln!(
        md,
        "\nSender rates reached (kpps; below the rate asked when the machine could not \
         keep up): {}.",
        pps.join(", ")
    )
}

/// The report has every program at every source count, memory and the flood (the smoke
/// run's check; nothing about the numbers).
pub(crate) fn check(limits: &Value) -> Result<()> {
    let bench = &limits["kernel"];
    let counts = source_counts(bench);
    if counts.is_empty() {
        bail!("no limit-rule cost measured");
    }
    for n in counts {
        for (program, path) in ROWS {
            if case(bench, program, path, n)
                .and_then(|c| c["ns"]["median"].as_u64())
                .is_none()
            {
                bail!("limit rules: no cost for {program} ({path}) at {n} sources");
            }
        }
    }
    if !bench["memory"]
        .as_array()
        .is_some_and(|m| m.iter().all(|m| m["bytes_per_key"].is_number()))
    {
        bail!("limit rules: no memory per tracked key");
    }
    for (_, label) in flood::PROGRAMS {
        if !limits["flood"].as_array().is_some_and(|runs| {
            runs.iter()
                .any(|r| r["program"] == label && r["ns_per_packet"].is_number())
        }) {
            bail!("limit rules: no flood run of {label}");
        }
    }
    Ok(())
}
