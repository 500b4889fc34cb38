//! Hostile input at the command line: the real binary, given devices, FIFOs, huge files,
//! absurd numbers, empty names, colliding ids and control characters, must answer with a
//! clear error (or correct output), never a panic, a hang or unbounded memory.
//!
//! No root needed: every `run` here names an interface that does not exist
//! (`xdpsv-none0`), so even a binary that accepted the bad flag would stop at the
//! interface lookup, before touching the kernel. Each child runs with a memory limit and
//! a deadline, so a binary that reads `/dev/zero` forever fails the test instead of the
//! machine.

use std::{
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use xdpsieve_testkit::tempdir::TempDir;

const BINARY: &str = env!("CARGO_BIN_EXE_xdpsieve");
const NO_SUCH_INTERFACE: &str = "xdpsv-none0";
/// Address space for the child: plenty for the program, far less than /dev/zero offers.
const CHILD_MEMORY: libc::rlim_t = 1 << 30;
const CHILD_DEADLINE: Duration = Duration::from_secs(20);

/// What the binary said and how it ended.
struct Outcome {
    status: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Outcome {
    fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// Failed with a usage or rule error (exit 1 or 2), not a panic (101) or a signal.
    fn assert_refused(&self, words: &[&str]) {
        assert!(
            matches!(self.status, Some(1 | 2)),
            "expected a clean error, got status {:?}: {}",
            self.status,
            self.all()
        );
        self.assert_says(words);
    }

    fn assert_says(&self, words: &[&str]) {
        let all = self.all();
        for w in words {
            assert!(all.contains(w), "expected {w:?} in: {all}");
        }
        assert!(!all.contains("panicked"), "{all}");
        assert!(
            !all.chars().any(|c| c.is_control() && c != '\n'),
            "raw control characters in output: {all:?}"
        );
    }
}

/// Runs the binary with `args`, a memory limit and a deadline (killed by PID past it).
fn xdpsieve<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Outcome {
    let mut command = Command::new(BINARY);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe and touches only the child.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: CHILD_MEMORY,
                rlim_max: CHILD_MEMORY,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().expect("starting the xdpsieve binary");
    let (mut stdout, mut stderr) = (child.stdout.take(), child.stderr.take());
    let readers = [
        std::thread::spawn(move || read_all(stdout.as_mut())),
        std::thread::spawn(move || read_all(stderr.as_mut())),
    ];
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for xdpsieve") {
            break status;
        }
        if start.elapsed() > CHILD_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "xdpsieve {:?} still running after {CHILD_DEADLINE:?}",
                args_text(args)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let [stdout, stderr] = readers.map(|r| r.join().expect("reader thread"));
    Outcome {
        status: status.code(),
        stdout,
        stderr,
    }
}

fn read_all(pipe: Option<&mut impl std::io::Read>) -> String {
    let mut bytes = Vec::new();
    if let Some(p) = pipe {
        let _ = p.read_to_end(&mut bytes);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn args_text<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Vec<String> {
    args.iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect()
}

/// A file `name` holding `text` in `scratch`.
fn write_file(scratch: &TempDir, name: &str, text: &str) -> PathBuf {
    let path = scratch.file(name);
    std::fs::write(&path, text).expect("writing a test file");
    path
}

fn check_rules(path: &Path) -> Outcome {
    xdpsieve(&[Path::new("check-rules"), path])
}

fn run_with(extra: &[&str]) -> Outcome {
    let mut args = vec!["run", "-i", NO_SUCH_INTERFACE];
    args.extend_from_slice(extra);
    xdpsieve(&args)
}

#[test]
fn check_rules_refuses_a_device() {
    check_rules(Path::new("/dev/zero")).assert_refused(&["/dev/zero", "character device"]);
}

#[test]
fn check_rules_refuses_a_fifo_without_waiting_for_a_writer() {
    let scratch = TempDir::new("hostile-fifo");
    let fifo = scratch.file("rules.toml");
    let c_path = std::ffi::CString::new(fifo.to_str().expect("UTF-8 path")).expect("no NUL");
    // SAFETY: a valid C string; mkfifo only creates the node.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0, "mkfifo");
    check_rules(&fifo).assert_refused(&["FIFO", "not a regular file"]);
}

#[test]
fn check_rules_refuses_a_directory() {
    let scratch = TempDir::new("hostile-dir");
    check_rules(scratch.path()).assert_refused(&["is a directory"]);
}

#[test]
fn check_rules_refuses_a_huge_file_past_the_cap() {
    let scratch = TempDir::new("hostile-huge");
    let path = scratch.file("huge.toml");
    let file = std::fs::File::create(&path).expect("creating the sparse file");
    file.set_len(100 << 20).expect("making it 100 MiB (sparse)");
    check_rules(&path).assert_refused(&["larger than 4194304 bytes"]);
}

#[test]
fn stats_interval_out_of_range_is_refused() {
    for value in ["1e300", "nan", "-1", "inf", "0"] {
        run_with(&["--stats-interval", value])
            .assert_refused(&["--stats-interval", "between 0.1 and 86400"]);
    }
}

#[test]
fn count_of_zero_is_refused() {
    run_with(&["-w", "/dev/null", "-c", "0"]).assert_refused(&["-c", "at least 1"]);
}

#[test]
fn expression_without_conditions_is_refused() {
    for expr in ["and", "", " "] {
        run_with(&["--drop", expr]).assert_refused(&["at least one condition", "--default drop"]);
    }
}

#[test]
fn empty_interface_names_are_refused() {
    xdpsieve(&["run", "-i", "", "--drop", "udp"]).assert_refused(&["empty interface name"]);
    xdpsieve(&["run", "-i", "xdpsv-none0,", "--drop", "udp"])
        .assert_refused(&["empty interface name"]);
    xdpsieve(&["run", "-i", "a\x1b[31mb", "--drop", "udp"]).assert_refused(&["\\x1b"]);
}

#[test]
fn cli_rules_after_the_highest_file_id_get_distinct_nonzero_ids() {
    let scratch = TempDir::new("hostile-maxid");
    let path = write_file(
        &scratch,
        "max.toml",
        "[[rule]]\nid = 4294967295\nname = \"top\"\naction = \"drop\"\nprotocol = \"udp\"\n\
         [[rule]]\naction = \"pass\"\nprotocol = \"tcp\"\n",
    );
    let out = xdpsieve(&[
        "check-rules".as_ref(),
        path.as_os_str(),
        "--drop".as_ref(),
        "udp src port 53".as_ref(),
        "--pass".as_ref(),
        "icmp".as_ref(),
    ]);
    assert_eq!(out.status, Some(0), "{}", out.all());
    let ids: Vec<u64> = out
        .stdout
        .lines()
        .skip(1)
        .map(|l| {
            l.split_whitespace()
                .next()
                .and_then(|id| id.parse().ok())
                .expect("an id")
        })
        .collect();
    assert_eq!(ids, [4_294_967_295, 1, 2, 3], "{}", out.stdout);
    assert!(
        out.stdout.contains("drop udp src port 53"),
        "{}",
        out.stdout
    );
}

#[test]
fn duplicate_ids_name_both_rules() {
    let scratch = TempDir::new("hostile-dupid");
    let path = write_file(
        &scratch,
        "dup.toml",
        "[[rule]]\nid = 5\nname = \"first\"\naction = \"drop\"\n\
         [[rule]]\nid = 5\nname = \"second\"\naction = \"pass\"\n",
    );
    check_rules(&path).assert_refused(&[
        "dup.toml:6:6",
        "duplicate rule id 5",
        "rule `second`",
        "rule `first` at line 2",
    ]);
}

#[test]
fn control_characters_in_rule_names_never_reach_the_terminal() {
    let scratch = TempDir::new("hostile-ctl");
    let path = write_file(
        &scratch,
        "ctl.toml",
        "[[rule]]\naction = \"drop\"\nname = \"evil\\u001b[31m\\nforged line\"\n",
    );
    check_rules(&path).assert_refused(&["ctl.toml:3:8", "evil\\x1b[31m\\nforged line"]);
    // A path with control characters is escaped too.
    let odd = write_file(&scratch, "odd\x1b[2J.toml", "default = \"drop\"\n");
    let out = check_rules(&odd);
    assert_eq!(out.status, Some(0), "{}", out.all());
    out.assert_says(&["odd\\x1b[2J.toml: 0 rules, default drop"]);
}

#[test]
fn toml_type_errors_are_in_words() {
    let scratch = TempDir::new("hostile-types");
    let cases = [
        (
            "[[rule]]\naction = \"drop\"\nsrc_port = true\n",
            "3:12",
            "`src_port` must be a port number or \"low-high\", not a boolean",
        ),
        ("rule = 5\n", "1:8", "`rule` must be a list of rules"),
        (
            "[[rule]]\naction = 6\n",
            "2:10",
            "`action` must be \"drop\", \"pass\" or \"limit\"",
        ),
        (
            "[[rule]]\naction = \"drop\"\nid = -3\n",
            "3:6",
            "`id` must be a whole number from 1",
        ),
    ];
    for (text, position, words) in cases {
        let path = write_file(&scratch, "t.toml", text);
        let out = check_rules(&path);
        out.assert_refused(&[&format!("t.toml:{position}: "), words]);
        for internal in [
            "invalid type",
            "expected struct",
            "RuleFile",
            "RuleEntry",
            "untagged",
        ] {
            assert!(!out.all().contains(internal), "{}", out.all());
        }
    }
}

#[test]
fn enum_flags_list_their_values_as_typed() {
    let out = xdpsieve(&["run", "-i", NO_SUCH_INTERFACE, "--transport", "ring-buf"]);
    out.assert_refused(&["possible values: ringbuf, perf"]);
    let out = xdpsieve(&["run", "-i", NO_SUCH_INTERFACE, "--capture", "all"]);
    out.assert_refused(&["--capture all needs a capture file"]);
}
