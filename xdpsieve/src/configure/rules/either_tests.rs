//! Conditions without a direction (`udp port 53`, `host A`, TOML `port`/`host`/`net`):
//! the kernel rules they become, in order, with one id and name; the forms refused and
//! what their errors say; the limit counting kernel rules; the listing showing one rule.

use xdpsieve_common::MAX_RULES;

use super::*;

fn port(p: u16) -> Option<PortRange> {
    Some(PortRange { min: p, max: p })
}

fn net(text: &str) -> Option<AddrMatch> {
    Some(AddrMatch::Prefix(text.parse().expect("prefix")))
}

/// (src, dst, src_port, dst_port) of each kernel rule.
type Directions = (
    Option<AddrMatch>,
    Option<AddrMatch>,
    Option<PortRange>,
    Option<PortRange>,
);

fn directions(rules: &[RuleSpec]) -> Vec<Directions> {
    rules
        .iter()
        .map(|r| (r.src, r.dst, r.src_port, r.dst_port))
        .collect()
}

#[test]
fn a_port_without_direction_is_a_source_rule_then_a_destination_rule() {
    let mut set = RuleSet::default();
    set.push_expression(Action::Drop, "udp port 53").unwrap();
    assert_eq!(
        directions(&set.rules),
        vec![(None, None, port(53), None), (None, None, None, port(53))]
    );
    for rule in &set.rules {
        assert_eq!((rule.id, rule.name.as_str()), (1, "drop udp port 53"));
        assert_eq!(rule.protocol, Some(Protocol::UDP));
        assert_eq!(
            rule.either,
            Either {
                addr: false,
                port: true
            }
        );
        assert_eq!(rule.written_conditions_with(&[]), "udp and port 53");
    }
    // Each kernel rule's own conditions tell them apart (a takeover matches by them).
    assert_eq!(set.rules[0].conditions(), "udp and src port 53");
    assert_eq!(set.rules[1].conditions(), "udp and dst port 53");
    // Both kernel rules carry the rule's id to the program.
    let kernel = set.to_kernel(Rate::UNLIMITED);
    assert_eq!(kernel.len(), 2);
    assert!(kernel.iter().all(|k| k.id == 1));
    // The next rule gets the next id, not one per kernel rule.
    set.push_expression(Action::Pass, "tcp").unwrap();
    assert_eq!(set.rules[2].id, 2);
    let written: Vec<(u32, std::ops::Range<usize>)> = set
        .written()
        .into_iter()
        .map(|(r, run)| (r.id, run))
        .collect();
    assert_eq!(written, vec![(1, 0..2), (2, 2..3)]);
}

#[test]
fn host_net_and_portrange_without_direction() {
    let rules = parse_expression(Action::Drop, "host 198.51.100.7").unwrap();
    let a = net("198.51.100.7");
    assert_eq!(
        directions(&rules),
        vec![(a, None, None, None), (None, a, None, None)]
    );
    assert_eq!(
        rules[0].written_conditions_with(&[]),
        "net 198.51.100.7/32",
        "shown as the directed forms show a host"
    );
    let rules = parse_expression(Action::Drop, "ip6 and net 2001:db8::/32").unwrap();
    assert_eq!(rules.len(), 2);
    assert!(
        rules
            .iter()
            .all(|r| r.address_family() == Some(family::IPV6))
    );
    let rules = parse_expression(Action::Drop, "tcp portrange 1000-2000").unwrap();
    let range = Some(PortRange {
        min: 1000,
        max: 2000,
    });
    assert_eq!(
        directions(&rules),
        vec![(None, None, range, None), (None, None, None, range)]
    );
    assert_eq!(
        rules[1].written_conditions_with(&[]),
        "tcp and port 1000-2000"
    );
}

