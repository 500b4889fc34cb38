//! Kernel tests of the capture filter, interpreted and translated to eBPF (the harness runs
//! every frame through both, and they must agree): the real program, verified and loaded by
//! this kernel, with hand-written classic programs (every instruction class and addressing
//! mode) and libpcap-compiled ones, run on crafted frames through `BPF_PROG_TEST_RUN`. A
//! load past the end of the frame rejects, as in classic BPF; so does a division by zero.
//!
//! Nothing is attached. They need root; under `CI` they fail rather than skip.

use aya::programs::{TestRun as _, TestRunOptions};
use xdpsieve::{
    configure::capture_filter::{CompiledFilter, FilterEngine},
    configure::loader::{Firewall, Settings},
    configure::rules::{Action, RuleSet},
};
use xdpsieve_common::{FilterInsn, capture};
use xdpsieve_testkit::frame::{Ext, Frame};
use xdpsieve_testkit::gate::{kernel_found, root_or_skip};

use crate::cases::{A4, A6, B4, B6};
use crate::harness::{self, insn, load, load_insns, selects};

const RET_K: u16 = 0x06;
const RET_A: u16 = 0x16;
const RET_X: u16 = 0x0e;
const JEQ_K: u16 = 0x15;

/// `insns`, then: select when A == `expect`.
fn a_equals(mut insns: Vec<FilterInsn>, expect: u32) -> Vec<FilterInsn> {
    insns.extend([
        insn(JEQ_K, 0, 1, expect),
        insn(RET_K, 0, 0, 1),
        insn(RET_K, 0, 0, 0),
    ]);
    insns
}

fn udp4() -> Vec<u8> {
    Frame::ipv4(A4, B4).udp(5353, 53).build()
}

#[test]
fn loads_every_size_and_mode() {
    if !root_or_skip() {
        return;
    }
    let frame = udp4();
    let len = frame.len() as u32;
    let cases: Vec<(&str, Vec<FilterInsn>, u32)> = vec![
        ("ld [12] (half)", vec![insn(0x28, 0, 0, 12)], 0x0800),
        ("ld [23] (byte)", vec![insn(0x30, 0, 0, 23)], 17),
        ("ld [26] (word)", vec![insn(0x20, 0, 0, 26)], 0xc000_020a),
        ("ld #k", vec![insn(0x00, 0, 0, 77)], 77),
        ("ld len", vec![insn(0x80, 0, 0, 0)], len),
        (
            "ldx #14; ldb [x+9]",
            vec![insn(0x01, 0, 0, 14), insn(0x50, 0, 0, 9)],
            17,
        ),
        (
            "ldx #14; ldh [x+22] (dst port)",
            vec![insn(0x01, 0, 0, 14), insn(0x48, 0, 0, 22)],
            53,
        ),
        (
            "ldx #10; ld [x+20] (word)",
            vec![insn(0x01, 0, 0, 10), insn(0x40, 0, 0, 20)],
            u32::from_be_bytes([frame[30], frame[31], frame[32], frame[33]]),
        ),
        (
            "ldx 4*([14]&0xf); txa",
            vec![insn(0xb1, 0, 0, 14), insn(0x87, 0, 0, 0)],
            20,
        ),
        (
            "ldx len; txa",
            vec![insn(0x81, 0, 0, 0), insn(0x87, 0, 0, 0)],
            len,
        ),
        (
            "st M[3]; ld #0; ldx M[3]; txa",
            vec![
                insn(0x00, 0, 0, 9),
                insn(0x02, 0, 0, 3),
                insn(0x00, 0, 0, 0),
                insn(0x61, 0, 0, 3),
                insn(0x87, 0, 0, 0),
            ],
            9,
        ),
        (
            "ldx #5; stx M[15]; ld M[15]",
            vec![
                insn(0x01, 0, 0, 5),
                insn(0x03, 0, 0, 15),
                insn(0x60, 0, 0, 15),
            ],
            5,
        ),
        (
            "ld #6; tax; ld #0; txa",
            vec![
                insn(0x00, 0, 0, 6),
                insn(0x07, 0, 0, 0),
                insn(0x00, 0, 0, 0),
                insn(0x87, 0, 0, 0),
            ],
            6,
        ),
    ];
    for (name, insns, expect) in cases {
        let mut fw = load_insns(&a_equals(insns.clone(), expect));
        assert!(selects(&mut fw, &frame), "{name}: A should be {expect:#x}");
        let mut fw = load_insns(&a_equals(insns, expect.wrapping_add(1)));
        assert!(
            !selects(&mut fw, &frame),
            "{name}: A should not be {:#x}",
            expect + 1
        );
    }
}

