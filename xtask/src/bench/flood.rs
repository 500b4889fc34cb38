//! Issue 10's flood figure: what a capture filter keeps of a 64-byte flood when it selects
//! 1% of it. The generator sends 99 frames to the usual port, then 1 to `SELECTED_PORT`,
//! over and over, flat out; xdpsieve drops them all with one rule and captures with
//! `--filter 'udp dst port SELECTED_PORT'`. The same flood captured without a filter,
//! in the same sandbox right after, is the comparison: there the file must take all of it.
//!
//! A filter earns its place under a flood only if the few frames it selects all reach the
//! file: "kept" is frames in the file over frames selected, and every other frame must be
//! accounted for (turned down by the filter, or a loss xdpsieve reported).

use std::{fmt::Write as _, path::Path};

use anyhow::{Context as _, Result};
use serde::Serialize;
use serde_json::{Value, json};

use crate::netbench::{SELECTED_PORT, shell_line, thousands};

use super::{
    capture::{Bench, Load, Run, Setup},
    mix::Mix,
    progress,
};

/// One frame in this many goes to `SELECTED_PORT`.
pub(crate) const ONE_IN: u64 = 100;
/// The flood's frame size.
pub(crate) const FRAME_BYTES: usize = 64;
pub(crate) const SECTION: &str = "### A 64-byte flood, capture filter selecting 1%";
const TARGET: &str = "64-byte flood, filter selecting 1%: every selected frame captured";

/// One run of the flood, with the filter it captured through (if any).
#[derive(Serialize)]
pub(crate) struct FloodRun {
    pub(crate) filter: Option<String>,
    /// xdpsieve's command line (`FILE` for the capture file).
    pub(crate) command: String,
    #[serde(flatten)]
    pub(crate) run: Run,
}

impl FloodRun {
    /// Frames the filter is to select: all of them without a filter.
    fn selected(&self) -> u64 {
        if self.filter.is_some() {
            self.run.sent / ONE_IN
        } else {
            self.run.sent
        }
    }

    /// In file over selected, in percent.
    fn kept(&self) -> Option<f64> {
        self.run
            .in_file
            .map(|n| 100.0 * n as f64 / self.selected().max(1) as f64)
    }

    /// Every selected frame in the file, nothing gone without a word.
    fn complete(&self) -> bool {
        self.run.in_file == Some(self.selected()) && self.run.unreported_lost == Some(0)
    }
}

/// Runs the flood through a filter and without one, `repetitions` times each, in the
/// sandbox of the end-to-end runs.
pub(crate) fn measure(bench: &Bench<'_>, repetitions: u32) -> Result<Vec<FloodRun>> {
    let mut runs = Vec::new();
    for repetition in 0..repetitions {
        for filtered in [true, false] {
            let mix = Mix {
                one_in: ONE_IN,
                filtered,
            };
            let flood = Bench {
                sandbox: bench.sandbox,
                xdpsieve: bench.xdpsieve,
                duration: bench.duration,
                gen_cpu: bench.gen_cpu,
                tool_cpu: bench.tool_cpu,
                mix: Some(mix),
            };
            let filter = mix.filter();
            let command = flood
                .commands(
                    Setup::Xdpsieve,
                    Path::new("FILE"),
                    &bench.tool_cpu.to_string(),
                )
                .iter()
                .map(|(_, cmd)| shell_line(cmd))
                .collect::<Vec<_>>()
                .join(" && ");
            let what = format!(
                "{FRAME_BYTES} B flood, 1 in {ONE_IN} selected, capture {}",
                filter
                    .as_deref()
                    .map_or("without a filter".into(), |f| format!("--filter '{f}'"))
            );
            eprintln!("bench: {what}");
            let run = flood
                .run(Setup::Xdpsieve, FRAME_BYTES, Load::OneCore, repetition)
                .with_context(|| format!("end-to-end run: {what}"))?;
            eprintln!("bench:   {}", progress::one_line(&run));
            runs.push(FloodRun {
                filter,
                command,
                run,
            });
        }
    }
    Ok(runs)
}

