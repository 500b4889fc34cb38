//! The configuration file's keys, one table: what the reader accepts (a key not here is
//! unknown, whatever the reader's code would do with it), and the reference the README,
//! `xdpsieve check-config --help` and the `xdpsieve.toml(5)` page are made from, so the
//! documentation cannot drift from the reader (unit tests hold the two together).

/// One key of the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    /// The table it belongs to: `""` for the top level, else `capture`, `capture.rotation`,
    /// `log` or `metrics`.
    pub section: &'static str,
    pub name: &'static str,
    /// Its TOML type, in words.
    pub kind: &'static str,
    /// What holds when the key is absent (and no flag gives it).
    pub default: &'static str,
    /// The `xdpsieve run` flag that stands for it (and overrides it).
    pub flag: &'static str,
    /// What it means, in a sentence or three.
    pub meaning: &'static str,
}

/// The sections, in the order the reference lists them, each with a line on what it holds.
pub const SECTIONS: [(&str, &str); 5] = [
    (
        "",
        "Where and how the firewall runs, and its rules. TOML wants these keys before the \
         first [table]; [[set]] and [[rule]] tables may come anywhere.",
    ),
    ("capture", "The packets written to a pcap or pcapng file."),
    (
        "capture.rotation",
        "Rotation of the capture file (as tcpdump's -C, -G, -W, -z); needs capture.file.",
    ),
    (
        "log",
        "The event log: one line per packet, no packet bytes.",
    ),
    (
        "metrics",
        "What the run reports of its counters while it runs.",
    ),
];

const fn key(
    section: &'static str,
    name: &'static str,
    kind: &'static str,
    default: &'static str,
    flag: &'static str,
    meaning: &'static str,
) -> Key {
    Key {
        section,
        name,
        kind,
        default,
        flag,
        meaning,
    }
}

