//! Rules with address sets: `[[set]]` tables (inline and from files, relative paths,
//! missing and bad files, limits, names), `@name` in TOML and in expressions, families.

use std::path::PathBuf;

use xdpsieve_common::family;
use xdpsieve_testkit::tempdir::TempDir;

use super::*;
use crate::configure::sets::{MAX_SETS, SetSource};

const WITH_SETS: &str = r#"
[[rule]]
name = "drop-listed"
action = "drop"
src = "@blocklist"

[[rule]]
name = "to-bans"
action = "drop"
protocol = "tcp"
dst = "@bans"

# Declared after the rules that use them: sets are read first.
[[set]]
name = "blocklist"
prefixes = ["198.51.100.0/24", "2001:db8:bad::/48", "198.51.100.0/25"]

[[set]]
name = "bans"
prefixes = []
"#;

fn toml_error(text: &str) -> String {
    RuleSet::from_toml(text, "sets.toml")
        .expect_err("an error")
        .to_string()
}

/// A scratch directory with an empty `lists/` in it.
fn scratch(tag: &str) -> TempDir {
    let dir = TempDir::new(&format!("sets-{tag}"));
    std::fs::create_dir_all(dir.file("lists")).expect("the lists directory");
    dir
}

/// Writes `text` to `name` in `dir`.
fn write(dir: &TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.file(name);
    std::fs::write(&path, text).expect("write");
    path
}

#[test]
fn toml_sets_inline_and_rules_naming_them() {
    let set = RuleSet::from_toml(WITH_SETS, "sets.toml").expect("rules");
    assert_eq!(set.sets.len(), 2);
    assert_eq!(set.sets[0].name, "blocklist");
    assert_eq!(set.sets[0].source, SetSource::Inline);
    assert_eq!(set.sets[0].family_counts(), (2, 1));
    assert!(set.sets[1].prefixes.is_empty());
    assert_eq!(set.rules[0].src, Some(AddrMatch::Set(0)));
    assert_eq!(set.rules[1].dst, Some(AddrMatch::Set(1)));
    assert_eq!(
        set.rules[0].conditions_with(&set.sets),
        "src net @blocklist"
    );
    assert_eq!(
        set.rules[1].conditions_with(&set.sets),
        "tcp and dst net @bans"
    );
    // A set implies no family: the rule matches both.
    assert_eq!(set.rules[0].address_family(), None);
    assert_eq!(set.set_index("bans"), Some(1));
    let users: Vec<u32> = set.rules_using_set(1).map(|r| r.id).collect();
    assert_eq!(users, [2]);
    assert!(set.warnings.is_empty());
}

#[test]
fn set_files_are_read_relative_to_the_rule_file() {
    let dir = scratch("relative");
    write(
        &dir,
        "lists/drop.netset",
        "# list\r\n198.51.100.0/24 ; SBL1\r\n198.51.100.9/24\r\n2001:db8::/32\r\n",
    );
    let rules = write(
        &dir,
        "rules.toml",
        "[[set]]\nname = \"drop\"\nfile = \"lists/drop.netset\"\n\n\
         [[rule]]\naction = \"drop\"\nsrc = \"@drop\"\n",
    );
    let set = RuleSet::from_file(&rules).expect("rules");
    assert_eq!(
        set.sets[0].source,
        SetSource::File(dir.file("lists/drop.netset"))
    );
    assert_eq!(set.sets[0].prefixes.len(), 3);
    assert_eq!(set.sets[0].prefixes[1].to_string(), "198.51.100.0/24");
    // The host-bits line is accepted, with a warning for the caller to print.
    assert_eq!(set.warnings.len(), 1);
    assert!(
        set.warnings[0].contains("drop.netset:3: `198.51.100.9/24` has host bits set"),
        "{:?}",
        set.warnings
    );
    let shown = set.describe_sets();
    assert!(
        shown.contains("@drop") && shown.contains("2 IPv4 + 1 IPv6 prefixes"),
        "{shown}"
    );
    assert!(shown.contains("used by rule 1 (rule-1)"), "{shown}");
    assert!(shown.contains("kernel memory"), "{shown}");
}

