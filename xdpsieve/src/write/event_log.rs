//! The event log's lines: each of the program's per-packet events (decoded by
//! [`crate::read::event`]) written as a text line
//! (`DROP udp 198.51.100.53:53 -> 192.0.2.2:40000 len=129 rule=block-dns`) or a JSON line,
//! its rule named from the generation that judged it.

use std::{
    collections::HashMap,
    fmt::Write as _,
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::Duration,
};

use xdpsieve_common::{Event, family, record_flags};

use crate::{
    configure::rules::{Action, Protocol, RuleSet, RuleSpec},
    read::record::{Verdict, WallClock},
    write::generations::Generations,
};

/// How the log is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// An event with its names resolved, ready to print.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LogEntry {
    /// RFC 3339 UTC with nanoseconds.
    pub time: String,
    /// Nanoseconds since the Unix epoch.
    pub time_ns: u64,
    pub interface: String,
    pub verdict: &'static str,
    pub rule_id: u32,
    pub rule: String,
    /// The rule generation that judged the packet (one more per reload); 0 when the
    /// record's generation is no longer known.
    pub generation: u32,
    pub vlan: Option<u16>,
    /// `ipv4`, `ipv6`, or `none` for frames without a readable IP header.
    pub family: &'static str,
    pub src: Option<String>,
    pub dst: Option<String>,
    pub protocol: String,
    pub src_port: Option<u16>,
    pub dst_port: Option<u16>,
    pub icmp_type: Option<u8>,
    pub icmp_code: Option<u8>,
    pub tcp_flags: Option<String>,
    pub len: u32,
    pub malformed: bool,
    /// The program could not reach the L4 header the rules need (see `--unclassifiable`).
    pub unclassifiable: bool,
    /// The rule in monitor mode that marked the packet, and what it would have done
    /// (`drop` or `pass`); null when none did.
    pub monitor_rule: Option<String>,
    pub monitor_rule_id: Option<u32>,
    pub would: Option<&'static str>,
    /// The packet was over a limit rule's budget (dropped by `rule`, or marked by
    /// `monitor_rule`).
    pub over_limit: bool,
}

/// Turns events into log lines, resolving rule and interface names.
pub struct EventFormatter {
    format: LogFormat,
    clock: WallClock,
    /// Rule names per rule generation (see [`Generations`]).
    rule_names: Generations<(String, &'static str)>,
    interface_names: HashMap<u32, String>,
}

impl EventFormatter {
    /// A formatter for the rules of generation 1 (see [`EventFormatter::add_generation`]).
    pub fn new(format: LogFormat, rules: &RuleSet, interfaces: &[(u32, String)]) -> Self {
        EventFormatter {
            format,
            clock: WallClock::new(),
            rule_names: Generations::new(1, rules, name_and_would, ("default".into(), "")),
            interface_names: interfaces.iter().cloned().collect(),
        }
    }

    /// Names the rules of `generation` (a reload, or the first rules of a takeover), keeping
    /// the previous generations' for the records they judged that are still in the rings.
    pub fn add_generation(&mut self, generation: u32, rules: &RuleSet) {
        self.rule_names
            .add(generation, rules, name_and_would, ("default".into(), ""));
    }

    /// See [`WallClock::refresh`].
    /// The log's format (for lines that are not packet events, such as bans).
    pub fn format(&self) -> LogFormat {
        self.format
    }

    pub fn refresh_clock(&mut self) {
        self.clock.refresh();
    }

