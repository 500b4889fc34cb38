//! Rule parsing tests: the syntax, the file format, and hostile input (ids at the edges,
//! expressions without conditions, control characters, TOML of the wrong types).

use xdpsieve_common::{MAX_RULES, family, verdict};

use super::*;

fn prefix(a: Option<AddrMatch>) -> Cidr {
    a.and_then(|a| a.prefix()).expect("a literal prefix")
}

/// The one kernel rule of a rule whose conditions all have a direction.
pub(super) fn one(action: Action, expr: &str) -> Result<RuleSpec, String> {
    let mut rules = parse_expression(action, expr)?;
    assert_eq!(rules.len(), 1, "{expr}: {rules:?}");
    Ok(rules.remove(0))
}

#[test]
fn expression_dns_responses() {
    let r = one(Action::Drop, "udp src port 53").unwrap();
    assert_eq!(r.protocol, Some(Protocol::UDP));
    assert_eq!(r.src_port, Some(PortRange { min: 53, max: 53 }));
    assert!(r.needs_ports());
    let k = r.to_kernel(Rate::UNLIMITED);
    assert_eq!(k.verdict, verdict::DROP);
}

#[test]
fn expression_full() {
    let r = one(
        Action::Pass,
        "tcp and src net 198.51.100.0/24 and dst host 192.0.2.2 and dst portrange 1000-2000",
    )
    .unwrap();
    assert_eq!(prefix(r.src).to_string(), "198.51.100.0/24");
    assert_eq!(prefix(r.dst).prefix_len, 32);
    assert_eq!(
        r.dst_port,
        Some(PortRange {
            min: 1000,
            max: 2000
        })
    );
    assert_eq!(r.address_family(), Some(family::IPV4));
    let (addr, mask) = prefix(r.src).to_words();
    assert_eq!(addr[0], u32::from_ne_bytes([198, 51, 100, 0]));
    assert_eq!(mask[0], u32::from_ne_bytes([255, 255, 255, 0]));
    assert_eq!(prefix(r.dst).to_words().1[0], u32::MAX);
}

#[test]
fn expression_ipv6_prefix_words() {
    let r = one(Action::Drop, "src net 2001:db8:ab00::/40").unwrap();
    assert_eq!(r.address_family(), Some(family::IPV6));
    let (addr, mask) = prefix(r.src).to_words();
    assert_eq!(addr[0], u32::from_ne_bytes([0x20, 0x01, 0x0d, 0xb8]));
    assert_eq!(mask[0], u32::MAX);
    assert_eq!(mask[1], u32::from_ne_bytes([0xff, 0, 0, 0]));
    assert_eq!(addr[1], u32::from_ne_bytes([0xab, 0, 0, 0]));
    assert_eq!(mask[2], 0);
}

#[test]
fn kernel_rule_holds_what_the_program_reads() {
    let mut set = RuleSet::default();
    set.push_expression(Action::Drop, "tcp dst port 22")
        .unwrap();
    let k = set.rules[0].to_kernel("10/s".parse().unwrap());
    assert_eq!((k.id, k.verdict, k.log), (1, verdict::DROP, 0));
    assert_eq!(
        (k.rate_interval_ns, k.rate_tolerance_ns),
        (100_000_000, 900_000_000)
    );
}

#[test]
fn expression_errors_say_why() {
    let err = |e: &str| parse_expression(Action::Drop, e).unwrap_err();
    assert!(err("port").contains("a value after `port`"));
    assert!(err("udp src port 70000").contains("not a port number"));
    assert!(err("icmp dst port 1").contains("only apply to tcp and udp"));
    assert!(err("src net 198.51.100.5/24").contains("did you mean `198.51.100.0/24`"));
    assert!(err("src net 192.0.2.0/24 and dst net 2001:db8::/32").contains("mixes IPv4 and IPv6"));
    assert!(err("udp or tcp").contains("not supported"));
    assert!(err("udp udp").contains("protocol given twice"));
    assert!(err("src port").contains("at the end"));
    assert!(err("dst port 20-10").contains("backwards"));
    assert!(err("frobnicate").contains("unknown word"));
    assert!(err("").contains("at least one condition"));
}

const GOOD: &str = r#"
# Drop DNS responses from the documentation range, pass everything else.
default = "pass"

[[rule]]
name = "block-dns"
action = "drop"
protocol = "udp"
src = "198.51.100.0/24"
src_port = 53

