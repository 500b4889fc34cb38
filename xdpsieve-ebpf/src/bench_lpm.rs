//! The baseline the address sets are measured against (issue 9): the kernel's own
//! `BPF_MAP_TYPE_LPM_TRIE`, looked up with a frame's source address, and nothing else. The
//! set benchmark (`xdpsieve/benches/set_cost.rs`) loads it, fills the trie with the same
//! prefixes as the xdpsieve set it compares, and runs both with `BPF_PROG_TEST_RUN`.
//!
//! The product never loads or attaches this program. Its maps are created with the object
//! (aya creates every map it finds), so they hold one entry by default: an LPM trie
//! allocates per element (`BPF_F_NO_PREALLOC`), so an empty one costs next to nothing. The
//! benchmark raises `max_entries` before load.
//!
//! The parsing is the least that can be correct for untagged Ethernet, so that the trie's
//! cost is what the numbers show: no VLAN tags, no IPv4 options check (the source address
//! sits at the same offset whatever the options), no L4.

use aya_ebpf::{
    bindings::xdp_action,
    macros::{map, xdp},
    maps::{LpmTrie, lpm_trie::Key},
    programs::XdpContext,
};

const ETH_HDR_LEN: usize = 14;
const ETH_P_IPV4: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
/// Source address offsets from the start of the IP header.
const IPV4_SRC: usize = 12;
const IPV6_SRC: usize = 8;

/// IPv4 prefixes. The key data is the address's bytes as the packet has them (network
/// order), read as a u32 without swapping; the value is not read.
#[map]
static BENCH_LPM_V4: LpmTrie<u32, u8> = LpmTrie::with_max_entries(1, 0);

/// IPv6 prefixes, same layout (16 bytes read as four u32).
#[map]
static BENCH_LPM_V6: LpmTrie<[u32; 4], u8> = LpmTrie::with_max_entries(1, 0);

/// Drops a frame whose source address is covered by a prefix in the tries, passes the rest.
#[xdp]
pub(crate) fn xdpsieve_bench_lpm(ctx: XdpContext) -> u32 {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + ETH_HDR_LEN > end {
        return xdp_action::XDP_PASS;
    }
    // Reads below are of whole words at addresses aligned to 2 bytes only: the verifier
    // allows that on the machines XDP runs on, and an unaligned read would have the compiler
    // assemble each word from byte loads (see `parse::load`).
    // SAFETY: the two bytes at 12..14 are inside the frame (checked above).
    let ethertype = u16::from_be(unsafe { core::ptr::read((start + 12) as *const u16) });
    let ip = start + ETH_HDR_LEN;
    let found = match ethertype {
        ETH_P_IPV4 => {
            if ip + IPV4_SRC + 4 > end {
                return xdp_action::XDP_PASS;
            }
            // SAFETY: bounds checked above.
            let src = unsafe { core::ptr::read((ip + IPV4_SRC) as *const u32) };
            BENCH_LPM_V4.get(Key::new(32, src)).is_some()
        }
        ETH_P_IPV6 => {
            if ip + IPV6_SRC + 16 > end {
                return xdp_action::XDP_PASS;
            }
            // SAFETY: bounds checked above.
            let src = unsafe { core::ptr::read((ip + IPV6_SRC) as *const [u32; 4]) };
            BENCH_LPM_V6.get(Key::new(128, src)).is_some()
        }
        _ => false,
    };
    if found {
        xdp_action::XDP_DROP
    } else {
        xdp_action::XDP_PASS
    }
}
