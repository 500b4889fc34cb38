//! The event log: one line a packet in every format and over both transports, matching the
//! traffic sent, and a rule's log rate limit suppressing and counting exactly.

use xdpsieve_testkit::child::Firewall;
use xdpsieve_testkit::gate::root_or_skip;
use xdpsieve_testkit::tempdir::TempDir;

use super::*;

/// Log lines of one run, split by verdict.
fn run_with_log(
    net: &VethPair,
    tmp: &TempDir,
    transport: &str,
    format: &str,
    n: u16,
) -> (String, String) {
    let log = tmp.file(&format!("{transport}.{format}.log"));
    let fw = Firewall::start(
        BINARY,
        net,
        &[
            "--drop",
            "udp src port 53",
            "--log",
            "all",
            "--log-format",
            format,
            "--log-file",
            log.to_str().unwrap(),
            "--transport",
            transport,
        ],
    );
    send_dns_and_other(net, n, 0);
    settle();
    let out = fw.stop(libc::SIGINT);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    (
        std::fs::read_to_string(&log).expect("reading the log"),
        stderr,
    )
}

#[test]
fn event_log_matches_the_traffic_for_both_transports() {
    if !root_or_skip() {
        return;
    }
    let tmp = TempDir::new("log");
    let net = VethPair::create("log", None).expect("namespaces");
    let (_c4, _c6) = client_sockets(&net);
    const N: u16 = 20;
    // DNS response: 45 bytes; + UDP 8 + IPv4 20 / IPv6 40 + Ethernet 14.
    let (len4, len6) = (45 + 8 + 20 + 14, 45 + 8 + 40 + 14);
    for transport in ["ringbuf", "perf"] {
        let (log, stderr) = run_with_log(&net, &tmp, transport, "json", N);
        let entries: Vec<serde_json::Value> = log
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        let drops: Vec<&serde_json::Value> =
            entries.iter().filter(|e| e["verdict"] == "DROP").collect();
        assert_eq!(drops.len(), 2 * usize::from(N), "{transport}: {log}");
        for e in &drops {
            assert_eq!(e["interface"], "fw0");
            assert_eq!(e["rule"], "drop udp src port 53");
            assert_eq!(e["rule_id"], 1);
            assert_eq!(e["protocol"], "udp");
            assert_eq!(e["src_port"], 53);
            assert_eq!(e["dst_port"], CLIENT_PORT);
            assert_eq!(e["malformed"], false);
            assert_eq!(e["vlan"], serde_json::Value::Null);
            match e["family"].as_str() {
                Some("ipv4") => {
                    assert_eq!(
                        (e["src"].as_str(), e["dst"].as_str()),
                        (Some("192.0.2.1"), Some("192.0.2.2"))
                    );
                    assert_eq!(e["len"], len4);
                }
                Some("ipv6") => {
                    assert_eq!(
                        (e["src"].as_str(), e["dst"].as_str()),
                        (Some("2001:db8::1"), Some("2001:db8::2"))
                    );
                    assert_eq!(e["len"], len6);
                }
                other => panic!("family {other:?}"),
            }
        }
        let others = entries
            .iter()
            .filter(|e| e["verdict"] == "PASS" && e["src_port"] == 5000)
            .count();
        assert_eq!(others, usize::from(N), "{transport}: {log}");
        // Timestamps are the kernel's, in order per CPU, and close to now.
        let now_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        for e in &entries {
            let t = e["time_ns"].as_u64().unwrap();
            assert!(now_ns - t < 60_000_000_000, "{e}");
        }
        // Every event the program sent is in the log, and the summary says so.
        assert!(
            stderr.contains(&format!("{} events logged", entries.len())),
            "{stderr}"
        );
        assert!(stderr.contains("0 events lost"), "{stderr}");

        let (text, _) = run_with_log(&net, &tmp, transport, "text", N);
        let line4 = format!(
            " fw0 DROP udp 192.0.2.1:53 -> 192.0.2.2:40000 len={len4} rule=drop udp src port 53"
        );
        let line6 = format!(
            " fw0 DROP udp [2001:db8::1]:53 -> [2001:db8::2]:40000 len={len6} rule=drop udp src port 53"
        );
        assert_eq!(
            text.lines().filter(|l| l.ends_with(&line4)).count(),
            usize::from(N),
            "{text}"
        );
        assert_eq!(
            text.lines().filter(|l| l.ends_with(&line6)).count(),
            usize::from(N),
            "{text}"
        );
        assert_eq!(
            text.lines()
                .filter(
                    |l| l.contains(" PASS udp 192.0.2.1:5000 -> 192.0.2.2:40000 ")
                        && l.ends_with("rule=default")
                )
                .count(),
            usize::from(N),
            "{text}"
        );
    }
}

