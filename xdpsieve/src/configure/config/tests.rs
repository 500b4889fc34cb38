//! The configuration file's reader: every key read, unknown keys, wrong types and bad values
//! placed by line and column, relative paths, the rules in the file or named by it, and
//! the reference (README, the packaged default file) kept in step with the reader.

use std::{fs, net::SocketAddr, path::Path};

use xdpsieve_testkit::tempdir::TempDir;

use super::{Config, keys};
use crate::{
    configure::capture_filter::FilterEngine,
    configure::loader::{AttachMode, Transport},
    configure::rules::{Action, Rate},
};

/// `text` read as `/etc/xs/xdpsieve.toml` (nothing is read from disk but the text).
fn parse(text: &str) -> Result<Config, String> {
    Config::parse(text.to_string(), Path::new("/etc/xs/xdpsieve.toml")).map_err(|e| e.to_string())
}

fn error(text: &str) -> String {
    parse(text).expect_err("the file must be refused")
}

/// A file with every key set, each to a value other than its default.
const EVERY_KEY: &str = r#"
interfaces = ["eth0", "eth1"]
mode = "skb"
transport = "perf"
ring_size = "1M"
keep_on_stop = true
quiet = true
unclassifiable = "pass"
rules = "rules/fw.toml"
default = "drop"

[capture]
which = "all"
file = "cap/drops.pcapng"
format = "pcapng"
snaplen = 96
sample = 10
filter = "udp port 53"
filter_engine = "interpreter"

[capture.rotation]
size_mb = 100
seconds = 3600
files = 24
command = "./compress.sh"

[log]
which = "dropped"
file = "/var/log/xdpsieve/events.jsonl"
format = "json"
rate = "100/s"
filter = ""

[metrics]
listen = "127.0.0.1:9470"
stats_interval = 0.5
"#;

#[test]
fn every_key_is_read() {
    let c = parse(EVERY_KEY).unwrap();
    assert_eq!(c.interfaces, Some(vec!["eth0".into(), "eth1".into()]));
    assert_eq!(c.mode, Some(AttachMode::Skb));
    assert_eq!(c.transport, Some(Transport::Perf));
    assert_eq!(c.ring_size, Some(1 << 20));
    assert_eq!((c.keep_on_stop, c.quiet), (Some(true), Some(true)));
    assert_eq!(c.unclassifiable, Some(Action::Pass));
    assert_eq!(
        c.rule_file.as_deref(),
        Some(Path::new("/etc/xs/rules/fw.toml"))
    );
    assert_eq!(c.default, Some(Action::Drop));
    assert!(!c.inline_rules);
    let cap = &c.capture;
    assert_eq!(
        cap.which.as_ref().map(|w| w.get_ref().as_str()),
        Some("all")
    );
    assert_eq!(cap.file.as_deref(), Some("/etc/xs/cap/drops.pcapng"));
    assert_eq!(
        cap.format.as_ref().map(|f| f.get_ref().as_str()),
        Some("pcapng")
    );
    assert_eq!((cap.snaplen, cap.sample), (Some(96), Some(10)));
    assert_eq!(cap.filter.as_deref(), Some("udp port 53"));
    assert_eq!(cap.filter_engine, Some(FilterEngine::Interpreter));
    let rot = &cap.rotation;
    assert_eq!(
        (rot.size_mb, rot.seconds, rot.files),
        (Some(100), Some(3600), Some(24))
    );
    assert_eq!(rot.command.as_deref(), Some("/etc/xs/./compress.sh"));
    let log = &c.log;
    assert_eq!(
        log.which.as_ref().map(|w| w.get_ref().as_str()),
        Some("dropped")
    );
    assert_eq!(
        log.file.as_deref(),
        Some(Path::new("/var/log/xdpsieve/events.jsonl"))
    );
    assert_eq!(
        log.format.as_ref().map(|f| f.get_ref().as_str()),
        Some("json")
    );
    assert_eq!(log.rate, Some("100/s".parse::<Rate>().unwrap()));
    assert_eq!(log.filter.as_deref(), Some(""));
    let addr: SocketAddr = "127.0.0.1:9470".parse().unwrap();
    assert_eq!(c.metrics.listen, Some(addr));
    assert_eq!(c.metrics.stats_interval, Some(0.5));
    // Every key of the reference is in the file above (but the rule tables, which
    // `rules` excludes: see `rules_inline_or_in_a_file_not_both`), so a key added to the
    // reference without a reader fails here.
    for key in keys::KEYS.iter().filter(|k| k.kind != "array of tables") {
        let line = format!("\n{} = ", key.name);
        assert!(
            EVERY_KEY.contains(&line),
            "{}.{} untested",
            key.section,
            key.name
        );
    }
}