/// Every key the file may hold.
pub const KEYS: &[Key] = &[
    key(
        "",
        "interfaces",
        "array of strings",
        "none: required here or with -i",
        "-i",
        "The interfaces to attach to, e.g. [\"eth0\", \"eth1\"].",
    ),
    key(
        "",
        "mode",
        "string",
        "\"auto\"",
        "--mode",
        "XDP attach mode: \"native\" (in the driver), \"skb\" (generic), or \"auto\" \
         (native, else skb).",
    ),
    key(
        "",
        "transport",
        "string",
        "\"ringbuf\"",
        "--transport",
        "How records reach userspace: \"ringbuf\" (captures: a ring per CPU; events: one \
         ring) or \"perf\" (one buffer per CPU; slower, see the README).",
    ),
    key(
        "",
        "ring_size",
        "string or integer",
        "\"8M\"",
        "--ring-size",
        "Size of each record buffer: a power of two from 4K to 2G, in bytes or with a K, \
         M or G suffix. The per-CPU capture rings (and perf buffers) share it out.",
    ),
    key(
        "",
        "keep_on_stop",
        "boolean",
        "false",
        "--keep-on-stop",
        "When true, the end of the run (SIGTERM, SIGINT, -c reached) leaves the firewall \
         in force, pinned, as after a crash: the next `xdpsieve run` takes it over without \
         a gap. `xdpsieve stop -i IFACE` still removes it.",
    ),
    key(
        "",
        "quiet",
        "boolean",
        "false",
        "-q",
        "When true, the start-up line is not printed.",
    ),
    key(
        "",
        "unclassifiable",
        "string",
        "\"drop\" when a rule has a protocol or port condition, else \"pass\"",
        "--unclassifiable",
        "Verdict for IP packets whose TCP/UDP header cannot be reached (too long an IPv6 \
         extension chain, a header cut short, a tiny TCP fragment): \"drop\" or \"pass\".",
    ),
    key(
        "",
        "rules",
        "string (path)",
        "none: the rules are this file's own",
        "--rules",
        "A rule file (`xdpsieve check-rules --help`), relative to this file's directory. \
         Not with [[rule]] or [[set]] tables here.",
    ),
    key(
        "",
        "default",
        "string",
        "\"pass\"",
        "--default",
        "Verdict for IP packets no rule matches: \"drop\" or \"pass\". With `rules`, it \
         overrides the rule file's.",
    ),
    key(
        "",
        "set",
        "array of tables",
        "none",
        "",
        "[[set]] tables: address sets, exactly as in a rule file; a set file is relative \
         to this file's directory.",
    ),
    key(
        "",
        "rule",
        "array of tables",
        "none: nothing is filtered",
        "--drop, --pass",
        "[[rule]] tables: the rules, in order, exactly as in a rule file. --drop and \
         --pass add theirs after them.",
    ),
    key(
        "capture",
        "which",
        "string",
        "\"dropped\" with a file, else \"none\"",
        "--capture",
        "Which packets to capture: \"dropped\", \"passed\", \"all\" or \"none\".",
    ),
    key(
        "capture",
        "file",
        "string (path)",
        "none: nothing is captured",
        "-w",
        "The capture file, relative to this file's directory; \"-\" is standard output. \
         With rotation by time, a strftime(3) pattern.",
    ),
    key(
        "capture",
        "format",
        "string",
        "\"pcap\"",
        "--format",
        "\"pcap\" or \"pcapng\" (which adds each packet's verdict, rule and queue).",
    ),
    key(
        "capture",
        "snaplen",
        "integer",
        "16384",
        "-s",
        "Bytes of each packet to capture, 1-16384; longer packets keep their true length.",
    ),
    key(
        "capture",
        "sample",
        "integer",
        "1",
        "--sample",
        "Record 1 in N of the packets selected for capture and logging, for rules without \
         their own `sample`; 1 records all.",
    ),
    key(
        "capture",
        "filter",
        "string",
        "none",
        "--filter",
        "Capture only what this tcpdump filter expression selects (pcap-filter(7)); it \
         applies to the event log too unless log.filter is given.",
    ),
    key(
        "capture",
        "filter_engine",
        "string",
        "\"auto\"",
        "--filter-engine",
        "How the kernel runs the capture and log filters: \"translated\" to eBPF, \
         \"interpreter\", or \"auto\" (translated, else interpreted).",
    ),
    key(
        "capture.rotation",
        "size_mb",
        "integer",
        "none",
        "-C",
        "Rotate by size: a file larger than this many million bytes is closed and a new \
         one opened (FILE, FILE1, FILE2, ...).",
    ),
    key(
        "capture.rotation",
        "seconds",
        "integer",
        "none",
        "-G",
        "Rotate by time: the first packet this many seconds after a file was opened starts \
         a new one.",
    ),
    key(
        "capture.rotation",
        "files",
        "integer",
        "none: no limit",
        "-W",
        "With size_mb: keep a ring of this many files. With seconds alone: stop after this \
         many files.",
    ),
    key(
        "capture.rotation",
        "command",
        "string",
        "none",
        "-z",
        "Run this program on each finished file (e.g. \"gzip\"); a relative path with a \
         `/` is relative to this file's directory.",
    ),
    key(
        "log",
        "which",
        "string",
        "\"none\"",
        "--log",
        "Which packets to log as events: \"dropped\", \"passed\", \"all\" or \"none\". \
         Rules with `log = true` are logged whatever this says.",
    ),
    key(
        "log",
        "file",
        "string (path)",
        "standard output",
        "--log-file",
        "The event log's file, relative to this file's directory.",
    ),
    key(
        "log",
        "format",
        "string",
        "\"text\"",
        "--log-format",
        "\"text\" lines or \"json\" lines.",
    ),
    key(
        "log",
        "rate",
        "string or integer",
        "0 (unlimited)",
        "--log-rate",
        "Limit per rule on its records, events and captures alike, for rules without their \
         own `log_rate`: \"N/s\", \"N/m\", \"N/h\", or 0 for none.",
    ),
    key(
        "log",
        "filter",
        "string",
        "capture.filter",
        "--log-filter",
        "Log only what this tcpdump filter expression selects; \"\" logs all the rules \
         select, whatever capture.filter says.",
    ),
    key(
        "metrics",
        "listen",
        "string",
        "none: no metrics",
        "--metrics",
        "Serve Prometheus metrics at http://ADDR:PORT/metrics, e.g. \"127.0.0.1:9470\".",
    ),
    key(
        "metrics",
        "stats_interval",
        "number",
        "none: no status lines",
        "--stats-interval",
        "Print a status line (rates per verdict, losses) to stderr every this many seconds, \
         0.1-86400.",
    ),
];

