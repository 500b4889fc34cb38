//! The targets: each goal of the issues beside the peer's figure and xdpsieve's from this
//! run, and whether it was met; shown first in BENCHMARKS.md and kept in benchmarks.json.

use serde_json::{Value, json};

use super::{
    cells::{ns, ratio},
    end_to_end::{added_ns, by_kept, median_by},
    kernel::{kernel_insns, kernel_ns},
};
use crate::{
    bench::{
        FRAME_SIZES, Results,
        capture::{Load, Run, Setup},
    },
    netbench::thousands,
};

/// The targets, each beside the peer figure and ours from this run.
pub(super) fn targets(res: &Results) -> Vec<Value> {
    let k = &res.kernel;
    let frame = "IPv4 UDP 64 B";
    let ours = kernel_ns(k, "xdpsieve", frame, "no-match", 1);
    let drop_floor = kernel_ns(k, "floor-drop", frame, "", 0);
    let met = |a: Option<f64>, b: Option<f64>, factor: f64| a.zip(b).map(|(a, b)| a <= b * factor);
    let mut t = vec![json!({
        "target": "kernel, no rule matched (IPv4 UDP 64 B, 1 rule): ≤ 1.5× a minimal drop program",
        "peer": format!("minimal drop: {} ns", ns(drop_floor)),
        "xdpsieve": format!("{} ns ({})", ns(ours), ratio(ours, drop_floor)),
        "met": met(ours, drop_floor, 1.5),
    })];
    t.extend(super::fast_path::decision(k));
    t.extend(insns_targets(k));
    // Issue 19's reader target (≤ 0.5× tcpdump's CPU) replaces the earlier ≤ 1×.
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
    let ours_silent = silent(Setup::Xdpsieve).max(silent(Setup::XdpsievePcapng));
    t.push(json!({
        "target": "no unreported losses in any run",
        "peer": format!("tcpdump at most {}, xdpdump at most {}", thousands(silent(Setup::Tcpdump)), thousands(silent(Setup::Xdpdump))),
        "xdpsieve": format!("at most {}", thousands(ours_silent)),
        "met": ours_silent == 0,
    }));
    t.extend(super::fast_path::reader(res));
    t.extend(super::fast_path::scale(res));
    t.push(super::fast_path::memory(res));
    t.push(crate::bench::flood::target(&res.flood));
    if !res.capture_cost.is_null() {
        t.extend(crate::bench::capture_cost::targets(&res.capture_cost));
    }
    if !res.sets.is_null() {
        t.extend(crate::bench::sets::targets(&res.sets));
    }
    t
}

/// The instruction budgets: eBPF instructions the verified program executes when no rule
/// matches, which unlike the times do not drift with the machine.
fn insns_targets(k: &Value) -> Vec<Value> {
    [
        ("IPv4 UDP 64 B", 1, 220),
        ("IPv6 UDP 64 B", 1, 260),
        ("IPv4 UDP 64 B", MAX_RULES_ROW, 300),
    ]
    .into_iter()
    .map(|(frame, rules, budget)| {
        let rules = if rules == MAX_RULES_ROW {
            k["max_rules"].as_u64().unwrap_or(0)
        } else {
            rules
        };
        let ours = kernel_insns(k, "xdpsieve", frame, "no-match", rules);
        let floor = kernel_insns(k, "floor-pass", frame, "", 0);
        let filter = kernel_insns(k, "xdp-filter", frame, "no-match", rules);
        json!({
            "target": format!(
                "executed eBPF instructions, no rule matched ({frame}, {} rule{}): ≤ {budget}",
                thousands(rules),
                if rules == 1 { "" } else { "s" }
            ),
            "peer": format!(
                "xdp-filter: {}, minimal pass: {}",
                filter.map_or("—".into(), thousands),
                floor.map_or("—".into(), thousands)
            ),
            "xdpsieve": ours.map_or("not counted".into(), thousands),
            "met": ours.map(|n| n <= budget),
        })
    })
    .collect()
}

/// Stands for the largest rule set prog_cost measured (`max_rules` in its JSON).
const MAX_RULES_ROW: u64 = u64::MAX;