#[test]
fn an_empty_file_says_nothing() {
    let c = parse("# nothing yet\n").unwrap();
    assert!(c.interfaces.is_none() && c.mode.is_none() && c.capture.file.is_none());
    assert!(c.rule_file.is_none() && !c.inline_rules && c.metrics.listen.is_none());
    let set = c.rule_set().unwrap();
    assert!(set.rules.is_empty());
    assert_eq!(set.default_action, Action::Pass);
}

#[test]
fn unknown_keys_are_named_with_line_column_and_the_keys_there_are() {
    let e = error("interfaces = [\"eth0\"]\ninterface = [\"eth1\"]\n");
    assert!(
        e.starts_with("/etc/xs/xdpsieve.toml:2:1: unknown key `interface`"),
        "{e}"
    );
    assert!(
        e.contains("interfaces, mode,") && e.contains("[[rule]], [capture]"),
        "{e}"
    );
    let e = error("[capture]\nfile = \"x.pcap\"\n  fille = \"y\"\n");
    assert!(
        e.starts_with("/etc/xs/xdpsieve.toml:3:3: unknown key `fille`: [capture] has which, file"),
        "{e}"
    );
    assert!(e.contains("[capture.rotation]"), "{e}");
    let e = error("[capture.rotatoin]\nsize_mb = 1\n");
    assert!(
        e.starts_with("/etc/xs/xdpsieve.toml:1:10: unknown key `rotatoin`"),
        "{e}"
    );
    let e = error("[capture.rotation]\nsize = 1\n");
    assert!(
        e.contains(
            ":2:1: unknown key `size`: [capture.rotation] has size_mb, seconds, files, command"
        ),
        "{e}"
    );
    let e = error("[metric]\nlisten = \"127.0.0.1:1\"\n");
    assert!(e.contains(":1:2: unknown key `metric`"), "{e}");
    // A plural typo of a rule table would drop every rule: refused, not skipped.
    let e = error("[[rules]]\naction = \"drop\"\n");
    assert!(
        e.contains(":1:1: `rules` names a rule file (rules = \"fw.toml\"); write each rule here as a [[rule]] table"),
        "{e}"
    );
    let e = error("[[rulez]]\naction = \"drop\"\n");
    assert!(e.contains(":1:3: unknown key `rulez`"), "{e}");
    // Dotted keys are tables too.
    let e = error("log.fromat = \"json\"\n");
    assert!(e.contains(":1:5: unknown key `fromat`: [log] has"), "{e}");
    // Escaped: a key is untrusted text.
    let e = error("\"a\\u001b[2J\" = 1\n");
    assert!(e.contains("unknown key `a\\x1b[2J`"), "{e}");
}

#[test]
fn wrong_types_say_what_the_key_must_hold() {
    let cases = [
        (
            "interfaces = \"eth0\"\n",
            "1:14",
            "`interfaces` must be a list of interface names, e.g. [\"eth0\"], not a string",
        ),
        (
            "interfaces = [1]\n",
            "1:15",
            "`interfaces` must be text in quotes, not an integer",
        ),
        (
            "mode = 1\n",
            "1:8",
            "`mode` must be text in quotes, not an integer",
        ),
        (
            "keep_on_stop = \"yes\"\n",
            "1:16",
            "`keep_on_stop` must be true or false, not a string",
        ),
        (
            "ring_size = true\n",
            "1:13",
            "`ring_size` must be text in quotes or a whole number, not a boolean",
        ),
        (
            "capture = \"x\"\n",
            "1:11",
            "`capture` must be a table: write [capture]",
        ),
        (
            "[capture]\nsnaplen = \"96\"\n",
            "2:11",
            "`capture.snaplen` must be a whole number from 1 to 16384, not a string",
        ),
        (
            "[capture]\nsample = 1.5\n",
            "2:10",
            "`capture.sample` must be a whole number from 1 to 4294967295, not a float",
        ),
        (
            "[capture]\nrotation = 5\n",
            "2:12",
            "`capture.rotation` must be a table",
        ),
        (
            "[log]\nrate = [1]\n",
            "2:8",
            "`log.rate` must be text in quotes or a whole number, not an array",
        ),
        (
            "[metrics]\nstats_interval = \"1\"\n",
            "2:18",
            "`metrics.stats_interval` must be a number, not a string",
        ),
    ];
    for (text, place, words) in cases {
        let e = error(text);
        assert!(
            e.starts_with(&format!("/etc/xs/xdpsieve.toml:{place}: ")),
            "{text:?}: {e}"
        );
        assert!(e.contains(words), "{text:?}: {e}");
    }
}