[[rule]]
id = 7
name = "v6-web"
action = "pass"
protocol = "tcp"
dst = "2001:db8::/32"
dst_port = "80-443"

[[rule]]
action = "drop"
protocol = 132
"#;

#[test]
fn file_good() {
    let set = RuleSet::from_toml(GOOD, "good.toml").unwrap();
    assert_eq!(set.default_action, Action::Pass);
    assert_eq!(set.rules.len(), 3);
    assert_eq!(
        (set.rules[0].id, set.rules[0].name.as_str()),
        (1, "block-dns")
    );
    assert_eq!(set.rules[1].id, 7);
    assert_eq!(set.rules[1].dst_port, Some(PortRange { min: 80, max: 443 }));
    assert_eq!((set.rules[2].id, set.rules[2].name.as_str()), (2, "rule-2"));
    assert_eq!(set.rules[2].protocol, Some(Protocol(132)));
    assert_eq!(set.name_of(7), Some("v6-web"));
    assert_eq!(set.name_of(0), Some("default"));
}

fn file_error(text: &str) -> String {
    RuleSet::from_toml(text, "bad.toml")
        .unwrap_err()
        .to_string()
}

#[test]
fn file_errors_name_line_and_problem() {
    let e = file_error("[[rule]]\naction = \"drop\"\nsrc = \"198.51.100.0/33\"\n");
    assert!(e.starts_with("bad.toml:3:7: "), "{e}");
    assert!(e.contains("prefix length"), "{e}");

    let e = file_error("[[rule]]\naction = \"dorp\"\n");
    assert!(e.starts_with("bad.toml:2:"), "{e}");
    assert!(e.contains("unknown action `dorp`"), "{e}");

    let e = file_error("[[rule]]\naction = \"drop\"\nsrc_prot = 53\n");
    assert!(e.starts_with("bad.toml:3:"), "{e}");
    assert!(e.contains("src_prot"), "{e}");

    let e = file_error("[[rule]]\nname = \"x\"\n");
    assert!(e.contains("action"), "{e}");

    let e = file_error("[[rule]]\naction = \"drop\"\nprotocol = \"icmp\"\ndst_port = 5\n");
    assert!(e.contains("only apply to tcp and udp"), "{e}");

    let e =
        file_error("[[rule]]\nid = 3\naction = \"drop\"\n[[rule]]\nid = 3\naction = \"pass\"\n");
    assert!(e.starts_with("bad.toml:5:"), "{e}");
    assert!(e.contains("duplicate rule id 3"), "{e}");

    let e = file_error("default = \"maybe\"\n");
    assert!(e.starts_with("bad.toml:1:"), "{e}");

    let e = file_error("[[rule]\n");
    assert!(e.starts_with("bad.toml:1:"), "{e}");

    let e = file_error("[[rule]]\naction = \"drop\"\ndst_port = \"http\"\n");
    assert!(e.contains("not a port number"), "{e}");
}

#[test]
fn log_and_rates() {
    let set = RuleSet::from_toml(
        "[[rule]]\naction = \"drop\"\nlog = true\nlog_rate = \"100/s\"\n[[rule]]\naction = \"pass\"\n",
        "r.toml",
    )
    .unwrap();
    assert!(set.rules[0].log);
    let k = set.rules[0].to_kernel(Rate::UNLIMITED);
    assert_eq!(
        (k.log, k.rate_interval_ns, k.rate_tolerance_ns),
        (1, 10_000_000, 990_000_000)
    );
    let default = "10/m".parse::<Rate>().unwrap();
    let k = set.rules[1].to_kernel(default);
    assert_eq!(k.rate_interval_ns, 6_000_000_000);
    assert_eq!("0".parse::<Rate>().unwrap().interval_ns(), 0);
    assert!("fast".parse::<Rate>().is_err());
    assert!("10/fortnight".parse::<Rate>().is_err());
    let e = RuleSet::from_toml("[[rule]]\naction = \"drop\"\nlog_rate = \"x\"\n", "r.toml")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("r.toml:3:") && e.contains("not a rate"),
        "{e}"
    );
}

#[test]
fn cli_rules_follow_file_ids() {
    let mut set = RuleSet::from_toml(GOOD, "good.toml").unwrap();
    set.push_expression(Action::Drop, "udp src port 53")
        .unwrap();
    assert_eq!(set.rules.last().unwrap().id, 8);
    assert_eq!(set.rules.last().unwrap().name, "drop udp src port 53");
}