/// The keys of `section` (`""` for the top level), in the reference's order.
pub fn of(section: &str) -> impl Iterator<Item = &'static Key> + '_ {
    KEYS.iter().filter(move |k| k.section == section)
}

/// `name` as the reference spells it, if it is a key of `section` or the name of one of
/// its sub-tables (`rotation` in `capture`).
pub fn name_in(section: &str, name: &str) -> Option<&'static str> {
    let key = of(section).find(|k| k.name == name).map(|k| k.name);
    key.or_else(|| {
        sub_tables(section)
            .map(|table| table.rsplit('.').next().unwrap_or(table))
            .find(|last| *last == name)
    })
}

/// The sections directly below `section` (`""`: the top level).
fn sub_tables(section: &str) -> impl Iterator<Item = &'static str> + '_ {
    SECTIONS
        .iter()
        .map(|(table, _)| *table)
        .filter(move |table| {
            !table.is_empty() && table.rsplit_once('.').map_or("", |(up, _)| up) == section
        })
}

/// The keys of `section` and its sub-tables, for an "unknown key" message: `a, [[b]], [c]`.
pub fn listed(section: &str) -> String {
    let mut names: Vec<String> = of(section)
        .map(|k| match k.kind {
            "array of tables" => format!("[[{}]]", k.name),
            _ => k.name.to_string(),
        })
        .collect();
    names.extend(sub_tables(section).map(|table| format!("[{table}]")));
    names.join(", ")
}

/// The reference as Markdown: per section a heading line and a table of its keys (the
/// README's "Configuration file" section holds exactly this).
pub fn markdown() -> String {
    let mut out = String::new();
    for (section, about) in SECTIONS {
        let title = if section.is_empty() {
            "Top level".to_string()
        } else {
            format!("`[{section}]`")
        };
        out.push_str(&format!("**{title}**: {about}\n\n"));
        out.push_str("| key | type | default | flag | meaning |\n|---|---|---|---|---|\n");
        for k in of(section) {
            let flag = if k.flag.is_empty() {
                String::new()
            } else {
                format!("`{}`", k.flag.replace(", ", "`, `"))
            };
            out.push_str(&format!(
                "| `{}` | {} | {} | {} | {} |\n",
                k.name,
                k.kind,
                k.default.replace('|', "\\|"),
                flag,
                k.meaning.replace('|', "\\|")
            ));
        }
        out.push('\n');
    }
    out
}

/// The reference as plain text for `--help`: per section its keys, each with its type,
/// flag and default, then its meaning, wrapped to `width` columns.
pub fn plain(width: usize) -> String {
    let mut out = String::new();
    for (section, about) in SECTIONS {
        let title = if section.is_empty() {
            "Top level".to_string()
        } else {
            format!("[{section}]")
        };
        out.push_str(&wrap(&format!("{title}: {about}"), "", "  ", width));
        for k in of(section) {
            let flag = if k.flag.is_empty() {
                String::new()
            } else {
                format!(", flag {}", k.flag)
            };
            let head = format!("{} ({}{flag}; default: {})", k.name, k.kind, k.default);
            out.push_str(&wrap(&head, "  ", "      ", width));
            out.push_str(&wrap(k.meaning, "      ", "      ", width));
        }
        out.push('\n');
    }
    out
}

/// `text` in lines of at most `width` columns (a longer word stands alone), the first
/// after `first`, the others after `rest`.
fn wrap(text: &str, first: &str, rest: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = String::new();
    let mut indent = first;
    for word in text.split_whitespace() {
        if !line.is_empty() && indent.len() + line.len() + 1 + word.len() > width {
            out.push_str(&format!("{indent}{line}\n"));
            line.clear();
            indent = rest;
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        out.push_str(&format!("{indent}{line}\n"));
    }
    out
}
