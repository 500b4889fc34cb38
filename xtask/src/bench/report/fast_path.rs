//! Issue 19's targets that the older rows do not already state: the decision path at
//! every rule count and family against xdp-filter, the reader's CPU at half tcpdump's, the
//! scale from one core to two, and the recorder's peak memory; and the model of a 32-core
//! server built from them. Each row is computed from this run's figures only, like the
//! rest of the targets table.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::{
    cells::{ns, ratio},
    end_to_end::{by_cpu, by_kept, median_by},
    kernel::kernel_ns,
};
use crate::bench::{
    FRAME_SIZES, Results,
    capture::{Load, Run, Setup},
    capture_cost::Figures,
};

/// The decision path (no rule matched, dropped without capture) ≤ 0.4× xdp-filter at 1,
/// 64 and the most rules, IPv4 and IPv6 (64-byte UDP), one row per path and rule count.
pub(super) fn decision(k: &Value) -> Vec<Value> {
    let most = k["max_rules"].as_u64().unwrap_or(0);
    let mut rows = Vec::new();
    for path in ["no-match", "drop"] {
        for rules in [1, 64, most] {
            let pair = |frame| {
                (
                    kernel_ns(k, "xdpsieve", frame, path, rules),
                    kernel_ns(k, "xdp-filter", frame, path, rules),
                )
            };
            let (v4, f4) = pair("IPv4 UDP 64 B");
            let (v6, f6) = pair("IPv6 UDP 64 B");
            let within = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a <= 0.4 * b);
            let met = within(v4, f4).zip(within(v6, f6)).map(|(a, b)| a && b);
            rows.push(json!({
                "target": format!(
                    "kernel, {} ({rules} rule{}), IPv4 / IPv6: ≤ 0.4× xdp-filter",
                    if path == "drop" { "dropped without capture" } else { "no rule matched" },
                    if rules == 1 { "" } else { "s" }
                ),
                "peer": format!("xdp-filter: {} / {} ns", ns(f4), ns(f6)),
                "xdpsieve": format!(
                    "{} / {} ns ({} / {})",
                    ns(v4),
                    ns(v6),
                    ratio(v4, f4),
                    ratio(v6, f6)
                ),
                "met": met,
            }));
        }
    }
    rows
}

/// The reader's CPU per captured frame ≤ 0.5× tcpdump's (which writes pcap), at each
/// frame size, writing pcap and writing pcapng.
pub(super) fn reader(res: &Results) -> Vec<Value> {
    FRAME_SIZES
        .iter()
        .map(|&bytes| {
            let cpu = |s| {
                median_by(&res.runs, s, bytes, Load::OneCore, by_cpu)
                    .and_then(|r| r.cpu_ns_per_captured)
            };
            let tcpdump = cpu(Setup::Tcpdump);
            let (pcap, pcapng) = (cpu(Setup::Xdpsieve), cpu(Setup::XdpsievePcapng));
            let within = |ours: Option<f64>| ours.zip(tcpdump).map(|(a, b)| a <= 0.5 * b);
            json!({
                "target": format!(
                    "userspace CPU per captured frame, {bytes} B, pcap / pcapng: ≤ 0.5× tcpdump's"
                ),
                "peer": format!("tcpdump {} ns", ns(tcpdump)),
                "xdpsieve": format!(
                    "{} / {} ns ({} / {} of tcpdump)",
                    ns(pcap),
                    ns(pcapng),
                    ratio(pcap, tcpdump),
                    ratio(pcapng, tcpdump)
                ),
                "met": within(pcap).zip(within(pcapng)).map(|(a, b)| a && b),
            })
        })
        .collect()
}

/// With the generator on both cores, every 64-byte frame captured; and the rate captured
/// at two cores ≥ 1.8× the rate at one (median runs, every frame in the file).
pub(super) fn scale(res: &Results) -> Vec<Value> {
    let run = |load| median_by(&res.runs, Setup::Xdpsieve, 64, load, by_kept);
    let (one, both) = (run(Load::OneCore), run(Load::BothCores));
    let kept = both.and_then(Run::kept);
    let captured_pps =
        |r: Option<&Run>| r.and_then(|r| r.in_file.map(|n| n as f64 / r.seconds.max(f64::EPSILON)));
    let (rate1, rate2) = (captured_pps(one), captured_pps(both));
    let k = |v: Option<f64>| v.map_or("—".into(), |v| format!("{:.0}k pps", v / 1000.0));
    vec![
        json!({
            "target": "64 B frames, generator on both cores: every frame captured",
            "peer": "—",
            "xdpsieve": format!("kept {}", kept.map_or("—".into(), |k| format!("{k:.1}%"))),
            "met": kept.map(|k| k >= 100.0),
        }),
        json!({
            "target": "64 B frames captured at 2 cores ≥ 1.8× the rate at 1 core",
            "peer": format!("1 core: {}", k(rate1)),
            "xdpsieve": format!("2 cores: {} ({})", k(rate2), ratio(rate2, rate1)),
            "met": rate1.zip(rate2).map(|(a, b)| b >= 1.8 * a),
        }),
    ]
}