#[test]
fn too_many_rules() {
    let mut set = RuleSet::default();
    for _ in 0..MAX_RULES {
        set.push_expression(Action::Drop, "udp").unwrap();
    }
    assert!(set.push_expression(Action::Drop, "udp").is_err());
}

// Hostile input: each of these was accepted, panicked or misreported before.

#[test]
fn expression_without_conditions_is_refused() {
    for expr in ["", "   ", "\t\n", "and", "and and", "&&"] {
        let e = parse_expression(Action::Drop, expr).unwrap_err();
        assert!(
            e.contains("at least one condition") && e.contains("--default drop"),
            "{expr:?}: {e}"
        );
    }
    for expr in ["and udp", "udp and", "udp and and tcp"] {
        let e = parse_expression(Action::Drop, expr).unwrap_err();
        assert!(e.contains("between two conditions"), "{expr:?}: {e}");
    }
    // `any` is an explicit match-all, not an accident.
    assert!(parse_expression(Action::Pass, "any").is_ok());
    assert!(
        RuleSet::default()
            .push_expression(Action::Drop, "and")
            .is_err()
    );
}

#[test]
fn cli_ids_after_the_highest_file_id_do_not_wrap_to_the_default() {
    let mut set = RuleSet::from_toml(
        "[[rule]]\nid = 4294967295\naction = \"drop\"\nprotocol = \"udp\"\n\
         [[rule]]\naction = \"drop\"\nprotocol = \"tcp\"\n",
        "max.toml",
    )
    .unwrap();
    assert_eq!(set.rules[1].id, 1);
    set.push_expression(Action::Drop, "udp src port 53")
        .unwrap();
    set.push_expression(Action::Pass, "tcp").unwrap();
    let ids: Vec<u32> = set.rules.iter().map(|r| r.id).collect();
    assert_eq!(ids, [u32::MAX, 1, 2, 3]);
    assert_eq!(set.name_of(2), Some("drop udp src port 53"));
}

#[test]
fn assigned_ids_skip_explicit_ones() {
    let set = RuleSet::from_toml(
        "[[rule]]\naction = \"drop\"\n[[rule]]\nid = 2\naction = \"drop\"\n\
         [[rule]]\naction = \"drop\"\n[[rule]]\nid = 1\naction = \"drop\"\n",
        "r.toml",
    )
    .unwrap();
    let ids: Vec<u32> = set.rules.iter().map(|r| r.id).collect();
    assert_eq!(ids, [3, 2, 4, 1]);
}

#[test]
fn next_id_is_never_zero_and_reports_exhaustion() {
    assert_eq!(next_id_after(u32::MAX, |_| false), Some(1));
    assert_eq!(next_id_after(u32::MAX, |id| id < 5), Some(5));
    assert_eq!(next_id_after(7, |id| id == 8), Some(9));
    assert_eq!(
        next_id_after(u32::MAX - 1, |id| id == u32::MAX || id == 1),
        Some(2)
    );
    // Exhaustion (`None`) needs 2^32 taken ids: not testable in reasonable time, and
    // unreachable with at most MAX_RULES rules; the code path is the end of `find`.
}

#[test]
fn explicit_ids_out_of_range_or_repeated_are_refused() {
    for id in [
        "0",
        "-1",
        "4294967296",
        "1.5",
        "\"7\"",
        "99999999999999999999999999999999999999999",
    ] {
        let e = file_error(&format!("[[rule]]\naction = \"drop\"\nid = {id}\n"));
        assert!(e.starts_with("bad.toml:3:6: "), "{id}: {e}");
        assert!(
            e.contains("`id` must be a whole number from 1 to 4294967295"),
            "{id}: {e}"
        );
    }
    let e = file_error(
        "[[rule]]\nname = \"a\"\nid = 9\naction = \"drop\"\n\
         [[rule]]\nname = \"b\"\nid = 9\naction = \"pass\"\n",
    );
    assert!(e.starts_with("bad.toml:7:6: "), "{e}");
    assert!(
        e.contains("duplicate rule id 9")
            && e.contains("rule `b`")
            && e.contains("rule `a` at line 3"),
        "{e}"
    );
}

