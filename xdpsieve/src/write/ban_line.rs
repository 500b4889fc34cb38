//! The event log's line for an automatic ban (see `instance::bans`): JSON
//! `{"event":"ban","time":…,"rule":…,"rule_id":…,"set":…,"key":…,"rate_seen_pps":…,
//! "expires":…,"expires_in_ms":…,"renewed":…}`, or a text line `… BAN KEY rule=… set=…
//! rate=…pps expires=… (in …)`. The evidence for a ban is in the capture: the over-limit
//! records of the limit rule (its id, the `over-limit` mark) before it.

use std::{
    fmt::Write as _,
    time::{Duration, SystemTime},
};

use serde::Serialize;

use super::event_log::{LogFormat, rfc3339};
use crate::{base::text::escape, instance::bans::BanEvent};

#[derive(Serialize)]
struct BanEntry<'a> {
    event: &'static str,
    time: String,
    rule: &'a str,
    rule_id: u32,
    set: &'a str,
    key: &'a str,
    rate_seen_pps: f64,
    expires: String,
    expires_in_ms: u64,
    renewed: bool,
}

/// Appends the line (with its newline) for `ban`, made at `now`, to `out`.
pub fn write_ban(format: LogFormat, ban: &BanEvent, now: SystemTime, out: &mut String) {
    let since = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let expires = rfc3339(since + Duration::from_millis(ban.expires_in_ms));
    match format {
        LogFormat::Json => {
            let entry = BanEntry {
                event: "ban",
                time: rfc3339(since),
                rule: &ban.rule,
                rule_id: ban.rule_id,
                set: &ban.set,
                key: &ban.key,
                rate_seen_pps: ban.rate_seen_pps,
                expires,
                expires_in_ms: ban.expires_in_ms,
                renewed: ban.renewed,
            };
            // Plain strings and numbers: serializing cannot fail.
            if let Ok(text) = serde_json::to_string(&entry) {
                out.push_str(&text);
            }
        }
        LogFormat::Text => {
            let _ = write!(
                out,
                "{} {} {} rule={} set={} rate={}pps expires={expires} (in {} s)",
                rfc3339(since),
                if ban.renewed { "BAN-RENEWED" } else { "BAN" },
                ban.key,
                escape(&ban.rule),
                escape(&ban.set),
                ban.rate_seen_pps,
                ban.expires_in_ms / 1000,
            );
        }
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ban_is_one_json_line_with_key_rule_rate_and_expiry() {
        let ban = BanEvent {
            rule: "dns-flood".into(),
            rule_id: 7,
            set: "banned".into(),
            key: "198.51.100.0/24".into(),
            rate_seen_pps: 1500.0,
            expires_ns: 0,
            expires_in_ms: 600_000,
            renewed: false,
        };
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut line = String::new();
        write_ban(LogFormat::Json, &ban, now, &mut line);
        let v: serde_json::Value = serde_json::from_str(line.trim_end()).expect("JSON");
        assert_eq!(v["event"], "ban");
        assert_eq!(v["key"], "198.51.100.0/24");
        assert_eq!(v["rule"], "dns-flood");
        assert_eq!(v["rule_id"], 7);
        assert_eq!(v["rate_seen_pps"], 1500.0);
        assert_eq!(v["expires_in_ms"], 600_000);
        assert_eq!(v["expires"], "2023-11-14T22:23:20.000000000Z");
        let mut text = String::new();
        write_ban(LogFormat::Text, &ban, now, &mut text);
        assert!(
            text.contains("BAN 198.51.100.0/24 rule=dns-flood set=banned rate=1500pps"),
            "{text}"
        );
    }
}
