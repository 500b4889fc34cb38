//! The tables' cells: nanoseconds, ratios and counts, with a dash for what was not
//! measured; and the targets table both reports open with.

use std::fmt::Write as _;

use serde_json::Value;

use crate::netbench::thousands;

/// The targets table: one row per target, what the peer did in the same run, what
/// xdpsieve did, and whether the target was met.
pub(crate) fn targets_table(md: &mut String, targets: &[Value]) -> std::fmt::Result {
    writeln!(md, "| target | peer, same run | xdpsieve | met |")?;
    writeln!(md, "|---|---|---|---|")?;
    for t in targets {
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
    Ok(())
}

pub(super) fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "—".into(),
    }
}

pub(super) fn ns(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| format!("{v:.0}"))
}

pub(super) fn opt(v: Option<u64>) -> String {
    v.map_or("—".into(), thousands)
}