#[test]
fn arithmetic_with_k_and_x() {
    if !root_or_skip() {
        return;
    }
    let frame = udp4();
    // (operation, A, operand, result)
    let ops: [(u16, u32, u32, u32); 11] = [
        (0x00, 7, 5, 12),
        (0x10, 5, 7, 5u32.wrapping_sub(7)),
        (0x20, 6, 7, 42),
        (0x30, 43, 7, 6),
        (0x40, 0x50, 0x0a, 0x5a),
        (0x50, 0x5a, 0x0f, 0x0a),
        (0x60, 1, 31, 1 << 31),
        (0x70, 0x8000_0000, 31, 1),
        (0x80, 5, 0, 5u32.wrapping_neg()),
        (0x90, 43, 7, 1),
        (0xa0, 0xff, 0x0f, 0xf0),
    ];
    for (op, a, operand, result) in ops {
        let with_k = vec![insn(0x00, 0, 0, a), insn(0x04 | op, 0, 0, operand)];
        let mut fw = load_insns(&a_equals(with_k, result));
        assert!(selects(&mut fw, &frame), "alu {op:#x} k: {a} op {operand}");
        let with_x = vec![
            insn(0x01, 0, 0, operand),
            insn(0x00, 0, 0, a),
            insn(0x0c | op, 0, 0, 0),
        ];
        let mut fw = load_insns(&a_equals(with_x, result));
        assert!(selects(&mut fw, &frame), "alu {op:#x} x: {a} op {operand}");
    }
    // Shifts by X of 32 or more give 0, as in libpcap's bpf_filter.
    let shift = vec![
        insn(0x01, 0, 0, 40),
        insn(0x00, 0, 0, 1),
        insn(0x6c, 0, 0, 0),
    ];
    let mut fw = load_insns(&a_equals(shift, 0));
    assert!(selects(&mut fw, &frame), "lsh by 40");
    // Division and modulo by an X of zero reject the packet, even before a `ret #1`.
    for op in [0x3c, 0x9c] {
        let insns = [
            insn(0x01, 0, 0, 0),
            insn(0x00, 0, 0, 9),
            insn(op, 0, 0, 0),
            insn(RET_K, 0, 0, 1),
        ];
        let mut fw = load_insns(&insns);
        assert!(!selects(&mut fw, &frame), "op {op:#x} by zero rejects");
    }
}

#[test]
fn jumps_and_returns() {
    if !root_or_skip() {
        return;
    }
    let frame = udp4();
    // (jump, A, operand, taken)
    let jumps: [(u16, u32, u32, bool); 8] = [
        (0x10, 5, 5, true),
        (0x10, 5, 6, false),
        (0x20, 6, 5, true),
        (0x20, 5, 5, false),
        (0x30, 5, 5, true),
        (0x30, 4, 5, false),
        (0x40, 0b0110, 0b0100, true),
        (0x40, 0b0110, 0b1001, false),
    ];
    for (op, a, operand, taken) in jumps {
        // jt skips one `ret #0` more than jf does.
        let tail = [
            insn(RET_K, 0, 0, 0),
            insn(RET_K, 0, 0, 1),
            insn(RET_K, 0, 0, 0),
        ];
        let mut with_k = vec![insn(0x00, 0, 0, a), insn(0x05 | op, 1, 2, operand)];
        with_k.extend(tail);
        let mut fw = load_insns(&with_k);
        assert_eq!(
            selects(&mut fw, &frame),
            taken,
            "jmp {op:#x} k {a} ? {operand}"
        );
        let mut with_x = vec![
            insn(0x01, 0, 0, operand),
            insn(0x00, 0, 0, a),
            insn(0x0d | op, 1, 2, 0),
        ];
        with_x.extend(tail);
        let mut fw = load_insns(&with_x);
        assert_eq!(
            selects(&mut fw, &frame),
            taken,
            "jmp {op:#x} x {a} ? {operand}"
        );
    }
    let ja = [
        insn(0x05, 0, 0, 1),
        insn(RET_K, 0, 0, 0),
        insn(RET_K, 0, 0, 96),
    ];
    assert!(selects(&mut load_insns(&ja), &frame), "ja skips one");
    for (ret, value, selected) in [
        (RET_A, 0, false),
        (RET_A, 1500, true),
        (RET_X, 0, false),
        (RET_X, 64, true),
    ] {
        let insns = [
            insn(0x00, 0, 0, value),
            insn(0x07, 0, 0, 0),
            insn(ret, 0, 0, 0),
        ];
        assert_eq!(
            selects(&mut load_insns(&insns), &frame),
            selected,
            "ret {ret:#x} of {value}"
        );
    }
}