#[test]
fn toml_type_errors_are_in_words() {
    let cases = [
        ("rule = 5\n", "1:8", "must be a list of rules"),
        ("[rule]\naction = \"drop\"\n", "1:1", "[[rule]] table"),
        (
            "default = 1\n",
            "1:11",
            "`default` must be \"drop\" or \"pass\", not an integer",
        ),
        (
            "[[rule]]\naction = 1\n",
            "2:10",
            "`action` must be \"drop\", \"pass\" or \"limit\", not an integer",
        ),
        (
            "[[rule]]\naction = \"drop\"\nsrc_port = true\n",
            "3:12",
            "`src_port` must be a port number or \"low-high\", not a boolean",
        ),
        (
            "[[rule]]\naction = \"drop\"\nsrc = 5\n",
            "3:7",
            "`src` must be an address or CIDR",
        ),
        (
            "[[rule]]\naction = \"drop\"\nlog = \"yes\"\n",
            "3:7",
            "`log` must be true or false, not a string",
        ),
        (
            "[[rule]]\naction = \"drop\"\nprotocol = [6]\n",
            "3:12",
            "`protocol` must be tcp, udp",
        ),
        (
            "[[rule]]\naction = \"drop\"\nname = 3\n",
            "3:8",
            "`name` must be text",
        ),
        (
            "[[rule]]\naction = \"drop\"\nprotocol = 256\n",
            "3:12",
            "unknown protocol `256`",
        ),
        (
            "[[rule]]\naction = \"drop\"\nsrc_port = 65536\n",
            "3:12",
            "`65536` is not a port number",
        ),
        ("colour = \"red\"\n", "1:1", "unknown key `colour`"),
        (
            "[[rule]]\nsrc = \"192.0.2.1\"\n",
            "1:1",
            "rule has no `action`",
        ),
        (
            "[[rule]]\naction = \"drop\"\ndrop = 1\n",
            "3:1",
            "unknown key `drop` in a rule",
        ),
        ("a = \"\n", "1:", "not valid TOML"),
    ];
    for (text, position, words) in cases {
        let e = file_error(text);
        assert!(
            e.starts_with(&format!("bad.toml:{position}")),
            "{text:?}: {e}"
        );
        assert!(e.contains(words), "{text:?}: {e}");
        for internal in [
            "invalid type",
            "expected struct",
            "RuleFile",
            "RuleEntry",
            "NumberOrText",
            "untagged",
            "variant",
        ] {
            assert!(!e.contains(internal), "{text:?}: {e}");
        }
    }
}

#[test]
fn control_characters_in_names_are_refused_and_shown_escaped() {
    for name in [
        "\\u001b[31mred",
        "two\\nlines",
        "tab\\there",
        "rtl\\u202eexe",
        "bell\\u0007",
    ] {
        let e = file_error(&format!("[[rule]]\naction = \"drop\"\nname = \"{name}\"\n"));
        assert!(e.starts_with("bad.toml:3:8: "), "{name}: {e}");
        assert!(e.contains("control or invisible characters"), "{name}: {e}");
        assert!(
            !e.chars().any(crate::base::text::is_unsafe),
            "{name}: {e:?}"
        );
    }
    let e = file_error(&format!(
        "[[rule]]\naction = \"drop\"\nname = \"{}\"\n",
        "n".repeat(129)
    ));
    assert!(e.contains("longer than 128"), "{e}");
    // Whitespace inside an expression does not reach the rule's name.
    let mut set = RuleSet::default();
    set.push_expression(Action::Drop, "udp\n\tsrc port\r53")
        .unwrap();
    assert_eq!(set.rules[0].name, "drop udp src port 53");
    // Nor does a control character in an error about the expression.
    let e = set
        .push_expression(Action::Drop, "udp \x1b[2J")
        .unwrap_err()
        .to_string();
    assert!(!e.contains('\x1b') && e.contains("\\x1b[2J"), "{e:?}");
}

#[test]
fn file_origin_is_escaped_in_errors() {
    let e = RuleSet::from_toml("x = 1\n", "evil\x1b]0;title\x07.toml")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("evil\\x1b]0;title\\x07.toml:1:1: "), "{e:?}");
}

#[test]
fn too_many_rules_in_a_file_are_refused_before_parsing_them() {
    let text = "[[rule]]\naction = \"drop\"\n".repeat(MAX_RULES as usize + 1);
    let e = file_error(&text);
    assert!(e.contains("at most 1024"), "{e}");
}

