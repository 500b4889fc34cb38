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
