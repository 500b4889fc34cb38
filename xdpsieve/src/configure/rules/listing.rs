//! What `check-rules` prints of a rule set: the rules as written, in evaluation order,
//! with their options, then the kernel memory the limit rules' keys and the sets take.

use super::{RuleSet, limit};
use crate::{
    base::text::{escape, escape_path},
    configure::sets::{SetSource, memory_estimate},
};

impl RuleSet {
    /// The rule set as `check-rules` prints it: where it came from (`origin`), the counts
    /// and the default, each rule in evaluation order, then the sets (see
    /// [`RuleSet::describe_sets`]).
    pub fn listing(&self, origin: &str) -> String {
        use std::fmt::Write as _;
        // Sets are named only where there are some: most rule files have none.
        let sets = match self.sets.len() {
            0 => String::new(),
            1 => "1 set, ".to_string(),
            n => format!("{n} sets, "),
        };
        let written = self.written();
        // Named only where a condition without a direction made more kernel rules.
        let kernel = match self.rules.len() {
            n if n == written.len() => String::new(),
            n => format!(" ({n} in the kernel: one per direction of `host`, `net`, `port`)"),
        };
        let mut out = format!(
            "{origin}: {} rules{kernel}, {sets}default {}\n",
            written.len(),
            self.default_action
        );
        for (rule, _) in &written {
            let mut extra = String::new();
            if let Some(limit) = &rule.limit {
                let _ = write!(extra, "  limit {limit}");
            }
            if rule.mode == limit::Mode::Monitor {
                extra.push_str("  (monitor: marks, drops nothing)");
            }
            let _ = writeln!(
                out,
                "  {:>4}  {:<24} {:<4}  {}{}{extra}",
                rule.id,
                escape(&rule.name),
                rule.action_name(),
                rule.written_conditions_with(&self.sets),
                rule.recording_options()
            );
        }
        out.push_str(&self.describe_limits());
        out.push_str(&self.describe_sets());
        out
    }

    /// The kernel memory the limit rules' tracked keys take (empty without limit rules):
    /// the table is allocated whole when the program loads.
    pub fn describe_limits(&self) -> String {
        let tracked: u64 = self
            .rules
            .iter()
            .filter_map(|r| r.limit.as_ref())
            .map(|l| u64::from(l.tracked()))
            .sum();
        if tracked == 0 {
            return String::new();
        }
        let bytes = tracked * limit::BYTES_PER_TRACKED_KEY;
        format!(
            "limits: {tracked} keys tracked at most (max_tracked, summed), about {} of kernel \
             memory ({} bytes per key), allocated at load\n",
            crate::configure::sets::human_bytes(bytes),
            limit::BYTES_PER_TRACKED_KEY
        )
    }

    /// The sets as `check-rules` lists them: each with its source, prefix counts per family
    /// and the rules that use it, then the kernel memory they will take. Empty when there
    /// are no sets.
    pub fn describe_sets(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        if self.sets.is_empty() {
            return out;
        }
        out.push_str("sets:\n");
        for (index, set) in self.sets.iter().enumerate() {
            let (v4, v6) = set.family_counts();
            let source = match &set.source {
                SetSource::File(path) => format!("file {}", escape_path(path)),
                SetSource::Inline => "inline".to_string(),
            };
            let mut users: Vec<String> = self
                .rules_using_set(index)
                .map(|r| format!("{} ({})", r.id, escape(&r.name)))
                .collect();
            // The kernel rules of one written rule are one user.
            users.dedup();
            let users = if users.is_empty() {
                "no rule uses it".to_string()
            } else {
                format!("used by rule {}", users.join(", "))
            };
            let _ = writeln!(
                out,
                "  @{:<24} {v4} IPv4 + {v6} IPv6 prefixes, {source}; {users}",
                set.name
            );
        }
        let _ = writeln!(
            out,
            "  kernel memory for the sets: {}",
            memory_estimate(&self.sets)
        );
        out
    }
}
