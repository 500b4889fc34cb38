//! Live set changes tried as an attacker and an unlucky operator would: the real binary
//! on a veth in namespaces the test creates, datagrams from the peer to a UDP socket
//! behind the firewall, and what is checked is what reaches the socket.
//!
//! - a covering prefix added and deleted over and over while the peer, listed all along,
//!   floods: nothing gets through;
//! - a `set add` SIGKILLed after its 1st, 2nd, 3rd, 5th, 8th ... write: afterwards every
//!   entry is in or out (listed entries block, and once they are deleted nothing blocks),
//!   and the next commands work;
//! - a bulk add that does not fit changes nothing, and the next add fits;
//! - an IPv4-mapped IPv6 ban blocks the IPv4 peer;
//! - `--save`s raced against each other all land in the set file, or fail and do not.
//!
//! They need root; under `CI` they fail rather than skip when they cannot run.

use std::{
    net::{SocketAddr, UdpSocket},
    os::unix::process::ExitStatusExt as _,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use xdpsieve_netns::VethPair;
use xdpsieve_testkit::gate::root_or_skip;

use crate::harness::{Flow, Net, PEER, PORT};

/// Datagrams from the peer to a second socket behind the firewall (port `PORT + 1`) as
/// fast as one thread sends them, until stopped (bounded: 60 s, 50 million datagrams);
/// the socket counts what reaches it.
struct Flood {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    received: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Flood {
    fn start(net: &Net) -> Flood {
        let port = PORT + 1;
        let receiver = net
            .pair
            .fw
            .run(|| UdpSocket::bind(SocketAddr::new(VethPair::FW_V4.into(), port)))
            .expect("namespace")
            .expect("binding the flood's socket behind the firewall");
        receiver
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        let sender = net
            .pair
            .peer
            .run(|| UdpSocket::bind(SocketAddr::new(VethPair::PEER_V4.into(), 0)))
            .expect("namespace")
            .expect("binding the flood's sender");
        let (stop, sent, received) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
        );
        let send = {
            let (stop, sent) = (Arc::clone(&stop), Arc::clone(&sent));
            std::thread::spawn(move || {
                let until = Instant::now() + Duration::from_secs(60);
                for n in 0..50_000_000u64 {
                    if n % 1024 == 0 && (stop.load(Ordering::Relaxed) || Instant::now() > until) {
                        break;
                    }
                    if sender
                        .send_to(&n.to_be_bytes(), (VethPair::FW_V4, port))
                        .is_ok()
                    {
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        };
        let receive = {
            let (stop, received) = (Arc::clone(&stop), Arc::clone(&received));
            std::thread::spawn(move || {
                let mut buf = [0u8; 64];
                // Until stopped and nothing more is queued.
                loop {
                    match receiver.recv(&mut buf) {
                        Ok(_) => {
                            received.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) if stop.load(Ordering::Relaxed) => break,
                        Err(_) => {}
                    }
                }
            })
        };
        Flood {
            stop,
            sent,
            received,
            threads: vec![send, receive],
        }
    }

    /// Stops it; returns how many datagrams it sent and how many reached the socket.
    fn stop(mut self) -> (u64, u64) {
        self.join();
        (
            self.sent.load(Ordering::Relaxed),
            self.received.load(Ordering::Relaxed),
        )
    }

    fn join(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        self.join();
    }
}

/// `n` /32s scattered over 192.0.0.0/8, none of them the peer, one per line.
fn scattered(n: u32) -> String {
    let mut out = String::new();
    for i in 1..=n {
        let addr = std::net::Ipv4Addr::from(0xc000_0000 | (i.wrapping_mul(2_654_435_761) >> 8));
        if addr.to_string() != PEER {
            out.push_str(&format!("{addr}\n"));
        }
    }
    out
}

#[test]
fn a_covering_prefix_added_and_deleted_never_lets_a_listed_address_through() {
    if !root_or_skip() {
        return;
    }
    let net = Net::create("cover");
    // The set's file holds 2,000 /32s under the /8 that will be added and deleted; the
    // peer is added at run time and stays in the set throughout.
    std::fs::write(net.tmp.file("block.netset"), scattered(2000)).expect("set file");
    let _run = net.start();
    let flow = Flow::start(&net);
    // Control: unbanned, the flood reaches its socket.
    let control = Flood::start(&net);
    std::thread::sleep(Duration::from_millis(300));
    let (sent, reached) = control.stop();
    assert!(
        reached > 100,
        "control: only {reached} of {sent} flood datagrams reached the socket unbanned"
    );

    net.ok(&["set", "add", "blocklist", PEER]);
    let banned = flow.mark();
    flow.assert_blocked_from(banned, Duration::from_millis(300), "after set add");
    let flood = Flood::start(&net);
    let started = Instant::now();
    for _ in 0..30 {
        net.ok(&["set", "add", "blocklist", "192.0.0.0/8"]);
        net.ok(&["set", "del", "blocklist", "192.0.0.0/8"]);
    }
    let took = started.elapsed();
    let (sent, through) = flood.stop();
    eprintln!(
        "30 add/delete cycles of 192.0.0.0/8 over 2,000 listed /32s in {took:?}: \
         {sent} flood datagrams from the listed peer, {through} delivered"
    );
    assert!(sent > 10_000, "the flood sent only {sent}");
    assert_eq!(
        through, 0,
        "datagrams from a listed address reached the socket"
    );
    flow.assert_blocked_from(banned, Duration::from_millis(0), "during the cycles");
    // The peer is still listed and blocked; the /8 is gone.
    let list = net.list("blocklist");
    let prefixes: Vec<&str> = list["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["prefix"].as_str().unwrap())
        .collect();
    assert!(prefixes.contains(&"192.0.2.1/32"), "{list}");
    assert!(!prefixes.contains(&"192.0.0.0/8"), "{list}");
}

#[test]
fn a_set_command_killed_after_any_write_leaves_every_entry_in_or_out() {
    if !root_or_skip() {
        return;
    }
    let net = Net::create("killed");
    let _run = net.start();
    let flow = Flow::start(&net);
    let file = net.tmp.file("bans.txt");
    std::fs::write(&file, format!("{}{PEER}\n", scattered(300))).expect("ban list");
    let file = file.to_str().unwrap().to_string();
    // Fibonacci stopping points, up to past the end of the change.
    let (mut a, mut b) = (1u64, 2u64);
    let mut tried = Vec::new();
    loop {
        let n = a;
        (a, b) = (b, a + b);
        let out = net
            .command(&["set", "add", "blocklist", "--from-file", &file])
            .env("XDPSIEVE_TEST_KILL_AFTER_WRITES", n.to_string())
            .output()
            .expect("set add");
        let killed = out.status.signal() == Some(libc::SIGKILL);
        assert!(
            killed || out.status.success(),
            "kill after write {n}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        tried.push(n);
        // An unrelated change first, as an operator's next command would be.
        net.ok(&["set", "add", "ban", "10.250.1.1"]);
        let list = net.list("blocklist");
        let runtime: Vec<String> = list["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["origin"] == "runtime")
            .map(|e| e["prefix"].as_str().unwrap().to_string())
            .collect();
        let mark = flow.mark();
        if runtime.iter().any(|p| p == "192.0.2.1/32") {
            flow.assert_blocked_from(mark, Duration::from_millis(300), &format!("n={n}, listed"));
        } else {
            flow.assert_all_pass_from(mark, &format!("n={n}, not listed"));
        }
        // Every listed entry can be deleted; then nothing blocks the peer.
        if !runtime.is_empty() {
            let listed = net.tmp.file("listed.txt");
            std::fs::write(&listed, runtime.join("\n")).expect("list file");
            net.ok(&[
                "set",
                "del",
                "blocklist",
                "--from-file",
                listed.to_str().unwrap(),
            ]);
        }
        assert_eq!(net.list("blocklist")["count"], 1, "n={n}: the file's entry");
        let mark = flow.mark();
        flow.assert_all_pass_from(mark, &format!("n={n}, after deleting what was listed"));
        net.ok(&["set", "del", "ban", "10.250.1.1"]);
        if !killed {
            break;
        }
        assert!(n < 1_000_000, "the change never finished");
    }
    eprintln!("killed after writes {tried:?}; the last finished");
    assert!(tried.len() > 8, "{tried:?}");
    let status = net.status();
    assert_eq!(status["sets"]["change_unfinished"], false, "{status}");
}

#[test]
fn a_bulk_add_that_does_not_fit_changes_nothing() {
    if !root_or_skip() {
        return;
    }
    let net = Net::create("nofit");
    let _run = net.start();
    let file = net.tmp.file("v6.txt");
    let mut text = String::new();
    for i in 0..60_000u64 {
        let low = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        text.push_str(&format!(
            "2001:db8:{:x}:{:x}:{:x}:{:x}:{:x}:{:x}\n",
            (low >> 48) & 0xffff,
            (low >> 32) & 0xffff,
            (low >> 16) & 0xffff,
            low & 0xffff,
            i & 0xffff,
            (i >> 16) & 0xffff
        ));
    }
    std::fs::write(&file, text).expect("list");
    let before = net.status();
    let out = net.xdpsieve(&["set", "add", "ban", "--from-file", file.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "60,000 scattered /128s fit? {err}");
    assert!(err.contains("set ban was not changed"), "{err}");
    assert!(err.contains("set trie is full"), "{err}");
    assert_eq!(err.matches("not changed").count(), 1, "{err}");
    assert!(!err.contains("set 0"), "{err}");
    let after = net.status();
    assert_eq!(
        before["sets"]["trie_groups_used"], after["sets"]["trie_groups_used"],
        "{after}"
    );
    assert_eq!(net.list("ban")["count"], 1);
    let said = net.ok(&["set", "add", "ban", "2001:db8:1:2:3:4:5:6"]);
    assert!(said.contains("added 1"), "{said}");
}

#[test]
fn an_ipv4_mapped_ban_blocks_the_ipv4_peer() {
    if !root_or_skip() {
        return;
    }
    let net = Net::create("mapped");
    let _run = net.start();
    let flow = Flow::start(&net);
    net.ok(&["set", "add", "ban", "::ffff:192.0.2.1"]);
    let banned = flow.mark();
    flow.assert_blocked_from(banned, Duration::from_millis(300), "after a mapped ban");
    let list = net.list("ban");
    assert!(list.to_string().contains("\"192.0.2.1/32\""), "{list}");
    net.ok(&["set", "del", "ban", "::ffff:192.0.2.1"]);
    let lifted = flow.mark();
    flow.assert_all_pass_from(lifted, "after the mapped ban was lifted");
    let out = net.xdpsieve(&["set", "add", "ban", "::192.0.2.1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("IPv4-compatible"), "{err}");
    assert!(err.contains("192.0.2.1/32"), "{err}");
}

#[test]
fn concurrent_saves_all_land_in_the_set_file() {
    if !root_or_skip() {
        return;
    }
    let net = Net::create("saves");
    let _run = net.start();
    let file = net.tmp.file("block.netset");
    for round in 0..5u32 {
        // 4 prefixes to delete, in the file and the set.
        let dels: Vec<String> = (0..4)
            .map(|i| format!("203.0.113.{}", round * 8 + i))
            .collect();
        for d in &dels {
            net.ok(&["set", "add", "blocklist", d, "--save"]);
        }
        let adds: Vec<String> = (0..8).map(|i| format!("198.18.{round}.{i}")).collect();
        let children: Vec<(String, std::process::Child)> = adds
            .iter()
            .map(|p| (p, "add"))
            .chain(dels.iter().map(|p| (p, "del")))
            .map(|(p, verb)| {
                let child = net
                    .command(&["set", verb, "blocklist", p, "--save"])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("set --save");
                (format!("{verb} {p}"), child)
            })
            .collect();
        for (what, child) in children {
            let out = child.wait_with_output().expect("waiting");
            assert!(
                out.status.success(),
                "round {round}, {what}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let text = std::fs::read_to_string(&file).expect("set file");
        let lines: Vec<&str> = text.lines().collect();
        for a in &adds {
            assert!(
                lines.contains(&format!("{a}/32").as_str()),
                "round {round}: {a} lost: {text}"
            );
        }
        for d in &dels {
            assert!(
                !lines.contains(&format!("{d}/32").as_str()),
                "round {round}: {d} kept: {text}"
            );
        }
    }
    let leftovers: Vec<String> = std::fs::read_dir(net.tmp.file(""))
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("xdpsieve-") && n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