#[test]
fn a_missing_set_file_names_its_path_and_the_rule_file_line() {
    let dir = scratch("missing");
    let rules = write(
        &dir,
        "rules.toml",
        "[[set]]\nname = \"drop\"\nfile = \"lists/absent.netset\"\n",
    );
    let e = RuleSet::from_file(&rules).expect_err("missing").to_string();
    let absent = dir.file("lists/absent.netset");
    assert!(e.contains(":3:8: set `drop`: cannot open set file"), "{e}");
    assert!(e.contains(&absent.to_string_lossy().into_owned()), "{e}");
}

#[test]
fn a_bad_set_file_line_names_the_set_file_and_line() {
    let dir = scratch("badline");
    write(
        &dir,
        "lists/bad.netset",
        "198.51.100.0/24\n\n203.0.113.0/99\n",
    );
    let rules = write(
        &dir,
        "rules.toml",
        "[[set]]\nname = \"bad\"\nfile = \"lists/bad.netset\"\n",
    );
    let e = RuleSet::from_file(&rules).expect_err("bad").to_string();
    assert!(e.contains("lists/bad.netset:3: prefix length `/99`"), "{e}");
}

#[test]
fn set_table_errors() {
    let cases = [
        (
            "[[set]]\nname = \"a\"\n",
            "needs exactly one of `file` (a set file) or `prefixes`",
        ),
        (
            "[[set]]\nname = \"a\"\nfile = \"x\"\nprefixes = []\n",
            "needs exactly one of",
        ),
        ("[[set]]\nprefixes = []\n", "set has no `name`"),
        (
            "[[set]]\nname = \"my set\"\nprefixes = []\n",
            "contains ` `",
        ),
        ("[[set]]\nname = \"\"\nprefixes = []\n", "set name is empty"),
        ("[[set]]\nname = 7\nprefixes = []\n", "`name` must be text"),
        (
            "[[set]]\nname = \"a\"\nprefixes = []\ncolor = \"red\"\n",
            "unknown key `color` in a set",
        ),
        (
            "[[set]]\nname = \"a\"\nprefixes = \"198.51.100.0/24\"\n",
            "`prefixes` must be a list",
        ),
        (
            "[[set]]\nname = \"a\"\nprefixes = [\"198.51.100.1/24\"]\n",
            "set `a`: `198.51.100.1/24` has host bits set",
        ),
        (
            "[[set]]\nname = \"a\"\nprefixes = [\"nope\"]\n",
            "`nope` is not an IPv4 or IPv6 address",
        ),
        ("[set]\nname = \"a\"\n", "`set` must be a list of sets"),
        (
            "[[set]]\nname = \"a\"\nprefixes = []\n[[set]]\nname = \"a\"\nprefixes = []\n",
            "duplicate set name `a`: a set of that name is declared at line 1",
        ),
    ];
    for (text, what) in cases {
        let e = toml_error(text);
        assert!(
            e.starts_with("sets.toml:") && e.contains(what),
            "{text:?}: {e}"
        );
    }
    let long = format!("[[set]]\nname = \"{}\"\nprefixes = []\n", "s".repeat(65));
    assert!(toml_error(&long).contains("longer than 64"));
}

#[test]
fn unknown_sets_are_named_with_the_known_ones() {
    let e = toml_error(
        "[[set]]\nname = \"a\"\nprefixes = []\n[[set]]\nname = \"b\"\nprefixes = []\n\
         [[rule]]\naction = \"drop\"\nsrc = \"@c\"\n",
    );
    assert!(e.starts_with("sets.toml:9:7: "), "{e}");
    assert!(
        e.contains("no set named `c` (the rule file declares @a, @b)"),
        "{e}"
    );
    let e = toml_error("[[rule]]\naction = \"drop\"\ndst = \"@c\"\n");
    assert!(e.contains("no sets are declared"), "{e}");
}

#[test]
fn too_many_sets_are_refused() {
    let text: String = (0..=MAX_SETS)
        .map(|i| format!("[[set]]\nname = \"s{i}\"\nprefixes = []\n"))
        .collect();
    let e = toml_error(&text);
    assert!(
        e.contains(&format!(
            "{} sets declared; a rule set holds at most {MAX_SETS}",
            MAX_SETS + 1
        )),
        "{e}"
    );
    // Exactly the limit is fine.
    let text: String = (0..MAX_SETS)
        .map(|i| format!("[[set]]\nname = \"s{i}\"\nprefixes = []\n"))
        .collect();
    assert_eq!(
        RuleSet::from_toml(&text, "sets.toml")
            .expect("at the limit")
            .sets
            .len(),
        MAX_SETS
    );
}

