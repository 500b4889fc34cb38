//! The functions a translated filter replaces: one per filter slot, each
//! `SLOT_FUNCTION_INSNS` instructions of placeholder that userspace overwrites in the object
//! before load with the eBPF translation of the slot's classic program
//! (`xdpsieve::configure::capture_filter::translate`), behind padding that a branch the
//! verifier knows is taken skips (so it removes the padding, in one piece). The
//! placeholder has the same shape, so that a load without filters costs nothing either.
//!
//! They are global functions (`no_mangle`, `extern "C"`): the verifier checks a global
//! function once, on its own, with `xdp` as the context and `frame_len` as a number,
//! instead of once for every state its callers reach it in; and userspace finds them by
//! name in the object's symbol table. An untranslated placeholder returns 0 (rejects); the
//! program never calls one (`Config::filter_translated`).
//!
//! The placeholder is inline assembly that takes both arguments, so the compiler keeps the
//! signature (and the registers) the translation relies on: `r1` the context, `r2` the
//! frame length, the result in `r0`.

use aya_ebpf::bindings::xdp_md;
use xdpsieve_common::filter::SLOT_FUNCTION_INSNS;

macro_rules! placeholder {
    ($name:ident) => {
        #[inline(never)]
        #[unsafe(no_mangle)]
        #[expect(
            unreachable_pub,
            reason = "the loader finds these by name in the object: they stay exported symbols"
        )]
        pub extern "C" fn $name(xdp: *mut xdp_md, frame_len: u32) -> u32 {
            let result: u32;
            // SAFETY: moves a constant into r0; the arguments are only named, not used.
            unsafe {
                core::arch::asm!(
                    "r0 = 0",
                    "if r0 == 0 goto 2f",
                    ".rept {n}",
                    "r0 = 0",
                    ".endr",
                    "2:",
                    n = const SLOT_FUNCTION_INSNS - 3,
                    in("r1") xdp,
                    in("r2") frame_len,
                    lateout("r0") result,
                    clobber_abi("C"),
                );
            }
            result
        }
    };
}

placeholder!(xdpsieve_filter_slot0);
placeholder!(xdpsieve_filter_slot1);
