//! Whether a test can run here, and what it found the running kernel does.

/// True when the test can run. Without root it skips (returns false), except under `CI`,
/// where a test that cannot run must fail rather than pass silently.
pub fn root_or_skip() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "this test needs root (XDP programs, network namespaces); CI must run it as root"
    );
    eprintln!("skipping: this test needs root (XDP programs, network namespaces)");
    false
}

/// Says what a test found the running kernel does (see `xdpsieve/tests/README.md`): one
/// line, `kernel: WHAT`, on stderr, shown even when the test passes (the test harness
/// captures only what the print macros write).
pub fn kernel_found(what: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "kernel: {what}");
}
