//! The counter catalogue: every counter xdpsieve keeps, defined once.
//!
//! Each counter is one [`Counter`] entry: its JSON key, a few words for the status text,
//! its Prometheus family (name, labels, help), an optional sentence for the exit summary,
//! and how to get at its field. Summing over CPUs ([`add`]), `xdpsieve status` (text and
//! JSON), the metrics collector and the summary's per-counter lines all iterate these
//! tables; the one reader of the counter maps, [`crate::base::snapshot::read_snapshot`],
//! serves the live maps of the loaded program and the pinned ones `status` and the metrics
//! open alike.
//!
//! **Adding a counter** touches two places: the field in the kernel struct
//! (`xdpsieve_common::Counters` or `RuleCounters`, keeping its size assert right) and one
//! line here, e.g. for a kernel counter `unclassifiable`:
//!
//! ```text
//! counter!(unclassifiable, "unclassifiable", "xdpsieve_unclassifiable_packets", [],
//!          "Packets the classifier could not place.", None),
//! ```
//!
//! in [`KERNEL`] (or [`RULE`]). `Counters` is kept per interface slot; shown per
//! interface too, a counter also goes into `InterfaceCounters` (the per-interface view,
//! an older build's map layout, and its `From<&Counters>`) and into [`INTERFACE`].
//! Userspace counts ([`WriterStats`], what the
//! recorder and the event log did with their records) have their table, [`WRITER`], the
//! same way: they reach `status` and the metrics through the writer state file (see
//! [`crate::observe::writer_state`]).
//!
//! The summary keeps its headline sentences (packets seen, bytes, captured), which read
//! several counters at once and which scripts parse; every other counter gets its summary
//! line from its entry's `summary` sentence, printed when the count is not zero.

use xdpsieve_common::{Counters, InterfaceCounters, RuleCounters, walk::RuleExtraCounters};

/// One counter of a struct `T` (a kernel counter struct, or [`WriterStats`]).
pub struct Counter<T> {
    /// Field name: the key in `xdpsieve status --json` and the writer state file.
    pub key: &'static str,
    /// A few words after the number in `xdpsieve status`: "12 dropped".
    pub text: &'static str,
    /// Prometheus family (without `_total`); entries with the same family are its members.
    pub metric: &'static str,
    /// Labels of this member of the family.
    pub labels: &'static [(&'static str, &'static str)],
    /// Help of the family (the first member's is used).
    pub help: &'static str,
    /// Exit summary line, `{}` standing for the number; printed when it is not zero.
    pub summary: Option<&'static str>,
    pub get: fn(&T) -> u64,
    pub get_mut: fn(&mut T) -> &mut u64,
}

/// A value that is not a count (it can go down): its Prometheus gauge, described once.
pub struct Gauge {
    pub metric: &'static str,
    pub help: &'static str,
}

/// The rule generation in force (see `instance::reload`).
pub const RULE_GENERATION: Gauge = Gauge {
    metric: "xdpsieve_rule_generation",
    help: "The rule generation in force: 1 for the rules a run started with, one more per \
           reload (xdpsieve reload, SIGHUP) and per takeover.",
};

/// One catalogue entry for field `$field` of the table's struct.
macro_rules! counter {
    ($field:ident, $text:expr, $metric:expr, [$($k:expr => $v:expr),*], $help:expr, $summary:expr) => {
        Counter {
            key: stringify!($field),
            text: $text,
            metric: $metric,
            labels: &[$(($k, $v)),*],
            help: $help,
            summary: $summary,
            get: |c| c.$field,
            get_mut: |c| &mut c.$field,
        }
    };
}