#[test]
fn loads_past_the_end_reject() {
    if !root_or_skip() {
        return;
    }
    let short = Frame::ipv4(A4, B4).udp(1, 2).build();
    let long = Frame::ipv4(A4, B4).udp(1, 2).pad_to(300).build();
    for (name, load_insn) in [
        ("ldb [299]", insn(0x30, 0, 0, 299)),
        ("ldh [298]", insn(0x28, 0, 0, 298)),
        ("ld [296]", insn(0x20, 0, 0, 296)),
        ("ld [0xffffffff]", insn(0x20, 0, 0, u32::MAX)),
    ] {
        let insns = [load_insn, insn(RET_K, 0, 0, 1)];
        let mut fw = load_insns(&insns);
        assert!(!selects(&mut fw, &short), "{name} on {} bytes", short.len());
        let in_range = load_insn.k != u32::MAX;
        assert_eq!(selects(&mut fw, &long), in_range, "{name} on 300 bytes");
    }
    // Indexed: X + k past the end, and X + k overflowing 32 bits.
    for (x, k) in [(290, 10), (u32::MAX, 2)] {
        let insns = [
            insn(0x01, 0, 0, x),
            insn(0x50, 0, 0, k),
            insn(RET_K, 0, 0, 1),
        ];
        assert!(
            !selects(&mut load_insns(&insns), &long),
            "ldb [x+k] x={x} k={k}"
        );
    }
    // MSH past the end.
    let insns = [insn(0xb1, 0, 0, 300), insn(RET_K, 0, 0, 1)];
    assert!(!selects(&mut load_insns(&insns), &long), "ldx msh [300]");
    // libpcap's own programs on a frame cut inside the UDP header: `udp port 53` needs the
    // ports, which are not there.
    let cut = Frame::ipv4(A4, B4)
        .udp(5353, 53)
        .truncate(14 + 20 + 2)
        .build();
    let mut fw = load(CompiledFilter::compile("udp port 53").expect("compiles"));
    assert!(!selects(&mut fw, &cut), "udp port 53 on a cut frame");
    assert!(selects(&mut fw, &udp4()), "udp port 53 on a whole frame");
}

#[test]
fn longest_program_runs_to_its_end() {
    if !root_or_skip() {
        return;
    }
    let frame = udp4();
    // 4095 increments, then `ret A`: the interpreter runs all 4096 instructions.
    let mut insns = vec![insn(0x04, 0, 0, 1); 4095];
    insns.push(insn(RET_A, 0, 0, 0));
    assert!(selects(&mut load_insns(&insns), &frame));
    // The same, ending in a comparison the last increment decides.
    let mut insns = vec![insn(0x04, 0, 0, 1); 4093];
    insns.extend(a_equals(Vec::new(), 4093));
    assert!(selects(&mut load_insns(&insns), &frame));
    let mut too_long = vec![insn(0x04, 0, 0, 1); 4096];
    too_long.push(insn(RET_A, 0, 0, 0));
    let err = CompiledFilter {
        expression: "long".into(),
        insns: too_long,
    }
    .validate()
    .expect_err("4097 instructions");
    assert!(err.to_string().contains("at most 4096"), "{err}");
}

#[test]
fn backward_jumps_loop_within_the_step_budget() {
    if !root_or_skip() {
        return;
    }
    let frame = udp4();
    // A loop of 1000 rounds (a backward `ja`, as libpcap's protochain makes): A counts down.
    let counted = [
        insn(0x00, 0, 0, 1000),
        insn(0x14, 0, 0, 1), // sub #1
        insn(JEQ_K, 1, 0, 0),
        insn(0x05, 0, 0, (-3i32) as u32), // ja back to the sub
        insn(RET_K, 0, 0, 1),
    ];
    assert!(
        selects(&mut load_insns(&counted), &frame),
        "1000 rounds end"
    );
    // A loop that never ends stops at the budget and rejects.
    let endless = [insn(0x05, 0, 0, u32::MAX), insn(RET_K, 0, 0, 1)];
    assert!(
        !selects(&mut load_insns(&endless), &frame),
        "endless loop rejects"
    );
}

