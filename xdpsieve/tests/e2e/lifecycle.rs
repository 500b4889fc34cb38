//! Attaching and letting go: a SIGKILLed recorder leaves its drops in force until
//! `xdpsieve stop`, `--mode auto` falls back to skb mode where native XDP is missing, and
//! `xdpsieve demo` cleans up its namespaces whether it ends or is interrupted, and a kernel
//! without a feature the program uses stops the run before anything is attached.

use xdpsieve_testkit::child::{Firewall, xdp_attached};
use xdpsieve_testkit::gate::root_or_skip;
use xdpsieve_testkit::tempdir::TempDir;
use xdpsieve_testkit::tool::{tool, tool_with};

use super::*;

#[test]
fn sigkill_leaves_the_firewall_in_force_until_stop() {
    if !root_or_skip() {
        return;
    }
    // The old rule (a SIGKILL detaches) is reversed: the firewall is fail-static, pinned in
    // bpffs, and only an explicit stop removes it. xdpsieve/tests/failstatic.rs tests this at
    // the socket behind the firewall.
    let tmp = TempDir::new("kill");
    let net = VethPair::create("kill", None).expect("namespaces");
    let fw = Firewall::start(
        BINARY,
        &net,
        &["--drop", "udp", "-w", tmp.file("x.pcap").to_str().unwrap()],
    );
    assert!(xdp_attached(&net));
    let out = fw.stop(libc::SIGKILL);
    assert!(!out.status.success());
    std::thread::sleep(Duration::from_millis(200));
    assert!(xdp_attached(&net), "SIGKILL detached the firewall");
    tool_with(
        net.fw.command(BINARY),
        "xdpsieve",
        &["stop", "-i", VethPair::FW_IF],
    );
    assert!(!xdp_attached(&net), "program left attached after stop");
}

#[test]
fn demo_runs_and_cleans_up() {
    if !root_or_skip() {
        return;
    }
    let tmp = TempDir::new("demo");
    let capture = tmp.file("demo.pcap");
    let demo = Command::new(BINARY)
        .args(["demo", "-w", capture.to_str().unwrap(), "--responses", "3"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let tag = format!("xsieve-{}-", demo.id());
    let out = demo.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("Received in")
            && stdout.contains(": 0 DNS responses over IPv4, 0 over IPv6, 3 other"),
        "{stdout}"
    );
    assert_eq!(read_pcap(&capture).len(), 6);
    let leftover = tool("ip", &["netns", "list"]);
    assert!(
        !leftover.lines().any(|l| l.starts_with(&tag)),
        "namespaces left: {leftover}"
    );
}

#[test]
fn auto_mode_falls_back_to_skb_where_native_is_missing() {
    if !root_or_skip() {
        return;
    }
    let tmp = TempDir::new("skb");
    let net = VethPair::create("skb", None).expect("namespaces");
    // The loopback device has no native XDP support.
    let out = tmp.file("x.pcap");
    let out = out.to_str().unwrap();

    let (ok, err) = run_plain(
        Some(&net),
        &[
            "run", "-i", "lo", "--mode", "native", "--drop", "udp", "-w", out,
        ],
    );
    assert!(
        !ok && err.contains("does not support native XDP") && err.contains("--mode skb"),
        "{err}"
    );

    let mut child = net
        .fw
        .command(BINARY)
        .args(["run", "-i", "lo", "--drop", "udp", "-w", out])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !net
        .fw
        .ip(&["-d", "link", "show", "dev", "lo"])
        .unwrap()
        .contains("prog/xdp")
    {
        assert!(Instant::now() < deadline, "no attachment to lo");
        assert!(child.try_wait().unwrap().is_none(), "xdpsieve exited");
        std::thread::sleep(Duration::from_millis(25));
    }
    // SAFETY: kill on our own child's PID.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let done = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "{err}");
    assert!(
        err.contains("warning: lo has no native XDP support") && err.contains("lo (skb)"),
        "{err}"
    );
}

#[test]
fn interrupted_demo_removes_its_namespaces() {
    if !root_or_skip() {
        return;
    }
    let tmp = TempDir::new("demo-int");
    let demo = Command::new(BINARY)
        .args([
            "demo",
            "-w",
            tmp.file("d.pcap").to_str().unwrap(),
            "--responses",
            "1000",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let tag = format!("xsieve-{}-", demo.id());
    let deadline = Instant::now() + Duration::from_secs(20);
    // Interrupt once the firewall is attached and traffic is flowing.
    loop {
        assert!(Instant::now() < deadline, "demo never started its firewall");
        let list = tool("ip", &["netns", "list"]);
        let fw_ns = list
            .lines()
            .find(|l| l.starts_with(&tag) && l.contains("-demo-fw"))
            .map(|l| l.split_whitespace().next().unwrap().to_string());
        if let Some(ns) = fw_ns {
            // The namespace exists a moment before its interface: poll without asserting.
            let link = Command::new("ip")
                .args(["-n", &ns, "-d", "link", "show", "dev", "fw0"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            if link.contains("prog/xdp") {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    std::thread::sleep(Duration::from_millis(200));
    // SAFETY: kill on our own child's PID.
    unsafe { libc::kill(demo.id() as i32, libc::SIGINT) };
    let out = demo.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "an interrupted demo reports it");
    assert!(err.contains("interrupted"), "{err}");
    // The firewall child still printed its summary (it was stopped, not killed).
    assert!(err.contains("packets seen by xdpsieve"), "{err}");
    let list = tool("ip", &["netns", "list"]);
    assert!(
        !list.lines().any(|l| l.starts_with(&tag)),
        "namespaces left: {list}"
    );
}

#[test]
fn a_kernel_without_a_feature_stops_the_run_before_anything_is_attached() {
    if !root_or_skip() {
        return;
    }
    // This kernel has every feature (tests/kernel/features.rs); the probes are told to
    // report two missing, which is all an older kernel would do differently.
    let net = VethPair::create("nofeat", None).expect("namespaces");
    let out = net
        .fw
        .command(BINARY)
        .args(["run", "-i", VethPair::FW_IF, "--drop", "udp"])
        .env("XDPSIEVE_TEST_PRETEND_MISSING", "bpf_loop,xdp_frags")
        .stdin(Stdio::null())
        .output()
        .expect("running xdpsieve");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("lacks what xdpsieve needs; nothing was attached")
            && err.contains("the bpf_loop helper (Linux 5.17)")
            && err.contains("multi-buffer XDP (BPF_F_XDP_HAS_FRAGS) (Linux 5.18)")
            && err.contains("xdpsieve needs Linux 6.1 or later"),
        "{err}"
    );
    assert!(!err.contains("ring buffer"), "only the missing ones: {err}");
    assert!(!xdp_attached(&net), "attached despite the missing features");
    // Nothing claimed either: `status` finds no run on the interface.
    let status = tool_with(net.fw.command(BINARY), "xdpsieve", &["status"]);
    assert!(status.contains("no xdpsieve is running"), "{status}");
    // And the same run without the pretence starts.
    let fw = Firewall::start(BINARY, &net, &["--drop", "udp"]);
    assert!(xdp_attached(&net));
    let done = fw.stop(libc::SIGINT);
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
}
