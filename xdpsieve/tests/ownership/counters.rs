//! A rule's counters carry over a takeover and a reload only to the same rule (same name,
//! same match): a rule with the old one's id or name but another match starts at 0, and
//! the old rule's counts are reported once as the previous rules'. The totals carry on
//! whole.

use xdpsieve_testkit::fwnet::{ALLOWED_PORT, DROPPED_PORT, Net, capture_file};
use xdpsieve_testkit::gate::root_or_skip;
use xdpsieve_testkit::tempdir::TempDir;
use xdpsieve_testkit::udp::received;

use crate::BINARY;

/// Hits of rule `id` in a status.
fn hits(status: &serde_json::Value, id: u64) -> u64 {
    status["counters"]["rule_hits"]
        .as_array()
        .expect("rule_hits")
        .iter()
        .find(|pair| pair[0] == id)
        .and_then(|pair| pair[1].as_u64())
        .unwrap_or_else(|| panic!("no rule {id} in {status}"))
}

#[test]
fn a_takeover_carries_a_rules_counters_only_to_the_same_rule() {
    if !root_or_skip() {
        return;
    }
    let net = Net::create(BINARY, "rulecount");
    let (dropped, allowed) = net.sockets();
    let capture = capture_file("rulecount");
    // Rule 1 of the first run drops the one port, rule 1 of the second the other.
    let first = net.start(
        &["--drop", &format!("udp dst port {DROPPED_PORT}")],
        &capture,
    );
    let old_hits = net.send(DROPPED_PORT, 40);
    assert_eq!(received(&dropped), 0);
    assert!(!first.signal(libc::SIGKILL).status.success());
    let second = net.start(
        &["--drop", &format!("udp dst port {ALLOWED_PORT}")],
        &capture,
    );
    let new_hits = net.send(ALLOWED_PORT, 30);
    assert_eq!(received(&allowed), 0, "the second run's rule does not drop");

    let s = net.status_json();
    assert_eq!(
        hits(&s, 1),
        new_hits,
        "rule 1 ({}) counts what another rule dropped: {s}",
        s["rules"][0]["conditions"]
    );
    assert_eq!(s["counters"]["dropped"], old_hits + new_hits, "{s}");
    let out = second.signal(libc::SIGINT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // The old rule's counts are reported once, as the previous rules'.
    let said = stderr
        .lines()
        .find(|l| l.contains("took over the firewall left on fw0"))
        .unwrap_or_else(|| panic!("no takeover line: {stderr}"));
    assert!(
        said.contains("previous rules")
            && said.contains(&format!("udp dst port {DROPPED_PORT}"))
            && said.contains(&format!("{old_hits} hits")),
        "{said}"
    );
    let _ = std::fs::remove_file(capture);
}

/// Rule 1 keeps its name and changes its match; rule 2 stays as it was.
fn rule_file(port: u16) -> String {
    format!(
        r#"
[[rule]]
name = "blocked"
action = "drop"
protocol = "udp"
dst_port = {port}

[[rule]]
name = "kept"
action = "drop"
protocol = "udp"
dst_port = 7003
"#
    )
}

#[test]
fn a_reload_carries_a_rules_counters_only_when_its_match_stays() {
    if !root_or_skip() {
        return;
    }
    let net = Net::create(BINARY, "reloadcount");
    let (dropped, allowed) = net.sockets();
    let capture = capture_file("reloadcount");
    let scratch = TempDir::new("reloadcount");
    let rules = scratch.file("rules.toml");
    std::fs::write(&rules, rule_file(DROPPED_PORT)).expect("writing the rules");
    let run = net.start(&["--rules", &rules.display().to_string()], &capture);
    let old_hits = net.send(DROPPED_PORT, 25);
    let kept_hits = net.send(7003, 5);
    assert_eq!(received(&dropped), 0);

    std::fs::write(&rules, rule_file(ALLOWED_PORT)).expect("writing the rules");
    let out = net.xdpsieve(&["reload", "-i", "fw0"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("previous rules")
            && said.contains("\"blocked\"")
            && said.contains(&format!("{old_hits} hits")),
        "{said}"
    );
    let s = net.status_json();
    assert_eq!(hits(&s, 1), 0, "\"blocked\" kept another match's hits: {s}");
    assert_eq!(hits(&s, 2), kept_hits, "\"kept\" lost its hits: {s}");
    let new_hits = net.send(ALLOWED_PORT, 10);
    assert_eq!(received(&allowed), 0);
    let s = net.status_json();
    assert_eq!(hits(&s, 1), new_hits, "{s}");
    assert_eq!(
        s["counters"]["dropped"],
        old_hits + kept_hits + new_hits,
        "{s}"
    );
    assert!(run.signal(libc::SIGINT).status.success());
    let _ = std::fs::remove_file(capture);
    let _ = std::fs::remove_file(rules);
}