    pub fn entry(&self, event: &Event) -> LogEntry {
        let time = self.clock.to_unix(event.timestamp_ns);
        let addr = |words: &[u32; 4]| -> Option<String> {
            (event.family != family::NONE).then(|| address(event.family, words).to_string())
        };
        let has_ports = event.flags & record_flags::HAS_PORTS != 0;
        let has_icmp = event.flags & record_flags::HAS_ICMP != 0;
        let protocol = Protocol(event.protocol);
        LogEntry {
            time: rfc3339(time),
            time_ns: time.as_nanos() as u64,
            interface: self
                .interface_names
                .get(&event.ifindex)
                .cloned()
                .unwrap_or_else(|| format!("ifindex{}", event.ifindex)),
            verdict: Verdict::from_raw(event.verdict).name(),
            rule_id: event.rule_id,
            // Frames without IP are passed before any rule, the default included, looks.
            rule: if event.family == family::NONE {
                "none".into()
            } else {
                self.rule_names
                    .get(event.generation, event.rule_id)
                    .map_or_else(
                        || format!("rule-{}", event.rule_id),
                        |((n, _), _)| n.clone(),
                    )
            },
            generation: self.rule_names.generation(event.generation).unwrap_or(0),
            vlan: (event.flags & record_flags::HAS_VLAN != 0).then_some(event.vlan_id),
            family: match event.family {
                family::IPV4 => "ipv4",
                family::IPV6 => "ipv6",
                _ => "none",
            },
            src: addr(&event.src),
            dst: addr(&event.dst),
            protocol: if event.family == family::NONE {
                "non-ip".into()
            } else {
                protocol
                    .name()
                    .map_or_else(|| event.protocol.to_string(), str::to_string)
            },
            src_port: has_ports.then_some(event.src_port),
            dst_port: has_ports.then_some(event.dst_port),
            icmp_type: has_icmp.then_some(event.src_port as u8),
            icmp_code: has_icmp.then_some(event.dst_port as u8),
            tcp_flags: (has_ports && protocol == Protocol::TCP).then(|| tcp_flags(event.tcp_flags)),
            len: event.frame_len,
            malformed: event.flags & record_flags::MALFORMED != 0,
            unclassifiable: event.flags & record_flags::UNCLASSIFIABLE != 0,
            monitor_rule: self.monitor(event).map(|((n, _), _)| n.clone()),
            monitor_rule_id: self.monitor(event).map(|_| event.shadow_rule_id),
            would: self.monitor(event).map(|((_, w), _)| *w),
            over_limit: event.flags & record_flags::OVER_LIMIT != 0,
        }
    }

    /// Appends one line (with its newline) for `event` to `out`.
    pub fn write_line(&self, event: &Event, out: &mut String) {
        match self.format {
            LogFormat::Json => {
                // Serializing plain strings and numbers cannot fail.
                let _ = serde_json::to_writer(StringWriter(out), &self.entry(event));
            }
            LogFormat::Text => self.write_text(event, out),
        }
        out.push('\n');
    }