#[test]
fn l4_conditions_are_protocols_and_ports() {
    let with = |expr: &str| {
        let mut set = RuleSet::default();
        set.push_expression(Action::Drop, expr).unwrap();
        set.has_l4_condition()
    };
    assert!(with("udp"));
    assert!(with("proto 47"));
    assert!(with("dst port 53"));
    assert!(with("tcp and src portrange 1000-2000"));
    assert!(!with("src net 198.51.100.0/24"));
    assert!(!with("ip6 and dst host 2001:db8::1"));
    assert!(!RuleSet::default().has_l4_condition());
}

#[test]
fn sample_and_snaplen_reach_the_kernel_rule_and_the_listing() {
    let set = RuleSet::from_toml(
        "[[rule]]\nname = \"flood\"\naction = \"drop\"\nprotocol = \"udp\"\nsample = 4\n\
         snaplen = 96\n[[rule]]\nname = \"rare\"\naction = \"drop\"\n",
        "t.toml",
    )
    .unwrap();
    let flood = set.rules[0].to_kernel(Rate::UNLIMITED);
    assert_eq!((flood.sample, flood.snaplen), (4, 96));
    // 0: the program takes the command line's (`--sample`, `-s`).
    let rare = set.rules[1].to_kernel(Rate::UNLIMITED);
    assert_eq!((rare.sample, rare.snaplen), (0, 0));
    let listing = set.listing("t.toml");
    assert!(
        listing.contains("udp  [sample 1 in 4, snaplen 96]\n"),
        "{listing}"
    );
    assert!(listing.contains("drop  any\n"), "{listing}");
}

#[test]
fn ipv4_mapped_addresses_in_rules_match_ipv4_and_compatible_ones_are_refused() {
    let r = one(Action::Drop, "udp and src host ::ffff:192.0.2.53").unwrap();
    assert_eq!(prefix(r.src).to_string(), "192.0.2.53/32");
    let r = one(Action::Drop, "src net ::ffff:198.51.100.0/120").unwrap();
    assert_eq!(prefix(r.src).to_string(), "198.51.100.0/24");
    let e = parse_expression(Action::Drop, "src host ::192.0.2.53").unwrap_err();
    assert!(e.contains("IPv4-compatible"), "{e}");
    let e = parse_expression(Action::Drop, "ip6 and src host ::ffff:192.0.2.53").unwrap_err();
    // `::ffff:192.0.2.53` is IPv4, so `ip6` contradicts it.
    assert!(e.contains("mixes IPv4 and IPv6"), "{e}");
}

#[test]
fn limit_and_monitor_rules_read_from_toml() {
    use super::limit::{LimitRate, Mode, Per};
    let set = RuleSet::from_toml(
        "[[rule]]\nname = \"dns-flood\"\naction = \"limit\"\nprotocol = \"udp\"\ndst_port = 53\n\
         rate = \"1000/s\"\nburst = 2000\nper = \"src/24\"\n\
         [[rule]]\naction = \"drop\"\nmode = \"monitor\"\nprotocol = \"tcp\"\n",
        "t.toml",
    )
    .expect("rules");
    let limit = set.rules[0].limit.expect("a limit");
    assert_eq!(
        limit.rate,
        LimitRate::Packets {
            count: 1000,
            per_ns: 1_000_000_000
        }
    );
    assert_eq!(
        (limit.burst, limit.per),
        (2000, Per::Source { v4: 24, v6: 128 })
    );
    assert_eq!(set.rules[0].action_name(), "limit");
    assert_eq!(set.rules[1].mode, Mode::Monitor);
    assert!(set.has_continuing());
    for (text, words) in [
        (
            "[[rule]]\naction = \"drop\"\nrate = \"1/s\"\n",
            "belongs to a limit rule",
        ),
        ("[[rule]]\naction = \"limit\"\n", "without a `rate`"),
        (
            "[[rule]]\naction = \"limit\"\nrate = \"0/s\"\n",
            "drops everything",
        ),
        (
            "[[rule]]\naction = \"drop\"\nmode = \"shadow\"\n",
            "unknown mode",
        ),
        (
            "[[rule]]\naction = \"limit\"\nrate = \"1/s\"\nper = \"dst\"\n",
            "not a limit key",
        ),
    ] {
        let e = RuleSet::from_toml(text, "t.toml")
            .expect_err(text)
            .to_string();
        assert!(e.contains(words), "{text:?}: {e}");
    }
    let many: String = (0..33)
        .map(|_| "[[rule]]\naction = \"drop\"\nmode = \"monitor\"\n")
        .collect();
    let e = RuleSet::from_toml(&many, "t.toml")
        .expect_err("33 monitor rules")
        .to_string();
    assert!(e.contains("at most 32"), "{e}");
}

