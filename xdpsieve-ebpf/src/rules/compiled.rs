//! The rule set compiled to eBPF at load (see `xdpsieve_common::matcher`): the function
//! userspace writes the compiled rules over, and how the program calls it.
//!
//! The placeholder is [`FUNCTION_INSNS`] instructions: `r0 = NO_MATCH`, a branch the
//! verifier knows is taken over padding (so it removes the padding in one piece), and the
//! return. Userspace overwrites all of it with the compiled rules behind the same kind of
//! branch (`xdpsieve::configure::matcher`). The program calls it only with
//! `Config::rules_compiled` set.
//!
//! A global function (`no_mangle`, `extern "C"`): the verifier checks it once, on its own,
//! with `pkt` as a pointer to `size_of::<Packet>()` bytes that may be null (the code tests
//! it), and its result as a number it does not know, so the program after the call is
//! checked once rather than once per rule that could have matched.

use xdpsieve_common::matcher::{FUNCTION_INSNS, NO_MATCH, packet};

use crate::parse::Packet;

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<Packet>() == packet::SIZE);
    assert!(offset_of!(Packet, family) == packet::FAMILY as usize);
    assert!(offset_of!(Packet, protocol) == packet::PROTOCOL as usize);
    assert!(offset_of!(Packet, has_ports) == packet::HAS_PORTS as usize);
    assert!(offset_of!(Packet, src) == packet::SRC as usize);
    assert!(offset_of!(Packet, dst) == packet::DST as usize);
    assert!(offset_of!(Packet, src_port) == packet::SRC_PORT as usize);
    assert!(offset_of!(Packet, dst_port) == packet::DST_PORT as usize);
};

/// The index of the first rule that matches `pkt`, or `NO_MATCH`.
#[inline(always)]
pub(crate) fn first_rule(pkt: &Packet) -> u32 {
    xdpsieve_rules(pkt)
}

#[inline(never)]
#[unsafe(no_mangle)]
#[expect(
    unreachable_pub,
    reason = "the loader finds it by name in the object: it stays an exported symbol"
)]
pub extern "C" fn xdpsieve_rules(pkt: *const Packet) -> u32 {
    let result: u32;
    // SAFETY: moves a constant into r0; the argument is only named, not used.
    unsafe {
        core::arch::asm!(
            "r0 = {none}",
            "if r0 != 0 goto 2f",
            ".rept {n}",
            "r0 = 0",
            ".endr",
            "2:",
            none = const NO_MATCH as i32,
            n = const FUNCTION_INSNS - 3,
            in("r1") pkt,
            lateout("r0") result,
            clobber_abi("C"),
        );
    }
    result
}