    /// The text line, written straight into `out`: this runs once per event under a flood,
    /// so it allocates nothing.
    fn write_text(&self, event: &Event, out: &mut String) {
        write_rfc3339(out, self.clock.to_unix(event.timestamp_ns));
        out.push(' ');
        match self.interface_names.get(&event.ifindex) {
            Some(name) => out.push_str(&crate::base::text::escape(name)),
            None => {
                let _ = write!(out, "ifindex{}", event.ifindex);
            }
        }
        out.push(' ');
        out.push_str(Verdict::from_raw(event.verdict).name());
        out.push(' ');
        let has_ports = event.flags & record_flags::HAS_PORTS != 0;
        match event.family {
            family::IPV4 | family::IPV6 => {
                match Protocol(event.protocol).name() {
                    Some(name) => out.push_str(name),
                    None => {
                        let _ = write!(out, "{}", event.protocol);
                    }
                }
                let v6 = event.family == family::IPV6;
                for (words, port, sep) in [
                    (&event.src, event.src_port, " "),
                    (&event.dst, event.dst_port, " -> "),
                ] {
                    out.push_str(sep);
                    let addr = address(event.family, words);
                    let _ = match (has_ports, v6) {
                        (true, true) => write!(out, "[{addr}]:{port}"),
                        (true, false) => write!(out, "{addr}:{port}"),
                        (false, _) => write!(out, "{addr}"),
                    };
                }
            }
            _ => out.push_str("non-ip"),
        }
        if event.flags & record_flags::HAS_ICMP != 0 {
            let _ = write!(out, " type={} code={}", event.src_port, event.dst_port);
        }
        if has_ports && Protocol(event.protocol) == Protocol::TCP {
            out.push_str(" flags=[");
            push_tcp_flags(out, event.tcp_flags);
            out.push(']');
        }
        if event.flags & record_flags::HAS_VLAN != 0 {
            let _ = write!(out, " vlan={}", event.vlan_id);
        }
        let _ = write!(out, " len={} rule=", event.frame_len);
        if event.family == family::NONE {
            out.push_str("none");
        } else {
            match self.rule_names.get(event.generation, event.rule_id) {
                Some(((name, _), _)) => out.push_str(&crate::base::text::escape(name)),
                None => {
                    let _ = write!(out, "rule-{}", event.rule_id);
                }
            }
        }
        if let Some(((name, would), _)) = self.monitor(event) {
            let _ = write!(out, " would-{would}={}", crate::base::text::escape(name));
        }
        if event.flags & record_flags::OVER_LIMIT != 0 {
            out.push_str(" over-limit");
        }
        if event.flags & record_flags::MALFORMED != 0 {
            out.push_str(" malformed");
        }
        if event.flags & record_flags::UNCLASSIFIABLE != 0 {
            out.push_str(" unclassifiable");
        }
    }
}

impl EventFormatter {
    /// The monitor rule that marked the event's packet, with what it would have done.
    fn monitor(&self, event: &Event) -> Option<(&(String, &'static str), u32)> {
        if event.flags & record_flags::MONITOR == 0 || event.shadow_rule_id == 0 {
            return None;
        }
        self.rule_names.get(event.generation, event.shadow_rule_id)
    }
}

/// A rule's name, and what it would do to a packet it marks in monitor mode.
fn name_and_would(rule: &RuleSpec) -> (String, &'static str) {
    let would = match rule.action {
        Action::Drop => "drop",
        Action::Pass => "pass",
    };
    (rule.name.clone(), would)
}

fn address(family: u8, words: &[u32; 4]) -> IpAddr {
    if family == family::IPV4 {
        return IpAddr::V4(Ipv4Addr::from(words[0].to_ne_bytes()));
    }
    let mut bytes = [0u8; 16];
    for (i, w) in words.iter().enumerate() {
        bytes[4 * i..4 * i + 4].copy_from_slice(&w.to_ne_bytes());
    }
    IpAddr::V6(Ipv6Addr::from(bytes))
}

fn push_tcp_flags(out: &mut String, bits: u8) {
    const LETTERS: [(u8, char); 8] = [
        (0x02, 'S'),
        (0x01, 'F'),
        (0x04, 'R'),
        (0x08, 'P'),
        (0x20, 'U'),
        (0x40, 'E'),
        (0x80, 'W'),
        (0x10, '.'),
    ];
    if bits == 0 {
        out.push_str("none");
    }
    for (bit, c) in LETTERS {
        if bits & bit != 0 {
            out.push(c);
        }
    }
}

/// tcpdump's flag letters: S F R P U E W, and `.` for ACK.
fn tcp_flags(bits: u8) -> String {
    let mut s = String::new();
    push_tcp_flags(&mut s, bits);
    s
}

/// `2026-11-23T11:48:29.123456789Z`.
pub(crate) fn rfc3339(since_epoch: Duration) -> String {
    let mut s = String::with_capacity(30);
    write_rfc3339(&mut s, since_epoch);
    s
}

fn write_rfc3339(out: &mut String, since_epoch: Duration) {
    let secs = since_epoch.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since_epoch.subsec_nanos()
    );
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

struct StringWriter<'a>(&'a mut String);

impl io::Write for StringWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.push_str(&String::from_utf8_lossy(buf));
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> Event {
        crate::read::event::sample_event()
    }

