//! The one line each capture run prints while the bench goes on.

use std::fmt::Write as _;

use super::capture::Run;
use crate::netbench::thousands;

/// "sent N at R pps, in file K (P%), reported lost L, unreported U, ..." for one run.
pub(crate) fn one_line(r: &Run) -> String {
    let mut line = format!(
        "sent {} at {} pps",
        thousands(r.sent),
        thousands(r.pps as u64)
    );
    if let (Some(kept), Some(lost), Some(silent)) = (r.in_file, r.reported_lost, r.unreported_lost)
    {
        let _ = write!(
            line,
            ", in file {} ({:.1}%), reported lost {}, unreported {silent}",
            thousands(kept),
            r.kept().unwrap_or(0.0),
            thousands(lost)
        );
    }
    if let Some(ns) = r.cpu_ns_per_captured {
        let _ = write!(line, ", {ns:.0} ns CPU per captured frame");
    }
    if r.veth_dropped > 0 {
        let _ = write!(line, ", veth dropped {}", thousands(r.veth_dropped));
    }
    line
}
