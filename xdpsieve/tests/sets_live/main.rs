//! Live set changes end to end: the real `xdpsieve` binary on a veth in namespaces the test
//! creates, datagrams flowing from the peer all along (numbered, one a millisecond) to a
//! UDP socket bound behind the firewall. What is checked is what reaches the socket: after
//! `set add` returns, nothing sent from the added address arrives; after `set del`,
//! everything does; a timed entry lifts itself on time; and the same holds with the
//! recorder SIGKILLed (the commands act on the pinned state). Concurrent adds both land,
//! and a 10,000-prefix `--from-file` is timed. [`windows`] tries the same as an attacker
//! would, looking for a window of one packet; [`harness`] is what both use.
//!
//! They need root; under `CI` they fail rather than skip when they cannot run.

mod bans;
mod harness;
mod windows;

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use xdpsieve_netns::VethPair;
use xdpsieve_testkit::gate::root_or_skip;

use harness::{BINARY, Flow, Net, PEER, captured_from};

#[test]
fn add_drops_the_next_packets_and_del_lets_them_pass_again() {
    if !root_or_skip() {
        return;
    }
    let net = Net::create("adddel");
    let run = net.start();
    let flow = Flow::start(&net);

    let said = net.ok(&["set", "add", "ban", PEER]);
    let banned = flow.mark();
    assert!(said.contains("set ban on fw0: added 1"), "{said}");
    flow.assert_blocked_from(banned, Duration::from_millis(500), "after set add");

    let list = net.list("@ban");
    assert_eq!(list["count"], 2, "{list}");
    let entries = list["entries"].as_array().unwrap();
    assert_eq!(entries[0]["prefix"], "192.0.2.1/32");
    assert_eq!(entries[0]["origin"], "runtime");
    assert_eq!(entries[0]["expires_in_ms"], serde_json::Value::Null);
    assert_eq!(entries[1]["prefix"], "203.0.113.0/24");
    assert_eq!(entries[1]["origin"], "file");

    let said = net.ok(&["set", "del", "ban", PEER]);
    let lifted = flow.mark();
    assert!(said.contains("removed 1"), "{said}");
    flow.assert_all_pass_from(lifted, "after set del");
    // Every datagram before `lifted` has arrived or was dropped by now.
    let arrived: std::collections::HashSet<u64> =
        flow.arrived_since(0).iter().map(|a| a.0).collect();
    let missing = (0..lifted).filter(|seq| !arrived.contains(seq)).count();
    assert!(
        missing > 250,
        "only {missing} datagrams were dropped during the ban"
    );

    // Deleting what is not there: an error, and nothing changes.
    let out = net.xdpsieve(&["set", "del", "ban", PEER, "203.0.113.0/24"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("192.0.2.1/32 is not in set ban"), "{err}");
    assert_eq!(net.list("ban")["count"], 1);

    // The drops were captured and logged, naming the rule of the set.
    drop(flow);
    let out = run.signal(libc::SIGINT);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let captured = captured_from(&net.tmp.file("drops-fw0.pcap"), [192, 0, 2, 1]);
    assert_eq!(
        captured, missing,
        "captured drops vs datagrams that did not arrive"
    );
    let log = std::fs::read_to_string(net.tmp.file("events-fw0.log")).expect("event log");
    let events: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON event"))
        .collect();
    assert_eq!(events.len(), missing, "{log}");
    for e in &events {
        assert_eq!(e["rule"], "drop-banned", "{e}");
        assert_eq!(e["verdict"], "DROP", "{e}");
        assert_eq!(e["src"], PEER, "{e}");
    }
}

#[test]
fn a_timeout_lifts_the_ban_on_time_and_list_shows_the_time_left() {
    if !root_or_skip() {
        return;
    }
    let net = Net::create("timeout");
    let _run = net.start();
    let flow = Flow::start(&net);
    let before = Instant::now();
    net.ok(&["set", "add", "ban", PEER, "--timeout", "2s"]);
    let banned = flow.mark();
    let list = net.list("ban");
    let left = list["entries"][0]["expires_in_ms"]
        .as_u64()
        .expect("time left");
    assert!((1000..=2000).contains(&left), "{list}");
    let status = net.status();
    assert_eq!(status["sets"]["timed_entries"], 1, "{status}");
    let lifted = flow
        .arrival_after(banned, Duration::from_secs(4))
        .expect("the ban did not lift within 4 s");
    let after = lifted - before;
    assert!(
        after >= Duration::from_secs(2) && after <= Duration::from_millis(2500),
        "lifted after {after:?}"
    );
    eprintln!("a 2 s ban lifted after {after:?}");
    assert_eq!(
        net.list("ban")["count"],
        1,
        "the expired entry is still listed"
    );
}

#[test]
fn flush_empties_a_set_and_save_writes_its_file() {
    if !root_or_skip() {
        return;
    }
    let net = Net::create("flush");
    let _run = net.start();
    let flow = Flow::start(&net);
    net.ok(&[
        "set",
        "add",
        "blocklist",
        PEER,
        "2001:db8:bad::/48",
        "--save",
    ]);
    let banned = flow.mark();
    flow.assert_blocked_from(banned, Duration::from_millis(300), "blocklist add");
    let file = std::fs::read_to_string(net.tmp.file("block.netset")).unwrap();
    assert_eq!(
        file,
        "# test list\n198.51.100.0/24\n192.0.2.1/32\n2001:db8:bad::/48\n"
    );
    // --save is refused for an inline set, and with a timeout; nothing changes then.
    let out = net.xdpsieve(&["set", "add", "ban", "192.0.2.9", "--save"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("inline"));
    let out = net.xdpsieve(&[
        "set",
        "add",
        "blocklist",
        "192.0.2.9",
        "--save",
        "--timeout",
        "1m",
    ]);
    assert!(!out.status.success());
    assert_eq!(net.list("blocklist")["count"], 3);

    let said = net.ok(&["set", "flush", "blocklist"]);
    let flushed = flow.mark();
    assert!(said.contains("flushed 3 entries"), "{said}");
    assert_eq!(net.list("blocklist")["count"], 0);
    flow.assert_all_pass_from(flushed, "after flush");
    let text = net.ok(&["status"]);
    assert!(
        text.contains("groups in use); ban 1 entries (0 timed), blocklist 0 entries"),
        "{text}"
    );
    assert!(text.contains("MiB of kernel memory (trie: "), "{text}");
    let status = net.status();
    let sets = &status["sets"];
    assert!(sets["memory_bytes"].as_u64().unwrap() > 0, "{status}");
    // The flush folded away every group the set took: the roots and the inline set's.
    assert!(
        sets["trie_groups_used"].as_u64().unwrap() <= 513,
        "{status}"
    );
    assert_eq!(sets["change_unfinished"], false, "{status}");
    assert_eq!(sets["sets"][0]["entries"], 1, "{status}");
    assert_eq!(sets["sets"][1]["entries"], 0, "{status}");
}

#[test]
fn changes_act_on_the_pinned_state_when_the_recorder_is_gone() {
    if !root_or_skip() {
        return;
    }
    let net = Net::create("pinned");
    let run = net.start();
    let out = run.signal(libc::SIGKILL);
    assert!(!out.status.success());
    let flow = Flow::start(&net);

    net.ok(&["set", "add", "ban", PEER]);
    let banned = flow.mark();
    flow.assert_blocked_from(banned, Duration::from_millis(300), "add without a recorder");
    net.ok(&["set", "del", "ban", PEER]);
    let lifted = flow.mark();
    flow.assert_all_pass_from(lifted, "del without a recorder");

    // A timed entry outlives its time while nothing touches the sets...
    net.ok(&["set", "add", "ban", PEER, "--timeout", "1s"]);
    let banned = flow.mark();
    flow.assert_blocked_from(banned, Duration::from_millis(1500), "overdue, untouched");
    let text = net.ok(&["status", "-i", VethPair::FW_IF]);
    assert!(
        text.contains("expire only when an `xdpsieve set` command"),
        "{text}"
    );
    // ... and goes as soon as a set command does.
    let said = net.ok(&["set", "list", "ban"]);
    let lifted = flow.mark();
    assert!(!said.contains("192.0.2.1"), "{said}");
    flow.assert_all_pass_from(lifted, "after a set command expired it");

    net.ok(&["set", "add", "blocklist", PEER]);
    net.ok(&["set", "flush", "blocklist"]);
    let flushed = flow.mark();
    flow.assert_all_pass_from(flushed, "flush without a recorder");
}

#[test]
fn concurrent_adds_both_land() {
    if !root_or_skip() {
        return;
    }
    let net = Net::create("concurrent");
    let run = net.start();
    drop(run.signal(libc::SIGKILL)); // no expiry tick in the way: only the two writers
    let lists: Vec<PathBuf> = (0..2)
        .map(|half| {
            let path = net.tmp.file(&format!("half{half}.txt"));
            let text: String = (0..3000u32)
                .map(|i| format!("2001:db8:{half}:{:x}::/64\n", i))
                .collect();
            std::fs::write(&path, text).unwrap();
            path
        })
        .collect();
    let children: Vec<Child> = lists
        .iter()
        .map(|path| {
            net.command(&["set", "add", "ban", "--from-file", path.to_str().unwrap()])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("set add")
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("added 3000"));
    }
    let list = net.list("ban");
    assert_eq!(list["count"], 6001, "one file entry and both halves");
    let status = net.status();
    assert_eq!(status["sets"]["sets"][0]["entries"], 6001, "{status}");
}

#[test]
fn ten_thousand_adds_from_a_file_in_under_a_second() {
    if !root_or_skip() {
        return;
    }
    let net = Net::create("bulk");
    let _run = net.start();
    let flow = Flow::start(&net);
    let path = net.tmp.file("bulk.txt");
    // 9,999 IPv6 addresses and the peer's.
    let mut text: String = (1..10_000u32)
        .map(|i| format!("2001:db8:100::{:x}:{:x}\n", i >> 8, i & 0xff))
        .collect();
    text.push_str(PEER);
    text.push('\n');
    std::fs::write(&path, text).unwrap();
    let file = path.to_str().unwrap();
    let started = Instant::now();
    let said = net.ok(&["set", "add", "ban", "--from-file", file]);
    let took = started.elapsed();
    let banned = flow.mark();
    eprintln!("set add --from-file, 10,000 prefixes: {took:?} (the whole command); {said}");
    assert!(said.contains("added 10000"), "{said}");
    assert!(took <= Duration::from_secs(1), "took {took:?}");
    flow.assert_blocked_from(banned, Duration::from_millis(300), "after the bulk add");
    assert_eq!(net.list("ban")["count"], 10_001);

    let started = Instant::now();
    let said = net.ok(&["set", "del", "ban", "--from-file", file]);
    let took = started.elapsed();
    let lifted = flow.mark();
    eprintln!("set del --from-file, 10,000 prefixes: {took:?} (the whole command); {said}");
    assert!(said.contains("removed 10000"), "{said}");
    flow.assert_all_pass_from(lifted, "after the bulk del");
    assert_eq!(net.list("ban")["count"], 1);
}

#[test]
fn runtime_entries_survive_a_reload_and_a_takeover() {
    if !root_or_skip() {
        return;
    }
    let net = Net::create("carry");
    let run = net.start();
    let flow = Flow::start(&net);
    net.ok(&["set", "add", "ban", PEER, "--timeout", "1m"]);
    net.ok(&["set", "add", "blocklist", "2001:db8:bad::1"]);
    let banned = flow.mark();

    // A reload: the new generation holds them, and no datagram got through meanwhile.
    let said = net.ok(&["reload", "-i", VethPair::FW_IF]);
    assert!(said.contains("generation 2"), "{said}");
    let list = net.list("ban");
    assert_eq!(list["count"], 2, "{list}");
    let left = list["entries"][0]["expires_in_ms"]
        .as_u64()
        .expect("time left");
    assert!((50_000..60_000).contains(&left), "{list}");
    assert_eq!(net.list("blocklist")["count"], 2);

    // A takeover by a new run after the recorder died: the same.
    drop(run.signal(libc::SIGKILL));
    let _run = net.start();
    flow.assert_blocked_from(
        banned,
        Duration::from_millis(300),
        "across reload and takeover",
    );
    let list = net.list("ban");
    assert_eq!(list["entries"][0]["prefix"], "192.0.2.1/32", "{list}");
    assert_eq!(list["entries"][0]["origin"], "runtime", "{list}");
    assert!(list["entries"][0]["expires_in_ms"].as_u64().unwrap() < left);
    assert_eq!(net.list("blocklist")["count"], 2);
    // And they stay changeable in the new generation.
    net.ok(&["set", "del", "ban", PEER]);
    let lifted = flow.mark();
    flow.assert_all_pass_from(lifted, "del after the takeover");
}

#[test]
fn help_says_what_survives_a_restart() {
    for sub in ["add", "del", "list", "flush"] {
        let out = Command::new(BINARY)
            .args(["set", sub, "--help"])
            .output()
            .expect("xdpsieve set --help");
        let text = String::from_utf8_lossy(&out.stdout);
        for needle in [
            "a restart (`xdpsieve stop`, then `run`) keeps what the rule file",
            "--save",
            "a reload and a takeover",
            "-i, --interface",
        ] {
            assert!(
                text.contains(needle),
                "set {sub} --help lacks {needle}: {text}"
            );
        }
    }
}

#[test]
fn with_several_instances_i_says_which() {
    if !root_or_skip() {
        return;
    }
    let net = Net::create("two");
    // A second interface in the firewall's namespace, for a second instance.
    net.pair
        .fw
        .ip(&["link", "add", "fw1", "type", "veth", "peer", "name", "fw1p"])
        .expect("second veth");
    for iface in ["fw1", "fw1p"] {
        net.pair.fw.ip(&["link", "set", iface, "up"]).expect("up");
    }
    struct StopFw1<'a>(&'a Net);
    impl Drop for StopFw1<'_> {
        fn drop(&mut self) {
            let _ = self.0.xdpsieve(&["stop", "-i", "fw1"]);
        }
    }
    let _fw0 = net.start();
    let _stop = StopFw1(&net);
    let _fw1 = net.start_on("fw1");

    let out = net.xdpsieve(&["set", "add", "ban", "192.0.2.77"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("several xdpsieve instances run here (on fw0; fw1)"),
        "{err}"
    );
    assert!(err.contains("-i IFACE"), "{err}");
    net.ok(&["set", "add", "ban", "192.0.2.77", "-i", "fw1"]);
    let count = |iface: &str| {
        let out = net.ok(&["set", "list", "ban", "-i", iface, "--json"]);
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["count"].clone()
    };
    assert_eq!(count("fw1"), 2);
    assert_eq!(count("fw0"), 1);
}

#[test]
fn adds_during_reloads_are_not_lost() {
    if !root_or_skip() {
        return;
    }
    let net = Net::create("racereload");
    let _run = net.start();
    for i in 0..6u32 {
        let reload = net
            .command(&["reload", "-i", VethPair::FW_IF])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("reload");
        // Land at different points of the reload: before it reads the entries, while it
        // loads, around the swap.
        std::thread::sleep(Duration::from_millis(u64::from(i) * 15));
        net.ok(&["set", "add", "ban", &format!("198.51.100.{}", i + 1)]);
        let out = reload.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let list = net.list("ban");
    assert_eq!(
        list["count"], 7,
        "the file's entry and the six added: {list}"
    );
    assert_eq!(net.status()["reload"]["generation"], 7);
}
