//! Limit and monitor rules at the socket behind the firewall.
//!
//! - A per-source limit (100/s, burst 100) against a sender at 1000 pps for 3 s delivers
//!   the burst plus the rate over the time the datagrams took to arrive, and every
//!   datagram not delivered is counted over the limit; a second source at 50 pps has its
//!   own bucket and is never limited.
//! - `per src/24` puts two sources of one /24 in one bucket.
//! - 65,536 spoofed IPv6 sources: a per-source limit counts each new one and its table
//!   keeps its size; a `per rule` limit lets exactly its burst through.
//! - A monitor rule passes every datagram and marks, in the pcapng, exactly the datagrams
//!   its enforcing twin keeps from the socket on the same traffic.

use std::{
    collections::BTreeSet,
    net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket},
    sync::atomic::{AtomicBool, Ordering},
};

use xdpsieve_testkit::child::Firewall;
use xdpsieve_testkit::gate::{kernel_found, root_or_skip};
use xdpsieve_testkit::tempdir::TempDir;
use xdpsieve_testkit::tool::{tool, tool_with};

use super::*;

/// Two more peer addresses: one in the same /24 as the peer's, one in another.
const SECOND_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);

fn add_peer_address(net: &VethPair, addr: Ipv4Addr) {
    net.peer
        .ip(&[
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            VethPair::PEER_IF,
        ])
        .expect("adding a peer address");
}

/// Sends `count` numbered datagrams from `src` to the firewall's `port` at `pps`, paced by
/// deadlines; returns the time from the first send to the last.
fn paced(net: &VethPair, src: Ipv4Addr, port: u16, count: u32, pps: u32) -> Duration {
    net.peer
        .run(|| {
            let socket = UdpSocket::bind(SocketAddr::new(src.into(), 0))?;
            let to = SocketAddr::new(VethPair::FW_V4.into(), port);
            let start = Instant::now();
            let gap = Duration::from_secs(1) / pps;
            for n in 0..count {
                let due = start + gap * n;
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                socket.send_to(&n.to_be_bytes(), to)?;
            }
            Ok::<_, std::io::Error>(start.elapsed())
        })
        .expect("entering namespace")
        .expect("sending datagrams")
}

/// Receives on the firewall's `port` until `done`; returns the datagram numbers.
fn receive(net: &VethPair, port: u16, done: &AtomicBool) -> Vec<u32> {
    net.fw
        .run(|| {
            let socket = UdpSocket::bind(SocketAddr::new(VethPair::FW_V4.into(), port))?;
            socket.set_read_timeout(Some(Duration::from_millis(50)))?;
            let mut got = Vec::new();
            let mut buf = [0u8; 64];
            let mut quiet_after_done = 0;
            while quiet_after_done < 4 {
                match socket.recv(&mut buf) {
                    Ok(n) if n >= 4 => {
                        got.push(u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]));
                    }
                    Ok(_) => {}
                    Err(_) if done.load(Ordering::Relaxed) => quiet_after_done += 1,
                    Err(_) => {}
                }
            }
            Ok::<_, std::io::Error>(got)
        })
        .expect("entering namespace")
        .expect("receiving datagrams")
}

/// `status --json`'s per-rule column `key` for rule `id`.
fn rule_count(net: &VethPair, key: &str, id: u32) -> u64 {
    let mut status = net.fw.command(BINARY);
    status.arg("status");
    let json: serde_json::Value =
        serde_json::from_str(&tool_with(status, "xdpsieve status", &["--json"])).unwrap();
    json[0]["counters"][key]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r[0] == id))
        .and_then(|r| r[1].as_u64())
        .unwrap_or_else(|| panic!("no {key} for rule {id}: {json}"))
}