/// The capturing process's peak RSS (VmHWM, kernel buffers mapped into it included) under
/// 32 MiB, in every xdpsieve run of this machine's CPUs.
pub(super) fn memory(res: &Results) -> Value {
    let peak = res
        .runs
        .iter()
        .filter(|r| r.setup == Setup::Xdpsieve)
        .filter_map(|r| r.peak_rss_kib)
        .max();
    let kernel = res
        .runs
        .iter()
        .filter(|r| r.setup == Setup::Xdpsieve)
        .filter_map(|r| r.kernel_buffers_rss_kib)
        .max();
    let mib = |v: Option<u64>| v.map_or("—".into(), |v| format!("{:.1} MiB", v as f64 / 1024.0));
    json!({
        "target": "peak RSS of a capturing run < 32 MiB",
        "peer": "—",
        "xdpsieve": format!(
            "at most {} ({} of it the capture rings: 8 MiB shared out into one ring per CPU, \
             each mapped twice)",
            mib(peak),
            mib(kernel)
        ),
        "met": peak.map(|p| p < 32 * 1024),
    })
}

/// The model's heading, when this run had the figures for it (`check_report` looks for it).
pub(crate) const MODEL_SECTION: &str = "### A 32-core server, modelled from this run";

/// Cores of the server the model speaks of.
const MODEL_CORES: [u32; 5] = [1, 2, 8, 16, 32];

/// A model of capture throughput per core on a 32-core server, from this run's figures:
/// the program's own time per captured 64-byte packet under the flood (bpf_stats) and the
/// recorder's CPU per captured frame. With a ring per CPU the cores share nothing per
/// record, so the kernel side grows with the cores; the one recorder thread does not.
pub(super) fn model(md: &mut String, res: &Results) -> std::fmt::Result {
    let program = Figures::of(&res.capture_cost, 64).capture;
    let reader = median_by(&res.runs, Setup::Xdpsieve, 64, Load::OneCore, by_cpu)
        .and_then(|r| r.cpu_ns_per_captured);
    let (Some(program), Some(reader)) = (program.filter(|&v| v > 0.0), reader.filter(|&v| v > 0.0))
    else {
        return writeln!(
            md,
            "\n### A 32-core server, modelled\n\nNot computed: this run lacks the capture \
             cost under the flood or the recorder's CPU per frame."
        );
    };
    let per_core = 1e9 / program;
    let recorder = 1e9 / reader;
    writeln!(md, "\n{MODEL_SECTION}\n")?;
    writeln!(
        md,
        "Capturing 64-byte packets, what each core can capture if all of them receive a flood. \
         Each CPU reserves its records in a ring of its own, so the cores share nothing per \
         record: the program's own time per dropped and captured packet, {program:.0} ns \
         (bpf_stats under the flood above), lets one core capture at most {:.2} Mpps, and \
         *n* cores *n* times that. The recorder is one thread: at {reader:.0} ns of CPU per \
         frame (pcap, end to end above) it writes at most {:.2} Mpps, whatever the cores. \
         Captured = the smaller of the two. Not in the model: the driver's own receive cost \
         per packet (it is the same with any tool, and a real NIC's is below veth's), and the \
         disk, which must take the frames plus 16 bytes each: {:.0} MB/s at the recorder's \
         ceiling.\n",
        per_core / 1e6,
        recorder / 1e6,
        recorder * 80.0 / 1e6,
    )?;
    writeln!(
        md,
        "| cores | the cores' programs can capture | the recorder can write | captured | per core |"
    )?;
    writeln!(md, "| --- | --- | --- | --- | --- |")?;
    for cores in MODEL_CORES {
        let kernel = per_core * f64::from(cores);
        let captured = kernel.min(recorder);
        writeln!(
            md,
            "| {cores} | {:.2} Mpps | {:.2} Mpps | {:.2} Mpps | {:.0} kpps |",
            kernel / 1e6,
            recorder / 1e6,
            captured / 1e6,
            captured / f64::from(cores) / 1e3
        )?;
    }
    let knee = recorder / per_core;
    let limit = if knee < 32.0 {
        format!(
            "Past {knee:.1} cores the recorder is the limit: a 32-core server flooded on every \
             core captures every packet up to {:.0} kpps per core",
            recorder / 32.0 / 1e3
        )
    } else {
        format!(
            "Up to {knee:.1} cores the programs, not the recorder, are the limit: a 32-core \
             server captures every packet up to {:.0} kpps per core",
            per_core / 1e3
        )
    };
    writeln!(
        md,
        "\n{limit}; beyond that the rings fill and what does not fit is counted as lost \
         (`capture_lost`), never silently. Sampling (`--sample N`) or a capture filter lowers \
         what the recorder must write."
    )
}
