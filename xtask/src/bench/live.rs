//! Live changes under traffic (issue 9): `xdpsieve run` filters a flood in the sandbox with
//! a rule on a set of prefixes while `xdpsieve reload` swaps two rule files back and forth
//! and `xdpsieve set add/del --from-file` change 10,000 scattered addresses. The figures
//! are what the commands report (reload: total, load, swap; set: the change under its
//! lock) and the wall time of each command, process start included.

use std::{
    fmt::Write as _,
    fs,
    path::Path,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use serde_json::json;
use xdpsieve_testkit::rng::Rng;

use crate::netbench::{
    DST_PORT, FW_IF, Proc, Sandbox, Traffic, check_interrupted, online_cpus, spawn_sender,
    udp_frame,
};

/// Prefixes in the set the rule files share, and addresses a bulk change adds.
const SET_PREFIXES: usize = 100_000;
const BULK: usize = 10_000;

/// Public-looking IPv4 prefixes /16 to /32 (never 192.0.2.0/24, the sandbox's own).
fn netset(rng: &mut Rng, n: usize, host_only: bool) -> String {
    let mut out = String::with_capacity(n * 20);
    let mut written = 0;
    while written < n {
        let a = rng.next_u64() as u32;
        if (a >> 8) == 0xc0_00_02 || (a >> 24) == 0 || (a >> 24) >= 224 {
            continue;
        }
        let len = if host_only {
            32
        } else {
            16 + (rng.next_u64() % 17) as u32
        };
        let a = if len == 32 { a } else { a & !(u32::MAX >> len) };
        let _ = writeln!(out, "{}/{len}", std::net::Ipv4Addr::from(a));
        written += 1;
    }
    out
}

fn rule_file(ports: &str) -> String {
    format!(
        "[[set]]\nname = \"blocklist\"\nfile = \"blocklist.netset\"\n\n\
         [[set]]\nname = \"bans\"\nprefixes = []\n\n\
         [[rule]]\nname = \"listed\"\naction = \"drop\"\nsrc = \"@blocklist\"\n\n\
         [[rule]]\nname = \"banned\"\naction = \"drop\"\nsrc = \"@bans\"\n\n\
         [[rule]]\nname = \"ports\"\naction = \"drop\"\nprotocol = \"udp\"\ndst_port = \"{ports}\"\n"
    )
}

/// A figure `before (...)` in `text`: the number right after `word`, in ms.
fn ms_after(text: &str, word: &str) -> Option<f64> {
    let at = text.find(word)? + word.len();
    let rest = text[at..].trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn xdpsieve_in(sandbox: &Sandbox, xdpsieve: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("nsenter");
    c.arg(format!("--net={}", sandbox.pair.fw.path().display()))
        .arg("--")
        .arg(xdpsieve)
        .args(args);
    c
}

fn checked(mut cmd: Command, what: &str) -> Result<(String, f64)> {
    let started = Instant::now();
    let out = cmd.output().with_context(|| format!("running {what}"))?;
    let wall = started.elapsed().as_secs_f64() * 1e3;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        bail!("{what} failed: {}", text.trim());
    }
    Ok((text, wall))
}

/// Runs the live part; returns its JSON for the report.
pub(crate) fn measure(xdpsieve: &Path, scratch: &Path, quick: bool) -> Result<serde_json::Value> {
    let sandbox = Sandbox::create("live", 1, scratch)?;
    let dir = &sandbox.dir;
    let mut rng = Rng::new(0x1155_0e09);
    let prefixes = if quick { 10_000 } else { SET_PREFIXES };
    fs::write(
        dir.join("blocklist.netset"),
        netset(&mut rng, prefixes, false),
    )?;
    let bulk = netset(&mut rng, BULK, true);
    fs::write(dir.join("bulk.txt"), &bulk)?;
    let (rules_a, rules_b) = (rule_file("1000-1999"), rule_file("2000-2999"));
    let rules = dir.join("rules.toml");
    fs::write(&rules, &rules_a)?;

    let rules_arg = rules.to_string_lossy().to_string();
    let mut run = xdpsieve_in(
        &sandbox,
        xdpsieve,
        &[
            "run",
            "-q",
            "-i",
            FW_IF,
            "--rules",
            &rules_arg,
            "--capture",
            "none",
        ],
    );
    run.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut recorder = Proc::new(
        run.spawn().context("starting xdpsieve run")?,
        "xdpsieve run",
    );
    let started = Instant::now();
    while !sandbox.attached()? {
        check_interrupted()?;
        if started.elapsed() > Duration::from_secs(30) {
            bail!("xdpsieve run did not attach within 30 s");
        }
        thread::sleep(Duration::from_millis(50));
    }

    // Traffic to a port neither rule file drops, from the peer, for as long as the changes
    // take (bounded).
    let cpus = online_cpus()?;
    let sender = spawn_sender(Traffic {
        netns: sandbox.pair.peer.path(),
        cpu: cpus[0],
        frames: vec![udp_frame(64, sandbox.fw_mac, sandbox.peer_mac)],
        count: u64::MAX,
        limit: Duration::from_secs(if quick { 8 } else { 25 }),
        rate: None,
    });

    let reloads = if quick { 4 } else { 20 };
    let (mut total, mut load, mut swap, mut wall) = (vec![], vec![], vec![], vec![]);
    for i in 0..reloads {
        check_interrupted()?;
        fs::write(&rules, if i % 2 == 0 { &rules_b } else { &rules_a })?;
        let (text, ms) = checked(
            xdpsieve_in(&sandbox, xdpsieve, &["reload", "-i", FW_IF]),
            "xdpsieve reload",
        )?;
        total.push(ms_after(&text, "after").context("reload printed no time")?);
        load.push(ms_after(&text, "loaded in").unwrap_or(f64::NAN));
        swap.push(ms_after(&text, "swapped in").unwrap_or(f64::NAN));
        wall.push(ms);
    }
    let bulk_arg = dir.join("bulk.txt").to_string_lossy().to_string();
    let mut set_ops = Vec::new();
    for op in ["add", "del"] {
        let (text, ms) = checked(
            xdpsieve_in(
                &sandbox,
                xdpsieve,
                &["set", op, "bans", "--from-file", &bulk_arg, "-i", FW_IF],
            ),
            &format!("xdpsieve set {op}"),
        )?;
        set_ops.push(json!({
            "op": op,
            "prefixes": BULK,
            "under_lock_ms": ms_after(&text, "took"),
            "wall_ms": ms,
        }));
    }
    let sent = sender
        .join()
        .map_err(|_| anyhow::anyhow!("the sender thread panicked"))?;
    recorder.interrupt()?;
    recorder.wait_for(Duration::from_secs(30))?;
    let sent = sent.map(|s| s.frames).unwrap_or(0);
    drop(sandbox);
    Ok(json!({
        "set_prefixes": prefixes,
        "port": DST_PORT,
        "frames_sent_during": sent,
        "reloads": reloads,
        "reload_total_ms": {"median": median(total.clone()), "max": total.iter().copied().fold(0.0, f64::max)},
        "reload_load_ms": {"median": median(load)},
        "reload_swap_ms": {"median": median(swap)},
        "reload_wall_ms": {"median": median(wall)},
        "set": set_ops,
    }))
}
