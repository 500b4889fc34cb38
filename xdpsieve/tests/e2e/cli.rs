//! The command line an operator types: rules from a file together with flags, clear errors
//! for their mistakes (and no program left attached after one), `check-rules`' table,
//! `--help` for every flag, and a refusal without privileges that names what each
//! subcommand needs.

use xdpsieve_testkit::child::{Firewall, xdp_attached};
use xdpsieve_testkit::gate::root_or_skip;
use xdpsieve_testkit::tempdir::TempDir;
use xdpsieve_testkit::tool::tool;
use xdpsieve_testkit::udp::received;

use super::*;

#[test]
fn rules_from_file_and_flags_together() {
    if !root_or_skip() {
        return;
    }
    let tmp = TempDir::new("rules");
    let rules = tmp.file("fw.toml");
    std::fs::write(
        &rules,
        "default = \"pass\"\n[[rule]]\nname = \"v6-dns\"\naction = \"drop\"\nprotocol = \"udp\"\nsrc = \"2001:db8::/32\"\nsrc_port = 53\n",
    )
    .unwrap();
    let capture = tmp.file("x.pcapng");
    let net = VethPair::create("rules", None).expect("namespaces");
    let (c4, c6) = client_sockets(&net);
    let fw = Firewall::start(
        BINARY,
        &net,
        &[
            "--rules",
            rules.to_str().unwrap(),
            "--drop",
            "udp src net 192.0.2.1/32 and src port 5000",
            "--format",
            "pcapng",
            "-w",
            capture.to_str().unwrap(),
        ],
    );
    send_dns_and_other(&net, 10, 0);
    let (got4, got6) = (received(&c4), received(&c6));
    let out = fw.stop(libc::SIGINT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // IPv4 DNS passes (10), port-5000 datagrams are dropped, IPv6 DNS is dropped.
    assert_eq!((got4, got6), (10, 0), "{stderr}");
    assert!(stderr.contains("v6-dns"), "{stderr}");
    let text = tool(
        "tshark",
        &[
            "-r",
            capture.to_str().unwrap(),
            "-T",
            "fields",
            "-e",
            "frame.comment",
        ],
    );
    assert_eq!(
        text.lines().filter(|l| *l == "rule=v6-dns id=1").count(),
        10,
        "{text}"
    );
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("rule=drop udp src net") && l.ends_with("id=2"))
            .count(),
        10,
        "{text}"
    );
}

#[test]
fn clear_errors_for_operator_mistakes() {
    if !root_or_skip() {
        return;
    }
    let tmp = TempDir::new("errors");
    let net = VethPair::create("errors", None).expect("namespaces");
    let out = tmp.file("x.pcap");
    let out = out.to_str().unwrap();

    let (ok, err) = run_plain(
        Some(&net),
        &["run", "-i", "nosuch0", "--drop", "udp", "-w", out],
    );
    assert!(
        !ok && err.contains("no such network interface: nosuch0"),
        "{err}"
    );

    let (ok, err) = run_plain(
        Some(&net),
        &[
            "run",
            "-i",
            VethPair::FW_IF,
            "--drop",
            "udp",
            "-w",
            "/nonexistent/dir/x.pcap",
        ],
    );
    assert!(
        !ok && err.contains("cannot open output file /nonexistent/dir/x.pcap"),
        "{err}"
    );

    let (ok, err) = run_plain(
        Some(&net),
        &[
            "run",
            "-i",
            VethPair::FW_IF,
            "--drop",
            "port 53 and src port 1",
            "-w",
            out,
        ],
    );
    assert!(
        !ok && err.contains("cannot go with a `src` or `dst` port"),
        "{err}"
    );

    let (ok, err) = run_plain(
        Some(&net),
        &[
            "run",
            "-i",
            VethPair::FW_IF,
            "--drop",
            "udp",
            "--capture",
            "dropped",
        ],
    );
    assert!(!ok && err.contains("needs a capture file"), "{err}");

    let bad = tmp.file("bad.toml");
    std::fs::write(
        &bad,
        "[[rule]]\naction = \"drop\"\nsrc = \"192.0.2.0/33\"\n",
    )
    .unwrap();
    let (ok, err) = run_plain(None, &["check-rules", bad.to_str().unwrap()]);
    assert!(
        !ok && err.contains(&format!("{}:3:7:", bad.display())) && err.contains("prefix length"),
        "{err}"
    );

    // A second instance on the same interface is refused, and the first keeps running.
    let first = Firewall::start(BINARY, &net, &["--drop", "udp", "-w", out]);
    let second_out = tmp.file("y.pcap");
    let (ok, err) = run_plain(
        Some(&net),
        &[
            "run",
            "-i",
            VethPair::FW_IF,
            "--drop",
            "udp",
            "-w",
            second_out.to_str().unwrap(),
        ],
    );
    assert!(
        !ok && err.contains(&format!("xdpsieve pid {} holds fw0", first.pid()))
            && err.contains("stop it first with `xdpsieve stop -i fw0`"),
        "{err}"
    );
    assert!(xdp_attached(&net));
    let done = first.stop(libc::SIGINT);
    assert!(done.status.success());
}