#[test]
fn expressions_name_sets_of_the_rule_file() {
    let mut set = RuleSet::from_toml(WITH_SETS, "sets.toml").expect("rules");
    set.push_expression(Action::Drop, "udp and src net @bans and dst port 53")
        .expect("set rule");
    let rule = set.rules.last().expect("rule");
    assert_eq!(rule.src, Some(AddrMatch::Set(1)));
    assert_eq!(rule.name, "drop udp and src net @bans and dst port 53");
    assert_eq!(
        rule.conditions_with(&set.sets),
        "udp and src net @bans and dst port 53"
    );
    let e = set
        .push_expression(Action::Drop, "src net @nope")
        .expect_err("unknown")
        .to_string();
    assert!(
        e.contains("no set named `nope` (the rule file declares @blocklist, @bans)"),
        "{e}"
    );
    let e = set
        .push_expression(Action::Drop, "src host @bans")
        .expect_err("host")
        .to_string();
    assert!(e.contains("say `src net @bans`"), "{e}");
    let e = set
        .push_expression(Action::Drop, "dst net @")
        .expect_err("empty name")
        .to_string();
    assert!(e.contains("no set named ``"), "{e}");
}

#[test]
fn expressions_without_a_rule_file_have_no_sets() {
    let e = parse_expression(Action::Drop, "src net @blocklist").expect_err("no sets");
    assert!(e.contains("no sets are declared"), "{e}");
}

#[test]
fn set_rules_and_families() {
    let set = RuleSet::from_toml(WITH_SETS, "sets.toml").expect("rules");
    let parse = |expr: &str| {
        parse_expression_with_sets(Action::Drop, expr, &set.sets).map(|mut rules| rules.remove(0))
    };
    // `ip6` restricts a set rule to IPv6 members.
    let r = parse("ip6 and src net @blocklist").expect("ip6");
    assert_eq!(r.address_family(), Some(family::IPV6));
    // A v4 literal beside a set is fine, and makes the rule IPv4.
    let r = parse("src net @blocklist and dst net 192.0.2.0/24").expect("v4 literal");
    assert_eq!(r.address_family(), Some(family::IPV4));
    assert_eq!(
        r.dst.and_then(|a| a.prefix()).map(|c| c.prefix_len),
        Some(24)
    );
    // Only literals and `ip`/`ip6` can disagree.
    let e = parse("ip6 and src net @blocklist and dst net 192.0.2.0/24").expect_err("mixed");
    assert!(e.contains("mixes IPv4 and IPv6"), "{e}");
    let e = parse("src net @blocklist and src net 192.0.2.0/24").expect_err("twice");
    assert!(e.contains("src address given twice"), "{e}");
}

#[test]
fn rule_files_without_sets_read_as_before() {
    let text = "[[rule]]\naction = \"drop\"\nsrc = \"198.51.100.0/24\"\n";
    let set = RuleSet::from_toml(text, "plain.toml").expect("rules");
    assert!(set.sets.is_empty());
    assert_eq!(
        set.rules[0].src,
        Some(AddrMatch::Prefix("198.51.100.0/24".parse().expect("cidr")))
    );
    assert_eq!(set.describe_sets(), "");
}

#[test]
fn check_sets_catches_what_code_can_build() {
    let mut set = RuleSet::from_toml(WITH_SETS, "sets.toml").expect("rules");
    assert!(set.check_sets().is_ok());
    set.rules[0].src = Some(AddrMatch::Set(2));
    let e = set.check_sets().expect_err("dangling").to_string();
    assert!(e.contains("names set #2, but there are 2 sets"), "{e}");
    set.rules[0].src = Some(AddrMatch::Set(0));
    set.sets[1].name = "blocklist".into();
    let e = set.check_sets().expect_err("duplicate").to_string();
    assert!(e.contains("duplicate set name `blocklist`"), "{e}");
    set.sets[1].name = "bad name".into();
    assert!(set.check_sets().is_err());
}
