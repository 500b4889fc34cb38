//! The compiled code's shapes and when a rule set is compiled. What the code computes is
//! tested here by running every shape on a small interpreter of the instructions the
//! compiler writes, against the rules' meaning written out plainly; and in the kernel
//! against the bitmaps (`tests/kernel/compiled_rules.rs`).

use std::net::IpAddr;

use xdpsieve_common::family;
use xdpsieve_testkit::rng::Rng;

use super::*;
use crate::configure::ebpf_code::{JA, JGE, X};
use crate::configure::rules::{Action, RuleSet};

fn rules(expressions: &[impl AsRef<str>]) -> Vec<RuleSpec> {
    let mut set = RuleSet::default();
    for e in expressions {
        let e = e.as_ref();
        set.push_expression(Action::Drop, e).expect(e);
    }
    set.rules
}

#[test]
fn one_port_rule_is_a_handful_of_instructions() {
    let code = compile(&rules(&["src port 53"])).expect("compiles");
    assert_eq!(code.shape, Shape::InOrder);
    let code = code.insns;
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
    .expect("compiles")
    .insns;
    let many: Vec<String> = (0..300)
        .map(|i| {
            format!(
                "tcp dst port {} and src net 198.51.100.{}/32",
                7 * i,
                i % 250
            )
        })
        .collect();
    let split = compile(&rules(&many)).expect("compiles");
    assert_eq!(split.shape, Shape::Split(Port::Dst));
    for code in [&code, &split.insns] {
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
}

#[test]
fn what_is_not_compiled_says_why() {
    assert_eq!(compile(&[]), Err(NotCompiled::NoRules));
    // Forty rules on one port: every shape tests all forty for that port.
    let same_port: Vec<String> = (0..40)
        .map(|i| format!("udp dst port 53 and src net 198.51.100.{i}/32"))
        .collect();
    assert!(matches!(
        compile(&rules(&same_port)),
        Err(NotCompiled::LongPath { insns }) if insns > MAX_PATH
    ));
    // 1,024 rules of whole IPv6 addresses: short paths, but too much code.
    let long: Vec<String> = (0..1024)
        .map(|i| {
            format!(
                "dst port {i} and src net 2001:db8::{i:x}/128 and dst net 2001:db8:1::{i:x}/128"
            )
        })
        .collect();
    assert!(matches!(
        compile(&rules(&long)),
        Err(NotCompiled::TooLong { insns, .. }) if insns > FUNCTION_INSNS - 2
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
    let code = compile(&set).expect("compiles").insns;
    let returns: Vec<i32> = code
        .windows(2)
        .filter(|w| w[1].code == JMP | EXIT && w[0].code == ALU | MOV | K && w[0].dst == R0)
        .map(|w| w[0].imm)
        .collect();
    assert_eq!(returns, vec![1, NO_MATCH as i32], "{code:?}");
}

#[test]
fn many_port_rules_are_a_search_and_a_rule_or_two() {
    // The benchmark's rule set: 1,023 single ports, then one rule on the other port.
    let mut expressions: Vec<String> = (1..1024)
        .map(|i| format!("tcp dst port {}", 1000 + i))
        .collect();
    expressions.push("src port 53".into());
    let code = compile(&rules(&expressions)).expect("compiles");
    assert_eq!(code.shape, Shape::Split(Port::Dst));
    // Ten or eleven comparisons for about 2,000 ranges, then two rules' tests at most.
    assert!(code.longest_path <= 30, "{}", code.longest_path);
    assert!(code.insns.len() <= FUNCTION_INSNS - 2);
}

/// A packet as the program's `Packet` holds it (`packet::*` offsets).
#[derive(Clone, Debug)]
struct Pkt {
    family: u8,
    protocol: u8,
    has_ports: bool,
    src: IpAddr,
    dst: IpAddr,
    src_port: u16,
    dst_port: u16,
}

impl Pkt {
    fn bytes(&self) -> [u8; packet::SIZE] {
        let mut b = [0u8; packet::SIZE];
        b[packet::FAMILY as usize] = self.family;
        b[packet::PROTOCOL as usize] = self.protocol;
        b[packet::HAS_PORTS as usize] = u8::from(self.has_ports);
        for (addr, at) in [(self.src, packet::SRC), (self.dst, packet::DST)] {
            let at = at as usize;
            match addr {
                IpAddr::V4(a) => b[at..at + 4].copy_from_slice(&a.octets()),
                IpAddr::V6(a) => b[at..at + 16].copy_from_slice(&a.octets()),
            }
        }
        if self.has_ports {
            let (s, d) = (packet::SRC_PORT as usize, packet::DST_PORT as usize);
            b[s..s + 2].copy_from_slice(&self.src_port.to_ne_bytes());
            b[d..d + 2].copy_from_slice(&self.dst_port.to_ne_bytes());
        }
        b
    }
}

/// Whether `rule` holds for `pkt`, written from the rule language's meaning.
fn holds(rule: &RuleSpec, pkt: &Pkt) -> bool {
    let under = |m: &Option<AddrMatch>, addr: IpAddr| match m {
        None => true,
        Some(m) => {
            let c = m.prefix().expect("no sets here");
            match (c.addr, addr) {
                (IpAddr::V4(p), IpAddr::V4(a)) => {
                    let mask = u32::MAX
                        .checked_shl(32 - u32::from(c.prefix_len))
                        .unwrap_or(0);
                    u32::from(p) & mask == u32::from(a) & mask
                }
                (IpAddr::V6(p), IpAddr::V6(a)) => {
                    let mask = u128::MAX
                        .checked_shl(128 - u32::from(c.prefix_len))
                        .unwrap_or(0);
                    u128::from(p) & mask == u128::from(a) & mask
                }
                _ => false,
            }
        }
    };
    let in_range = |r: Option<crate::configure::rules::PortRange>, port: u16| {
        r.is_none_or(|r| pkt.has_ports && (r.min..=r.max).contains(&port))
    };
    rule.address_family().is_none_or(|f| f == pkt.family)
        && rule.protocol.is_none_or(|p| p.0 == pkt.protocol)
        && in_range(rule.src_port, pkt.src_port)
        && in_range(rule.dst_port, pkt.dst_port)
        && under(&rule.src, pkt.src)
        && under(&rule.dst, pkt.dst)
}

/// Runs `code` (the instructions the compiler writes, and no others) on `pkt`: the result
/// and the instructions run.
fn run(code: &[EbpfInsn], pkt: &[u8; packet::SIZE]) -> (u32, usize) {
    let mut r = [0u64; 11];
    r[1] = 1; // the packet's address: not null
    let (mut pc, mut steps) = (0usize, 0usize);
    loop {
        let i = code[pc];
        pc += 1;
        steps += 1;
        let (dst, op) = (usize::from(i.dst), i.code & 0xf0);
        let src = if i.code & X != 0 {
            r[usize::from(i.src)]
        } else {
            i.imm as i64 as u64
        };
        match i.code & 0x07 {
            LDX => {
                let at = i.off as usize;
                r[dst] = match i.code & 0x18 {
                    B => u64::from(pkt[at]),
                    H => u64::from(u16::from_ne_bytes([pkt[at], pkt[at + 1]])),
                    W => u64::from(u32::from_ne_bytes(pkt[at..at + 4].try_into().unwrap())),
                    size => panic!("load size {size:#x}"),
                };
            }
            ALU => {
                let (a, b) = (r[dst] as u32, src as u32);
                r[dst] = u64::from(match op {
                    MOV => b,
                    AND => a & b,
                    _ => panic!("ALU op {op:#x}"),
                });
            }
            class @ (JMP | JMP32) => {
                let (a, b) = if class == JMP32 {
                    (r[dst] as u32 as u64, src as u32 as u64)
                } else {
                    (r[dst], src)
                };
                let taken = match op {
                    EXIT => return (r[0] as u32, steps),
                    JA => true,
                    JEQ => a == b,
                    JNE => a != b,
                    JGT => a > b,
                    JGE => a >= b,
                    JLT => a < b,
                    _ => panic!("jump op {op:#x}"),
                };
                if taken {
                    pc = (pc as i64 + i64::from(i.off)) as usize;
                }
            }
            class => panic!("class {class:#x}"),
        }
    }
}

const PORTS: &[u16] = &[0, 1, 53, 80, 443, 1000, 1234, 6000, 40000, 65534, 65535];

fn random_expression(rng: &mut Rng) -> String {
    let v6 = rng.below(2) == 1;
    let mut parts: Vec<String> = Vec::new();
    match rng.below(5) {
        0 => parts.push(if v6 { "ip6" } else { "ip" }.into()),
        1 => parts.push("tcp".into()),
        2 => parts.push("udp".into()),
        3 => parts.push(if v6 { "icmp6" } else { "icmp" }.into()),
        _ => {}
    }
    let prefixes: &[&str] = if v6 {
        &[
            "2001:db8::/32",
            "2001:db8::10/128",
            "2001:db8:0:ab80::/57",
            "2001:db8::/0",
        ]
    } else {
        &[
            "198.51.100.0/24",
            "198.51.100.7/32",
            "192.0.2.0/25",
            "0.0.0.0/0",
        ]
    };
    for direction in ["src", "dst"] {
        if rng.below(4) == 0 {
            parts.push(format!("{direction} net {}", rng.pick(prefixes)));
        }
    }
    if !parts.iter().any(|p| p.starts_with("icmp")) {
        for direction in ["src", "dst"] {
            match rng.below(4) {
                0 | 1 => parts.push(format!("{direction} port {}", rng.pick(PORTS))),
                2 => {
                    let (a, b) = (*rng.pick(PORTS), *rng.pick(PORTS));
                    parts.push(format!("{direction} portrange {}-{}", a.min(b), a.max(b)));
                }
                _ => {}
            }
        }
    }
    if parts.is_empty() {
        parts.push("ip".into());
    }
    parts.join(" and ")
}

fn random_packet(rng: &mut Rng) -> Pkt {
    let v4: [IpAddr; 4] = [
        "198.51.100.7".parse().unwrap(),
        "198.51.100.200".parse().unwrap(),
        "192.0.2.1".parse().unwrap(),
        "203.0.113.9".parse().unwrap(),
    ];
    let v6: [IpAddr; 4] = [
        "2001:db8::10".parse().unwrap(),
        "2001:db8::11".parse().unwrap(),
        "2001:db8:0:abff::1".parse().unwrap(),
        "2001:db9::1".parse().unwrap(),
    ];
    let is_v6 = rng.below(2) == 1;
    let addrs = if is_v6 { &v6 } else { &v4 };
    let near = |rng: &mut Rng| {
        rng.pick(PORTS)
            .wrapping_add(rng.below(3) as u16)
            .wrapping_sub(1)
    };
    let protocol = *rng.pick(&[6u8, 17, 1, 58]);
    Pkt {
        family: if is_v6 { family::IPV6 } else { family::IPV4 },
        protocol,
        has_ports: matches!(protocol, 6 | 17) && rng.below(8) != 0,
        src: *rng.pick(addrs),
        dst: *rng.pick(addrs),
        src_port: near(rng),
        dst_port: near(rng),
    }
}

#[test]
fn every_shape_finds_the_first_rule_that_holds() {
    let mut rng = Rng::new(0xc0de_5eed);
    let mut split_chosen = 0;
    for round in 0..200 {
        let count = 1 + rng.below(if round % 4 == 0 { 300 } else { 12 }) as usize;
        let mut set = RuleSet::default();
        while set.rules.len() < count {
            let mut candidate = set.clone();
            if candidate
                .push_expression(Action::Drop, &random_expression(&mut rng))
                .is_ok()
            {
                set = candidate;
            }
        }
        let conditions = conditions(&set.rules).expect("conditions");
        let shapes = [
            Shape::InOrder,
            Shape::Split(Port::Dst),
            Shape::Split(Port::Src),
        ];
        let codes: Vec<Code> = shapes
            .iter()
            .map(|&shape| emit(&conditions, shape).expect("emits"))
            .collect();
        if matches!(
            compile(&set.rules),
            Ok(Code {
                shape: Shape::Split(_),
                ..
            })
        ) {
            split_chosen += 1;
        }
        for _ in 0..300 {
            let pkt = random_packet(&mut rng);
            let expected = set
                .rules
                .iter()
                .position(|rule| holds(rule, &pkt))
                .map_or(NO_MATCH, |i| i as u32);
            for code in &codes {
                let (found, steps) = run(&code.insns, &pkt.bytes());
                assert_eq!(
                    found, expected,
                    "round {round}, {:?}, {pkt:?}; rules:\n{:#?}",
                    code.shape, set.rules
                );
                assert!(
                    steps <= code.longest_path,
                    "{steps} > {}",
                    code.longest_path
                );
            }
        }
    }
    assert!(
        split_chosen >= 10,
        "a split was chosen {split_chosen} times"
    );
}
