//! The address-set part of the report (issue 9), from the `set_cost` bench's JSON: lookup
//! cost per set size beside the kernel's LPM trie in the same run, load time, kernel
//! memory, and the targets. A program the bench did not measure (xdpsieve, until
//! its sets exist) shows as "to be measured", never as a number.

use std::fmt::Write as _;

use anyhow::{Result, bail};
use serde_json::{Value, json};

use crate::netbench::thousands;

pub(crate) const SECTION: &str = "## Issue 9: address sets";

/// What the issue asks at most of a 1M-prefix IPv4 set over a 1-prefix set.
const GROWTH_BOUND_NS: f64 = 20.0;
/// Aim: this many times less growth than the kernel LPM trie's.
const AIM_FACTOR: f64 = 10.0;
const LOAD_BOUND_S: f64 = 2.0;
const LPM: &str = "lpm-trie";
const OURS: &str = "xdpsieve";
const TBD: &str = "to be measured";

/// One program's measurement on one set.
fn program<'a>(sets: &'a Value, family: &str, prefixes: u64, name: &str) -> Option<&'a Value> {
    sets["sets"].as_array()?.iter().find_map(|s| {
        (s["family"] == family && s["prefixes"] == prefixes)
            .then(|| {
                s["programs"]
                    .as_array()?
                    .iter()
                    .find(|p| p["program"] == name && p["error"].is_null())
            })
            .flatten()
    })
}

fn median(sets: &Value, family: &str, prefixes: u64, name: &str) -> Option<f64> {
    program(sets, family, prefixes, name)?["ns"]["median"].as_f64()
}

/// (ns at 1 prefix, ns at `prefixes`, growth).
fn growth(sets: &Value, family: &str, prefixes: u64, name: &str) -> Option<(f64, f64, f64)> {
    let one = median(sets, family, 1, name)?;
    let big = median(sets, family, prefixes, name)?;
    Some((one, big, big - one))
}

/// What to show for a figure this run lacks: the size was not in the run (a quick run has
/// no 1M set), or it was and the program was not measured on it.
fn missing(sets: &Value, family: &str, prefixes: u64) -> String {
    let in_run = sets["sets"].as_array().is_some_and(|l| {
        l.iter()
            .any(|s| s["family"] == family && s["prefixes"] == prefixes)
    });
    if in_run {
        TBD.into()
    } else {
        format!("no {family} set of {} in this run", thousands(prefixes))
    }
}

fn show_growth(g: Option<(f64, f64, f64)>, missing: String) -> String {
    g.map_or(missing, |(one, big, d)| {
        format!("{one:.0} → {big:.0} ns ({d:+.0} ns)")
    })
}

fn mib(bytes: Option<u64>) -> String {
    bytes.map_or("—".into(), |b| {
        format!("{:.1} MiB", b as f64 / f64::from(1 << 20))
    })
}

