//! Automatic bans at the socket: a flood from one source over a limit rule with a ban is
//! banned within 100 ms of its first over-limit packet (measured on the kernel's own
//! timestamps, in the event log: the first over-limit record of the limit rule, the first
//! record of the ban set's drop rule), the ban is logged with its key, rule, rate and
//! expiry, is a set entry marked `ban` that survives a reload and a takeover with its
//! time, and ends on time: the source's datagrams reach the socket again.

use std::time::{Duration, Instant};

use xdpsieve_netns::VethPair;
use xdpsieve_testkit::gate::root_or_skip;

use crate::harness::{Flow, Net, PEER, captured_from_before};

/// [`PEER`] as bytes.
const PEER_BYTES: [u8; 4] = [192, 0, 2, 1];

const RULES: &str = r#"
[[set]]
name = "banned"
prefixes = []

[[set]]
name = "friends"
prefixes = ["203.0.113.0/24"]

[[rule]]
name = "drop-banned"
action = "drop"
src = "@banned"
log = true

[[rule]]
name = "flood"
action = "limit"
protocol = "udp"
dst_port = 7100
rate = "100/s"
burst = 50
per = "src"
ban = "8s"
ban_set = "banned"
allow_set = "friends"
log = true
"#;

/// The kernel time (ns since the epoch) of the first event of `rule` for which `also`.
fn first(
    events: &[serde_json::Value],
    rule: &str,
    also: impl Fn(&serde_json::Value) -> bool,
) -> Option<u64> {
    events
        .iter()
        .filter(|e| e["rule"] == rule && also(e))
        .filter_map(|e| e["time_ns"].as_u64())
        .min()
}

