//! Section 1 of the report: the per-packet cost in the kernel (prog_cost's
//! `BPF_PROG_TEST_RUN` cases), xdpsieve beside xdp-filter and the floor programs, and
//! issue 10's capture filters.

use std::fmt::Write as _;

use anyhow::Result;
use serde_json::Value;

use super::cells::{ns, ratio};
use crate::netbench::thousands;

/// A kernel-cost case from prog_cost's JSON.
pub(super) fn kernel_ns(
    kernel: &Value,
    program: &str,
    frame: &str,
    path: &str,
    rules: u64,
) -> Option<f64> {
    kernel["cases"].as_array()?.iter().find_map(|c| {
        (c["program"] == program
            && c["frame"] == frame
            && (path.is_empty() || c["path"] == path)
            && (rules == 0 || c["rules"] == rules))
            .then(|| c["ns"].as_f64())
            .flatten()
    })
}

/// The eBPF instructions a case executed (prog_cost's `insns`), if counted.
pub(super) fn kernel_insns(
    kernel: &Value,
    program: &str,
    frame: &str,
    path: &str,
    rules: u64,
) -> Option<u64> {
    kernel["cases"].as_array()?.iter().find_map(|c| {
        (c["program"] == program
            && c["frame"] == frame
            && (path.is_empty() || c["path"] == path)
            && (rules == 0 || c["rules"] == rules))
            .then(|| c["insns"].as_u64())
            .flatten()
    })
}

/// A time and, beside it, the instructions executed: `21 (434)`.
fn with_insns(time: Option<f64>, insns: Option<u64>) -> String {
    match insns {
        Some(n) => format!("{} ({})", ns(time), thousands(n)),
        None => ns(time),
    }
}

/// The kernel-cost tables; `machine` names the xdp-tools version measured.
pub(super) fn render(
    md: &mut String,
    kernel: &Value,
    machine: &[(&'static str, String)],
) -> Result<()> {
    let repeat = kernel["repeat"].as_u64().unwrap_or(0);
    let kruns = kernel["runs"].as_u64().unwrap_or(0);
    let max_rules = kernel["max_rules"].as_u64().unwrap_or(0);

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
         goes to a 64 MiB ring drained by a reader thread. In parentheses beside a time: the \
         eBPF instructions the verified program executes on that frame, counted by \
         interpreting its xlated code (`xdpsieve_testkit::insns`; a kernel call counts as \
         one); unlike the times, they do not drift from run to run.",
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
                let ours_insns = kernel_insns(kernel, "xdpsieve", frame, path, rules);
                let peer_path = if path == "drop+capture" { "drop" } else { path };
                let peer = kernel_ns(kernel, "xdp-filter", frame, peer_path, rules);
                let peer_insns = kernel_insns(kernel, "xdp-filter", frame, peer_path, rules);
                let floor = kernel_ns(kernel, "floor-pass", frame, "", 0);
                let floor_insns = kernel_insns(kernel, "floor-pass", frame, "", 0);
                let drop = kernel_ns(kernel, "floor-drop", frame, "", 0);
                let peer_cell = if path == "drop+capture" {
                    format!("{} without capture", with_insns(peer, peer_insns))
                } else {
                    with_insns(peer, peer_insns)
                };
                writeln!(
                    md,
                    "| {frame} | {path} | {rules} | {} | {peer_cell} | {} | {} | {} | {} |",
                    with_insns(ours, ours_insns),
                    with_insns(floor, floor_insns),
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
    render_verified(md, kernel)?;
    render_filters(md, kernel)?;
    Ok(())
}

/// What the verifier processed to accept each configuration loaded above, and the heaviest
/// one the bench knows of: the margin before a kernel refuses a configuration.
fn render_verified(md: &mut String, kernel: &Value) -> std::fmt::Result {
    let Some(verified) = kernel["verified"].as_array().filter(|v| !v.is_empty()) else {
        return Ok(());
    };
    writeln!(
        md,
        "\nInstructions the verifier processed to accept each configuration (`verified_insns`; \
         the kernel refuses a program past 1,000,000). They grow with the ways through the \
         program, not with its length, and differ between kernels.\n"
    )?;
    writeln!(
        md,
        "| configuration | rules matched | verified | of the limit |"
    )?;
    writeln!(md, "|---|---|---|---|")?;
    for v in verified {
        let count = v["verified_insns"].as_u64();
        writeln!(
            md,
            "| {} | {} | {} | {} |",
            v["config"].as_str().unwrap_or("?"),
            v["matching"].as_str().unwrap_or("?"),
            count.map_or_else(|| "not reported".into(), thousands),
            count.map_or_else(|| "—".into(), |n| format!("{:.0}%", n as f64 / 10_000.0)),
        )?;
    }
    Ok(())
}

/// Issue 10's capture filters: the dropped frame captured without a filter, through a short
/// filter that selects it, and through a long one that turns it down, at 1 rule.
fn render_filters(md: &mut String, kernel: &Value) -> std::fmt::Result {
    let filtered: Vec<&Value> = kernel["cases"]
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
        let plain_insns = kernel_insns(kernel, "xdpsieve", frame, "drop+capture", 1);
        writeln!(
            md,
            "| {frame} | drop+capture | — | {} | 1.00× |",
            with_insns(plain, plain_insns)
        )?;
        for c in filtered.iter().filter(|c| c["frame"] == frame) {
            let ours = c["ns"].as_f64();
            writeln!(
                md,
                "| {frame} | {} | {} | {} | {} |",
                c["path"].as_str().unwrap_or("?"),
                c["filter_insns"],
                with_insns(ours, c["insns"].as_u64()),
                ratio(ours, plain)
            )?;
        }
    }
    Ok(())
}
