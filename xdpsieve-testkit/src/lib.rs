//! What xdpsieve's tests, benchmarks and xtask share, in one crate without BPF (so xtask
//! can use it before `cargo xtask setup` has installed what building the XDP program
//! needs) and without the library (the tests link that themselves; what the kit knows of
//! xdpsieve is its command line). Never a dependency of the library or the binary: the
//! library's unit tests, its integration tests and benches take it as a dev-dependency,
//! xtask as a dependency.
//!
//! - [`gate`]: whether a test can run here (root, or fail under `CI`), and the `kernel:`
//!   line a test prints about what it measured (every root test);
//! - [`child`]: a child process killed by its PID when dropped (the tests, xtask's
//!   benchmarks), and `xdpsieve run` under it in a test's namespaces;
//! - [`fwnet`]: a firewall's namespaces for the tests that kill, race and take over
//!   `xdpsieve run` (`failstatic`, `ownership`);
//! - [`tempdir`]: scratch directories, a small tmpfs when asked, removed on drop (unit
//!   and integration tests);
//! - [`tool`]: running a command to success and taking its output;
//! - [`docs`]: the manual pages rendered by man(1), the completions loaded by their shells
//!   (`tests/package`: as generated, and as the Debian package installs them);
//! - [`udp`], [`summary`]: what reached a socket, numbers from the exit summary;
//! - [`frame`]: frames built field by field (the kernel, filter and set tests,
//!   `prog_cost`, `set_cost`);
//! - [`rng`]: the one seeded random generator (unit tests, kernel tests, `set_cost`, the
//!   live-set benchmark in xtask);
//! - [`prefix_gen`]: deterministic address sets shaped like a routing table, and their
//!   membership model (`set_cost`);
//! - [`replay`]: frames sent raw from the peer's interface (crafted or spoofed);
//! - [`bpf`]: the `bpf(2)` calls the benches make directly (`prog_cost`, `set_cost`);
//! - [`insns`]: eBPF instructions a loaded program executes on a frame, by interpreting
//!   its verified code (`prog_cost`, the `insns` test).
//!
//! The namespaces themselves are the `xdpsieve-netns` crate, which the demo uses too.

pub mod bpf;
pub mod child;
pub mod docs;
pub mod frame;
pub mod fwnet;
pub mod gate;
pub mod insns;
pub mod prefix_gen;
pub mod replay;
pub mod rng;
pub mod summary;
pub mod tempdir;
pub mod tool;
pub mod udp;