/// The set targets, in the shape of the report's other targets.
pub(crate) fn targets(sets: &Value) -> Vec<Value> {
    let (v4, v6) = (1_000_000, 100_000);
    let lpm4 = growth(sets, "IPv4", v4, LPM);
    let ours4 = growth(sets, "IPv4", v4, OURS);
    let lpm6 = growth(sets, "IPv6", v6, LPM);
    let ours6 = growth(sets, "IPv6", v6, OURS);
    let load = |name| program(sets, "IPv4", v4, name);
    let lpm_load = load(LPM).map_or("—".into(), |p| {
        format!(
            "LPM trie: {:.2} s ({})",
            p["fill_seconds"].as_f64().unwrap_or(f64::NAN),
            p["fill_method"].as_str().unwrap_or("?")
        )
    });
    let ours_load = load(OURS).and_then(|p| p["load_seconds"].as_f64());
    let memory = |name: &str| {
        let at = |family, n| {
            program(sets, family, n, name)
                .and_then(|p| p["memlock_bytes"].as_u64())
                .map(Some)
                .map(mib)
        };
        match (at("IPv4", v4), at("IPv6", v6)) {
            (Some(a), Some(b)) => Some(format!("1M IPv4 {a}, 100k IPv6 {b} (memlock)")),
            _ => None,
        }
    };
    vec![
        json!({
            "target": "set of 1,000,000 IPv4 prefixes: ≤ +20 ns per packet over a 1-prefix set",
            "peer": format!("LPM trie: {}", show_growth(lpm4, missing(sets, "IPv4", v4))),
            "xdpsieve": show_growth(ours4, missing(sets, "IPv4", v4)),
            "met": ours4.map(|(_, _, d)| d <= GROWTH_BOUND_NS),
        }),
        json!({
            "target": "(aim) that growth ≤ 1/10 of the kernel LPM trie's",
            "peer": lpm4.map_or("—".into(), |(_, _, d)| format!("LPM trie: {d:+.0} ns")),
            "xdpsieve": ours4.map_or(missing(sets, "IPv4", v4), |(_, _, d)| format!("{d:+.0} ns")),
            "met": ours4.zip(lpm4).map(|(o, l)| o.2 * AIM_FACTOR <= l.2),
        }),
        json!({
            "target": "set of 100,000 IPv6 prefixes: within 2× the IPv4 figure (≤ +40 ns over a 1-prefix set)",
            "peer": format!("LPM trie: {}", show_growth(lpm6, missing(sets, "IPv6", v6))),
            "xdpsieve": show_growth(ours6, missing(sets, "IPv6", v6)),
            "met": ours6.map(|(_, _, d)| d <= 2.0 * GROWTH_BOUND_NS),
        }),
        json!({
            "target": "1,000,000 IPv4 prefixes into the kernel in ≤ 2 s",
            "peer": lpm_load,
            "xdpsieve": ours_load.map_or(missing(sets, "IPv4", v4), |s| format!("{s:.2} s")),
            "met": ours_load.map(|s| s <= LOAD_BOUND_S),
        }),
        json!({
            "target": "10,000 `set add` (one --from-file call) in ≤ 1 s",
            "peer": "—",
            "xdpsieve": set_add_wall(sets).map_or(TBD.into(), |ms| {
                format!("{ms:.0} ms, the whole command (under traffic)")
            }),
            "met": set_add_wall(sets).map(|ms| ms <= 1000.0),
        }),
        json!({
            "target": "reload time under traffic stated",
            "peer": "—",
            "xdpsieve": sets["live"]["reload_total_ms"]["median"].as_f64().map_or(TBD.into(), |ms| {
                format!(
                    "median {ms:.0} ms over {} reloads (swap {:.1} ms)",
                    sets["live"]["reloads"],
                    sets["live"]["reload_swap_ms"]["median"].as_f64().unwrap_or(f64::NAN)
                )
            }),
            "met": sets["live"]["reload_total_ms"]["median"].as_f64().map(|_| true),
        }),
        json!({
            "target": "kernel memory of the sets stated",
            "peer": memory(LPM).map_or("—".into(), |m| format!("LPM trie: {m}")),
            "xdpsieve": memory(OURS).unwrap_or_else(|| TBD.into()),
            "met": memory(OURS).map(|_| true),
        }),
    ]
}

/// The wall time of the bulk `set add`, process start included.
fn set_add_wall(sets: &Value) -> Option<f64> {
    sets["live"]["set"]
        .as_array()?
        .iter()
        .find(|o| o["op"] == "add")?["wall_ms"]
        .as_f64()
}

/// The live part's table: reloads and bulk set changes under traffic.
fn render_live(md: &mut String, live: &Value) -> std::fmt::Result {
    if live.is_null() {
        return Ok(());
    }
    writeln!(md, "\n### Live changes under traffic\n")?;
    writeln!(
        md,
        "`xdpsieve run` in the sandbox with a set of {} prefixes (`src = \"@blocklist\"`), an \
         empty set `bans` and a port rule, while one core floods it with 64-byte UDP \
         ({} frames sent during the changes). `xdpsieve reload` swaps two rule files that \
         differ in the port range, {} times; then `xdpsieve set add` and `set del` of {} \
         scattered IPv4 addresses with `--from-file`. Times as the commands report them and \
         as seen from outside (process start included).\n",
        live["set_prefixes"], live["frames_sent_during"], live["reloads"], BULK_SHOWN
    )?;
    writeln!(md, "| change | reported | wall |")?;
    writeln!(md, "|---|---|---|")?;
    let f = |v: &Value| v.as_f64().map_or("—".into(), |x| format!("{x:.1} ms"));
    writeln!(
        md,
        "| reload (median; max {}) | {} (program loaded {}, swapped {}) | {} |",
        f(&live["reload_total_ms"]["max"]),
        f(&live["reload_total_ms"]["median"]),
        f(&live["reload_load_ms"]["median"]),
        f(&live["reload_swap_ms"]["median"]),
        f(&live["reload_wall_ms"]["median"])
    )?;
    for op in live["set"].as_array().into_iter().flatten() {
        writeln!(
            md,
            "| `set {} --from-file` ({} addresses) | {} under the lock | {} |",
            op["op"].as_str().unwrap_or("?"),
            op["prefixes"],
            f(&op["under_lock_ms"]),
            f(&op["wall_ms"])
        )?;
    }
    Ok(())
}