#[test]
fn a_flood_is_banned_within_100ms_logged_kept_across_reload_and_takeover_and_released_on_time() {
    if !root_or_skip() {
        return;
    }
    let net = Net::with_rules("autoban", RULES);
    let run = net.start();
    let flow = Flow::start(&net);
    // Wait for the ban's event line.
    let deadline = Instant::now() + Duration::from_secs(5);
    let ban = loop {
        if let Some(ban) = net.events().into_iter().find(|e| e["event"] == "ban") {
            break ban;
        }
        assert!(
            Instant::now() < deadline,
            "no ban logged within 5 s of the flood"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let seen_ban = Instant::now();
    assert_eq!(ban["key"], format!("{PEER}/32"), "{ban}");
    assert_eq!(
        (ban["rule"].clone(), ban["set"].clone()),
        ("flood".into(), "banned".into())
    );
    assert_eq!(ban["expires_in_ms"], 8000, "{ban}");
    assert!(
        ban["rate_seen_pps"].as_f64().unwrap_or(0.0) > 100.0,
        "{ban}"
    );
    assert!(ban["expires"].is_string(), "{ban}");

    // In force within 100 ms of the first over-limit packet, on the kernel's clock.
    std::thread::sleep(Duration::from_millis(200));
    let events = net.events();
    let over = first(&events, "flood", |e| e["over_limit"] == true).expect("over-limit records");
    let banned = first(&events, "drop-banned", |_| true).expect("records of the ban's drops");
    let latency_ms = (banned.saturating_sub(over)) as f64 / 1e6;
    eprintln!("ban in force {latency_ms:.1} ms after the first over-limit packet");
    assert!(
        banned > over && latency_ms < 100.0,
        "ban latency {latency_ms} ms"
    );
    // The evidence: over-limit records of the limit rule before the ban.
    let evidence = events
        .iter()
        .filter(|e| e["rule"] == "flood" && e["over_limit"] == true)
        .filter(|e| e["time_ns"].as_u64().is_some_and(|t| t < banned))
        .count();
    assert!(evidence > 0);
    // And in the capture: every packet the source sent that was dropped before the ban's
    // first drop is there, and those are the limit rule's over-limit packets.
    let capture = net.tmp.file(&format!("drops-{}.pcap", VethPair::FW_IF));
    let captured = captured_from_before(&capture, PEER_BYTES, banned);
    eprintln!("{evidence} over-limit events before the ban, {captured} packets captured");
    assert_eq!(captured, evidence, "the capture holds the evidence");

    let list = net.list("banned");
    assert_eq!(list["entries"][0]["origin"], "ban", "{list}");
    let left = list["entries"][0]["expires_in_ms"]
        .as_u64()
        .expect("time left");
    assert!(left <= 8000, "{list}");

    // A reload, then a takeover after the recorder died: still a ban, with less time.
    let said = net.ok(&["reload", "-i", VethPair::FW_IF]);
    assert!(said.contains("generation 2"), "{said}");
    let list = net.list("banned");
    assert_eq!(list["entries"][0]["origin"], "ban", "after reload: {list}");
    drop(run.signal(libc::SIGKILL));
    let _run = net.start();
    let list = net.list("banned");
    assert_eq!(list["count"], 1, "after takeover: {list}");
    assert_eq!(
        list["entries"][0]["origin"], "ban",
        "after takeover: {list}"
    );
    let kept = list["entries"][0]["expires_in_ms"]
        .as_u64()
        .expect("time left");
    assert!(kept < left, "{list}");

    // Released on time: the source's datagrams reach the socket again about 8 s after
    // the ban (the expiry runs every 100 ms).
    let from = flow.mark();
    let back = flow
        .arrival_after(from, Duration::from_secs(12))
        .expect("datagrams arrive once the ban ends");
    let after = back.duration_since(seen_ban).as_secs_f64();
    eprintln!("datagrams back {after:.2} s after the ban was seen logged (ban 8 s)");
    assert!((7.3..8.8).contains(&after), "{after} s");

    let status = net.status();
    let text = status.to_string();
    assert!(text.contains("\"bans_added\""), "{text}");
}

/// A source in the rule's allow-set goes over the limit and is limited, but never banned;
/// the refusal is counted.
#[test]
fn a_source_in_the_allow_set_is_limited_but_never_banned() {
    if !root_or_skip() {
        return;
    }
    let rules = RULES.replace(
        "prefixes = [\"203.0.113.0/24\"]",
        "prefixes = [\"192.0.2.0/24\"]",
    );
    let net = Net::with_rules("allowban", &rules);
    let _run = net.start();
    let flow = Flow::start(&net);
    // A second of the flood (1000/s against 100/s): over the limit for most of it.
    std::thread::sleep(Duration::from_secs(1));
    let from = flow.mark();
    std::thread::sleep(Duration::from_millis(500));
    let list = net.list("banned");
    assert_eq!(list["count"], 0, "no ban of an allowed source: {list}");
    assert!(
        !net.events().iter().any(|e| e["event"] == "ban"),
        "no ban event"
    );
    // Still limited: about 100 of the 500 or so sent in the half second arrive.
    let arrived = flow.arrived_since(from).len();
    assert!(
        (20..300).contains(&arrived),
        "{arrived} arrived: limited, not banned"
    );
    let status = net.status();
    let skipped = status["counters"]["bans_allow_skipped"]
        .as_u64()
        .unwrap_or(0);
    assert!(skipped > 0, "the allow-set refusals are counted: {status}");
}

/// With `ban_max = 1`, two flooding sources: the first to go over is banned, the second
/// is limited but not banned, and the refusal is counted.
#[test]
fn the_ban_cap_holds_and_what_it_refuses_is_counted() {
    if !root_or_skip() {
        return;
    }
    let rules = RULES.replace(
        "allow_set = \"friends\"",
        "allow_set = \"friends\"\nban_max = 1",
    );
    let net = Net::with_rules("banmax", &rules);
    let second = std::net::Ipv4Addr::new(192, 0, 2, 11);
    net.pair
        .peer
        .ip(&[
            "addr",
            "add",
            &format!("{second}/24"),
            "dev",
            VethPair::PEER_IF,
        ])
        .expect("a second peer address");
    let _run = net.start();
    let _flow = Flow::start(&net);
    // The second source floods for 1.5 s (bounded), at about 1000 datagrams a second.
    net.pair
        .peer
        .run(|| {
            let socket = std::net::UdpSocket::bind((second, 0))?;
            for n in 0..1500u32 {
                socket.send_to(&n.to_be_bytes(), (VethPair::FW_V4, crate::harness::PORT))?;
                std::thread::sleep(Duration::from_millis(1));
            }
            Ok::<_, std::io::Error>(())
        })
        .expect("namespace")
        .expect("the second flood");
    std::thread::sleep(Duration::from_millis(300));
    let list = net.list("banned");
    assert_eq!(list["count"], 1, "one ban at most: {list}");
    let bans = net
        .events()
        .into_iter()
        .filter(|e| e["event"] == "ban")
        .count();
    assert_eq!(bans, 1, "one ban logged");
    let status = net.status();
    let capped = status["counters"]["bans_total_capped"]
        .as_u64()
        .unwrap_or(0);
    assert!(capped > 0, "the refused ban is counted: {status}");
}