/// The program's counters (map `COUNTERS`, one slot).
pub const KERNEL: &[Counter<Counters>] = &[
    // Not written by the program: read as passed + dropped (see `Counters::seen`).
    Counter {
        get: Counters::seen,
        ..counter!(
            seen,
            "seen",
            "xdpsieve_seen_packets",
            [],
            "Packets the program saw.",
            None
        )
    },
    counter!(dropped, "dropped", "xdpsieve_packets", ["verdict" => "drop"],
        "Packets seen, by verdict.", None),
    counter!(passed, "passed", "xdpsieve_packets", ["verdict" => "pass"],
        "Packets seen, by verdict.", None),
    counter!(
        malformed,
        "malformed",
        "xdpsieve_malformed_packets",
        [],
        "Frames the parser found malformed.",
        None
    ),
    counter!(
        non_ip,
        "without IP header",
        "xdpsieve_non_ip_packets",
        [],
        "Frames without a readable IP header (always passed).",
        None
    ),
    counter!(
        bytes_seen,
        "bytes seen",
        "xdpsieve_seen_bytes",
        [],
        "Bytes the program saw.",
        None
    ),
    counter!(bytes_dropped, "bytes dropped", "xdpsieve_bytes", ["verdict" => "drop"],
        "Bytes seen, by verdict.", None),
    counter!(bytes_passed, "bytes passed", "xdpsieve_bytes", ["verdict" => "pass"],
        "Bytes seen, by verdict.", None),
    counter!(
        captured,
        "capture records sent",
        "xdpsieve_captured_packets",
        [],
        "Capture records sent to userspace.",
        None
    ),
    counter!(capture_lost, "capture records lost (buffer full)", "xdpsieve_records_lost",
        ["stream" => "capture"], "Records that did not fit in the ring or perf buffer.", None),
    counter!(
        events,
        "events sent",
        "xdpsieve_events",
        [],
        "Events sent to userspace.",
        None
    ),
    counter!(event_lost, "events lost (buffer full)", "xdpsieve_records_lost",
        ["stream" => "event"], "Records that did not fit in the ring or perf buffer.", None),
    counter!(
        rate_limited,
        "rate-limited",
        "xdpsieve_rate_limited_packets",
        [],
        "Packets whose records a rate limit suppressed.",
        Some("{} packets not recorded: over their rule's rate limit")
    ),
    counter!(
        no_reader,
        "lost for want of a reader",
        "xdpsieve_records_no_reader",
        [],
        "Packets whose records were not written because no recorder was reading.",
        Some("{} packets not recorded: no recorder was reading (its heartbeat stopped)")
    ),
    counter!(
        sampled_out,
        "sampled out (not loss)",
        "xdpsieve_sampled_out_packets",
        [],
        "Packets selected for recording whose records sampling left out by choice (--sample, \
         a rule's sample); not loss.",
        Some("{} packets not recorded by choice: sampled out (--sample, a rule's sample)")
    ),
    // The summary has one sentence for these four (`stats::summary`).
    counter!(
        unclassifiable,
        "unclassifiable",
        "xdpsieve_unclassifiable_packets",
        [],
        "IP packets whose L4 header the program could not reach (tiny fragments included).",
        None
    ),
    counter!(
        tiny_fragments,
        "tiny TCP fragments",
        "xdpsieve_tiny_fragments",
        [],
        "TCP fragments too short for the flags byte, or at offset 8 bytes (RFC 1858).",
        None
    ),
    counter!(
        fragments_followed,
        "fragments that followed their first",
        "xdpsieve_fragments",
        ["first" => "seen"],
        "Non-first fragments, by whether their first fragment's verdict was known.",
        None
    ),
    counter!(
        fragment_orphans,
        "fragments without their first",
        "xdpsieve_fragments",
        ["first" => "unseen"],
        "Non-first fragments, by whether their first fragment's verdict was known.",
        None
    ),
    // Not a loss: the operator asked for only the packets the filter selects.
    counter!(
        not_selected,
        "not selected by the capture filter",
        "xdpsieve_filter_not_selected_packets",
        [],
        "Packets whose capture record or event the capture filter (--filter, --log-filter) \
         did not select; not a loss.",
        Some("{} packets not selected by the capture filter (not a loss)")
    ),
    // Not sent: a reload turned on a stream this run has no writer for (see
    // `xdpsieve_common::reader::WRITERS`).
    counter!(capture_no_writer, "capture records not sent (no capture in this run)",
        "xdpsieve_records_no_writer", ["stream" => "capture"],
        "Records the program did not send because the run has no writer for their stream \
         (a reload turned it on): lost, counted with their stream.",
        Some("{} packets not captured: this run writes no capture (a reload turned capturing \
              on); restart it with -w to capture them")),
    counter!(event_no_writer, "events not sent (no event log in this run)",
        "xdpsieve_records_no_writer", ["stream" => "event"],
        "Records the program did not send because the run has no writer for their stream \
         (a reload turned it on): lost, counted with their stream.",
        Some("{} events not logged: this run has no event log (a reload gave a rule \
              log = true); restart it to log them")),
];

