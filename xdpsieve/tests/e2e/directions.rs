//! A rule written without a direction, at the socket behind the firewall: `--drop 'udp port
//! 5353'` stops datagrams to that port and datagrams from it, while another port's are
//! delivered; `status`, the metrics and the exit summary show one rule with one count.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};

use xdpsieve_testkit::child::Firewall;
use xdpsieve_testkit::gate::root_or_skip;
use xdpsieve_testkit::tool::tool_with;

use super::*;

const PORT: u16 = 5353;
const OTHER: u16 = 6000;
const ROUNDS: usize = 10;

/// The firewall side's sockets: one on the port (datagrams to it), one on a client port
/// (datagrams from the peer's port), one on another port.
struct Receivers {
    to_port: UdpSocket,
    from_port: UdpSocket,
    other: UdpSocket,
}

impl Receivers {
    fn bind(net: &VethPair) -> Receivers {
        net.fw
            .run(|| {
                let bind = |port| {
                    let s = UdpSocket::bind(SocketAddr::new(VethPair::FW_V4.into(), port))?;
                    s.set_read_timeout(Some(Duration::from_millis(100)))?;
                    Ok::<_, std::io::Error>(s)
                };
                Ok::<_, std::io::Error>(Receivers {
                    to_port: bind(PORT)?,
                    from_port: bind(CLIENT_PORT)?,
                    other: bind(OTHER)?,
                })
            })
            .expect("entering namespace")
            .expect("binding the receiving sockets")
    }

    /// Datagrams each socket holds now: (to the port, from the port, other).
    fn delivered(&self) -> (usize, usize, usize) {
        let count = |s: &UdpSocket| {
            let mut buf = [0u8; 64];
            let mut n = 0;
            while s.recv(&mut buf).is_ok() {
                n += 1;
            }
            n
        };
        (
            count(&self.to_port),
            count(&self.from_port),
            count(&self.other),
        )
    }
}

/// Sends `rounds` datagrams each way from the peer: to the firewall's port (from a client
/// port), from the peer's port (to the client port), and between two other ports.
fn send(net: &VethPair, rounds: usize) {
    net.peer
        .run(|| {
            let peer = |port| UdpSocket::bind(SocketAddr::new(VethPair::PEER_V4.into(), port));
            let (client, server, other) = (peer(CLIENT_PORT + 1)?, peer(PORT)?, peer(OTHER)?);
            let fw = |port| SocketAddr::new(VethPair::FW_V4.into(), port);
            for _ in 0..rounds {
                client.send_to(b"query", fw(PORT))?;
                server.send_to(b"answer", fw(CLIENT_PORT))?;
                other.send_to(b"other", fw(OTHER))?;
                std::thread::sleep(Duration::from_millis(2));
            }
            Ok::<_, std::io::Error>(())
        })
        .expect("entering namespace")
        .expect("sending datagrams");
}

#[test]
fn a_port_without_direction_stops_datagrams_to_it_and_from_it() {
    if !root_or_skip() {
        return;
    }
    let net = VethPair::create("dirless", None).expect("namespaces");
    let receivers = Receivers::bind(&net);
    // Control: without the firewall every datagram arrives, so a missing one below is the
    // rule's doing.
    send(&net, ROUNDS);
    settle();
    assert_eq!(receivers.delivered(), (ROUNDS, ROUNDS, ROUNDS), "control");

    let metrics = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 9471).to_string();
    let fw = Firewall::start(
        BINARY,
        &net,
        &["--drop", "udp port 5353", "--metrics", &metrics],
    );
    send(&net, ROUNDS);
    settle();
    assert_eq!(
        receivers.delivered(),
        (0, 0, ROUNDS),
        "to and from port {PORT} dropped, port {OTHER} delivered"
    );

    // `status`: one rule, both directions' hits summed, shown as written.
    let dropped = 2 * ROUNDS;
    let mut status = net.fw.command(BINARY);
    status.arg("status");
    let text = tool_with(status, "xdpsieve status", &[]);
    let rule_lines: Vec<&str> = text.lines().filter(|l| l.starts_with("  rule ")).collect();
    assert_eq!(rule_lines.len(), 1, "{text}");
    assert!(
        rule_lines[0].contains(&format!(" {dropped} hits"))
            && rule_lines[0].ends_with("(udp and port 5353)"),
        "{text}"
    );
    let mut status = net.fw.command(BINARY);
    status.arg("status");
    let json: serde_json::Value =
        serde_json::from_str(&tool_with(status, "xdpsieve status", &["--json"])).unwrap();
    // The default verdict's count holds whatever else the namespace sent (neighbour
    // discovery): not asserted.
    let hits = &json[0]["counters"]["rule_hits"];
    assert_eq!(hits.as_array().map(Vec::len), Some(2), "{json}");
    assert_eq!(hits[1], serde_json::json!([1, dropped]), "{json}");
    assert_eq!(json[0]["rules"].as_array().map(Vec::len), Some(2), "{json}");

    // The metrics: one series for the rule, with the sum.
    let out = net
        .fw
        .command("curl")
        .args(["-sS", "--max-time", "10"])
        .arg(format!("http://{metrics}/metrics"))
        .output()
        .expect("running curl (cargo xtask setup installs it)");
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let series =
        "xdpsieve_rule_hits_total{rule_id=\"1\",rule=\"drop udp port 5353\",action=\"drop\"}";
    assert_eq!(body.matches(series).count(), 1, "{body}");
    assert!(body.contains(&format!("{series} {dropped}\n")), "{body}");

    let out = fw.stop(libc::SIGINT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(parse_summary(&stderr).dropped, dropped as u64, "{stderr}");
    let rule_lines: Vec<&str> = stderr.lines().filter(|l| l.contains("  rule ")).collect();
    assert_eq!(rule_lines.len(), 1, "{stderr}");
    assert!(
        rule_lines[0].contains(&format!(" {dropped} hits")),
        "{stderr}"
    );
}
