//! Shared by the root-only test binaries.

/// True when the test can run. Without root it skips (returns false), except under `CI`,
/// where a test that cannot run must fail rather than pass silently.
pub fn root_or_skip() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("this test needs root (XDP programs, network namespaces); CI must run it as root");
    }
    eprintln!("skipping: this test needs root (XDP programs, network namespaces)");
    false
}

/// Says what a test found the running kernel does (see `tests/README.md`): one line,
/// `kernel: WHAT`, on stderr, shown even when the test passes (the test harness captures
/// only what the print macros write).
#[allow(
    dead_code,
    reason = "only the tests that measure the kernel say what they found"
)]
pub fn kernel_found(what: std::fmt::Arguments) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "kernel: {what}");
}
