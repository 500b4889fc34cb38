//! The translation's shape; what it computes is tested in the kernel
//! (`tests/filter_kernel.rs`, `tests/filter_diff.rs` run every filter both ways).

use super::*;
use crate::configure::capture_filter::CompiledFilter;

fn compiled(expression: &str) -> Vec<FilterInsn> {
    CompiledFilter::compile(expression)
        .expect("compiles")
        .expect("some")
        .insns
}

#[test]
fn translates_what_libpcap_compiles_and_fills_the_slot_exactly() {
    for expression in [
        "udp port 53",
        "tcp[tcpflags] & tcp-syn != 0",
        "vlan and ip6",
        "len > 100 and ip[2:2] * 2 / 3 - 1 > 5",
        "icmp[icmptype] == icmp-echo",
    ] {
        let code = translate(&compiled(expression)).expect(expression);
        assert!(code.len() < 1000, "{expression}: {}", code.len());
        assert_eq!(code.last().map(|i| i.code), Some(JMP | EXIT));
        let slot = slot_function(&code).expect(expression);
        assert_eq!(slot.len(), SLOT_FUNCTION_INSNS);
        // r0 = 0; if r0 == 0 goto code; padding; code.
        let padding = SLOT_FUNCTION_INSNS - 2 - code.len();
        assert_eq!(slot[1].off as usize, padding);
        assert!(slot[2..2 + padding].iter().all(|i| *i == EbpfInsn::PADDING));
        assert_eq!(&slot[2 + padding..], &code[..]);
    }
}

#[test]
fn protochain_stays_with_the_interpreter() {
    let err = translate(&compiled("ip6 protochain 17")).expect_err("loops");
    assert!(matches!(err, Untranslatable::BackwardJump(_)), "{err}");
}

#[test]
fn unreachable_instructions_are_left_out() {
    let ret = |k| FilterInsn {
        code: 0x06,
        jt: 0,
        jf: 0,
        k,
    };
    // ret #1; ret #0 (never reached); no load, so no other end either.
    let code = translate(&[ret(1), ret(0)]).expect("translates");
    let exits = code.iter().filter(|i| i.code == JMP | EXIT).count();
    assert_eq!(exits, 1);
}

#[test]
fn jumps_land_on_the_translation_of_their_target() {
    let code = translate(&compiled("tcp or udp")).expect("translates");
    for (at, insn) in code.iter().enumerate() {
        let class = insn.code & 0x07;
        if (class == JMP || class == JMP32) && insn.code & 0xf0 != 0x80 && insn.code & 0xf0 != EXIT
        {
            let target = at as i64 + 1 + i64::from(insn.off);
            assert!(
                target > at as i64 && (target as usize) < code.len(),
                "{at}: {insn:?}"
            );
        }
    }
}

#[test]
fn encodes_as_the_kernel_reads_it() {
    let insn = EbpfInsn {
        code: 0x61,
        dst: 2,
        src: 6,
        off: -4,
        imm: 0x1234_5678,
    };
    assert_eq!(
        insn.to_bytes(),
        [0x61, 0x62, 0xfc, 0xff, 0x78, 0x56, 0x34, 0x12]
    );
}