/// Per rule slot (map `RULE_COUNTERS`; slot 0 is the default verdict).
pub const RULE: &[Counter<RuleCounters>] = &[
    counter!(
        hits,
        "hits",
        "xdpsieve_rule_hits",
        [],
        "Packets each rule decided (rule_id 0: the default verdict).",
        None
    ),
    counter!(
        bytes,
        "bytes",
        "xdpsieve_rule_bytes",
        [],
        "Bytes of the packets each rule decided.",
        None
    ),
    counter!(
        suppressed,
        "suppressed",
        "xdpsieve_rule_rate_limited_packets",
        [],
        "Packets whose records each rule's rate limit suppressed.",
        None
    ),
    counter!(
        sampled_out,
        "sampled out",
        "xdpsieve_rule_sampled_out_packets",
        [],
        "Packets whose records each rule's sampling left out (not loss).",
        None
    ),
];

/// Per rule slot, what only monitor and limit rules count (map `RULE_EXTRA`; see
/// `xdpsieve_common::walk`).
pub const RULE_EXTRA: &[Counter<RuleExtraCounters>] = &[
    counter!(
        would_hit,
        "would decide (monitor)",
        "xdpsieve_rule_would_decide_packets",
        [],
        "Packets each monitor rule marked: those it would have decided (dropped, for a drop \
         or limit rule) had it been enforced.",
        None
    ),
    counter!(
        would_hit_bytes,
        "bytes would decide",
        "xdpsieve_rule_would_decide_bytes",
        [],
        "Bytes of the packets each monitor rule marked.",
        None
    ),
    counter!(within_limit, "within limit", "xdpsieve_rule_limit_packets",
        ["budget" => "within"],
        "Packets each limit rule charged, by whether they were within its budget (they went \
         on to the next rules) or over it (dropped, or marked in monitor mode).", None),
    counter!(over_limit, "over limit", "xdpsieve_rule_limit_packets", ["budget" => "over"],
        "Packets each limit rule charged, by whether they were within its budget (they went \
         on to the next rules) or over it (dropped, or marked in monitor mode).", None),
    counter!(
        over_limit_bytes,
        "bytes over limit",
        "xdpsieve_rule_over_limit_bytes",
        [],
        "Bytes of the packets over each limit rule's budget.",
        None
    ),
    counter!(
        new_keys,
        "keys tracked",
        "xdpsieve_rule_limit_new_keys",
        [],
        "Keys (sources or prefixes) each limit rule started tracking; those no longer \
         tracked were forgotten, least recently seen first, to make room.",
        None
    ),
    counter!(
        insert_failed,
        "keys not tracked",
        "xdpsieve_rule_limit_untracked_packets",
        [],
        "Packets of keys a limit rule's table could not take: charged to the rule's own \
         bucket, so still limited.",
        None
    ),
    counter!(
        cas_exhausted,
        "charges lost to contention",
        "xdpsieve_rule_limit_contention_packets",
        [],
        "Packets let on as within the budget because the bucket changed under four \
         attempts in a row (CPUs contending): the only way a budget is exceeded.",
        None
    ),
    counter!(
        ban_notices,
        "ban notices",
        "xdpsieve_rule_ban_notices",
        [],
        "Keys over each banning limit rule's budget that the program told the recorder \
         about (at most one per key per second): each leads to a ban, or to a counted \
         reason why not.",
        None
    ),
    counter!(
        ban_notices_lost,
        "ban notices lost",
        "xdpsieve_rule_ban_notices_lost",
        [],
        "Ban notices the notice ring could not take (no recorder running, or one far \
         behind): the key is told again a second later if it is still over.",
        Some("{} ban notices lost: the notice ring was full (no recorder reading it)")
    ),
];