#[test]
fn rate_limit_suppresses_and_counts_exactly() {
    if !root_or_skip() {
        return;
    }
    let tmp = TempDir::new("rate");
    let rules = tmp.file("fw.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nname = \"dns-flood\"\naction = \"drop\"\nprotocol = \"udp\"\nsrc_port = 53\nlog = true\nlog_rate = \"100/s\"\n",
    )
    .unwrap();
    let log = tmp.file("rate.log");
    let capture = tmp.file("rate.pcap");
    let net = VethPair::create("rate", None).expect("namespaces");
    let (_c4, _c6) = client_sockets(&net);
    let fw = Firewall::start(
        BINARY,
        &net,
        &[
            "--rules",
            rules.to_str().unwrap(),
            "--log-file",
            log.to_str().unwrap(),
            "-w",
            capture.to_str().unwrap(),
        ],
    );
    // A bounded flood: 3000 responses as fast as the socket goes.
    const FLOOD: u64 = 3000;
    let started = Instant::now();
    net.peer
        .run(|| {
            let s = UdpSocket::bind(SocketAddr::new(VethPair::PEER_V4.into(), 53))?;
            let msg = dns_response(1);
            for _ in 0..FLOOD {
                s.send_to(&msg, (VethPair::FW_V4, CLIENT_PORT))?;
            }
            Ok::<_, std::io::Error>(())
        })
        .unwrap()
        .unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    settle();
    let out = fw.stop(libc::SIGINT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let events = std::fs::read_to_string(&log).unwrap().lines().count() as u64;
    let s = parse_summary(&stderr);
    assert_eq!(s.dropped, FLOOD, "{stderr}");
    // A burst of 100, then 100 per second (plus slack for the time to stop).
    let allowed = 100.0 + 100.0 * (elapsed + 1.0);
    assert!(
        events >= 100 && (events as f64) <= allowed,
        "{events} events in {elapsed:.2} s: {stderr}"
    );
    // Nothing goes missing without a count: recorded + suppressed = every packet.
    let suppressed: u64 = stderr
        .lines()
        .find_map(|l| l.strip_suffix(" packets not recorded: over their rule's rate limit"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no rate-limit line: {stderr}"));
    assert_eq!(events + suppressed, FLOOD, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "3000 hits, {suppressed} not recorded (rate limit)"
        )),
        "{stderr}"
    );
    // The capture rides the same limiter: captured + lost + suppressed = dropped.
    assert_eq!(s.captured + s.lost + suppressed, FLOOD, "{stderr}");
    assert_eq!(read_pcap(&capture).len() as u64, s.captured);
}

/// A run started without an event log whose reload gives a rule `log = true`. Its events
/// used to go to a ring nothing read: the summary said "0 events logged (20 sent by the
/// program)" and "0 events lost". Now the reload says the run cannot log them, the program
/// counts each with that reason and sends none, and the summary says where they went.
#[test]
fn a_reload_that_turns_logging_on_without_an_event_log_says_so_and_counts_each_event() {
    if !root_or_skip() {
        return;
    }
    const RULE: &str =
        "[[rule]]\nname = \"dns\"\naction = \"drop\"\nprotocol = \"udp\"\nsrc_port = 53\n";
    let tmp = TempDir::new("nolog");
    let rules = tmp.file("fw.toml");
    std::fs::write(&rules, RULE).unwrap();
    let capture = tmp.file("drops.pcap");
    let net = VethPair::create("nolog", None).expect("namespaces");
    let (_c4, _c6) = client_sockets(&net);
    let fw = Firewall::start(
        BINARY,
        &net,
        &[
            "--rules",
            rules.to_str().unwrap(),
            "-w",
            capture.to_str().unwrap(),
        ],
    );
    const N: u16 = 10;
    send_dns_and_other(&net, N, 0);
    std::fs::write(&rules, format!("{RULE}log = true\n")).unwrap();
    let reload = net
        .fw
        .command(BINARY)
        .args(["reload", "-i", VethPair::FW_IF])
        .output()
        .expect("running xdpsieve reload");
    let said = String::from_utf8_lossy(&reload.stdout);
    assert!(reload.status.success(), "{said}");
    assert!(
        said.contains("generation 2 in force")
            && said.contains("note: this run has no event log")
            && said.contains("the events of the rules with log = true (dns) are not sent"),
        "{said}"
    );
    send_dns_and_other(&net, N, 0);
    settle();
    let out = fw.stop(libc::SIGINT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let drops = 4 * u64::from(N);
    let s = parse_summary(&stderr);
    assert_eq!(
        (s.dropped, s.captured, s.lost),
        (drops, drops, 0),
        "{stderr}"
    );
    // The second half's drops: each event counted, none sent, none called logged or lost.
    assert!(
        stderr.contains(&format!(
            "{} events not logged: this run has no event log",
            drops / 2
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("sent by the program"), "{stderr}");
    assert_eq!(read_pcap(&capture).len() as u64, drops);
}