#[test]
fn a_per_source_limit_delivers_its_burst_and_its_rate_and_counts_the_rest() {
    if !root_or_skip() {
        return;
    }
    let net = VethPair::create("limit", None).expect("namespaces");
    add_peer_address(&net, SECOND_V4);
    let dir = TempDir::new("limit");
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nname = \"flood\"\naction = \"limit\"\nprotocol = \"udp\"\n\
         dst_port = \"5300-5301\"\nrate = \"100/s\"\nburst = 100\nper = \"src\"\n",
    )
    .unwrap();
    // Control: without the firewall, the paced flood reaches the socket whole, so below
    // every datagram missing is the limit's doing (and is counted).
    let control_done = AtomicBool::new(false);
    let control = std::thread::scope(|s| {
        let receiver = s.spawn(|| receive(&net, 5300, &control_done));
        std::thread::sleep(Duration::from_millis(100));
        paced(&net, VethPair::PEER_V4, 5300, 3000, 1000);
        settle();
        control_done.store(true, Ordering::Relaxed);
        receiver.join().expect("receiver")
    });
    kernel_found(format_args!(
        "without a firewall, {} of 3000 paced datagrams reached the socket",
        control.len()
    ));
    assert_eq!(
        control.len(),
        3000,
        "control: the veth delivers the whole flood"
    );
    let fw = Firewall::start(BINARY, &net, &["--rules", rules.to_str().unwrap()]);
    let done = AtomicBool::new(false);
    let (flood, flood_span, calm, calm_span) = std::thread::scope(|s| {
        let flood = s.spawn(|| receive(&net, 5300, &done));
        let calm = s.spawn(|| receive(&net, 5301, &done));
        std::thread::sleep(Duration::from_millis(100));
        let sender = s.spawn(|| paced(&net, SECOND_V4, 5301, 150, 50));
        let flood_span = paced(&net, VethPair::PEER_V4, 5300, 3000, 1000);
        let calm_span = sender.join().expect("calm sender");
        settle();
        done.store(true, Ordering::Relaxed);
        (
            flood.join().expect("receiver"),
            flood_span,
            calm.join().expect("receiver"),
            calm_span,
        )
    });
    let over = rule_count(&net, "rule_over_limit", 1);
    drop(fw);
    // The bucket holds 100 at once and refills 1 per 10 ms while the flood lasts.
    let expected = 100.0 + 100.0 * flood_span.as_secs_f64();
    let delivered = flood.len() as f64;
    println!(
        "flood: {} of 3000 delivered over {flood_span:?} (expected {expected:.0}), {over} over \
         the limit; calm source: {} of 150 over {calm_span:?}",
        flood.len(),
        calm.len()
    );
    assert!(
        (delivered - expected).abs() <= expected * 0.03 + 3.0,
        "{delivered} delivered, expected {expected:.0} within 3% + 3"
    );
    assert_eq!(
        flood.len() as u64 + over,
        3000,
        "every datagram delivered or counted over"
    );
    assert_eq!(calm.len(), 150, "the second source has its own budget");
    // The ones delivered are the first 100 and then spread evenly: never a late burst.
    assert!(
        flood.iter().take(100).copied().eq(0..100),
        "the burst is the first 100"
    );
}

#[test]
fn a_limit_per_source_prefix_shares_one_bucket_across_the_prefix() {
    if !root_or_skip() {
        return;
    }
    let net = VethPair::create("limit24", None).expect("namespaces");
    add_peer_address(&net, SECOND_V4);
    let fw = Firewall::start(
        BINARY,
        &net,
        &["--drop", "udp dst port 5300 limit 1/h burst 40 per src/24"],
    );
    let done = AtomicBool::new(false);
    let got = std::thread::scope(|s| {
        let receiver = s.spawn(|| receive(&net, 5300, &done));
        std::thread::sleep(Duration::from_millis(100));
        paced(&net, VethPair::PEER_V4, 5300, 30, 1000);
        paced(&net, SECOND_V4, 5300, 30, 1000);
        settle();
        done.store(true, Ordering::Relaxed);
        receiver.join().expect("receiver")
    });
    drop(fw);
    assert_eq!(
        got.len(),
        40,
        "two sources of one /24 share its 40: {got:?}"
    );
}

/// Sends one datagram from each source port `40000 + n` for `n < count` to `port`.
fn from_many_ports(net: &VethPair, port: u16, count: u16) {
    net.peer
        .run(|| {
            let to = SocketAddr::new(VethPair::FW_V4.into(), port);
            for n in 0..count {
                let socket = UdpSocket::bind(SocketAddr::new(VethPair::PEER_V4.into(), 40000 + n))?;
                socket.send_to(&u32::from(n).to_be_bytes(), to)?;
                std::thread::sleep(Duration::from_millis(1));
            }
            Ok::<_, std::io::Error>(())
        })
        .expect("entering namespace")
        .expect("sending datagrams");
}

