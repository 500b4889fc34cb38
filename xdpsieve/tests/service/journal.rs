//! Priorities for the journal: with `JOURNAL_STREAM` naming standard error's own device
//! and inode (as systemd sets it for a unit whose output goes to the journal), every line
//! on standard error carries `<N>`: the error a command ends with `<3>`, warnings `<4>`,
//! the start-up line, the status line and the summary `<6>`. With `JOURNAL_STREAM` naming
//! another file, no line does.

use std::{
    fs::File,
    os::unix::fs::MetadataExt as _,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use xdpsieve_netns::VethPair;

use xdpsieve_testkit::{
    fwnet::{DROPPED_PORT, Net},
    gate::root_or_skip,
    tempdir::TempDir,
};

use crate::BINARY;

/// A child started here with standard error to a file; killed (by PID) on drop if still
/// running.
struct Started(Option<std::process::Child>);

impl Started {
    /// SIGTERM, and its exit status.
    fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.0.take().expect("running");
        // SAFETY: kill on the PID of a child we started and have not reaped.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        child.wait().expect("waiting for xdpsieve")
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// `JOURNAL_STREAM`'s value for `file`.
fn stream_of(file: &Path) -> String {
    let meta = std::fs::metadata(file).expect("stat");
    format!("{}:{}", meta.dev(), meta.ino())
}

#[test]
fn a_command_failing_into_the_journal_says_so_at_error_priority() {
    // No kernel, no root: the configuration file does not exist.
    let tmp = TempDir::new("svc-journal-err");
    let err = tmp.file("stderr");
    let stream = File::create(&err).unwrap();
    let out = Command::new(BINARY)
        .args(["check-config", "/nonexistent/xdpsieve.toml"])
        .env("JOURNAL_STREAM", stream_of(&err))
        .stdin(Stdio::null())
        .stderr(stream)
        .output()
        .expect("running xdpsieve");
    assert!(!out.status.success());
    let said = std::fs::read_to_string(&err).unwrap();
    assert!(said.starts_with("<3>xdpsieve: error: "), "{said:?}");
    assert!(said.lines().all(|l| l.starts_with("<3>")), "{said:?}");

    // The same to another file than the stream named: no prefix.
    let other = tmp.file("other");
    File::create(&other).unwrap();
    let out = Command::new(BINARY)
        .args(["check-config", "/nonexistent/xdpsieve.toml"])
        .env("JOURNAL_STREAM", stream_of(&other))
        .stdin(Stdio::null())
        .output()
        .expect("running xdpsieve");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.starts_with("xdpsieve: error: "), "{said:?}");
}

#[test]
fn a_run_into_the_journal_prefixes_every_line_with_its_priority() {
    if !root_or_skip() {
        return;
    }
    let net = Net::create(BINARY, "journal");
    let tmp = TempDir::new("svc-journal");
    // A set file with host bits set: a warning at the start.
    let set = tmp.file("block.txt");
    std::fs::write(&set, "198.51.100.7/24\n").unwrap();
    let rules = tmp.file("rules.toml");
    std::fs::write(
        &rules,
        format!(
            "[[set]]\nname = \"block\"\nfile = \"{}\"\n\n[[rule]]\nname = \"flooded\"\n\
             action = \"drop\"\nprotocol = \"udp\"\ndst_port = {DROPPED_PORT}\n\n\
             [[rule]]\nname = \"blocked\"\naction = \"drop\"\nsrc = \"@block\"\n",
            set.display()
        ),
    )
    .unwrap();
    let err = tmp.file("stderr");
    let stream = File::create(&err).unwrap();
    let child = net
        .command(BINARY)
        .env("JOURNAL_STREAM", stream_of(&err))
        .args([
            "run",
            "-i",
            VethPair::FW_IF,
            "--stats-interval",
            "0.3",
            "--rules",
        ])
        .arg(&rules)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stream)
        .spawn()
        .expect("starting xdpsieve");
    let mut run = Started(Some(child));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !xdpsieve_testkit::child::published(BINARY, &net.pair) {
        assert!(Instant::now() < deadline, "not started: {}", read(&err));
        std::thread::sleep(Duration::from_millis(25));
    }
    net.send(DROPPED_PORT, 5);
    std::thread::sleep(Duration::from_millis(800));
    let status = run.stop();
    let said = read(&err);
    assert!(status.success(), "{said}");
    let line = |start: &str| said.lines().find(|l| l.contains(start)).map(str::to_string);
    assert!(
        line("has host bits set").is_some_and(|l| l.starts_with("<4>warning: ")),
        "{said}"
    );
    assert!(
        line("xdpsieve: filtering on fw0").is_some_and(|l| l.starts_with("<6>")),
        "{said}"
    );
    assert!(
        line(" pkt/s (").is_some_and(|l| l.starts_with("<6>xdpsieve: ")),
        "{said}"
    );
    assert!(
        line("packets seen by xdpsieve").is_some_and(|l| l.starts_with("<6>")),
        "{said}"
    );
    let bare: Vec<&str> = said
        .lines()
        .filter(|l| !(l.starts_with("<3>") || l.starts_with("<4>") || l.starts_with("<6>")))
        .collect();
    assert!(
        bare.is_empty(),
        "lines without a priority: {bare:#?}\n{said}"
    );
}