#[test]
fn bad_values_are_placed_and_explained() {
    let cases = [
        (
            "mode = \"fast\"\n",
            "1:8",
            "`mode` must be one of \"auto\", \"native\", \"skb\", not \"fast\"",
        ),
        ("transport = \"xdp\"\n", "1:13", "\"ringbuf\", \"perf\""),
        (
            "ring_size = \"3K\"\n",
            "1:13",
            "`ring_size`: `3K` must be a power of two",
        ),
        ("ring_size = 1000\n", "1:13", "power of two"),
        (
            "interfaces = [\"a/b\"]\n",
            "1:15",
            "`interfaces`: interface names cannot contain `/`",
        ),
        (
            "interfaces = [\"eth0\", \"eth0\"]\n",
            "1:23",
            "interface eth0 is named twice",
        ),
        ("interfaces = []\n", "1:14", "it names none"),
        ("default = \"dorp\"\n", "1:11", "unknown action `dorp`"),
        ("unclassifiable = \"maybe\"\n", "1:18", "\"drop\", \"pass\""),
        ("rules = \"\"\n", "1:9", "`rules` is empty"),
        ("[capture]\nsnaplen = 0\n", "2:11", "from 1 to 16384, not 0"),
        ("[capture]\nsnaplen = 16385\n", "2:11", "not 16385"),
        (
            "[capture]\nfilter = \"udp prot 53\"\n",
            "2:10",
            "`capture.filter`: capture filter `udp prot 53`",
        ),
        (
            "[capture]\nfilter_engine = \"fast\"\n",
            "2:17",
            "\"auto\", \"translated\", \"interpreter\"",
        ),
        ("[capture]\nfile = \"\"\n", "2:8", "`capture.file` is empty"),
        (
            "[capture.rotation]\nsize_mb = 0\n",
            "2:11",
            "from 1 to 18446744073709",
        ),
        ("[capture.rotation]\nfiles = -1\n", "2:9", "not -1"),
        (
            "[log]\nrate = \"fast\"\n",
            "2:8",
            "`log.rate`: `fast` is not a rate",
        ),
        (
            "[log]\nfilter = \"(\"\n",
            "2:10",
            "`log.filter`: capture filter `(`",
        ),
        (
            "[metrics]\nlisten = \"localhost:9470\"\n",
            "2:10",
            "must be ADDR:PORT",
        ),
        (
            "[metrics]\nstats_interval = 0.01\n",
            "2:18",
            "`metrics.stats_interval` must be between 0.1 and 86400",
        ),
        ("interfaces = [\"eth0\"\n", "1:", "not valid TOML"),
        (
            "mode = \"skb\"\nmode = \"native\"\n",
            "2:",
            "not valid TOML",
        ),
    ];
    for (text, place, words) in cases {
        let e = error(text);
        assert!(
            e.starts_with(&format!("/etc/xs/xdpsieve.toml:{place}")),
            "{text:?}: {e}"
        );
        assert!(e.contains(words), "{text:?}: {e}");
    }
}