/// Per interface: the view of a `COUNTERS` slot (and an older build's `INTERFACE_COUNTERS`).
pub const INTERFACE: &[Counter<InterfaceCounters>] = &[
    counter!(
        packets,
        "packets",
        "xdpsieve_interface_seen_packets",
        [],
        "Packets seen per interface.",
        None
    ),
    counter!(dropped, "dropped", "xdpsieve_interface_packets", ["verdict" => "drop"],
        "Packets seen per interface, by verdict.", None),
    counter!(passed, "passed", "xdpsieve_interface_packets", ["verdict" => "pass"],
        "Packets seen per interface, by verdict.", None),
    counter!(
        bytes,
        "bytes",
        "xdpsieve_interface_bytes",
        [],
        "Bytes seen per interface.",
        None
    ),
    counter!(
        captured,
        "captured",
        "xdpsieve_interface_captured_packets",
        [],
        "Capture records sent to userspace per interface.",
        None
    ),
    counter!(capture_lost, "capture lost", "xdpsieve_interface_records_lost",
        ["stream" => "capture"], "Capture records per interface that did not fit.", None),
    counter!(
        rate_limited,
        "rate-limited",
        "xdpsieve_interface_rate_limited_packets",
        [],
        "Packets per interface whose records a rate limit suppressed.",
        None
    ),
    counter!(
        sampled_out,
        "sampled out",
        "xdpsieve_interface_sampled_out_packets",
        [],
        "Packets per interface whose records sampling left out (not loss).",
        None
    ),
];

/// What userspace did with the records the program sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Packets written to the capture file.
    pub written: u64,
    /// Records received after `-c COUNT` was reached (read, then deliberately not written).
    pub past_count: u64,
    /// Records that failed to decode (never expected; counted rather than dropped silently).
    pub undecodable: u64,
    /// Ring record headers whose length was corrupt (never expected): each time, the reader
    /// skipped to the producer position, losing the records in between.
    pub ring_corrupt: u64,
    /// The bytes those skips passed over (the records in them are lost, how many unknown).
    pub ring_skipped_bytes: u64,
    /// Event lines written to the log.
    pub logged: u64,
    /// Capture records not written because the capture output failed (disk full, I/O
    /// error, reader gone): those after the failure and those it took down with it.
    pub capture_not_written: u64,
    /// Event lines not written because the log output failed.
    pub log_not_written: u64,
    /// Captured packets (counted in `written`) whose file the `-W` ring overwrote when it
    /// came round to its name again.
    pub overwritten: u64,
    /// Captured packets whose file the `-W` ring removed to make room on a full disk.
    pub removed_for_room: u64,
    /// Automatic bans (`instance::bans`): keys added to a ban set, bans renewed (the key
    /// was still over when told again), and notices that led to no ban, by reason.
    pub bans_added: u64,
    pub bans_renewed: u64,
    pub bans_rate_capped: u64,
    pub bans_total_capped: u64,
    pub bans_allow_skipped: u64,
    pub bans_already_listed: u64,
    pub bans_stale: u64,
    pub bans_failed: u64,
    /// Times a batch of notices waited for the set lock (a `set` command or a reload held
    /// it): tried again on the next turn, not lost.
    pub bans_deferred: u64,
}

impl WriterStats {
    /// The capture's and the event log's counts together.
    pub fn merge(mut self, other: WriterStats) -> WriterStats {
        add(WRITER, &mut self, &other);
        self
    }
}

const BANS_HELP: &str = "Ban notices of limit rules, by what became of them: a new ban, a ban \
     renewed, or no ban (the rule's ban_rate or ban_max reached, the key in its allow_set, \
     already in the ban set by an operator, a notice of rules since reloaded, the set change \
     failed).";

