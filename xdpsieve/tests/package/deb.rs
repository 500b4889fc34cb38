//! The Debian package as an operator meets it (root; under `CI` these fail rather than
//! skip): built from this checkout by `cargo xtask package` (`cargo xtask test` builds it
//! first and names it in `XDPSIEVE_DEB`; run alone, the test builds it), checked by
//! lintian, installed with `dpkg -i`, run with no Rust toolchain reachable, and purged.
//!
//! The test changes the machine's package database, users and /etc, so it leaves the
//! machine as it found it even when it fails: a guard purges the package and removes what
//! the purge keeps (the capture directory) or could not remove. It refuses to run where
//! xdpsieve is already installed, or its user or directories already exist: they are the
//! operator's, and the purge would take them.

use std::{
    env, fs,
    os::unix::fs::{MetadataExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::OnceLock,
};

use xdpsieve::instance::pins;
use xdpsieve_testkit::{
    docs::{bash_complete, fish_complete, render_man_page, zsh_registers},
    gate::root_or_skip,
    tempdir::TempDir,
};

/// Where `cargo xtask test` names the package it built (empty: the build failed).
const DEB_ENV: &str = "XDPSIEVE_DEB";
const BIN: &str = "/usr/bin/xdpsieve";
const CONFIG: &str = "/etc/xdpsieve/xdpsieve.toml";
const UNIT: &str = "/usr/lib/systemd/system/xdpsieve.service";
const STATE: &str = "/var/lib/xdpsieve";
const BASH: &str = "/usr/share/bash-completion/completions/xdpsieve";
const ZSH: &str = "/usr/share/zsh/vendor-completions/_xdpsieve";
const FISH: &str = "/usr/share/fish/vendor_completions.d/xdpsieve.fish";
/// The environment of a machine without Rust: the system's PATH, a fresh HOME.
const SYSTEM_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

pub(crate) fn root_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The .deb: the one `cargo xtask test` built, or one built now.
pub(crate) fn deb() -> &'static Path {
    static DEB: OnceLock<PathBuf> = OnceLock::new();
    DEB.get_or_init(|| match env::var_os(DEB_ENV) {
        Some(path) if path.is_empty() => {
            panic!("`cargo xtask package` failed (xtask says why as it ends): there is no package")
        }
        Some(path) => PathBuf::from(path),
        None => {
            let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let out = run(Command::new(cargo)
                .args(["xtask", "package"])
                .current_dir(root_dir())
                .stderr(Stdio::inherit()));
            assert!(out.status.success(), "cargo xtask package failed");
            let stdout = String::from_utf8_lossy(&out.stdout);
            PathBuf::from(stdout.lines().last().unwrap_or_default().trim())
        }
    })
}

fn run(command: &mut Command) -> Output {
    command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {command:?}: {e}"))
}

/// Runs `command`, which must succeed: its standard output and error, together.
fn ok(command: &mut Command) -> String {
    let out = run(command);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{command:?} failed ({}):\n{text}",
        out.status
    );
    text
}

/// The package's state in dpkg's database (`ii`, `rc`, ...), None when dpkg knows of none.
fn dpkg_status() -> Option<String> {
    let out = run(Command::new("dpkg-query").args(["-W", "-f", "${db:Status-Abbrev}", "xdpsieve"]));
    let status = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !status.is_empty() && !status.starts_with("un")).then_some(status)
}

fn entity_exists(database: &str) -> bool {
    run(Command::new("getent").args([database, "xdpsieve"]))
        .status
        .success()
}

/// What the package must not have changed by being installed: XDP on the root
/// namespace's interfaces, and xdpsieve's pins and runtime state for this namespace (other
/// namespaces' are other tests' firewalls, which come and go meanwhile).
fn attachments() -> Vec<String> {
    let links = ok(Command::new("ip").args(["-o", "link", "show"]));
    let mut state: Vec<String> = links
        .lines()
        .filter(|l| l.contains(" xdp") || l.contains("prog/xdp"))
        .map(str::to_string)
        .collect();
    let here = pins::namespace_key();
    for dir in [pins::root::DEFAULT_ROOT, pins::RUN_DIR] {
        if let Ok(entries) = fs::read_dir(Path::new(dir).join(&here)) {
            state.extend(entries.flatten().map(|e| e.path().display().to_string()));
        }
    }
    state.sort();
    state
}

