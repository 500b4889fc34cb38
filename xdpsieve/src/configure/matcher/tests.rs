//! The compiled code's shape and when a rule set is compiled; what the code computes is
//! tested in the kernel against the bitmaps (`tests/kernel/compiled_rules.rs`).

use super::*;
use crate::configure::rules::{Action, RuleSet};

fn rules(expressions: &[&str]) -> Vec<RuleSpec> {
    let mut set = RuleSet::default();
    for e in expressions {
        set.push_expression(Action::Drop, e).expect(e);
    }
    set.rules
}

#[test]
fn one_port_rule_is_a_handful_of_instructions() {
    let code = compile(&rules(&["src port 53"])).expect("compiles");
    // null test, two loads, two tests, the match's return, the miss's return.
    assert_eq!(code.len(), 9, "{code:?}");
    assert_eq!(code.last().map(|i| i.code), Some(JMP | EXIT));
    let function = function(&code).expect("fits");
    assert_eq!(function.len(), FUNCTION_INSNS);
    assert_eq!(&function[FUNCTION_INSNS - code.len()..], &code[..]);
}

#[test]
fn jumps_go_forward_and_land_inside() {
    let code = compile(&rules(&[
        "udp dst port 53",
        "tcp dst portrange 1000-2000",
        "src net 198.51.100.0/22",
        "ip6 and dst net 2001:db8:0:ab80::/57",
        "icmp",
    ]))
    .expect("compiles");
    for (at, insn) in code.iter().enumerate() {
        let class = insn.code & 0x07;
        if (class == JMP || class == JMP32) && insn.code & 0xf0 != EXIT {
            let target = at as i64 + 1 + i64::from(insn.off);
            assert!(
                insn.off >= 0 && (target as usize) < code.len(),
                "{at}: {insn:?}"
            );
        }
    }
}

#[test]
fn what_is_not_compiled_says_why() {
    assert_eq!(compile(&[]), Err(NotCompiled::NoRules));
    let many: Vec<String> = (0..40)
        .map(|i| format!("udp dst port {}", 1000 + i))
        .collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    assert!(matches!(
        compile(&rules(&many)),
        Err(NotCompiled::TooLong { insns: n, .. }) if n > FUNCTION_INSNS - 2
    ));
    let mut limited = RuleSet::default();
    limited
        .push_expression(Action::Drop, "udp dst port 53")
        .expect("rule");
    limited.rules[0].mode = crate::configure::rules::limit::Mode::Monitor;
    assert_eq!(compile(&limited.rules), Err(NotCompiled::Continuing));
    let (matching, code) = plan(&rules(&["udp"]), RuleEngine::Bitmaps);
    assert_eq!(matching, Matching::Bitmaps(NotCompiled::Asked));
    assert!(code.is_none());
}

#[test]
fn a_prefix_of_another_family_gets_no_code() {
    // The rule checker refuses `ip6 and src net 198.51.100.0/24`; built by hand, it must
    // hold for no packet, as in the bitmaps, not test an IPv6 address's first word.
    let v4_prefix = rules(&["src net 198.51.100.0/24"])[0].src;
    let mut set = rules(&["ip6 and udp", "udp"]);
    set[0].src = v4_prefix;
    let code = compile(&set).expect("compiles");
    let returns: Vec<i32> = code
        .windows(2)
        .filter(|w| w[1].code == JMP | EXIT && w[0].code == ALU | MOV | K && w[0].dst == R0)
        .map(|w| w[0].imm)
        .collect();
    assert_eq!(returns, vec![1, NO_MATCH as i32], "{code:?}");
}