fn opt(v: Option<u64>) -> String {
    v.map_or("—".into(), thousands)
}

fn percent(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| format!("{v:.1}%"))
}

/// The table of section 2 (nothing when the flood was not run).
pub(crate) fn render(md: &mut String, runs: &[FloodRun]) -> std::fmt::Result {
    if runs.is_empty() {
        return Ok(());
    }
    writeln!(md, "\n{SECTION}\n")?;
    writeln!(
        md,
        "The generator on one core, flat out, sends {FRAME_BYTES}-byte frames in a cycle of \
         {ONE_IN}: {} to the usual port, then 1 to UDP port {SELECTED_PORT}. xdpsieve drops \
         them all (`--drop 'udp src port 53'`) and captures through `--filter 'udp dst port \
         {SELECTED_PORT}'`, which selects 1 frame in {ONE_IN} in the kernel before any copy; \
         then the same flood captured without a filter. **selected**: frames the capture is \
         to keep (sent / {ONE_IN} through the filter, all of them without). **kept** = in \
         file / selected. **not selected**: xdpsieve's own count of frames the filter turned \
         down (not a loss). **generator rate**: what the kernel's path (filter included) let the \
         generator send. **unreported** = sent − dropped by the veth − in file − reported \
         lost − not selected.\n",
        ONE_IN - 1
    )?;
    writeln!(
        md,
        "| capture | sent | generator rate | selected | in file | kept | reported lost | not selected | veth dropped | unreported |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|---|---|---|---|")?;
    for f in runs {
        let r = &f.run;
        writeln!(
            md,
            "| {}{} | {} | {} pps | {} | {} | {} | {} | {} | {} | {} |",
            f.filter
                .as_deref()
                .map_or("without a filter".into(), |f| format!("`--filter '{f}'`")),
            if r.repetition > 0 { " (again)" } else { "" },
            thousands(r.sent),
            thousands(r.pps as u64),
            thousands(f.selected()),
            opt(r.in_file),
            percent(f.kept()),
            opt(r.reported_lost),
            opt(r.not_selected),
            thousands(r.veth_dropped),
            r.unreported_lost.map_or("—".into(), |n| n.to_string()),
        )?;
    }
    // The command of each kind of run, once (FILE is the capture file).
    writeln!(md)?;
    for filtered in [true, false] {
        if let Some(f) = runs.iter().find(|f| f.filter.is_some() == filtered) {
            let kind = if filtered {
                "through the filter"
            } else {
                "without a filter"
            };
            writeln!(md, "- {kind}: `{}`", f.command)?;
        }
    }
    Ok(())
}