/// Processes running the installed binary.
fn installed_processes() -> Vec<String> {
    let Ok(procs) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .flatten()
        .filter(|p| fs::read_link(p.path().join("exe")).is_ok_and(|exe| exe == Path::new(BIN)))
        .map(|p| p.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Purges the package, whatever happened, and takes back what the test added (the test
/// runs only where none of it existed: [`refuse_if_present`]).
struct Installed;

impl Installed {
    fn purge(&self) -> Output {
        run(Command::new("dpkg").args(["--purge", "xdpsieve"]))
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        if dpkg_status().is_some() {
            let out = self.purge();
            if !out.status.success() {
                eprintln!(
                    "cleanup: dpkg --purge xdpsieve failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        // The purge keeps captures; these are the test's. And what a failed purge left.
        let _ = fs::remove_dir_all(STATE);
        let _ = fs::remove_dir_all("/etc/xdpsieve");
        if entity_exists("passwd") {
            let _ = run(Command::new("userdel").arg("xdpsieve"));
        }
        if entity_exists("group") {
            let _ = run(Command::new("groupdel").arg("xdpsieve"));
        }
    }
}

/// Refuses a machine where xdpsieve is already installed or its user or files exist: the
/// test would replace and then purge the operator's.
fn refuse_if_present() {
    if let Some(status) = dpkg_status() {
        panic!(
            "xdpsieve is already installed here (dpkg status {status}): this test installs \
             and purges its own package and will not replace the operator's; run it on \
             another machine, or remove it first (dpkg --purge xdpsieve)"
        );
    }
    for database in ["passwd", "group"] {
        assert!(
            !entity_exists(database),
            "a {database} entry `xdpsieve` exists: the package's purge would remove it; \
             this test will not run here"
        );
    }
    for dir in ["/etc/xdpsieve", STATE] {
        assert!(
            !Path::new(dir).exists(),
            "{dir} exists: the package's purge would remove or take it; this test will \
             not run here"
        );
    }
}

#[test]
fn lintian_reports_no_error() {
    if !root_or_skip() {
        return;
    }
    let out = run(Command::new("lintian").args(["--pedantic"]).arg(deb()));
    let report = String::from_utf8_lossy(&out.stdout);
    let errors: Vec<&str> = report.lines().filter(|l| l.starts_with("E:")).collect();
    assert!(
        errors.is_empty() && out.status.success(),
        "lintian ({}) reports errors:\n{report}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // What it said, for the log: warnings are shown, not failed on.
    eprintln!("lintian:\n{report}");
}

#[test]
fn the_package_installs_runs_without_rust_and_purges_clean() {
    if !root_or_skip() {
        return;
    }
    let deb = deb();
    refuse_if_present();
    let before = attachments();
    let run_dir_existed = Path::new("/run/xdpsieve").exists();
    let guard = Installed;
    ok(Command::new("dpkg").arg("-i").arg(deb));
    assert_eq!(dpkg_status().as_deref(), Some("ii"));

    // What it installed, where Debian looks for it.
    let files = ok(Command::new("dpkg").args(["-L", "xdpsieve"]));
    let mut expected: Vec<String> = [BIN, CONFIG, UNIT, BASH, ZSH, FISH]
        .map(str::to_string)
        .to_vec();
    expected.push("/usr/share/man/man8/xdpsieve.8.gz".into());
    expected.push("/usr/share/man/man5/xdpsieve.toml.5.gz".into());
    expected.extend(
        super::verbs()
            .iter()
            .map(|v| format!("/usr/share/man/man8/xdpsieve-{v}.8.gz")),
    );
    for doc in ["README.md", "copyright", "changelog.Debian.gz"] {
        expected.push(format!("/usr/share/doc/xdpsieve/{doc}"));
    }
    for path in &expected {
        assert!(
            files.lines().any(|l| l == path),
            "{path} not in the package:\n{files}"
        );
        assert!(Path::new(path).is_file(), "{path} not installed");
    }
    // The configuration is a conffile, the shipped one, and filters nothing.
    let conffiles = fs::read_to_string("/var/lib/dpkg/info/xdpsieve.conffiles").unwrap();
    assert!(conffiles.lines().any(|l| l.trim() == CONFIG), "{conffiles}");
    let shipped = root_dir().join("dist/xdpsieve.toml");
    assert_eq!(fs::read(CONFIG).unwrap(), fs::read(shipped).unwrap());
    assert_eq!(
        fs::read(UNIT).unwrap(),
        fs::read(root_dir().join("dist/xdpsieve.service")).unwrap(),
        "the unit installed is dist/xdpsieve.service as it is"
    );

    // The system user, its capture directory; nothing attached, running or enabled.
    let user = ok(Command::new("getent").args(["passwd", "xdpsieve"]));
    let fields: Vec<&str> = user.trim().split(':').collect();
    let uid: u32 = fields[2].parse().unwrap();
    assert!(uid < 1000, "not a system user: {user}");
    assert_eq!(fields[5], STATE, "{user}");
    assert_eq!(fields[6], "/usr/sbin/nologin", "{user}");
    assert!(entity_exists("group"));
    let state = fs::metadata(STATE).expect("the capture directory");
    assert!(state.is_dir());
    assert_eq!(state.uid(), uid);
    assert_eq!(state.permissions().mode() & 0o7777, 0o750);
    assert_eq!(
        attachments(),
        before,
        "installing attached or pinned something"
    );
    assert_eq!(
        installed_processes(),
        Vec::<String>::new(),
        "something runs {BIN}"
    );
    assert!(
        !Path::new("/etc/systemd/system/multi-user.target.wants/xdpsieve.service").exists(),
        "the unit was enabled on install"
    );

    // The binary on a machine without Rust: no cargo or rustc reachable.
    let home = TempDir::new("package-home");
    let system = |program: &str| {
        let mut command = Command::new(program);
        command
            .env_clear()
            .env("PATH", SYSTEM_PATH)
            .env("HOME", home.path())
            .current_dir(home.path());
        command
    };
    let found = run(system("sh").args(["-c", "command -v cargo rustc rustup"]));
    assert!(
        !found.status.success() && found.stdout.is_empty(),
        "a Rust toolchain is reachable: {}",
        String::from_utf8_lossy(&found.stdout)
    );
    let version = ok(system(BIN).arg("--version"));
    assert_eq!(
        version.trim(),
        format!("xdpsieve {}", env!("CARGO_PKG_VERSION"))
    );
    let refused = run(system(BIN).args(["check-config", CONFIG]));
    assert!(
        !refused.status.success(),
        "the shipped configuration runs as is"
    );
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("no interface to filter on"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let demo = ok(system(BIN).arg("demo"));
    assert!(demo.contains("Done."), "{demo}");

    // The pages by name and rendered; the completions loaded by their shells.
    let found = ok(system("man").args(["-w", "xdpsieve.toml"]));
    assert_eq!(found.trim(), "/usr/share/man/man5/xdpsieve.toml.5.gz");
    for page in expected.iter().filter(|p| p.starts_with("/usr/share/man/")) {
        let text = render_man_page(Path::new(page)).unwrap_or_else(|e| panic!("{e}"));
        assert!(text.contains("NAME"), "{page}:\n{text}");
    }
    let bash =
        bash_complete(Path::new(BASH), &["xdpsieve", "ch"]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(bash, ["check-rules", "check-config"]);
    let bash_spec = ok(Command::new("bash").args([
        "--norc",
        "-c",
        &format!("source {BASH}; complete -p xdpsieve"),
    ]));
    assert!(bash_spec.contains("xdpsieve"), "{bash_spec}");
    assert_eq!(
        zsh_registers(Path::new(ZSH)).unwrap_or_else(|e| panic!("{e}")),
        "_xdpsieve"
    );
    let fish =
        fish_complete(Path::new(FISH), "xdpsieve run --keep").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(fish, ["--keep-on-stop"]);

    // A capture the service wrote, then the purge: everything goes but the capture.
    let capture = Path::new(STATE).join("drops.pcapng");
    fs::write(&capture, b"capture").unwrap();
    std::os::unix::fs::chown(&capture, Some(uid), Some(uid)).unwrap();
    let out = guard.purge();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "dpkg --purge failed:\n{said}");
    assert!(
        said.contains("the captures stay in /var/lib/xdpsieve"),
        "{said}"
    );
    assert_eq!(dpkg_status(), None);
    for path in expected.iter().map(String::as_str).chain(["/etc/xdpsieve"]) {
        assert!(!Path::new(path).exists(), "{path} is left after the purge");
    }
    if !run_dir_existed {
        assert!(
            !Path::new("/run/xdpsieve").exists(),
            "/run/xdpsieve is left"
        );
    }
    assert!(!entity_exists("passwd"), "the user xdpsieve is left");
    assert!(!entity_exists("group"), "the group xdpsieve is left");
    assert_eq!(
        fs::read(&capture).unwrap(),
        b"capture",
        "the capture is gone"
    );
    let kept = fs::metadata(&capture).unwrap();
    assert_eq!(
        (kept.uid(), kept.gid()),
        (0, 0),
        "the capture is not root's"
    );
    assert_eq!(
        fs::metadata(STATE).unwrap().permissions().mode() & 0o7777,
        0o700
    );
    assert_eq!(attachments(), before);
    drop(guard);
    assert!(!Path::new(STATE).exists());
}