#[test]
fn libpcap_programs_on_vlan_and_ipv6_frames() {
    if !root_or_skip() {
        return;
    }
    let tagged = Frame::ipv4(A4, B4).udp(5353, 53).vlan(0x8100).build();
    let plain = udp4();
    let v6 = Frame::ipv6(A6, B6).tcp(40000, 443).build();
    let v6_ext = Frame::ipv6(A6, B6)
        .ext(Ext::HopByHop { units: 0 })
        .tcp(40000, 443)
        .build();
    let cases: [(&str, &[u8], bool); 10] = [
        ("vlan 100 and udp port 53", &tagged, true),
        ("vlan 101", &tagged, false),
        ("udp port 53", &tagged, false),
        ("vlan", &plain, false),
        ("udp port 53", &plain, true),
        ("ip6 and tcp port 443", &v6, true),
        ("ip6 host 2001:db8::20", &v6, true),
        ("ip6 host 2001:db8::30", &v6, false),
        // libpcap's `tcp` on IPv6 looks at the next header only (no chain walk).
        ("ip6 and tcp", &v6_ext, false),
        ("ip6 proto 0", &v6_ext, true),
    ];
    for (expression, frame, expect) in cases {
        let mut fw = load(CompiledFilter::compile(expression).expect("compiles"));
        assert_eq!(selects(&mut fw, frame), expect, "`{expression}`");
    }
}

#[test]
fn separate_log_filter_and_no_filter() {
    if !root_or_skip() {
        return;
    }
    // Without a filter every packet is captured and nothing is counted as not selected.
    let mut fw = load(None);
    assert!(selects(&mut fw, &udp4()));
    assert_eq!(harness::counters(&fw).not_selected, 0);

    // Capture `udp`, log `tcp`: each record follows its own filter, both ways.
    for engine in [FilterEngine::Interpreter, FilterEngine::Translated] {
        let rules = RuleSet {
            default_action: Action::Drop,
            ..RuleSet::default()
        };
        let compile = |e: &str| CompiledFilter::compile(e).expect("compiles");
        let settings = Settings {
            rules,
            capture: capture::DROPPED,
            log: capture::DROPPED,
            capture_filter: compile("udp"),
            log_filter: compile("tcp"),
            filter_engine: engine,
            ..Settings::default()
        };
        let mut fw = Firewall::load(&settings).expect("loads");
        assert_eq!(fw.filter_runs().len(), 2, "{:?}", fw.filter_runs());
        let tcp = Frame::ipv4(A4, B4).tcp(40000, 443).build();
        let icmp = Frame::ipv4(A4, B4).icmp().build();
        let mut run = |frame: &[u8]| harness::run(&mut fw, frame);
        run(&udp4());
        run(&tcp);
        run(&icmp);
        let c = fw.counters().expect("counters");
        assert_eq!(c.captured, 1, "only the udp frame is captured");
        assert_eq!(c.events, 1, "only the tcp frame is logged");
        // udp lost its event, tcp its capture, icmp both: three packets not selected.
        assert_eq!(c.not_selected, 3);
        assert_eq!(c.capture_lost + c.event_lost + c.rate_limited, 0);
    }
}