/// tcpdump's `host A and port 53` is (src A or dst A) and (src port 53 or dst port 53):
/// all four pairings, address-major, source first.
#[test]
fn an_address_and_a_port_without_direction_make_four_pairings() {
    let rules = parse_expression(Action::Drop, "udp and host 192.0.2.53 and port 53").unwrap();
    let a = net("192.0.2.53");
    assert_eq!(
        directions(&rules),
        vec![
            (a, None, port(53), None),
            (a, None, None, port(53)),
            (None, a, port(53), None),
            (None, a, None, port(53)),
        ]
    );
    assert_eq!(rules.len(), MAX_KERNEL_RULES_PER_RULE);
    let shown: Vec<String> = rules
        .iter()
        .map(|r| r.written_conditions_with(&[]))
        .collect();
    assert!(
        shown
            .iter()
            .all(|s| s == "udp and net 192.0.2.53/32 and port 53"),
        "{shown:?}"
    );
    // An undirected condition beside a directed one of the other kind is one pairing each.
    let rules = parse_expression(Action::Drop, "udp src port 53 and host 192.0.2.53").unwrap();
    assert_eq!(
        directions(&rules),
        vec![(a, None, port(53), None), (None, a, port(53), None)]
    );
    assert_eq!(
        rules[0].written_conditions_with(&[]),
        "udp and net 192.0.2.53/32 and src port 53"
    );
}

#[test]
fn written_conditions_parse_back_to_the_same_kernel_rules() {
    for expr in [
        "udp port 53",
        "host 198.51.100.7",
        "ip and tcp and net 198.51.100.0/24 and dst portrange 1-1023",
        "udp and host 192.0.2.53 and port 53",
        "udp src port 53",
    ] {
        let rules = parse_expression(Action::Drop, expr).unwrap();
        let shown = rules[0].written_conditions_with(&[]);
        assert_eq!(
            parse_expression(Action::Drop, &shown).unwrap(),
            rules,
            "{expr}"
        );
        // Each kernel rule's own conditions are a directed rule of their own.
        for rule in &rules {
            let directed = tests::one(Action::Drop, &rule.conditions()).unwrap();
            let undirected_cleared = RuleSpec {
                either: Either::default(),
                ..rule.clone()
            };
            assert_eq!(directed, undirected_cleared, "{expr}");
        }
    }
}

#[test]
fn combinations_that_would_mislead_are_refused_with_the_way_out() {
    let err = |e: &str| parse_expression(Action::Drop, e).unwrap_err();
    let e = err("host 192.0.2.1 and src host 192.0.2.2");
    assert!(e.contains("cannot go with a `src` or `dst` address"), "{e}");
    assert!(e.contains("write both directions out"), "{e}");
    let e = err("udp port 53 and dst port 5353");
    assert!(e.contains("cannot go with a `src` or `dst` port"), "{e}");
    let e = err("host 192.0.2.1 and host 192.0.2.2");
    assert!(
        e.contains("address without a direction (`host`/`net`) given twice"),
        "{e}"
    );
    let e = err("port 53 and portrange 1-2");
    assert!(
        e.contains("port without a direction (`port`/`portrange`) given twice"),
        "{e}"
    );
    // What the directed forms refuse, the undirected ones refuse alike.
    assert!(err("icmp and port 53").contains("only apply to tcp and udp"));
    assert!(err("ip6 and host 192.0.2.1").contains("mixes IPv4 and IPv6"));
    assert!(err("host 192.0.2.0/24").contains("use `net`"));
    let e = err("host @blocklist");
    assert!(e.contains("say `net @blocklist`"), "{e}");
    assert!(err("port").contains("a value after `port`"));
    assert!(err("host").contains("a value after `host`"));
    assert!(err("port 70000").contains("not a port number"));
    // The message reaches the operator with the expression.
    let e = RuleSet::default()
        .push_expression(Action::Drop, "port 53 and src port 1")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("rule `port 53 and src port 1`: a port without"),
        "{e}"
    );
}

#[test]
fn the_rule_limit_counts_kernel_rules() {
    let mut set = RuleSet::default();
    for _ in 0..MAX_RULES / 2 {
        set.push_expression(Action::Drop, "udp port 53").unwrap();
    }
    assert_eq!(set.rules.len(), MAX_RULES as usize);
    let e = set
        .push_expression(Action::Drop, "tcp")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("513 rules given make 1025 kernel rules")
            && e.contains("makes one per direction")
            && e.contains(&format!("at most {MAX_RULES}")),
        "{e}"
    );
    // In a file, the error points at the rule that went past the limit.
    let text: String = (0..=MAX_RULES / 4)
        .map(|_| "[[rule]]\naction = \"drop\"\nhost = \"192.0.2.1\"\nport = 53\n".to_string())
        .collect();
    let e = RuleSet::from_toml(&text, "many.toml")
        .unwrap_err()
        .to_string();
    let line = 4 * (MAX_RULES / 4) + 1;
    assert!(e.starts_with(&format!("many.toml:{line}:1: ")), "{e}");
    assert!(e.contains("257 rules given make 1028 kernel rules"), "{e}");
}

