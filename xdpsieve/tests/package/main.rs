//! The manual pages and shell completions `xdpsieve generate` makes (the Debian package
//! ships exactly these: `cargo xtask package`), as an operator meets them: every page
//! renders with `man -l` without a warning, there is one for every verb and the
//! configuration page lists every key; the bash completion loads and completes verbs and
//! flags, zsh registers its function and fish completes. No root needed.
//!
//! [`deb`]: the Debian package itself, built (`cargo xtask package`), checked by lintian,
//! installed, run without Rust, and purged (root); [`upgrade`]: what its maintainer
//! scripts ask of systemd on an upgrade (the handover) and a removal (a stop) (root).

mod deb;
mod upgrade;

use std::path::Path;

use xdpsieve_testkit::{
    docs::{bash_complete, fish_complete, render_man_page, zsh_registers},
    tempdir::TempDir,
    tool::tool,
};

const BIN: &str = env!("CARGO_BIN_EXE_xdpsieve");

/// `xdpsieve generate WHAT DIR` into a fresh scratch directory.
fn generate(what: &str, tag: &str) -> TempDir {
    let dir = TempDir::new(tag);
    let dir_arg = dir.path().to_string_lossy().into_owned();
    tool(BIN, &["generate", what, &dir_arg]);
    dir
}

/// The verbs `xdpsieve --help` lists (clap's own `help` aside).
fn verbs() -> Vec<String> {
    let help = tool(BIN, &["--help"]);
    let commands = help
        .split_once("Commands:\n")
        .expect("`xdpsieve --help` lists its commands")
        .1;
    commands
        .lines()
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|verb| *verb != "help")
        .map(str::to_string)
        .collect()
}

/// `text` with every run of white space one space: man justifies and wraps lines.
fn flat(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

#[test]
fn every_page_renders_without_a_warning() {
    let dir = generate("man", "man-pages");
    let pages = dir.files();
    let names: Vec<String> = pages.iter().map(|p| name(p)).collect();
    let verbs = verbs();
    assert!(verbs.len() >= 8, "{verbs:?}");
    let mut expected = vec!["xdpsieve.8".to_string(), "xdpsieve.toml.5".to_string()];
    expected.extend(verbs.iter().map(|v| format!("xdpsieve-{v}.8")));
    expected.extend(["add", "del", "list", "flush"].map(|op| format!("xdpsieve-set-{op}.8")));
    expected.sort();
    assert_eq!(names, expected);
    for page in &pages {
        let text = render_man_page(page).unwrap_or_else(|e| panic!("{e}"));
        let title = name(page);
        let (stem, section) = title.rsplit_once('.').unwrap();
        // man's header names the page and its section; NAME says what it is.
        let header = format!("{stem}({section})");
        assert!(
            text.lines().next().is_some_and(|l| l.starts_with(&header)),
            "{title}: the header is not {header}:\n{text}"
        );
        for heading in ["NAME", "SYNOPSIS", "DESCRIPTION", "SEE ALSO"] {
            assert!(
                text.lines().any(|l| l == heading),
                "{title} has no {heading}:\n{text}"
            );
        }
        assert!(
            flat(&text).contains(&format!("NAME {stem} - ")),
            "{title}: NAME is not `{stem} - what it does`:\n{text}"
        );
    }
    // The top page leads to every verb's, the run page documents its flags and signals.
    let top = render_man_page(&dir.file("xdpsieve.8")).unwrap();
    for verb in &verbs {
        assert!(
            top.contains(&format!("xdpsieve-{verb}(8)")),
            "{verb}:\n{top}"
        );
    }
    let run = render_man_page(&dir.file("xdpsieve-run.8")).unwrap();
    for needle in ["--keep-on-stop", "--config <FILE>", "SIGHUP", "Examples:"] {
        assert!(
            run.contains(needle),
            "xdpsieve-run(8) lacks {needle}:\n{run}"
        );
    }
    // An example keeps its line: rendered verbatim, not filled into the paragraph.
    assert!(
        run.lines()
            .any(|l| l.trim() == "xdpsieve run -i eth0 --drop 'udp src port 53' -w dropped.pcap"),
        "{run}"
    );
}

#[test]
fn the_configuration_page_lists_every_key_and_the_precedence() {
    let dir = generate("man", "config-page");
    let page = render_man_page(&dir.file("xdpsieve.toml.5")).unwrap_or_else(|e| panic!("{e}"));
    let keys_part = page
        .split_once("\nKEYS\n")
        .expect("xdpsieve.toml(5) has a KEYS section")
        .1;
    for table in ["[capture]", "[capture.rotation]", "[log]", "[metrics]"] {
        assert!(
            keys_part.lines().any(|l| l.trim() == table),
            "{table}:\n{page}"
        );
    }
    // Every key the check-config reference (the same table) names.
    let reference = tool(BIN, &["check-config", "--help"]);
    let keys: Vec<&str> = reference
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.trim().split_once(" (").map(|(key, _)| key))
        .collect();
    assert!(keys.len() >= 25, "{keys:?}");
    for key in keys {
        assert!(
            keys_part
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{key}: "))),
            "xdpsieve.toml(5) does not document `{key}`:\n{page}"
        );
    }
    for needle in [
        "PRECEDENCE",
        "A flag given on the command line wins",
        "EXAMPLE",
    ] {
        assert!(flat(&page).contains(needle), "{needle}:\n{page}");
    }
    assert!(page.contains("    interfaces = [\"eth0\"]"), "{page}");
}

#[test]
fn the_bash_completion_loads_and_completes_verbs_and_flags() {
    let dir = generate("completions", "bash");
    let file = dir.file("xdpsieve.bash");
    let complete = |words: &[&str]| bash_complete(&file, words).unwrap_or_else(|e| panic!("{e}"));
    let all = complete(&["xdpsieve", ""]);
    for verb in verbs() {
        assert!(all.contains(&verb), "{verb} not offered: {all:?}");
    }
    assert!(!all.iter().any(|c| c == "generate"), "{all:?}");
    assert_eq!(
        complete(&["xdpsieve", "ch"]),
        ["check-rules", "check-config"]
    );
    assert_eq!(complete(&["xdpsieve", "run", "--keep"]), ["--keep-on-stop"]);
    let set = complete(&["xdpsieve", "set", ""]);
    for op in ["add", "del", "list", "flush"] {
        assert!(set.iter().any(|c| c == op), "{op}: {set:?}");
    }
    // A flag's possible values.
    assert_eq!(
        complete(&["xdpsieve", "run", "--format", ""]),
        ["pcap", "pcapng"]
    );
}

#[test]
fn zsh_and_fish_read_their_completions() {
    let dir = generate("completions", "zsh-fish");
    assert_eq!(
        zsh_registers(&dir.file("_xdpsieve")).unwrap_or_else(|e| panic!("{e}")),
        "_xdpsieve"
    );
    let fish =
        fish_complete(&dir.file("xdpsieve.fish"), "xdpsieve ch").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(fish, ["check-config", "check-rules"], "fish sorts them");
    let fish = fish_complete(&dir.file("xdpsieve.fish"), "xdpsieve run --keep")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(fish, ["--keep-on-stop"]);
}