/// Not a check: the filter's cost per packet in the kernel, printed
/// (`cargo test --test filter_kernel -- --ignored --nocapture filter_cost`). The frame is a
/// UDP datagram the filter turns down at its last test, so no record is copied; the
/// baseline is the same program and rule with nothing to record.
#[test]
#[ignore = "a measurement, not a check"]
fn filter_cost() {
    if !root_or_skip() {
        return;
    }
    let frame = Frame::ipv4(A4, B4).udp(5353, 54).build();
    let long = "(udp or tcp) and not port 22 and not port 80 and not port 443 and not \
                net 203.0.113.0/24 and not host 2001:db8::1 and (udp[8:2] != 0x1234 or \
                ip[8] > 1) and port 53";
    let time = |fw: &mut Firewall| {
        let mut runs: Vec<f64> = (0..5)
            .map(|_| {
                let opts = TestRunOptions {
                    data_in: Some(&frame),
                    repeat: 200_000,
                    ..TestRunOptions::new()
                };
                let result = fw.program().expect("program").test_run(opts).expect("run");
                result.duration.as_nanos() as f64
            })
            .collect();
        runs.sort_by(f64::total_cmp);
        runs[2]
    };
    let rules = RuleSet {
        default_action: Action::Drop,
        ..RuleSet::default()
    };
    let mut base = Firewall::load(&Settings {
        rules,
        capture: 0,
        ..Settings::default()
    })
    .expect("loads");
    let verified = |fw: &mut Firewall| {
        let info = fw.program().expect("program").info().expect("program info");
        info.verified_instruction_count().unwrap_or(0)
    };
    println!(
        "no capture, no filter: {:.1} ns ({} instructions verified)",
        time(&mut base),
        verified(&mut base)
    );
    let both = |name: &str, engines: &mut harness::Engines| {
        println!(
            "{name}: interpreted {:.1} ns ({} verified)",
            time(&mut engines.interpreted),
            verified(&mut engines.interpreted)
        );
        if let Some(fw) = &mut engines.translated {
            println!(
                "{name}: translated {:.1} ns ({} verified)",
                time(fw),
                verified(fw)
            );
        }
    };
    both(
        "`ret #0` (1 insn)",
        &mut load_insns(&[insn(RET_K, 0, 0, 0)]),
    );
    let adds: Vec<FilterInsn> = [insn(0x04, 0, 0, 0); 10]
        .into_iter()
        .chain([insn(RET_K, 0, 0, 0)])
        .collect();
    both("10 adds, ret #0 (11 insns)", &mut load_insns(&adds));
    for expression in ["udp port 53", long] {
        let filter = CompiledFilter::compile(expression).expect("compiles");
        let len = filter.as_ref().map_or(0, |f| f.insns.len());
        let mut engines = load(filter);
        assert!(!selects(&mut engines, &frame));
        both(
            &format!("`{expression}` ({len} insns), rejecting"),
            &mut engines,
        );
    }
}

#[test]
fn auto_translates_long_expressions_and_interprets_protochain() {
    if !root_or_skip() {
        return;
    }
    let ports: Vec<String> = (1..=300).map(|p| format!("port {p}")).collect();
    let long = ports.join(" or ");
    let cases = [
        (long.as_str(), true),
        ("ip6 protochain 17 or ip protochain 17", false),
    ];
    for (expression, translates) in cases {
        let filter = CompiledFilter::compile(expression).expect("compiles");
        let settings = |engine| Settings {
            rules: RuleSet {
                default_action: Action::Drop,
                ..RuleSet::default()
            },
            capture: capture::DROPPED,
            capture_filter: filter.clone(),
            filter_engine: engine,
            ..Settings::default()
        };
        let mut fw = Firewall::load(&settings(FilterEngine::Auto)).expect("auto always loads");
        let runs = fw.filter_runs().to_vec();
        assert_eq!(runs.len(), 1);
        let text = runs[0].to_string();
        match (&runs[0].how, translates) {
            (xdpsieve::configure::loader::FilterHow::Translated(n), true) => {
                assert!(*n > 300, "{text}");
            }
            (xdpsieve::configure::loader::FilterHow::Interpreted(why), false) => {
                assert!(why.contains("backward"), "{text}");
            }
            _ => panic!("`{expression}`: {text}"),
        }
        let mut selects = |frame: &[u8]| harness::selects_one(&mut fw, frame);
        let udp = |port| Frame::ipv4(A4, B4).udp(40000, port).build();
        assert!(selects(&udp(300)), "`{expression}`");
        assert_eq!(selects(&udp(301)), !translates, "`{expression}`");
        if !translates {
            let err = Firewall::load(&settings(FilterEngine::Translated))
                .err()
                .expect("refused");
            assert!(err.to_string().contains("cannot be translated"), "{err}");
        }
    }
}

/// A frame longer than a page reaches the program in XDP fragments (`BPF_PROG_TEST_RUN`
/// makes them for an `xdp.frags` program): the translated filter hands the loads past the
/// linear data to the interpreter, which reads through the fragments.
#[test]
fn loads_in_xdp_fragments() {
    if !root_or_skip() {
        return;
    }
    let mut frame = Frame::ipv4(A4, B4).udp(5353, 53).payload(6000).build();
    let len = frame.len();
    frame[5000] = 0xab;
    let cases = [
        ("ether[5000] == 0xab", true),
        ("ether[5000] == 0xac", false),
        ("ether[5000:4] & 0xff000000 == 0xab000000", true),
        ("udp port 53 and ether[5000] == 0xab", true),
        ("ether[100000] == 0", false),
    ];
    for (expression, expect) in cases {
        let mut fw = load(CompiledFilter::compile(expression).expect("compiles"));
        assert!(fw.translated.is_some(), "`{expression}` translates");
        assert_eq!(selects(&mut fw, &frame), expect, "`{expression}`");
    }
    let by_len = format!("len == {len}");
    let mut fw = load(CompiledFilter::compile(&by_len).expect("compiles"));
    assert!(
        selects(&mut fw, &frame),
        "{by_len}: the whole frame, fragments too"
    );
}

