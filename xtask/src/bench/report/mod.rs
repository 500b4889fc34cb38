//! BENCHMARKS.md and benchmarks.json from one run: the machine, the exact commands, the
//! kernel-cost table, the end-to-end tables, and the targets beside what was measured.
//!
//! The parts, in the order the report shows them: the machine (here), the targets
//! ([`targets`]), 1. the kernel-cost tables ([`kernel`]), 2. the end-to-end tables
//! ([`end_to_end`]), then the flood and address-set sections (their own modules) and the
//! commands (here). [`cells`] formats the tables' cells.

pub(crate) mod cells;
mod end_to_end;
mod fast_path;
mod kernel;
mod targets;

use std::{fmt::Write as _, fs, path::Path, process::Command};

use anyhow::Result;
use serde_json::{Value, json};

pub(crate) use end_to_end::load_label;
pub(crate) use fast_path::MODEL_SECTION;
use targets::targets;

use super::Results;

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
            crate::setup::ebpf_toolchain().map_or_else(
                |e| format!("unknown: {e:#}"),
                |t| first_line(Command::new("rustc").args([format!("+{t}"), "--version".into()])),
            ),
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

pub(crate) fn render(root: &Path, res: &Results) -> Result<(String, String)> {
    let mut md = String::new();
    let machine = machine(root);

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
    cells::targets_table(&mut md, &targets)?;

    kernel::render(&mut md, &res.kernel, &machine)?;

    end_to_end::render(&mut md, res)?;

    super::flood::render(&mut md, &res.flood)?;

    super::sets::render(&mut md, &res.sets, &res.sets_command)?;

    super::limits::render(&mut md, &res.limits, &res.limits_command)?;

    super::capture_cost::render(&mut md, &res.capture_cost)?;
    fast_path::model(&mut md, res)?;

    writeln!(md, "\n## Commands\n")?;
    writeln!(
        md,
        "Everything above: `cargo xtask bench{}` (as root, after `cargo xtask setup`). Its parts:\n",
        if res.quick { " --quick" } else { "" }
    )?;
    writeln!(md, "- Kernel cost: `{}`", res.kernel_command)?;
    writeln!(md, "- Address sets: `{}`", res.sets_command)?;
    writeln!(md, "- Limit rules: `{}`", res.limits_command)?;
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
        "limits": res.limits,
        "capture_cost": res.capture_cost,
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
            "limits": res.limits_command,
            "sandbox": res.sandbox_commands,
            "setups": res.tool_commands.iter().map(|(s, l)| json!({"setup": s, "commands": l})).collect::<Vec<_>>(),
        },
    });
    Ok((md, serde_json::to_string_pretty(&json)?))
}
