//! Seeing a running instance from outside: `xdpsieve status` from a second process while
//! traffic flows, a killed instance shown as left behind and taken over, and the metrics
//! endpoint scraped over loopback with the periodic stats lines.

use xdpsieve_testkit::child::{Firewall, xdp_attached};
use xdpsieve_testkit::gate::root_or_skip;
use xdpsieve_testkit::tool::tool_with;

use super::*;

/// Runs `xdpsieve status ARGS` inside the firewall's namespace, as a second process.
fn status_in(net: &VethPair, args: &[&str]) -> String {
    let mut status = net.fw.command(BINARY);
    status.arg("status");
    tool_with(status, "xdpsieve status", args)
}

#[test]
fn status_from_another_process_while_traffic_flows() {
    if !root_or_skip() {
        return;
    }
    let net = VethPair::create("status", None).expect("namespaces");
    let (_c4, _c6) = client_sockets(&net);
    let fw = Firewall::start(
        BINARY,
        &net,
        &["--drop", "udp src port 53", "--log-rate", "10/s"],
    );
    send_dns_and_other(&net, 10, 0);
    settle();
    let text = status_in(&net, &[]);
    assert!(
        text.contains(&format!(
            "fw0: xdpsieve {} pid {}",
            env!("CARGO_PKG_VERSION"),
            fw.pid()
        )),
        "{text}"
    );
    assert!(
        text.contains("on fw0 (native), transport ringbuf"),
        "{text}"
    );
    assert!(text.contains("20 hits"), "{text}");
    let json: serde_json::Value =
        serde_json::from_str(&status_in(&net, &["-i", "fw0", "--json"])).unwrap();
    let s = &json[0];
    assert_eq!(s["live"], true);
    assert_eq!(s["pid"], fw.pid());
    assert_eq!(s["interfaces"][0]["mode"], "native");
    assert_eq!(s["rules"][0]["name"], "drop udp src port 53");
    assert_eq!(s["rules"][0]["rate"], "10/s");
    assert_eq!(s["counters"]["dropped"], 20);
    assert_eq!(s["counters"]["rule_hits"][1], serde_json::json!([1, 20]));

    // More traffic: the running instance keeps counting, undisturbed by the reader.
    send_dns_and_other(&net, 5, 0);
    settle();
    let json: serde_json::Value = serde_json::from_str(&status_in(&net, &["--json"])).unwrap();
    assert_eq!(json[0]["counters"]["dropped"], 30);
    let out = fw.stop(libc::SIGINT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(parse_summary(&stderr).dropped == 30, "{stderr}");
    // Pins are removed on exit.
    assert!(status_in(&net, &[]).contains("no xdpsieve is running"));
}

#[test]
fn a_killed_instance_is_shown_as_left_behind_and_taken_over() {
    if !root_or_skip() {
        return;
    }
    // Before fail-static, a killed instance's pins were stale and the next start cleaned
    // them. Now its firewall stays in force: status says so (with its counters) and the
    // next start takes it over.
    let net = VethPair::create("stale", None).expect("namespaces");
    let fw = Firewall::start(BINARY, &net, &["--drop", "udp src port 53"]);
    let pid = fw.pid();
    let out = fw.stop(libc::SIGKILL);
    assert!(!out.status.success());
    let text = status_in(&net, &[]);
    assert!(
        text.contains(&format!(
            "fw0: firewall in force, running without a recorder (pid {pid} died)"
        )),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_str(&status_in(&net, &["--json"])).unwrap();
    assert_eq!(json[0]["live"], false);
    assert_eq!(json[0]["in_force"], true);
    assert!(json[0]["counters"].is_object(), "{json}");
    // The next start takes it over and says so.
    let fw = Firewall::start(BINARY, &net, &["--drop", "udp src port 53"]);
    let out = fw.stop(libc::SIGINT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("took over the firewall left on fw0 by pid {pid}")),
        "{stderr}"
    );
    assert!(status_in(&net, &[]).contains("no xdpsieve is running"));
    assert!(!xdp_attached(&net), "program left attached after SIGINT");
}

#[test]
fn metrics_scraped_over_loopback_and_stats_lines() {
    if !root_or_skip() {
        return;
    }
    let net = VethPair::create("metrics", None).expect("namespaces");
    let (_c4, _c6) = client_sockets(&net);
    let fw = Firewall::start(
        BINARY,
        &net,
        &[
            "--drop",
            "udp src port 53",
            "--metrics",
            "127.0.0.1:9470",
            "--stats-interval",
            "0.2",
        ],
    );
    send_dns_and_other(&net, 10, 0);
    settle();
    // A real HTTP client, in the firewall's namespace (the listener lives there).
    let out = net
        .fw
        .command("curl")
        .args([
            "-sS",
            "--max-time",
            "10",
            "-D",
            "-",
            "http://127.0.0.1:9470/metrics",
        ])
        .output()
        .expect("running curl (cargo xtask setup installs it)");
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(body.contains("application/openmetrics-text"), "{body}");
    assert!(
        body.contains("xdpsieve_packets_total{verdict=\"drop\"} 20"),
        "{body}"
    );
    assert!(
        body.contains("xdpsieve_rule_hits_total{rule_id=\"1\",rule=\"drop udp src port 53\",action=\"drop\"} 20"),
        "{body}"
    );
    assert!(
        body.contains("xdpsieve_interface_packets_total{interface=\"fw0\",verdict=\"drop\"} 20"),
        "{body}"
    );
    assert!(
        body.contains("xdpsieve_records_lost_total{stream=\"capture\"} 0"),
        "{body}"
    );
    assert!(
        body.contains("xdpsieve_rate_limited_packets_total 0"),
        "{body}"
    );
    assert!(body.trim_end().ends_with("# EOF"), "{body}");
    let out = fw.stop(libc::SIGINT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("metrics at http://127.0.0.1:9470/metrics"),
        "{stderr}"
    );
    // The live status line appeared while traffic flowed.
    assert!(
        stderr.lines().any(|l| l.starts_with("xdpsieve: ")
            && l.contains(" pkt/s (")
            && l.contains("rate-limited 0")),
        "{stderr}"
    );
}
