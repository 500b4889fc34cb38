//! Per-packet cost of the XDP program, measured in the kernel with `BPF_PROG_TEST_RUN`
//! (repeat 1,000,000, median of several runs), beside a minimal `XDP_PASS` program measured
//! in the same run: absolute times drift on a shared machine, ratios to the floor do not.
//!
//! xdp-filter (Debian's xdp-tools), the tool an operator would pick instead, is measured in
//! the same run on equivalent rules: loaded on a veth in a namespace of our own, then run by
//! its program id.
//!
//! Run as root: `cargo bench -p xdpsieve --bench prog_cost` (add `-- --quick` for fewer runs).
//! While capture paths run, a reader thread drains the ring as the real recorder would, and
//! the records that still did not fit are reported beside the timing.

use std::{
    os::fd::{AsFd as _, AsRawFd as _, FromRawFd as _, OwnedFd},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use xdpsieve::{
    loader::{Firewall, Settings},
    rules::{Action, RuleSet},
};
use xdpsieve_common::capture;

const REPEAT: u32 = 1_000_000;

/// A minimal XDP program: `r0 = XDP_PASS; exit`. The floor every XDP program pays.
fn load_floor_program() -> std::io::Result<OwnedFd> {
    let insns: [u64; 2] = [
        u64::from_le_bytes([0xb7, 0x00, 0, 0, 2, 0, 0, 0]), // mov r0, 2
        u64::from_le_bytes([0x95, 0, 0, 0, 0, 0, 0, 0]),    // exit
    ];
    let license = c"GPL";
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&libc::c_uint::to_ne_bytes(6)); // BPF_PROG_TYPE_XDP
    attr[4..8].copy_from_slice(&2u32.to_ne_bytes());
    attr[8..16].copy_from_slice(&(insns.as_ptr() as u64).to_ne_bytes());
    attr[16..24].copy_from_slice(&(license.as_ptr() as u64).to_ne_bytes());
    // SAFETY: BPF_PROG_LOAD (5) with a zero-padded attr whose pointers outlive the call.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, 5, attr.as_ptr(), attr.len()) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new fd that we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Runs `fd` on `frame` `repeat` times; returns (verdict, average ns per run).
fn test_run(fd: i32, frame: &[u8], repeat: u32) -> std::io::Result<(u32, u32)> {
    let mut attr = [0u8; 80];
    attr[0..4].copy_from_slice(&(fd as u32).to_ne_bytes());
    attr[8..12].copy_from_slice(&(frame.len() as u32).to_ne_bytes());
    attr[16..24].copy_from_slice(&(frame.as_ptr() as u64).to_ne_bytes());
    attr[32..36].copy_from_slice(&repeat.to_ne_bytes());
    // SAFETY: BPF_PROG_TEST_RUN (10) with a zero-padded attr; data_in outlives the call.
    let ret = unsafe { libc::syscall(libc::SYS_bpf, 10, attr.as_mut_ptr(), attr.len()) };
    if ret < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let retval = u32::from_ne_bytes(attr[4..8].try_into().expect("4 bytes"));
    let duration = u32::from_ne_bytes(attr[36..40].try_into().expect("4 bytes"));
    Ok((retval, duration))
}

/// Ethernet + IPv4 + UDP frame of `len` bytes from `src_port`.
fn udp4_frame(len: usize, src_port: u16) -> Vec<u8> {
    let mut f = vec![0u8; len.max(42)];
    f[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 2]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    f[14] = 0x45;
    f[16..18].copy_from_slice(&((len - 14) as u16).to_be_bytes());
    f[22] = 64;
    f[23] = 17;
    f[26..30].copy_from_slice(&[198, 51, 100, 53]);
    f[30..34].copy_from_slice(&[192, 0, 2, 2]);
    f[34..36].copy_from_slice(&src_port.to_be_bytes());
    f[36..38].copy_from_slice(&40000u16.to_be_bytes());
    f[38..40].copy_from_slice(&((len - 34) as u16).to_be_bytes());
    f
}

/// Opens a loaded program by id (BPF_PROG_GET_FD_BY_ID).
fn prog_fd_by_id(id: u32) -> std::io::Result<OwnedFd> {
    let mut attr = [0u8; 16];
    attr[0..4].copy_from_slice(&id.to_ne_bytes());
    // SAFETY: BPF_PROG_GET_FD_BY_ID (13) with a zero-padded attr.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, 13, attr.as_ptr(), attr.len()) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new fd that we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// xdp-filter dropping source port 53, loaded in a throwaway namespace; its cost on the
/// no-match and drop frames. None (with the reason printed) when it cannot be loaded.
fn measure_xdp_filter(frames: &[(&str, &[u8])], runs: usize) -> Option<Vec<Case>> {
    let net = xdpsieve::netns::VethPair::create("xdpfilter", None)
        .map_err(|e| eprintln!("xdp-filter: no namespace: {e}"))
        .ok()?;
    let run = |args: &[&str]| {
        net.fw
            .command("xdp-filter")
            .args(args)
            .output()
            .map_err(|e| format!("{e} (apt-get install xdp-tools)"))
            .and_then(|o| {
                if o.status.success() {
                    Ok(())
                } else {
                    Err(String::from_utf8_lossy(&o.stderr).into_owned())
                }
            })
    };
    if let Err(e) = run(&["load", "fw0"]).and_then(|()| run(&["port", "53", "--mode", "src"])) {
        eprintln!("xdp-filter could not be loaded, left out: {e}");
        return None;
    }
    let link = net.fw.ip(&["-d", "link", "show", "dev", "fw0"]).ok()?;
    let id: u32 = link
        .split("prog/xdp id ")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let fd = prog_fd_by_id(id).ok()?;
    let cases = frames
        .iter()
        .map(|(name, frame)| {
            let mut verdict = 0;
            let times: Vec<u32> = (0..runs)
                .map(|_| {
                    let (v, ns) = test_run(fd.as_raw_fd(), frame, REPEAT).expect("xdp-filter run");
                    verdict = v;
                    ns
                })
                .collect();
            Case {
                name: format!("xdp-filter: {name}"),
                ns: median(times),
                verdict,
                note: "port 53 --mode src".into(),
            }
        })
        .collect();
    let _ = run(&["unload", "fw0"]);
    Some(cases)
}

fn median(mut values: Vec<u32>) -> u32 {
    values.sort_unstable();
    values[values.len() / 2]
}

struct Case {
    name: String,
    ns: u32,
    verdict: u32,
    note: String,
}

fn measure_firewall(
    name: &str,
    rules: usize,
    capture_mask: u32,
    frame: &[u8],
    runs: usize,
) -> Case {
    let mut set = RuleSet::default();
    // Rules that never match the test frames, then the one that decides.
    for i in 1..rules {
        set.push_expression(Action::Drop, &format!("tcp dst port {}", 1000 + i))
            .expect("filler rule");
    }
    set.push_expression(Action::Drop, "udp src port 53")
        .expect("rule");
    let settings = Settings {
        rules: set,
        capture: capture_mask,
        ring_bytes: 64 << 20,
        ..Settings::default()
    };
    let mut firewall = Firewall::load(&settings).expect("loading xdpsieve (are you root?)");
    let mut source = firewall.take_capture_source().expect("capture source");
    let stop = Arc::new(AtomicBool::new(false));
    let read = Arc::new(AtomicU64::new(0));
    let reader = {
        let (stop, read) = (Arc::clone(&stop), Arc::clone(&read));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let n = source.drain(|bytes| {
                    std::hint::black_box(bytes);
                }) as u64;
                read.fetch_add(n, Ordering::Relaxed);
                if n == 0 {
                    std::thread::sleep(Duration::from_micros(50));
                }
            }
        })
    };
    let fd = firewall
        .program()
        .expect("program")
        .fd()
        .expect("fd")
        .as_fd()
        .as_raw_fd();
    let mut times = Vec::new();
    let mut verdict = 0;
    for _ in 0..runs {
        let (v, ns) = test_run(fd, frame, REPEAT).expect("test run");
        verdict = v;
        times.push(ns);
    }
    stop.store(true, Ordering::Relaxed);
    reader.join().expect("reader");
    let c = firewall.counters().expect("counters");
    let note = if capture_mask != 0 && c.captured + c.capture_lost > 0 {
        format!(
            "captured {}, ring full {} ({:.1}%)",
            c.captured,
            c.capture_lost,
            100.0 * c.capture_lost as f64 / (c.captured + c.capture_lost) as f64
        )
    } else {
        String::new()
    };
    Case {
        name: name.into(),
        ns: median(times),
        verdict,
        note,
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let runs = if quick { 3 } else { 7 };
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("prog_cost needs root (BPF_PROG_TEST_RUN)");
        std::process::exit(1);
    }
    let small_pass = udp4_frame(64, 1234);
    let small_dns = udp4_frame(64, 53);
    let large_dns = udp4_frame(1500, 53);

    let floor = load_floor_program().expect("loading the floor program");
    let floor_times: Vec<u32> = (0..runs)
        .map(|_| {
            test_run(floor.as_raw_fd(), &small_pass, REPEAT)
                .expect("floor run")
                .1
        })
        .collect();
    let floor_ns = median(floor_times);

    let mut cases = vec![Case {
        name: "empty XDP_PASS program (floor), 64 B".into(),
        ns: floor_ns,
        verdict: 2,
        note: String::new(),
    }];
    for rules in [1, 64, xdpsieve_common::MAX_RULES as usize] {
        cases.push(measure_firewall(
            &format!("no rule matched, {rules} rule(s), 64 B"),
            rules,
            capture::DROPPED,
            &small_pass,
            runs,
        ));
    }
    cases.push(measure_firewall(
        "dropped, no capture, 64 B",
        1,
        0,
        &small_dns,
        runs,
    ));
    cases.push(measure_firewall(
        "dropped + captured, 64 B",
        1,
        capture::DROPPED,
        &small_dns,
        runs,
    ));
    cases.push(measure_firewall(
        "dropped + captured, 1500 B",
        1,
        capture::DROPPED,
        &large_dns,
        runs,
    ));

    if let Some(peer) = measure_xdp_filter(
        &[
            ("no rule matched, 64 B", &small_pass),
            ("dropped, 64 B", &small_dns),
        ],
        runs,
    ) {
        cases.extend(peer);
    }

    println!("BPF_PROG_TEST_RUN, repeat {REPEAT}, median of {runs} runs");
    println!(
        "{:<44} {:>8} {:>9} {:>7}  notes",
        "case", "ns/pkt", "vs floor", "verdict"
    );
    for c in &cases {
        println!(
            "{:<44} {:>8} {:>8.2}x {:>7}  {}",
            c.name,
            c.ns,
            f64::from(c.ns) / f64::from(floor_ns.max(1)),
            match c.verdict {
                1 => "DROP",
                2 => "PASS",
                _ => "OTHER",
            },
            c.note
        );
    }
}