/// The refusal of `-C` with `-w -` reads as one sentence (it once had a run of 14 spaces
/// in the middle, from a line break without `\`). Checked before anything needs root.
#[test]
fn rotation_on_standard_output_is_refused_in_one_sentence() {
    let out = Command::new(BINARY)
        .args(["run", "-i", "lo", "--drop", "udp", "-w", "-", "-C", "1"])
        .stdout(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(
            "standard output (-w -) is no file: give -w FILE, or rotate the output of the \
             program reading the pipe"
        ),
        "{err}"
    );
    assert!(!err.trim().contains("  "), "a run of spaces: {err:?}");
}

#[test]
fn check_rules_prints_the_rule_table() {
    let tmp = TempDir::new("check");
    let file = tmp.file("ok.toml");
    std::fs::write(&file, "default = \"drop\"\n[[rule]]\nname = \"web\"\naction = \"pass\"\nprotocol = \"tcp\"\ndst_port = \"80-443\"\n").unwrap();
    let out = Command::new(BINARY)
        .args(["check-rules", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("1 rules, default drop"), "{text}");
    assert!(
        text.contains("web") && text.contains("tcp and dst port 80-443"),
        "{text}"
    );
    // A rule without a direction: one line as written, its kernel rules counted apart.
    let out = Command::new(BINARY)
        .args([
            "check-rules",
            file.to_str().unwrap(),
            "--drop",
            "udp port 53",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("2 rules (3 in the kernel: one per direction of `host`, `net`, `port`)"),
        "{text}"
    );
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("drop udp port 53"))
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert!(lines[0].ends_with("drop  udp and port 53"), "{text}");
}

#[test]
fn help_explains_every_flag() {
    let out = Command::new(BINARY)
        .args(["run", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--interface",
        "--rules",
        "--drop",
        "--pass",
        "--default",
        "-w",
        "--snaplen",
        "-c",
        "--capture",
        "--format",
        "--mode",
        "--ring-size",
    ] {
        assert!(text.contains(flag), "--help lacks {flag}");
    }
}

/// `set`, `reload`, `stop`, `status` and `top` load no program: without privileges each says
/// what it needs and why, not that "loading the XDP program" was refused.
#[test]
fn each_subcommand_says_what_it_needs_without_privileges() {
    if !root_or_skip() {
        return;
    }
    for (verb, args) in [
        (
            "set",
            &["set", "add", "blocklist", "192.0.2.7", "-i", "lo"][..],
        ),
        ("reload", &["reload", "-i", "lo"][..]),
        ("stop", &["stop", "-i", "lo"][..]),
        ("status", &["status"][..]),
        ("status", &["status", "--top", "3"][..]),
        ("top", &["top", "-i", "lo"][..]),
    ] {
        // nobody, without capabilities (setpriv from util-linux).
        let out = Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all",
                "--bounding-set=-all",
                "--",
            ])
            .arg(BINARY)
            .args(args)
            .output()
            .expect("running setpriv");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{verb}: {err}");
        assert!(
            err.contains(&format!("xdpsieve {verb} needs root (")) && err.contains("CAP_BPF"),
            "{verb}: {err}"
        );
        assert!(!err.contains("loading the XDP program"), "{verb}: {err}");
    }
}

#[test]
fn refuses_to_run_without_privileges() {
    if !root_or_skip() {
        return;
    }
    let tmp = TempDir::new("unpriv");
    // Drop to nobody with no capabilities (setpriv from util-linux).
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--",
        ])
        .arg(BINARY)
        .args([
            "run",
            "-i",
            "lo",
            "--drop",
            "udp",
            "-w",
            tmp.file("x.pcap").to_str().unwrap(),
        ])
        .output()
        .expect("running setpriv");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("needs root, or the capabilities CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON"),
        "{err}"
    );
}