#[test]
fn the_values_kept_as_written_are_read_with_their_place() {
    let c = parse("[capture]\nformat = \"pcpang\"\n").unwrap();
    let format = c.capture.format.as_ref().unwrap();
    let e = c
        .choice::<AttachMode>("capture.format", format)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("/etc/xs/xdpsieve.toml:2:10: `capture.format` must be one of"),
        "{e}"
    );
    let c = parse("mode = \"x\"\n[capture]\nformat = \"native\"\n").unwrap_err();
    assert!(c.contains("1:8"), "{c}");
    let c = parse("[capture]\nformat = \"native\"\n").unwrap();
    let format = c.capture.format.as_ref().unwrap();
    assert_eq!(
        c.choice::<AttachMode>("capture.format", format).unwrap(),
        AttachMode::Native
    );
}

#[test]
fn relative_paths_start_from_the_files_directory() {
    let c = Config::parse(
        "rules = \"fw.toml\"\n[capture]\nfile = \"drops.pcap\"\n[capture.rotation]\nsize_mb = 1\n\
         command = \"gzip\"\n[log]\nfile = \"../log/events\"\n"
            .into(),
        Path::new("conf/xdpsieve.toml"),
    )
    .unwrap();
    assert_eq!(c.rule_file.as_deref(), Some(Path::new("conf/fw.toml")));
    assert_eq!(c.capture.file.as_deref(), Some("conf/drops.pcap"));
    assert_eq!(c.log.file.as_deref(), Some(Path::new("conf/../log/events")));
    // A bare command is looked up in PATH, as -z does.
    assert_eq!(c.capture.rotation.command.as_deref(), Some("gzip"));
    // Standard output, absolute paths and a file in the current directory stay.
    let c = Config::parse(
        "rules = \"/etc/fw.toml\"\n[capture]\nfile = \"-\"\n".into(),
        Path::new("xdpsieve.toml"),
    )
    .unwrap();
    assert_eq!(c.rule_file.as_deref(), Some(Path::new("/etc/fw.toml")));
    assert_eq!(c.capture.file.as_deref(), Some("-"));
    let c = Config::parse("rules = \"fw.toml\"\n".into(), Path::new("xdpsieve.toml")).unwrap();
    assert_eq!(c.rule_file.as_deref(), Some(Path::new("fw.toml")));
}

#[test]
fn rules_inline_or_in_a_file_not_both() {
    let scratch = TempDir::new("config-rules");
    let dir = scratch.path();
    fs::write(dir.join("bad.netset"), "198.51.100.0/24\n203.0.113.7\n").unwrap();
    fs::write(
        dir.join("fw.toml"),
        "default = \"pass\"\n[[rule]]\nname = \"a\"\naction = \"drop\"\nprotocol = \"udp\"\n",
    )
    .unwrap();
    let config = dir.join("xdpsieve.toml");
    // Inline, after the sections; the set file relative to the configuration's directory.
    let inline = "interfaces = [\"eth0\"]\ndefault = \"drop\"\n[capture]\nsnaplen = 64\n\
                  [[set]]\nname = \"bad\"\nfile = \"bad.netset\"\n\
                  [[rule]]\nname = \"ssh\"\naction = \"pass\"\nprotocol = \"tcp\"\ndst_port = 22\n\
                  [[rule]]\nname = \"listed\"\naction = \"drop\"\nsrc = \"@bad\"\n";
    fs::write(&config, inline).unwrap();
    let c = Config::read(&config).unwrap();
    assert!(c.inline_rules && c.rule_file.is_none());
    let set = c.rule_set().unwrap();
    let names: Vec<&str> = set.rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["ssh", "listed"]);
    assert_eq!(set.default_action, Action::Drop);
    assert_eq!(set.sets.len(), 1);
    // In a rule file: the file's `default` overrides the rule file's.
    fs::write(&config, "rules = \"fw.toml\"\ndefault = \"drop\"\n").unwrap();
    let set = Config::read(&config).unwrap().rule_set().unwrap();
    assert_eq!(set.rules[0].name, "a");
    assert_eq!(set.default_action, Action::Drop);
    fs::write(&config, "rules = \"fw.toml\"\n").unwrap();
    let set = Config::read(&config).unwrap().rule_set().unwrap();
    assert_eq!(set.default_action, Action::Pass);
    // Not both.
    fs::write(
        &config,
        "rules = \"fw.toml\"\n[[rule]]\naction = \"drop\"\n",
    )
    .unwrap();
    let e = Config::read(&config).unwrap_err().to_string();
    assert!(e.ends_with("xdpsieve.toml:1:9: `rules` names a rule file, and this file has [[rule]] or [[set]] tables too: keep the rules in one place (here, or in the rule file)"), "{e}");
    // A missing rule file is named with the key that names it.
    fs::write(&config, "\nrules = \"gone.toml\"\n").unwrap();
    let e = Config::read(&config)
        .unwrap()
        .rule_set()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("xdpsieve.toml:2:9: `rules`: cannot open rule file"),
        "{e}"
    );
    assert!(e.contains("gone.toml"), "{e}");
    // An inline rule's error is placed in the configuration file.
    fs::write(
        &config,
        "[log]\nwhich = \"all\"\n[[rule]]\naction = \"drop\"\nsrc_prot = 1\n",
    )
    .unwrap();
    let e = Config::read(&config)
        .unwrap()
        .rule_set()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("xdpsieve.toml:5:1: unknown key `src_prot` in a rule"),
        "{e}"
    );
    // A rule file is no configuration file: its reader still refuses the sections.
    fs::write(&config, "[capture]\nsnaplen = 64\n").unwrap();
    let e = crate::configure::rules::RuleSet::from_file(&config)
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown key `capture`: a rule file has"), "{e}");
}