const BULK_SHOWN: usize = 10_000;

/// The section itself; `command` is how the bench was run.
pub(crate) fn render(md: &mut String, sets: &Value, command: &str) -> std::fmt::Result {
    writeln!(md, "\n{SECTION}\n")?;
    if sets.is_null() {
        writeln!(md, "Not measured in this run.")?;
        return Ok(());
    }
    writeln!(
        md,
        "`{command}`: `BPF_PROG_TEST_RUN`, repeat {}, runs per address: {}, ns per packet. Each set is \
         drawn by `xdpsieve_testkit::prefix_gen` from seed {:#x} (IPv4 /8 to /32 in the shares of a \
         BGP table plus a blocklist's host routes, IPv6 /16 to /128; a quarter of the \
         prefixes nested in shorter ones). Each program runs on the same {} frames (64-byte \
         UDP from distinct sources, half inside the set, half outside), round-robin; a \
         figure is the median over the addresses of each address's median over the runs, \
         with the quartiles over addresses in brackets. Every verdict is checked against a \
         reference model. **LPM trie** is `xdpsieve_bench_lpm`: Ethernet, then a \
         `BPF_MAP_TYPE_LPM_TRIE` lookup of the source address, drop if found. **floor** \
         only returns `XDP_PASS`. Warm-cache figures: one frame repeats back to back.\n",
        thousands(sets["repeat"].as_u64().unwrap_or(0)),
        sets["runs"].as_u64().unwrap_or(0),
        sets["seed"].as_u64().unwrap_or(0),
        sets["addresses"].as_u64().unwrap_or(0),
    )?;
    super::report::cells::targets_table(md, &targets(sets))?;
    writeln!(md, "\n### Lookup cost\n")?;
    writeln!(
        md,
        "| set | prefixes | floor | LPM trie | LPM trie: members / others | xdpsieve | xdpsieve: members / others | xdpsieve / LPM trie | wrong verdicts |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|---|---|---|")?;
    let empty = Vec::new();
    for set in sets["sets"].as_array().unwrap_or(&empty) {
        let (family, n) = (
            set["family"].as_str().unwrap_or("?"),
            set["prefixes"].as_u64().unwrap_or(0),
        );
        let cell = |name| {
            program(sets, family, n, name).map_or(TBD.into(), |p| {
                let s = &p["ns"];
                format!("{} [{}–{}]", s["median"], s["p25"], s["p75"])
            })
        };
        let split = |name| {
            program(sets, family, n, name).map_or("—".into(), |p| {
                format!(
                    "{} / {}",
                    p["ns_members"]["median"], p["ns_non_members"]["median"]
                )
            })
        };
        let ratio = median(sets, family, n, OURS)
            .zip(median(sets, family, n, LPM))
            .map_or("—".into(), |(o, l)| format!("{:.2}×", o / l));
        let wrong: u64 = set["programs"]
            .as_array()
            .unwrap_or(&empty)
            .iter()
            .filter_map(|p| p["wrong_verdicts"].as_u64())
            .sum();
        writeln!(
            md,
            "| {family} | {} | {} | {} | {} | {} | {} | {ratio} | {wrong} |",
            thousands(n),
            set["floor_ns"],
            cell(LPM),
            split(LPM),
            cell(OURS),
            split(OURS),
        )?;
    }
    writeln!(md, "\n### One pass over many addresses\n")?;
    writeln!(
        md,
        "Each of {} further addresses (half members) run once (repeat 1) through each program \
         in turn: each lookup walks a path the previous ones did not, as with traffic from \
         many sources, and finds less of it in the cache. A single run's time includes the \
         test-run timer's own cost, which the floor of the same pass shows: compare with \
         that floor, not with the warm figures above. Median [p75] over the addresses.\n",
        thousands(sets["one_pass"].as_u64().unwrap_or(0))
    )?;
    writeln!(
        md,
        "| set | prefixes | floor | LPM trie | xdpsieve | xdpsieve / LPM trie, over the floor |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|")?;
    for set in sets["sets"].as_array().unwrap_or(&empty) {
        let (family, n) = (
            set["family"].as_str().unwrap_or("?"),
            set["prefixes"].as_u64().unwrap_or(0),
        );
        let once = |name| program(sets, family, n, name).map(|p| &p["one_pass_ns"]);
        let cell = |s: Option<&Value>| {
            s.filter(|s| !s.is_null())
                .map_or(TBD.into(), |s| format!("{} [{}]", s["median"], s["p75"]))
        };
        let floor = set["floor_one_pass_ns"]["median"].as_f64();
        let over = |s: Option<&Value>| Some(s?["median"].as_f64()? - floor?);
        let ratio = over(once(OURS))
            .zip(over(once(LPM)))
            .filter(|(_, l)| *l > 0.0)
            .map_or("—".into(), |(o, l)| format!("{:.2}×", o / l));
        writeln!(
            md,
            "| {family} | {} | {} | {} | {} | {ratio} |",
            thousands(n),
            cell(Some(&set["floor_one_pass_ns"])),
            cell(once(LPM)),
            cell(once(OURS)),
        )?;
    }
    writeln!(md, "\n### Load time and kernel memory\n")?;
    writeln!(
        md,
        "**fill**: from the prefixes in memory to the last one in the kernel's map; **load**: \
         the same plus creating the object's maps and verifying the program. **memlock**: \
         what the kernel charges for the set's maps (/proc/self/fdinfo); for an LPM trie, \
         its leaf nodes only. **slab growth**: /proc/meminfo `Slab` after the fill minus \
         before, the memory the kernel actually allocated (intermediate nodes and allocator \
         rounding included), machine-wide and so approximate.\n"
    )?;
    writeln!(
        md,
        "| set | prefixes | LPM trie: fill (load) | LPM trie: how | LPM trie: memlock | LPM trie: slab growth | xdpsieve: load | xdpsieve: memlock | xdpsieve: slab growth |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|---|---|---|")?;
    for set in sets["sets"].as_array().unwrap_or(&empty) {
        let (family, n) = (
            set["family"].as_str().unwrap_or("?"),
            set["prefixes"].as_u64().unwrap_or(0),
        );
        let slab = |p: &Value| {
            p["slab_growth_bytes"].as_i64().map_or("—".into(), |b| {
                format!("{:.1} MiB", b as f64 / f64::from(1 << 20))
            })
        };
        let (lpm_time, lpm_how, lpm_mem, lpm_slab) =
            program(sets, family, n, LPM).map_or(Default::default(), |p| {
                (
                    format!(
                        "{:.3} s ({:.3} s)",
                        p["fill_seconds"].as_f64().unwrap_or(f64::NAN),
                        p["load_seconds"].as_f64().unwrap_or(f64::NAN)
                    ),
                    p["fill_method"].as_str().unwrap_or("").to_string(),
                    mib(p["memlock_bytes"].as_u64()),
                    slab(p),
                )
            });
        let (ours_time, ours_mem, ours_slab) = program(sets, family, n, OURS).map_or(
            (TBD.to_string(), TBD.to_string(), TBD.to_string()),
            |p| {
                (
                    format!("{:.3} s", p["load_seconds"].as_f64().unwrap_or(f64::NAN)),
                    mib(p["memlock_bytes"].as_u64()),
                    slab(p),
                )
            },
        );
        writeln!(
            md,
            "| {family} | {} | {lpm_time} | {lpm_how} | {lpm_mem} | {lpm_slab} | {ours_time} | {ours_mem} | {ours_slab} |",
            thousands(n),
        )?;
    }
    render_live(md, &sets["live"])
}