    fn formatter(format: LogFormat) -> EventFormatter {
        let mut rules = RuleSet::default();
        rules
            .push_expression(Action::Drop, "udp src port 53")
            .unwrap();
        rules.rules[0].name = "block-dns".into();
        let mut f = EventFormatter::new(format, &rules, &[(3, "fw0".to_string())]);
        f.clock = WallClock::with_offset_ns(1_795_433_532_000_000_000);
        f
    }

    #[test]
    fn text_line() {
        let mut out = String::new();
        formatter(LogFormat::Text).write_line(&event(), &mut out);
        assert_eq!(
            out,
            "2026-11-23T11:32:12.000000005Z fw0 DROP udp 198.51.100.53:53 -> 192.0.2.2:40000 len=129 rule=block-dns\n"
        );
    }

    #[test]
    fn text_line_ipv6_tcp_vlan_icmp() {
        let f = formatter(LogFormat::Text);
        let mut e = event();
        e.family = family::IPV6;
        e.src = [
            u32::from_ne_bytes([0x20, 0x01, 0x0d, 0xb8]),
            0,
            0,
            u32::from_ne_bytes([0, 0, 0, 1]),
        ];
        e.protocol = 6;
        e.tcp_flags = 0x12;
        e.flags |= record_flags::HAS_VLAN | record_flags::MALFORMED;
        e.vlan_id = 42;
        e.rule_id = 9;
        let mut out = String::new();
        f.write_line(&e, &mut out);
        assert!(out.contains(" DROP tcp [2001:db8::1]:53 -> [c000:202::]:40000 flags=[S.] vlan=42 len=129 rule=rule-9 malformed"), "{out}");

        // An unclassifiable packet says so, in text and in JSON.
        e.flags |= record_flags::UNCLASSIFIABLE;
        out.clear();
        f.write_line(&e, &mut out);
        assert!(
            out.trim_end().ends_with(" malformed unclassifiable"),
            "{out}"
        );
        out.clear();
        formatter(LogFormat::Json).write_line(&e, &mut out);
        assert!(out.contains(r#""unclassifiable":true"#), "{out}");

        let mut icmp = event();
        icmp.protocol = 1;
        icmp.flags = record_flags::HAS_ICMP;
        icmp.src_port = 8;
        icmp.dst_port = 0;
        icmp.verdict = 2;
        icmp.rule_id = 0;
        let mut out = String::new();
        f.write_line(&icmp, &mut out);
        assert!(
            out.contains(
                " PASS icmp 198.51.100.53 -> 192.0.2.2 type=8 code=0 len=129 rule=default"
            ),
            "{out}"
        );
    }

    #[test]
    fn non_ip_line() {
        let mut e = event();
        e.family = family::NONE;
        e.flags = 0;
        e.verdict = 2;
        e.rule_id = 0;
        let mut out = String::new();
        formatter(LogFormat::Text).write_line(&e, &mut out);
        assert!(
            out.ends_with(" fw0 PASS non-ip len=129 rule=none\n"),
            "{out}"
        );
    }

    #[test]
    fn json_line() {
        let mut out = String::new();
        formatter(LogFormat::Json).write_line(&event(), &mut out);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["verdict"], "DROP");
        assert_eq!(v["src"], "198.51.100.53");
        assert_eq!(v["src_port"], 53);
        assert_eq!(v["rule"], "block-dns");
        assert_eq!(v["interface"], "fw0");
        assert_eq!(v["vlan"], serde_json::Value::Null);
        assert_eq!(v["family"], "ipv4");
        assert_eq!(v["time_ns"], 1_795_433_532_000_000_005u64);
    }

    #[test]
    fn dates() {
        assert_eq!(
            rfc3339(Duration::from_secs(0)),
            "1970-01-01T00:00:00.000000000Z"
        );
        assert_eq!(
            rfc3339(Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000000000Z"
        );
        assert_eq!(tcp_flags(0x18), "P.");
    }
}
