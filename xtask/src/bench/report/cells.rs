//! The tables' cells: nanoseconds, ratios and counts, with a dash for what was not
//! measured.

use crate::netbench::thousands;

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