const UNDIRECTED: &str = r#"
[[set]]
name = "bad"
prefixes = ["198.51.100.0/24"]

[[rule]]
name = "dns"
action = "drop"
protocol = "udp"
port = 53

[[rule]]
name = "peer"
action = "pass"
host = "192.0.2.7"
port = "1000-2000"

[[rule]]
id = 9
action = "drop"
net = "@bad"
"#;

#[test]
fn toml_port_host_and_net_without_direction() {
    let set = RuleSet::from_toml(UNDIRECTED, "u.toml").expect("rules");
    let a = net("192.0.2.7");
    let range = Some(PortRange {
        min: 1000,
        max: 2000,
    });
    assert_eq!(
        directions(&set.rules),
        vec![
            (None, None, port(53), None),
            (None, None, None, port(53)),
            (a, None, range, None),
            (a, None, None, range),
            (None, a, range, None),
            (None, a, None, range),
            (Some(AddrMatch::Set(0)), None, None, None),
            (None, Some(AddrMatch::Set(0)), None, None),
        ]
    );
    let ids: Vec<(u32, &str)> = set.rules.iter().map(|r| (r.id, r.name.as_str())).collect();
    assert_eq!(
        ids,
        vec![
            (1, "dns"),
            (1, "dns"),
            (2, "peer"),
            (2, "peer"),
            (2, "peer"),
            (2, "peer"),
            (9, "rule-9"),
            (9, "rule-9"),
        ]
    );
    assert_eq!(set.rules[7].written_conditions_with(&set.sets), "net @bad");
    // check-rules: one line per written rule, the kernel rules counted apart.
    let listing = set.listing("u.toml");
    assert!(
        listing.starts_with("u.toml: 3 rules (8 in the kernel: one per direction of `host`, `net`, `port`), 1 set, default pass\n"),
        "{listing}"
    );
    assert_eq!(listing.matches("dns").count(), 1, "{listing}");
    assert!(listing.contains("udp and port 53\n"), "{listing}");
    assert!(
        listing.contains("net 192.0.2.7/32 and port 1000-2000\n"),
        "{listing}"
    );
    assert!(listing.contains("used by rule 9 (rule-9)\n"), "{listing}");
    assert!(!listing.contains("9 (rule-9), 9"), "{listing}");
}

#[test]
fn toml_errors_say_where_and_why() {
    let err = |rule: &str| {
        RuleSet::from_toml(&format!("[[rule]]\naction = \"drop\"\n{rule}\n"), "e.toml")
            .unwrap_err()
            .to_string()
    };
    let e = err("port = 53\nsrc_port = 1");
    assert!(
        e.starts_with("e.toml:1:1: this rule: a port without a direction"),
        "{e}"
    );
    let e = err("host = \"192.0.2.1\"\ndst = \"192.0.2.2\"");
    assert!(e.contains("cannot go with a `src` or `dst` address"), "{e}");
    let e = err("host = \"192.0.2.1\"\nnet = \"192.0.2.0/24\"");
    assert!(
        e.starts_with("e.toml:3:8: give `host` or `net`, not both"),
        "{e}"
    );
    let e = err("host = \"192.0.2.0/24\"");
    assert!(e.starts_with("e.toml:3:8: `host` takes an address"), "{e}");
    let e = err("host = \"@x\"");
    assert!(e.contains("write net = \"@x\""), "{e}");
    let e = err("net = \"@x\"");
    assert!(e.contains("no set named `x`"), "{e}");
    let e = err("port = true");
    assert!(
        e.contains("`port` must be a port number or \"low-high\", not a boolean"),
        "{e}"
    );
    let e = err("host = \"2001:db8::1\"\nfamily = \"ipv4\"");
    assert!(e.contains("mixes IPv4 and IPv6"), "{e}");
    let e = err("protocol = \"icmp\"\nport = 7");
    assert!(e.contains("ports only apply to tcp and udp"), "{e}");
    let e = err("prot = 7");
    assert!(e.contains("host, net, src_port, dst_port, port"), "{e}");
}