/// The Targets row: met when every filtered run kept every selected frame and nothing
/// went unreported (`met` is null when the flood was not run).
pub(crate) fn target(runs: &[FloodRun]) -> Value {
    let (filtered, plain): (Vec<&FloodRun>, Vec<&FloodRun>) =
        runs.iter().partition(|f| f.filter.is_some());
    // The worst run of each kind.
    let worst = |of: &[&FloodRun]| of.iter().filter_map(|f| f.kept()).min_by(f64::total_cmp);
    let unreported = filtered
        .iter()
        .filter_map(|f| f.run.unreported_lost)
        .map(i64::unsigned_abs)
        .max();
    json!({
        "target": TARGET,
        "peer": format!("without a filter: kept {} of the flood", percent(worst(&plain))),
        "xdpsieve": format!(
            "kept {} of the selected, {} unreported",
            percent(worst(&filtered)),
            unreported.map_or("—".into(), thousands)
        ),
        "met": (!filtered.is_empty()).then(|| filtered.iter().all(|f| f.complete())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(sent: u64, in_file: u64, lost: u64, not_selected: Option<u64>, unreported: i64) -> Run {
        Run {
            setup: Setup::Xdpsieve,
            repetition: 0,
            frame_bytes: FRAME_BYTES,
            load: Load::OneCore,
            sent,
            seconds: 0.5,
            pps: sent as f64 * 2.0,
            veth_dropped: 0,
            in_file: Some(in_file),
            reported_lost: Some(lost),
            unreported_lost: Some(unreported),
            cpu_ns: None,
            cpu_ns_per_captured: None,
            peak_rss_kib: None,
            kernel_buffers_rss_kib: None,
            not_selected,
            summary: String::new(),
        }
    }

    fn filtered(run: Run) -> FloodRun {
        FloodRun {
            filter: Mix {
                one_in: ONE_IN,
                filtered: true,
            }
            .filter(),
            command: "xdpsieve run --filter".into(),
            run,
        }
    }

    fn plain(run: Run) -> FloodRun {
        FloodRun {
            filter: None,
            command: "xdpsieve run".into(),
            run,
        }
    }

    #[test]
    fn the_cycle_selects_exactly_one_in_a_hundred() {
        let mix = Mix {
            one_in: ONE_IN,
            filtered: true,
        };
        let frames = mix.frames(FRAME_BYTES, [2; 6], [4; 6]);
        assert_eq!(frames.len(), 100);
        let port = |f: &Vec<u8>| u16::from_be_bytes([f[36], f[37]]);
        let selected: Vec<usize> = (0..frames.len())
            .filter(|&i| port(&frames[i]) == SELECTED_PORT)
            .collect();
        assert_eq!(selected, [99], "the selected frame ends the cycle");
        assert!(frames.iter().all(|f| f.len() == FRAME_BYTES));
        assert!(frames.iter().all(|f| crate::netbench::is_generated(f)));
        assert_eq!(mix.filter().as_deref(), Some("udp dst port 44444"));
    }

    #[test]
    fn kept_is_in_file_over_selected_and_the_target_needs_all_of_them() {
        let complete = [
            filtered(run(1_000_000, 10_000, 0, Some(990_000), 0)),
            plain(run(1_000_000, 600_000, 400_000, None, 0)),
        ];
        let mut md = String::new();
        render(&mut md, &complete).unwrap();
        assert!(md.contains(SECTION));
        assert!(md.contains(
            "| `--filter 'udp dst port 44444'` | 1,000,000 | 2,000,000 pps | 10,000 | 10,000 | 100.0% | 0 | 990,000 | 0 | 0 |"
        ));
        assert!(md.contains(
            "| without a filter | 1,000,000 | 2,000,000 pps | 1,000,000 | 600,000 | 60.0% | 400,000 | — | 0 | 0 |"
        ));
        assert!(md.contains("- through the filter: `xdpsieve run --filter`\n"));
        assert!(md.contains("- without a filter: `xdpsieve run`\n"));
        let t = target(&complete);
        assert_eq!(t["target"], TARGET);
        assert_eq!(t["met"], true);
        assert_eq!(t["peer"], "without a filter: kept 60.0% of the flood");
        assert_eq!(t["xdpsieve"], "kept 100.0% of the selected, 0 unreported");

        // One selected frame missing, even if reported, misses the target...
        let short = [filtered(run(1_000_000, 9_999, 1, Some(990_000), 0))];
        assert_eq!(target(&short)["met"], false);
        // ...and so does a frame gone without a word.
        let silent = [filtered(run(1_000_000, 10_000, 0, Some(989_999), 1))];
        assert_eq!(target(&silent)["met"], false);
        assert_eq!(
            target(&silent)["xdpsieve"],
            "kept 100.0% of the selected, 1 unreported"
        );
    }

    #[test]
    fn nothing_run_renders_nothing_and_meets_nothing() {
        let mut md = String::new();
        render(&mut md, &[]).unwrap();
        assert!(md.is_empty());
        let t = target(&[]);
        assert!(t["met"].is_null());
        assert_eq!(t["xdpsieve"], "kept — of the selected, — unreported");
    }
}