/// One run over the same traffic: the datagram numbers delivered, and those the capture
/// marks with a would-drop comment.
fn twin_run(mode: &str) -> (BTreeSet<u32>, BTreeSet<u32>) {
    let tag = if mode.is_empty() {
        "twinenf"
    } else {
        "twinmon"
    };
    let net = VethPair::create(tag, None).expect("namespaces");
    let dir = TempDir::new("twin");
    let capture = dir.path().join("twin.pcapng");
    let rule = format!("udp dst port 5400 and src portrange 40010-40029{mode}");
    let fw = Firewall::start(
        BINARY,
        &net,
        &[
            "--drop",
            &rule,
            "--format",
            "pcapng",
            "-w",
            capture.to_str().unwrap(),
        ],
    );
    let done = AtomicBool::new(false);
    let delivered = std::thread::scope(|s| {
        let receiver = s.spawn(|| receive(&net, 5400, &done));
        std::thread::sleep(Duration::from_millis(100));
        from_many_ports(&net, 5400, 50);
        settle();
        done.store(true, Ordering::Relaxed);
        receiver.join().expect("receiver")
    });
    fw.stop(libc::SIGTERM);
    let text = tool(
        "tshark",
        &[
            "-r",
            capture.to_str().unwrap(),
            "-T",
            "fields",
            "-E",
            "separator=|",
            "-e",
            "udp.srcport",
            "-e",
            "frame.comment",
        ],
    );
    let marked = text
        .lines()
        .filter(|l| l.contains(" would-drop=drop udp dst port 5400"))
        .filter_map(|l| l.split('|').next()?.parse::<u32>().ok())
        .map(|port| port - 40000)
        .collect();
    (delivered.into_iter().collect(), marked)
}

#[test]
fn a_monitor_rule_marks_in_the_capture_exactly_what_its_enforcing_twin_keeps_out() {
    if !root_or_skip() {
        return;
    }
    let (monitor_delivered, marked) = twin_run(" monitor");
    let (enforce_delivered, _) = twin_run("");
    let all: BTreeSet<u32> = (0..50).collect();
    assert_eq!(monitor_delivered, all, "monitor mode drops nothing");
    let kept_out: BTreeSet<u32> = all.difference(&enforce_delivered).copied().collect();
    assert_eq!(
        kept_out,
        (10..30).collect(),
        "the enforcing twin drops its matches"
    );
    assert_eq!(
        marked, kept_out,
        "the monitor marks exactly what its twin keeps out"
    );
}

/// An Ethernet frame to `dst_mac` holding an IPv6 UDP datagram with a valid checksum (the
/// stack drops IPv6 UDP without one), so it reaches the socket when the firewall passes it.
fn udp6(dst_mac: [u8; 6], src: Ipv6Addr, dst: Ipv6Addr, dport: u16, payload: &[u8]) -> Vec<u8> {
    let len = 8 + payload.len();
    let mut udp = Vec::with_capacity(len);
    udp.extend(40000u16.to_be_bytes());
    udp.extend(dport.to_be_bytes());
    udp.extend((len as u16).to_be_bytes());
    udp.extend([0, 0]);
    udp.extend(payload);
    let words = |bytes: &[u8]| -> u32 {
        bytes
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
            .sum()
    };
    let mut sum = words(&src.octets())
        + words(&dst.octets())
        + words(&(len as u32).to_be_bytes())
        + words(&[0, 0, 0, 17])
        + words(&udp);
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let check = match !(sum as u16) {
        0 => 0xffff,
        c => c,
    };
    udp[6..8].copy_from_slice(&check.to_be_bytes());
    let mut frame = Vec::with_capacity(54 + payload.len());
    frame.extend(dst_mac);
    frame.extend([0x02, 0, 0x5e, 0, 0x53, 0x01]);
    frame.extend(0x86ddu16.to_be_bytes());
    frame.extend([0x60, 0, 0, 0]);
    frame.extend((len as u16).to_be_bytes());
    frame.extend([17, 64]);
    frame.extend(src.octets());
    frame.extend(dst.octets());
    frame.extend(udp);
    frame
}

/// A sample of the Prometheus text: the value of the series starting `series`.
fn metric(body: &str, series: &str) -> u64 {
    body.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no series {series}:\n{body}"))
}

/// The kernel memory (memlock) of the process's LRU hash maps of `max_entries` entries.
fn lru_memlock(pid: u32, max_entries: u32) -> Vec<u64> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fdinfo")).expect("fdinfo") {
        let Ok(text) = std::fs::read_to_string(entry.expect("fdinfo entry").path()) else {
            continue;
        };
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse::<u64>().ok())
        };
        // BPF_MAP_TYPE_LRU_HASH is 9.
        if field("map_type:") == Some(9) && field("max_entries:") == Some(u64::from(max_entries)) {
            found.extend(field("memlock:"));
        }
    }
    found
}