/// A classic program whose translation the verifier refuses: 18 branches on payload bytes,
/// each of which may add its own power of two to X, then a load at X. X feeds a packet pointer, so the
/// verifier must keep the 2^18 values apart and gives up after a million instructions.
/// `auto` loads again with the interpreter (and says why); `translated` refuses. (A verifier
/// that prunes better may accept it: then the test says so and checks the interpreter.)
#[test]
fn a_translation_the_verifier_refuses_falls_back_to_the_interpreter() {
    if !root_or_skip() {
        return;
    }
    let mut insns = vec![insn(0x01, 0, 0, 0)]; // ldx #0
    for i in 0..18 {
        insns.extend([
            insn(0x30, 0, 0, 42 + i), // ldb [42 + i]: the UDP payload
            insn(0x45, 0, 3, 1),      // jset #1: else skip to the next branch
            insn(0x87, 0, 0, 0),      // txa
            insn(0x04, 0, 0, 1 << i), // add #2^i
            insn(0x07, 0, 0, 0),      // tax
        ]);
    }
    insns.extend([insn(0x50, 0, 0, 0), insn(RET_A, 0, 0, 0)]); // ldb [x + 0]; ret a
    let filter = CompiledFilter {
        expression: "eighteen branches".into(),
        insns,
    };
    filter.validate().expect("a valid classic program");
    let settings = |engine| Settings {
        rules: RuleSet {
            default_action: Action::Drop,
            ..RuleSet::default()
        },
        capture: capture::DROPPED,
        capture_filter: Some(filter.clone()),
        filter_engine: engine,
        ..Settings::default()
    };
    // Verifiers differ in how well they prune: measure whether this one refuses. A refusal
    // without a reason (the verifier stopped out of memory or interrupted, seen once in CI
    // beside another test's large load) says nothing about the program: measured again.
    let mut translated = Firewall::load(&settings(FilterEngine::Translated));
    for _ in 0..2 {
        match &translated {
            Err(err) if err.to_string().contains("without saying why") => {
                kernel_found(format_args!("{err}; loading again"));
                translated = Firewall::load(&settings(FilterEngine::Translated));
            }
            _ => break,
        }
    }
    let mut fw = match translated {
        Err(err) => {
            assert!(err.to_string().contains("1,000,000 instructions"), "{err}");
            let fw = Firewall::load(&settings(FilterEngine::Auto)).expect("auto falls back");
            let run = fw.filter_runs()[0].to_string();
            assert!(
                run.contains(
                    "interpreted (the kernel refused its translation: the verifier gave up"
                ),
                "{run}"
            );
            fw
        }
        Ok(_) => {
            kernel_found(format_args!(
                "this verifier accepts the eighteen-branch translation, so the \
                 fallback cannot be shown with it; checking the interpreter alone"
            ));
            Firewall::load(&settings(FilterEngine::Interpreter)).expect("the interpreter loads")
        }
    };
    // The interpreter runs the program as written: X sums 2^i over the payload bytes with
    // their low bit set, and the byte at X decides.
    let mut frame = Frame::ipv4(A4, B4).udp(5353, 53).payload(64).build();
    frame[42..60].fill(0);
    frame[0] = 0x02;
    assert!(harness::selects_one(&mut fw, &frame), "X = 0: byte 0 is 2");
    frame[0] = 0;
    assert!(!harness::selects_one(&mut fw, &frame), "X = 0: byte 0 is 0");
    frame[42 + 2] = 1;
    frame[4] = 0x10;
    assert!(
        harness::selects_one(&mut fw, &frame),
        "X = 4: byte 4 is 0x10"
    );
    frame[42 + 17] = 1;
    assert!(
        !harness::selects_one(&mut fw, &frame),
        "X = 2^17 + 4: past the end"
    );
}