#[test]
fn expressions_take_monitor_and_limit_after_their_conditions() {
    use super::limit::{Mode, Per};
    let mut set = RuleSet::default();
    set.push_expression(Action::Drop, "tcp dst port 22 monitor")
        .expect("monitor");
    set.push_expression(
        Action::Drop,
        "udp port 53 limit 1000/s burst 2000 per src/24",
    )
    .expect("limit");
    assert_eq!(set.rules[0].mode, Mode::Monitor);
    // `port` without a direction: two kernel rules, each with the limit.
    assert_eq!(set.rules.len(), 3);
    for rule in &set.rules[1..] {
        let limit = rule.limit.expect("a limit");
        assert_eq!(
            (limit.burst, limit.per),
            (2000, Per::Source { v4: 24, v6: 128 })
        );
    }
    let e = set
        .push_expression(Action::Pass, "udp limit 5/s")
        .expect_err("a pass limit")
        .to_string();
    assert!(e.contains("--drop"), "{e}");
}

/// A limit rule's ban: read with its defaults, and refused where it could not work (no
/// drop rule before it for the set, per = "rule", monitor mode, half of it, caps over
/// the set table's room).
#[test]
fn bans_read_from_toml_and_refused_where_they_would_stop_nothing() {
    let sets = "[[set]]\nname = \"banned\"\nprefixes = []\n[[set]]\nname = \"friends\"\n\
                prefixes = [\"192.0.2.0/24\"]\n";
    let drop = "[[rule]]\naction = \"drop\"\nsrc = \"@banned\"\n";
    let limit = |extra: &str| {
        format!(
            "[[rule]]\nname = \"flood\"\naction = \"limit\"\nprotocol = \"udp\"\nrate = \
             \"100/s\"\n{extra}\n"
        )
    };
    let ok = format!(
        "{sets}{drop}{}",
        limit("ban = \"10m\"\nban_set = \"banned\"\nallow_set = \"friends\"\nban_max = 50")
    );
    let set = RuleSet::from_toml(&ok, "t.toml").expect("a banning rule");
    let ban = set.rules[1].limit.and_then(|l| l.ban).expect("a ban");
    assert_eq!(
        ban,
        limit::BanSpec {
            time_ns: 600_000_000_000,
            set: 0,
            allow_set: Some(1),
            rate: limit::DEFAULT_BAN_RATE,
            max: 50,
        }
    );
    assert_eq!(set.rules[1].limit.expect("limit").to_kernel().ban, 1);
    let refused = |text: String, expected: &str| {
        let e = RuleSet::from_toml(&text, "t.toml")
            .expect_err(expected)
            .to_string();
        assert!(e.contains(expected), "{expected}: {e}");
    };
    let ban = "ban = \"10m\"\nban_set = \"banned\"";
    refused(
        format!("{sets}{}", limit(ban)),
        "no drop rule before it has src = \"@banned\"",
    );
    refused(
        format!("{sets}{}{drop}", limit(ban)),
        "no drop rule before it has src = \"@banned\"",
    );
    refused(
        format!("{sets}{drop}{}", limit(&format!("{ban}\nper = \"rule\""))),
        "there is no key to ban",
    );
    refused(
        format!(
            "{sets}{drop}{}",
            limit(&format!("{ban}\nmode = \"monitor\""))
        ),
        "monitor mode and bans",
    );
    refused(
        format!("{sets}{drop}{}", limit("ban = \"10m\"")),
        "`ban` and `ban_set` go together",
    );
    refused(
        format!("{sets}{drop}{}", limit("ban_max = 3")),
        "bans nothing",
    );
    refused(
        format!(
            "{sets}{drop}{}",
            limit("ban = \"soon\"\nban_set = \"banned\"")
        ),
        "is not a ban time",
    );
    refused(
        format!("{sets}{drop}{}", limit("ban = \"1m\"\nban_set = \"nope\"")),
        "nope",
    );
    refused(
        format!("{sets}[[rule]]\naction = \"drop\"\nban = \"1m\"\n"),
        "belongs to a limit rule",
    );
    let two = format!(
        "{sets}{drop}{}{}",
        limit(&format!("{ban}\nban_max = 20000")),
        limit(&format!("{ban}\nban_max = 20000")).replace("flood", "flood2")
    );
    refused(two, "at most 32768 fit");
}