/// 65,536 datagrams, each from its own spoofed source (2001:db8:1::/48): a per-source
/// limit that tracks at most 1,024 keys counts every new source and keeps its memory; a
/// `per rule` limit behind it lets exactly its burst through, whatever the sources.
#[test]
fn a_limit_per_rule_holds_under_a_flood_of_spoofed_sources() {
    if !root_or_skip() {
        return;
    }
    const SOURCES: u32 = 65_536;
    let net = VethPair::create("spoofed", None).expect("namespaces");
    let mac: Vec<u8> = net
        .fw
        .mac(VethPair::FW_IF)
        .expect("the firewall's MAC")
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).expect("a MAC byte"))
        .collect();
    let mac: [u8; 6] = mac.try_into().expect("six bytes");
    let metrics = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 9473).to_string();
    let fw = Firewall::start(
        BINARY,
        &net,
        &[
            "--drop",
            "udp dst port 5500 limit 1000000/s burst 1000000 per src max-tracked 1024",
            "--drop",
            "udp dst port 5500 limit 1/h burst 100 per rule",
            "--metrics",
            &metrics,
        ],
    );
    let memlock_before = lru_memlock(fw.pid(), 1024);
    assert_eq!(
        memlock_before.len(),
        1,
        "one table of 1024 keys: {memlock_before:?}"
    );
    let frames: Vec<(&str, Vec<u8>)> = (0..SOURCES)
        .map(|i| {
            let src = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, (i >> 16) as u16, i as u16);
            (
                "spoofed",
                udp6(mac, src, VethPair::FW_V6, 5500, &i.to_be_bytes()),
            )
        })
        .collect();
    let done = AtomicBool::new(false);
    let delivered = std::thread::scope(|s| {
        let receiver = s.spawn(|| {
            net.fw
                .run(|| {
                    let socket = UdpSocket::bind(SocketAddr::new(VethPair::FW_V6.into(), 5500))?;
                    socket.set_read_timeout(Some(Duration::from_millis(50)))?;
                    let (mut got, mut quiet, mut buf) = (0u32, 0, [0u8; 16]);
                    while quiet < 4 {
                        match socket.recv(&mut buf) {
                            Ok(_) => got += 1,
                            Err(_) if done.load(Ordering::Relaxed) => quiet += 1,
                            Err(_) => {}
                        }
                    }
                    Ok::<_, std::io::Error>(got)
                })
                .expect("entering namespace")
                .expect("receiving")
        });
        std::thread::sleep(Duration::from_millis(100));
        xdpsieve_testkit::replay::replay(&net, &frames, 64, Duration::from_millis(1));
        settle();
        done.store(true, Ordering::Relaxed);
        receiver.join().expect("receiver")
    });
    let mut curl = net.fw.command("curl");
    curl.args(["-sS", "--max-time", "10"]);
    let body = tool_with(curl, "curl", &[&format!("http://{metrics}/metrics")]);
    let series = |name: &str, id: u32, extra: &str| {
        let rule = if id == 1 {
            "drop udp dst port 5500 limit 1000000/s burst 1000000 per src max-tracked 1024"
        } else {
            "drop udp dst port 5500 limit 1/h burst 100 per rule"
        };
        metric(
            &body,
            &format!("{name}{{rule_id=\"{id}\",rule=\"{rule}\",action=\"limit\"{extra}}}"),
        )
    };
    let seen = series("xdpsieve_rule_limit_packets_total", 1, ",budget=\"within\"");
    let new_keys = series("xdpsieve_rule_limit_new_keys_total", 1, "");
    let untracked = series("xdpsieve_rule_limit_untracked_packets_total", 1, "");
    let over = series("xdpsieve_rule_limit_packets_total", 2, ",budget=\"over\"");
    let within = series("xdpsieve_rule_limit_packets_total", 2, ",budget=\"within\"");
    let memlock_after = lru_memlock(fw.pid(), 1024);
    let tracked = rule_count(&net, "rule_keys_tracked", 1);
    let forgotten = rule_count(&net, "rule_keys_forgotten", 1);
    drop(fw);
    println!(
        "{SOURCES} spoofed sources sent, {seen} reached the program; per-source rule: \
         {new_keys} keys tracked in turn ({} forgotten at least), {untracked} not tracked, \
         table memlock {memlock_before:?} -> {memlock_after:?} bytes; per-rule limit: \
         {within} within, {over} over; {delivered} delivered",
        new_keys.saturating_sub(1024)
    );
    assert!(
        seen >= u64::from(SOURCES) * 9 / 10,
        "the veth delivered most frames"
    );
    assert_eq!(
        new_keys + untracked,
        seen,
        "every source counted as new or untracked"
    );
    assert_eq!(memlock_after, memlock_before, "the table never grows");
    println!("status: {tracked} keys tracked, {forgotten} forgotten");
    assert!(tracked <= 1024, "{tracked} keys tracked in a table of 1024");
    assert_eq!(
        tracked + forgotten,
        new_keys,
        "status accounts for every key"
    );
    assert_eq!((within, delivered), (100, 100), "exactly the burst through");
    assert_eq!(within + over, seen);
}