/// The smoke run's check: every set has an LPM trie figure and no wrong verdict.
pub(crate) fn check(sets: &Value) -> Result<()> {
    let Some(list) = sets["sets"].as_array().filter(|l| !l.is_empty()) else {
        bail!("the set benchmark measured no set");
    };
    for set in list {
        let (family, n) = (&set["family"], &set["prefixes"]);
        let lpm = set["programs"]
            .as_array()
            .and_then(|p| p.iter().find(|p| p["program"] == LPM));
        if lpm.and_then(|p| p["ns"]["median"].as_u64()).is_none() {
            bail!("no LPM trie cost measured for the {family} set of {n} prefixes");
        }
        for p in set["programs"].as_array().into_iter().flatten() {
            if p["wrong_verdicts"].as_u64() != Some(0) {
                bail!(
                    "{}: wrong verdicts on the {family} set of {n} prefixes",
                    p["program"]
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured(name: &str, one: u64, big: u64) -> [Value; 2] {
        let m = |ns: u64| {
            json!({
                "program": name, "error": null, "wrong_verdicts": 0,
                "ns": {"min": ns, "p25": ns, "median": ns, "p75": ns, "max": ns},
                "ns_members": {"median": ns}, "ns_non_members": {"median": ns},
                "load_seconds": 1.5, "fill_seconds": 1.2, "fill_method": "batch",
                "memlock_bytes": 1 << 20, "slab_growth_bytes": 2 << 20,
            })
        };
        [m(one), m(big)]
    }

    fn report(with_ours: bool) -> Value {
        let [lpm1, lpm4] = measured(LPM, 26, 143);
        let [lpm61, lpm6] = measured(LPM, 27, 120);
        let [ours1, ours4] = measured(OURS, 30, 40);
        let [ours61, ours6] = measured(OURS, 31, 80);
        let set = |family: &str, n: u64, lpm: Value, ours: Value| {
            let programs = if with_ours {
                vec![lpm, ours]
            } else {
                vec![lpm]
            };
            json!({"family": family, "prefixes": n, "floor_ns": 8, "programs": programs})
        };
        json!({
            "seed": 1, "repeat": 100, "runs": 1, "addresses": 4,
            "sets": [
                set("IPv4", 1, lpm1, ours1),
                set("IPv4", 1_000_000, lpm4, ours4),
                set("IPv6", 1, lpm61, ours61),
                set("IPv6", 100_000, lpm6, ours6),
            ],
        })
    }

    #[test]
    fn without_xdpsieve_every_target_is_to_be_measured() {
        let targets = targets(&report(false));
        assert!(targets.iter().all(|t| t["met"].is_null()), "{targets:?}");
        assert_eq!(targets[0]["peer"], "LPM trie: 26 → 143 ns (+117 ns)");
        let mut md = String::new();
        render(&mut md, &report(false), "cmd").expect("render");
        assert!(md.contains(SECTION) && md.contains(TBD), "{md}");
        check(&report(false)).expect("the LPM trie is measured");
    }

    #[test]
    fn the_live_part_is_judged_and_shown() {
        let mut sets = report(true);
        sets["live"] = json!({
            "set_prefixes": 100000, "frames_sent_during": 1000, "reloads": 20,
            "reload_total_ms": {"median": 400.0, "max": 900.0},
            "reload_load_ms": {"median": 380.0},
            "reload_swap_ms": {"median": 10.0},
            "reload_wall_ms": {"median": 500.0},
            "set": [
                {"op": "add", "prefixes": 10000, "under_lock_ms": 30.0, "wall_ms": 1200.0},
                {"op": "del", "prefixes": 10000, "under_lock_ms": 40.0, "wall_ms": 60.0},
            ],
        });
        let targets = targets(&sets);
        let add = targets
            .iter()
            .find(|t| t["target"].as_str().is_some_and(|s| s.contains("set add")));
        // 1.2 s for the whole command misses the 1 s bound.
        assert_eq!(
            add.map(|t| t["met"].as_bool()),
            Some(Some(false)),
            "{targets:?}"
        );
        let mut md = String::new();
        render(&mut md, &sets, "cmd").expect("render");
        assert!(md.contains("### Live changes under traffic"), "{md}");
        assert!(
            md.contains("| reload (median; max 900.0 ms) | 400.0 ms"),
            "{md}"
        );
    }

    #[test]
    fn with_xdpsieve_the_targets_are_judged() {
        let targets = targets(&report(true));
        let met: Vec<Option<bool>> = targets.iter().map(|t| t["met"].as_bool()).collect();
        // +10 ns at 1M (≤ 20: yes; ≤ 117/10: yes), IPv6 +49 ns (≤ 40: no), load 1.5 s;
        // no live part in this report: set add and reload to be measured.
        assert_eq!(
            met,
            [
                Some(true),
                Some(true),
                Some(false),
                Some(true),
                None,
                None,
                Some(true)
            ]
        );
        let mut md = String::new();
        render(&mut md, &report(true), "cmd").expect("render");
        assert!(
            md.contains("| IPv4 | 1,000,000 | 8 | 143 [143–143]"),
            "{md}"
        );
    }

    #[test]
    fn the_smoke_check_wants_every_set_measured_and_right() {
        assert!(check(&json!({"sets": []})).is_err());
        let mut wrong = report(true);
        wrong["sets"][1]["programs"][1]["wrong_verdicts"] = json!(3);
        let e = check(&wrong).expect_err("wrong verdicts fail the smoke run");
        assert!(e.to_string().contains("xdpsieve"), "{e}");
        let mut unmeasured = report(false);
        unmeasured["sets"][0]["programs"][0]["ns"] = Value::Null;
        assert!(check(&unmeasured).is_err());
    }
}