/// What userspace did with the records (see [`WriterStats`]).
pub const WRITER: &[Counter<WriterStats>] = &[
    counter!(written, "written to the capture", "xdpsieve_written_records",
        ["output" => "capture"], "Records wholly in the capture file or the event log.", None),
    counter!(logged, "written to the event log", "xdpsieve_written_records",
        ["output" => "log"], "Records wholly in the capture file or the event log.", None),
    counter!(capture_not_written, "not written to the capture (output failed)",
        "xdpsieve_not_written_records", ["output" => "capture", "reason" => "output_failed"],
        "Records read from the ring and not written, by output and reason.",
        Some("{} packets not written: capture output failed")),
    counter!(log_not_written, "not written to the event log (output failed)",
        "xdpsieve_not_written_records", ["output" => "log", "reason" => "output_failed"],
        "Records read from the ring and not written, by output and reason.",
        Some("{} events not written: log output failed")),
    counter!(past_count, "past the -c count", "xdpsieve_not_written_records",
        ["output" => "capture", "reason" => "past_count"],
        "Records read from the ring and not written, by output and reason.",
        Some("{} packets not written: past the -c count (or the last file of -G with -W)")),
    // Written, and gone since: the -W ring of files reused or removed their file.
    counter!(overwritten, "captured, in files -W overwrote", "xdpsieve_capture_packets_gone",
        ["reason" => "overwritten"],
        "Captured packets no longer on disk: their file was overwritten by the -W ring of \
         files or removed to make room on a full disk, by reason.",
        Some("{} of the packets captured are no longer on disk: the -W ring of files \
              overwrote their files")),
    counter!(removed_for_room, "captured, in files removed for room",
        "xdpsieve_capture_packets_gone", ["reason" => "disk_full"],
        "Captured packets no longer on disk: their file was overwritten by the -W ring of \
         files or removed to make room on a full disk, by reason.",
        Some("{} of the packets captured are no longer on disk: their files were removed to \
              make room on the full disk")),
    counter!(bans_added, "bans added", "xdpsieve_bans", ["outcome" => "added"],
        BANS_HELP, None),
    counter!(bans_renewed, "bans renewed", "xdpsieve_bans", ["outcome" => "renewed"],
        BANS_HELP, None),
    counter!(bans_rate_capped, "bans refused: ban_rate reached", "xdpsieve_bans",
        ["outcome" => "rate_capped"], BANS_HELP,
        Some("{} bans not made: a rule's ban_rate was reached (the key is told again a \
              second later while it stays over)")),
    counter!(bans_total_capped, "bans refused: ban_max reached", "xdpsieve_bans",
        ["outcome" => "total_capped"], BANS_HELP,
        Some("{} bans not made: a rule's ban_max bans were in force")),
    counter!(bans_allow_skipped, "bans refused: key in the allow_set", "xdpsieve_bans",
        ["outcome" => "allowed"], BANS_HELP, None),
    counter!(bans_already_listed, "bans not needed: already in the set", "xdpsieve_bans",
        ["outcome" => "already_listed"], BANS_HELP,
        None),
    counter!(bans_stale, "ban notices of earlier rules", "xdpsieve_bans",
        ["outcome" => "stale"], BANS_HELP,
        Some("{} ban notices were of rules since replaced by a reload (not banned)")),
    counter!(bans_failed, "bans failed", "xdpsieve_bans", ["outcome" => "failed"],
        BANS_HELP,
        Some("{} bans failed: the ban set could not be changed (see the warnings)")),
    counter!(
        bans_deferred,
        "ban batches deferred (set lock busy)",
        "xdpsieve_bans_deferred",
        [],
        "Times the recorder found the sets locked (a set command or a reload) with bans \
        to make: it tries again on its next turn.",
        None
    ),
    counter!(
        undecodable,
        "undecodable",
        "xdpsieve_undecodable_records",
        [],
        "Records that failed to decode (never expected).",
        Some("{} records could not be decoded")
    ),
    counter!(
        ring_corrupt,
        "ring skips after a corrupt length",
        "xdpsieve_ring_corrupt_headers",
        [],
        "Ring record headers with a corrupt length (never expected): each time, the reader \
         skipped to the newest record, losing those in between.",
        Some(
            "{} ring records had a corrupt length: the reader skipped past them and the \
              records after them to the newest (see the warnings)"
        )
    ),
    counter!(
        ring_skipped_bytes,
        "ring bytes skipped",
        "xdpsieve_ring_skipped_bytes",
        [],
        "Bytes of ring the reader skipped after corrupt record lengths (the records in them \
         are lost).",
        Some("{} bytes of ring records skipped after corrupt lengths")
    ),
];

/// Adds `from` to `to`, counter by counter.
pub fn add<T>(catalogue: &[Counter<T>], to: &mut T, from: &T) {
    for counter in catalogue {
        *(counter.get_mut)(to) += (counter.get)(from);
    }
}

/// What each counter counted between `earlier` and `later` (0 where it went back: a
/// counter never does, but a snapshot may be from other maps after a takeover).
pub fn difference<T: Default>(catalogue: &[Counter<T>], later: &T, earlier: &T) -> T {
    let mut delta = T::default();
    for counter in catalogue {
        *(counter.get_mut)(&mut delta) =
            (counter.get)(later).saturating_sub((counter.get)(earlier));
    }
    delta
}