#[test]
fn a_configuration_file_is_read_as_untrusted_input() {
    let e = Config::read(Path::new("/dev/zero"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("configuration file /dev/zero is a character device"),
        "{e}"
    );
    let e = Config::read(Path::new("/nonexistent/xdpsieve.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cannot open configuration file /nonexistent/xdpsieve.toml"),
        "{e}"
    );
}

#[test]
fn unknown_key_lists_and_section_names() {
    assert_eq!(keys::name_in("", "capture"), Some("capture"));
    assert_eq!(keys::name_in("capture", "rotation"), Some("rotation"));
    assert_eq!(keys::name_in("", "rotation"), None);
    assert_eq!(keys::name_in("log", "rotation"), None);
    assert_eq!(keys::name_in("metrics", "listen"), Some("listen"));
    assert_eq!(keys::listed("metrics"), "listen, stats_interval");
    assert!(keys::listed("").ends_with("[[set]], [[rule]], [capture], [log], [metrics]"));
}

/// The manifest's directory's parent: the repository.
fn repository_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(name);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_readme_holds_the_key_reference() {
    let readme = repository_file("README.md");
    let reference = keys::markdown();
    assert!(
        readme.contains(&reference),
        "README.md's \"Configuration file\" section must hold the key reference exactly as \
         `configure::config::keys::markdown()` makes it; put this there:\n\n{reference}"
    );
}

#[test]
fn the_packaged_file_shows_every_key_and_its_examples_are_valid() {
    let shipped = repository_file("dist/xdpsieve.toml");
    // As shipped: valid, and naming no interface (it filters nothing until edited).
    let c = Config::parse(shipped.clone(), Path::new("/etc/xdpsieve/xdpsieve.toml")).unwrap();
    assert!(c.interfaces.is_none() && c.rule_file.is_none() && !c.inline_rules);
    assert!(c.capture.file.is_none() && c.log.which.is_none());
    // Every key is there, commented out with an example; uncommented, they all read.
    let (settings, rules) = shipped
        .split_once("# Rules here")
        .expect("the file's rule examples start with `# Rules here`");
    let mut uncommented = String::new();
    for line in settings.lines() {
        let key = line.strip_prefix("# ").filter(|rest| {
            rest.split_once(" = ")
                .is_some_and(|(name, _)| keys::KEYS.iter().any(|k| k.name == name))
        });
        uncommented.push_str(key.unwrap_or(line));
        uncommented.push('\n');
    }
    let c = Config::parse(
        uncommented.clone(),
        Path::new("/etc/xdpsieve/xdpsieve.toml"),
    )
    .unwrap_or_else(|e| panic!("{e}\n{uncommented}"));
    assert!(c.interfaces.is_some() && c.metrics.stats_interval.is_some());
    for key in keys::KEYS {
        let shown = match key.kind {
            "array of tables" => rules.contains(&format!("# [[{}]]", key.name)),
            _ => uncommented.contains(&format!("\n{} = ", key.name)),
        };
        assert!(shown, "dist/xdpsieve.toml does not show `{}`", key.name);
    }
}
