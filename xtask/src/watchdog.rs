//! A watchdog over `cargo test`: a test that hangs fails its binary, instead of holding the
//! whole gate until CI's own time limit ends it with nothing said.
//!
//! libtest has no time limit per test; it only says once that a test "has been running for
//! over 60 seconds". The watchdog reads cargo's output lines as they pass: when some test has
//! said so and no line at all has come for [`HANG_LIMIT`], the test binary cargo is running
//! (cargo runs them one at a time, as its children) is killed, with everything it started,
//! by their PIDs: processes this task started, through cargo. cargo then reports that binary
//! as failed and goes on with the next (`--no-fail-fast`). The binary's guards cannot run,
//! so its namespaces (each test's own, by unique name) may stay; the gate fails anyway.

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex, PoisonError},
    thread::JoinHandle,
    time::{Duration, Instant},
};

/// How long cargo may print nothing while a test is past libtest's 60 s notice. The longest
/// tests of the suite take a few minutes; between two lines of one binary there is far less.
pub(crate) const HANG_LIMIT: Duration = Duration::from_secs(15 * 60);

#[derive(Debug)]
struct State {
    /// When cargo last printed a line.
    last_line: Instant,
    /// Tests libtest said have been running for over 60 seconds, not finished since.
    slow: BTreeSet<String>,
    /// What the watchdog killed, to say at the end.
    killed: Vec<String>,
    done: bool,
}

/// Watches one `cargo test` whose process is `cargo`.
#[derive(Debug)]
pub(crate) struct Watchdog {
    state: Arc<Mutex<State>>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    pub(crate) fn start(cargo: u32) -> Watchdog {
        let state = Arc::new(Mutex::new(State {
            last_line: Instant::now(),
            slow: BTreeSet::new(),
            killed: Vec::new(),
            done: false,
        }));
        let watched = Arc::clone(&state);
        let thread = std::thread::spawn(move || watch(cargo, &watched));
        Watchdog {
            state,
            thread: Some(thread),
        }
    }

    /// Takes note of one line of cargo's standard output.
    pub(crate) fn line(&self, line: &str) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.last_line = Instant::now();
        if let Some(name) = slow_test(line) {
            state.slow.insert(name.to_string());
        } else if let Some(name) = finished_test(line) {
            state.slow.remove(name);
        }
    }

    /// Stops watching; what it killed, one line each.
    pub(crate) fn finish(mut self) -> Vec<String> {
        self.stop();
        std::mem::take(
            &mut self
                .state
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .killed,
        )
    }

    fn stop(&mut self) {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .done = true;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A caller that returns early (cargo's output could not be read) stops the watch too,
/// rather than leave a thread that may still kill the test binaries of a cargo nobody
/// reads any more.
impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop();
    }
}

fn watch(cargo: u32, state: &Mutex<State>) {
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.done {
            return;
        }
        if state.slow.is_empty() || state.last_line.elapsed() < HANG_LIMIT {
            continue;
        }
        let hung: Vec<String> = std::mem::take(&mut state.slow).into_iter().collect();
        for binary in children(cargo) {
            let mut tree = Vec::new();
            descendants(binary, &mut tree);
            // The test binary first, so that it starts nothing more; then what it started.
            for pid in std::iter::once(binary).chain(tree) {
                kill(pid);
            }
            let said = format!(
                "xtask: killed test binary pid {binary} (and what it started): no output for \
                 {} min while {} had been running for over 60 s",
                HANG_LIMIT.as_secs() / 60,
                hung.join(", ")
            );
            eprintln!("{said}");
            state.killed.push(said);
        }
        state.last_line = Instant::now();
    }
}

/// The name in libtest's "test NAME has been running for over 60 seconds".
fn slow_test(line: &str) -> Option<&str> {
    line.strip_prefix("test ")?
        .strip_suffix(" has been running for over 60 seconds")
}

/// The name in libtest's "test NAME ... ok" (or FAILED, ignored).
fn finished_test(line: &str) -> Option<&str> {
    line.strip_prefix("test ")?
        .split_once(" ... ")
        .map(|(name, _)| name)
}

/// The children of `pid`, from /proc (every thread's list).
fn children(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"));
    for task in tasks.into_iter().flatten().flatten() {
        let list = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        found.extend(
            list.split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok()),
        );
    }
    found.sort_unstable();
    found.dedup();
    found
}

/// Every descendant of `pid`, children before theirs.
fn descendants(pid: u32, into: &mut Vec<u32>) {
    for child in children(pid) {
        into.push(child);
        descendants(child, into);
    }
}

fn kill(pid: u32) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill has no memory preconditions; the PID was read from the /proc list of
        // a process of ours just now.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libtest_lines_are_read() {
        assert_eq!(
            slow_test("test a::b has been running for over 60 seconds"),
            Some("a::b")
        );
        assert_eq!(finished_test("test a::b ... ok"), Some("a::b"));
        assert_eq!(finished_test("test result: ok. 1 passed"), None);
        assert_eq!(slow_test("test a::b ... ok"), None);
    }

    #[test]
    fn a_quiet_slow_test_kills_the_running_binary_and_says_so() {
        // A stand-in for cargo: a shell whose child sleeps (the "test binary").
        let mut cargo = std::process::Command::new("sh")
            .args(["-c", "sleep 300 & wait"])
            .spawn()
            .expect("sh");
        let dog = Watchdog::start(cargo.id());
        dog.line("test x has been running for over 60 seconds");
        dog.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .last_line = Instant::now() - HANG_LIMIT;
        let deadline = Instant::now() + Duration::from_secs(30);
        while cargo.try_wait().expect("try_wait").is_none() {
            assert!(
                Instant::now() < deadline,
                "the sleeping child was not killed"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let killed = dog.finish();
        assert_eq!(killed.len(), 1, "{killed:?}");
        assert!(killed[0].contains("while x had been"), "{killed:?}");
    }
}
