//! `xdpsieve check-config`: the packaged file refused until it names an interface, then
//! accepted, by an unprivileged user; broken files refused with their line and column, or
//! with what the run would find wrong.

use std::{path::Path, process::Command};

use xdpsieve_testkit::tempdir::TempDir;

use crate::{BINARY, text, xdpsieve};

/// The repository's default configuration file, as the package ships it.
const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../dist/xdpsieve.toml");

/// `xdpsieve check-config FILE` as nobody without capabilities when the test runs as root
/// (setpriv from util-linux), else as the unprivileged user it runs as.
fn check_unprivileged(file: &Path) -> std::process::Output {
    // SAFETY: geteuid has no preconditions.
    let mut command = if unsafe { libc::geteuid() } == 0 {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--",
            BINARY,
        ]);
        c
    } else {
        Command::new(BINARY)
    };
    command
        .arg("check-config")
        .arg(file)
        .output()
        .expect("running check-config")
}

#[test]
fn the_packaged_file_filters_nothing_until_it_names_an_interface() {
    let out = check_unprivileged(Path::new(SHIPPED));
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("dist/xdpsieve.toml: no interface to filter on: set interfaces = [\"eth0\"]"),
        "{err}"
    );

    // With an interface set (and nothing else), an unprivileged user gets it accepted.
    let tmp = TempDir::new("cfg-shipped");
    let edited = tmp.file("xdpsieve.toml");
    let shipped = std::fs::read_to_string(SHIPPED).expect("reading dist/xdpsieve.toml");
    assert!(shipped.contains("\n# interfaces = [\"eth0\"]\n"));
    let with_interface = shipped.replace(
        "\n# interfaces = [\"eth0\"]\n",
        "\ninterfaces = [\"eth0\"]\n",
    );
    std::fs::write(&edited, with_interface).expect("writing the copy");
    let out = check_unprivileged(&edited);
    let (said, err) = text(&out);
    assert!(out.status.success(), "{err}");
    assert!(said.contains("xdpsieve.toml: ok"), "{said}");
    assert!(said.contains("  interfaces  eth0"), "{said}");
    assert!(said.contains("  capture     none"), "{said}");
    assert!(said.contains("the firewall is removed"), "{said}");
    assert!(said.contains(": 0 rules, default pass"), "{said}");
}

#[test]
fn a_file_that_says_what_to_do_is_summarised_with_its_rules() {
    let tmp = TempDir::new("cfg-summary");
    std::fs::create_dir(tmp.file("captures")).expect("capture directory");
    let file = tmp.file("xdpsieve.toml");
    std::fs::write(
        &file,
        "interfaces = [\"eth0\", \"eth1\"]\nkeep_on_stop = true\n\
         [capture]\nfile = \"captures/drops-%Y%m%d.pcapng\"\nformat = \"pcapng\"\n\
         [capture.rotation]\nseconds = 3600\nfiles = 24\n\
         [log]\nwhich = \"dropped\"\nformat = \"json\"\nfile = \"events.jsonl\"\n\
         [metrics]\nlisten = \"127.0.0.1:9470\"\n\
         [[rule]]\nname = \"no-telnet\"\naction = \"drop\"\nprotocol = \"tcp\"\ndst_port = 23\n",
    )
    .unwrap();
    let out = check_unprivileged(&file);
    let (said, err) = text(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        said.contains(
            "captures/drops-%Y%m%d.pcapng (pcapng, snaplen 16384), rotating every 3600 s, 24 files"
        ),
        "{said}"
    );
    assert!(
        said.contains("  event log   dropped events, json, to "),
        "{said}"
    );
    assert!(
        said.contains("  metrics     http://127.0.0.1:9470/metrics"),
        "{said}"
    );
    assert!(
        said.contains("the firewall stays in force (keep_on_stop)"),
        "{said}"
    );
    assert!(
        said.contains("no-telnet") && said.contains("tcp and dst port 23"),
        "{said}"
    );
}

#[test]
fn broken_files_are_refused_with_their_line_or_what_the_run_would_hit() {
    let tmp = TempDir::new("cfg-broken");
    let file = tmp.file("xdpsieve.toml");
    let shown = file.display().to_string();
    let cases: [(&str, String); 9] = [
        (
            "interfaces = [\"eth0\"]\n[capture]\nfile = \"x.pcap\"\nsnaplne = 96\n",
            format!("{shown}:4:1: unknown key `snaplne`: [capture] has which, file, format"),
        ),
        (
            "interfaces = [\"eth0\"]\n[log]\nformat = \"xml\"\n",
            format!("{shown}:3:10: `log.format` must be one of \"text\", \"json\", not \"xml\""),
        ),
        (
            "interfaces = [\"eth0\"]\nring_size = true\n",
            format!(
                "{shown}:2:13: `ring_size` must be text in quotes or a whole number, not a boolean"
            ),
        ),
        (
            "interfaces = [\"eth0\"]\n[[rule]]\naction = \"drop\"\ndst_port = \"http\"\n",
            format!("{shown}:4:12: "),
        ),
        (
            "interfaces = [\"eth0\"]\nrules = \"fw.toml\"\n",
            format!("{shown}:2:9: `rules`: cannot open rule file"),
        ),
        (
            "interfaces = [\"eth0\"]\n[capture.rotation]\nsize_mb = 10\n",
            format!("{shown} with the command line"),
        ),
        (
            "interfaces = [\"eth0\"]\n[capture]\nfile = \"no-such-dir/x.pcap\"\n",
            "no-such-dir, which is not a directory here".to_string(),
        ),
        (
            "interfaces = [\"eth0\"]\n[capture]\nfile = \"x.pcap\"\nfilter = \"udp prot 53\"\n",
            format!("{shown}:4:10: `capture.filter`: capture filter `udp prot 53`"),
        ),
        (
            "interfaces = [\"eth0\"]\n[capture]\nfile = \"x.pcap\"\n[[rules]]\naction = \"drop\"\n",
            format!(
                "{shown}:4:1: `rules` names a rule file (rules = \"fw.toml\"); write each rule here as a [[rule]] table"
            ),
        ),
    ];
    for (content, expected) in cases {
        std::fs::write(&file, content).unwrap();
        let out = xdpsieve(&["check-config", &shown]);
        let (said, err) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{content:?}: {said}{err}");
        assert!(said.is_empty(), "{content:?}: {said}");
        assert!(err.starts_with("xdpsieve: error: "), "{content:?}: {err}");
        assert!(
            err.contains(&expected),
            "{content:?}: expected {expected:?} in {err}"
        );
    }
    // Not a file, or no file at all.
    let out = xdpsieve(&["check-config", "/dev/zero"]);
    let (_, err) = text(&out);
    assert!(
        err.contains("configuration file /dev/zero is a character device"),
        "{err}"
    );
    let missing = tmp.file("missing.toml");
    let out = xdpsieve(&["check-config", missing.to_str().unwrap()]);
    let (_, err) = text(&out);
    assert!(err.contains("cannot open configuration file"), "{err}");
}