/// "12 seen, 3 dropped, ..." for the status text.
pub fn describe<T>(catalogue: &[Counter<T>], values: &T) -> String {
    catalogue
        .iter()
        .map(|c| format!("{} {}", (c.get)(values), c.text))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The summary lines of the counters that have one and are not zero.
pub fn summary_lines<T>(catalogue: &[Counter<T>], values: &T, out: &mut String) {
    for counter in catalogue {
        let value = (counter.get)(values);
        if let Some(sentence) = counter.summary
            && value > 0
        {
            out.push_str(&sentence.replace("{}", &value.to_string()));
            out.push('\n');
        }
    }
}

/// (key, value) of each counter, for JSON.
pub fn entries<T>(catalogue: &[Counter<T>], values: &T) -> Vec<(&'static str, u64)> {
    catalogue.iter().map(|c| (c.key, (c.get)(values))).collect()
}

/// Sets each counter named in `entries` (unknown keys are ignored, missing ones stay).
pub fn from_entries<T: Default>(
    catalogue: &[Counter<T>],
    entries: &serde_json::Map<String, serde_json::Value>,
) -> T {
    let mut values = T::default();
    for counter in catalogue {
        if let Some(v) = entries.get(counter.key).and_then(serde_json::Value::as_u64) {
            *(counter.get_mut)(&mut values) = v;
        }
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kernel_counter_is_in_the_catalogue_once() {
        // Set each catalogued field to a distinct value: a field listed twice, or a key
        // that names another field, shows as a mismatch.
        let mut values = Counters::default();
        for (i, c) in KERNEL.iter().enumerate() {
            *(c.get_mut)(&mut values) = i as u64 + 1;
        }
        for (i, c) in KERNEL.iter().enumerate() {
            // `seen` is read as passed + dropped (the program does not write it).
            let expected = if c.key == "seen" {
                values.seen()
            } else {
                i as u64 + 1
            };
            assert_eq!((c.get)(&values), expected, "{}", c.key);
        }
        // Every u64 of the structs is catalogued (they are all u64 counters), but for at
        // most one reserved word: a counter added to the struct without its catalogue
        // line fails here.
        assert_eq!(KERNEL.len() * 8, size_of::<Counters>(), "Counters");
        // The same for the writer's counts, all u64s, each catalogued once.
        assert_eq!(WRITER.len() * 8, size_of::<WriterStats>(), "WriterStats");
        let mut writer = WriterStats::default();
        for (i, c) in WRITER.iter().enumerate() {
            *(c.get_mut)(&mut writer) = i as u64 + 1;
        }
        for (i, c) in WRITER.iter().enumerate() {
            assert_eq!((c.get)(&writer), i as u64 + 1, "{}", c.key);
        }
        for (name, catalogued, size) in [
            ("RuleCounters", RULE.len(), size_of::<RuleCounters>()),
            (
                "InterfaceCounters",
                INTERFACE.len(),
                size_of::<InterfaceCounters>(),
            ),
        ] {
            assert!(
                (size / 8).saturating_sub(catalogued) <= 1,
                "{name}: {catalogued} catalogued for {} words",
                size / 8
            );
        }
    }

    #[test]
    fn writer_counts_round_trip_through_json_entries() {
        let stats = WriterStats {
            written: 3,
            capture_not_written: 5,
            log_not_written: 7,
            ..Default::default()
        };
        let map: serde_json::Map<String, serde_json::Value> = entries(WRITER, &stats)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.into()))
            .collect();
        assert_eq!(from_entries::<WriterStats>(WRITER, &map), stats);
    }

    #[test]
    fn families_share_their_help() {
        for table in [
            KERNEL
                .iter()
                .map(|c| (c.metric, c.help))
                .collect::<Vec<_>>(),
            WRITER.iter().map(|c| (c.metric, c.help)).collect(),
            INTERFACE.iter().map(|c| (c.metric, c.help)).collect(),
        ] {
            for (metric, help) in &table {
                assert!(
                    table.iter().all(|(m, h)| m != metric || h == help),
                    "{metric} has two helps"
                );
            }
        }
    }
}
