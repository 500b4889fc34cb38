//! The peer the limit-rule benchmark compares with (issue 18, point 7): the per-source rate
//! limiter of gamemann/XDP-Firewall, reproduced from its `src/xdp/prog.c` (the packet path),
//! `src/xdp/utils/rl.c` (`update_ip_stats`/`update_ip6_stats`), `src/xdp/utils/rule.c`
//! (`process_rule`) and `src/xdp/utils/maps.h`, at commit 178d3df, built as its
//! `src/common/config.h` would be with `ENABLE_RL_IP` on (it ships with it off, and flow
//! limiting on instead), IPv6 on, filter logging and range drop off.
//!
//! What it does per packet, as theirs does: one per-CPU stats lookup; Ethernet, IPv4 or
//! IPv6 header (TCP, UDP and ICMP only, else pass); the clock; a lookup of the source in
//! the block map (an LRU hash per family; a live entry drops); the L4 header; then the
//! source's entry in `ip_stats` (an LRU hash per family, keyed by the address): found and
//! its 1-second window over, the window restarts with plain stores; found within it, pps
//! and bps grow by atomic adds; missing, a new entry is written with `BPF_ANY`. The counts
//! are then read back (plain loads) and the filters walked with `bpf_loop` over a per-CPU
//! array: a filter matches when the source's pps reached its `ip_pps` (and its UDP port
//! conditions hold); a match drops (and blocks the source when `block_time` is set).
//!
//! Reduced: a filter here has only the fields the benchmark's filter uses (rate and UDP
//! destination port); theirs tests every field's `do_*` flag, which for an unset field is
//! one more load and branch each. The window restart is a plain read-modify-write shared by
//! every CPU, as theirs is: two CPUs can both restart a window, or an add can land between
//! another CPU's test and its stores — the counts are approximate, as in the original.
//!
//! The product never loads or attaches this program. Its maps are created with the object
//! (aya creates every map it finds) with one entry; the benchmark sizes the LRU maps before
//! load.

use core::ffi::c_void;

use aya_ebpf::{
    bindings::xdp_action,
    helpers::generated::{bpf_ktime_get_ns, bpf_loop},
    macros::{map, xdp},
    maps::{LruHashMap, PerCpuArray},
    programs::XdpContext,
};

const ETH_HDR_LEN: usize = 14;
const ETH_P_IPV4: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const IPV4_HDR_LEN: usize = 20;
const IPV6_HDR_LEN: usize = 40;
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ICMPV6: u8 = 58;
const TCP_HDR_LEN: usize = 20;
const UDP_HDR_LEN: usize = 8;
const ICMP_HDR_LEN: usize = 8;
/// `NANO_TO_SEC` (src/common/constants.h).
const NANO_TO_SEC: u64 = 1_000_000_000;
/// `MAX_FILTERS` (src/common/config.h): `bpf_loop`'s bound; the walk stops at the first
/// filter that is not set.
const MAX_FILTERS: u32 = 1000;
/// `BPF_ANY`.
const ANY: u64 = 0;

/// `cl_stats_t`.
#[repr(C)]
struct ClientStats {
    pps: u64,
    bps: u64,
    next_update: u64,
}

/// `stats_t`.
#[repr(C)]
struct Stats {
    allowed: u64,
    dropped: u64,
    passed: u64,
}

/// A filter (`filter_t`, reduced to what the benchmark sets). Written by the benchmark as
/// eight u64 words: set, action (0 drop), block_time (s), ip_pps (0: no condition),
/// ip_bps (0: none), udp (1: UDP only), dport_min (0: none), dport_max (0: none).
#[repr(C)]
pub(crate) struct Filter {
    set: u64,
    action: u64,
    block_time: u64,
    ip_pps: u64,
    ip_bps: u64,
    udp: u64,
    dport_min: u64,
    dport_max: u64,
}

#[map]
static BENCH_XDPFW_STATS: PerCpuArray<Stats> = PerCpuArray::with_max_entries(1, 0);
#[map]
static BENCH_XDPFW_BLOCK: LruHashMap<u32, u64> = LruHashMap::with_max_entries(1, 0);
#[map]
static BENCH_XDPFW_BLOCK6: LruHashMap<u128, u64> = LruHashMap::with_max_entries(1, 0);
#[map]
static BENCH_XDPFW_IP_STATS: LruHashMap<u32, ClientStats> = LruHashMap::with_max_entries(1, 0);
#[map]
static BENCH_XDPFW_IP6_STATS: LruHashMap<u128, ClientStats> = LruHashMap::with_max_entries(1, 0);
/// Two entries: the benchmark's filter, then an unset one that ends the walk.
#[map]
static BENCH_XDPFW_FILTERS: PerCpuArray<Filter> = PerCpuArray::with_max_entries(2, 0);

/// `rule_ctx_t`, what the filter walk reads and writes.
#[repr(C)]
struct RuleCtx {
    matched: u64,
    action: u64,
    block_time: u64,
    pkt_len: u64,
    ip_pps: u64,
    ip_bps: u64,
    /// UDP destination port (host order); 0 when the packet is not UDP.
    udp_dport: u64,
    udp: u64,
}

#[inline(always)]
fn count(stats: Option<*mut Stats>, field: fn(&mut Stats) -> &mut u64) {
    if let Some(stats) = stats {
        // SAFETY: this CPU's value of a per-CPU map, for this program run.
        *field(unsafe { &mut *stats }) += 1;
    }
}

#[xdp]
pub(crate) fn xdpsieve_bench_xdpfw(ctx: XdpContext) -> u32 {
    let data = ctx.data();
    let end = ctx.data_end();
    let stats = BENCH_XDPFW_STATS.get_ptr_mut(0);
    if data + ETH_HDR_LEN > end {
        count(stats, |s| &mut s.dropped);
        return xdp_action::XDP_DROP;
    }
    // SAFETY: bytes 12..14 are inside the frame (checked above). Whole-word reads at
    // 2-aligned addresses, as bench_lpm says.
    let proto = u16::from_be(unsafe { core::ptr::read((data + 12) as *const u16) });
    if proto != ETH_P_IPV4 && proto != ETH_P_IPV6 {
        count(stats, |s| &mut s.passed);
        return xdp_action::XDP_PASS;
    }
    let ip = data + ETH_HDR_LEN;
    let v4 = proto == ETH_P_IPV4;
    let (l4_proto, l4, src4, src6) = if v4 {
        if ip + IPV4_HDR_LEN > end {
            count(stats, |s| &mut s.dropped);
            return xdp_action::XDP_DROP;
        }
        // SAFETY: the fixed IPv4 header is inside the frame.
        let (ihl, protocol, src) = unsafe {
            (
                usize::from(*(ip as *const u8) & 0x0f) * 4,
                *((ip + 9) as *const u8),
                core::ptr::read((ip + 12) as *const u32),
            )
        };
        (protocol, ip + ihl, src, 0u128)
    } else {
        if ip + IPV6_HDR_LEN > end {
            count(stats, |s| &mut s.dropped);
            return xdp_action::XDP_DROP;
        }
        // SAFETY: the fixed IPv6 header is inside the frame; `memcpy(&src_ip6, ...)`.
        let (next, src) = unsafe {
            (
                *((ip + 6) as *const u8),
                core::ptr::read_unaligned((ip + 8) as *const u128),
            )
        };
        (next, ip + IPV6_HDR_LEN, 0u32, src)
    };
    // As theirs, IPv6 too is compared with IPPROTO_ICMP (so ICMPv6 passes here).
    if l4_proto != IPPROTO_UDP && l4_proto != IPPROTO_TCP && l4_proto != IPPROTO_ICMP {
        count(stats, |s| &mut s.passed);
        return xdp_action::XDP_PASS;
    }
    // SAFETY: no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let blocked = if v4 {
        BENCH_XDPFW_BLOCK.get_ptr_mut(src4)
    } else {
        BENCH_XDPFW_BLOCK6.get_ptr_mut(src6)
    };
    if let Some(blocked) = blocked {
        // SAFETY: a value of the map, valid for this program run.
        let until = unsafe { *blocked };
        if until > 0 && now > until {
            let _ = if v4 {
                BENCH_XDPFW_BLOCK.remove(src4)
            } else {
                BENCH_XDPFW_BLOCK6.remove(src6)
            };
        } else {
            count(stats, |s| &mut s.dropped);
            return xdp_action::XDP_DROP;
        }
    }
    let pkt_len = (end - data) as u16;
    let mut udp_dport = 0u16;
    let l4_len = match l4_proto {
        IPPROTO_TCP => TCP_HDR_LEN,
        IPPROTO_UDP => UDP_HDR_LEN,
        IPPROTO_ICMP | IPPROTO_ICMPV6 => ICMP_HDR_LEN,
        _ => 0,
    };
    if l4 + l4_len > end {
        count(stats, |s| &mut s.dropped);
        return xdp_action::XDP_DROP;
    }
    if l4_proto == IPPROTO_UDP {
        // SAFETY: the UDP header is inside the frame (checked above).
        udp_dport = u16::from_be(unsafe { core::ptr::read((l4 + 2) as *const u16) });
    }
    let (ip_pps, ip_bps) = if v4 {
        update_stats(&BENCH_XDPFW_IP_STATS, &src4, pkt_len, now)
    } else {
        update_stats(&BENCH_XDPFW_IP6_STATS, &src6, pkt_len, now)
    };
    let mut rule = RuleCtx {
        matched: 0,
        action: 0,
        block_time: 0,
        pkt_len: u64::from(pkt_len),
        ip_pps,
        ip_bps,
        udp_dport: u64::from(udp_dport),
        udp: u64::from(l4_proto == IPPROTO_UDP),
    };
    // SAFETY: the callback and its context live for the call.
    unsafe {
        bpf_loop(
            MAX_FILTERS,
            process_rule as *const () as *mut c_void,
            core::ptr::addr_of_mut!(rule).cast(),
            0,
        );
    }
    // SAFETY: a local the loop body wrote through a pointer; read it as memory.
    let rule = unsafe { core::ptr::read_volatile(&rule) };
    if rule.matched == 0 {
        count(stats, |s| &mut s.passed);
        return xdp_action::XDP_PASS;
    }
    if rule.action == 0 {
        if rule.block_time > 0 {
            let until = now + rule.block_time * NANO_TO_SEC;
            let _ = if v4 {
                BENCH_XDPFW_BLOCK.insert(src4, until, ANY)
            } else {
                BENCH_XDPFW_BLOCK6.insert(src6, until, ANY)
            };
        }
        count(stats, |s| &mut s.dropped);
        return xdp_action::XDP_DROP;
    }
    count(stats, |s| &mut s.allowed);
    xdp_action::XDP_PASS
}

/// `update_ip_stats` / `update_ip6_stats`: the source's packets and bytes in its current
/// 1-second window, this packet included.
#[inline(always)]
fn update_stats<K>(
    map: &LruHashMap<K, ClientStats>,
    key: &K,
    pkt_len: u16,
    now: u64,
) -> (u64, u64) {
    let len = u64::from(pkt_len);
    match map.get_ptr_mut(key) {
        Some(stats) => {
            // SAFETY: a value of the map, valid for this program run. Plain loads and
            // stores as theirs, but for the two adds.
            unsafe {
                if now > (*stats).next_update {
                    (*stats).pps = 1;
                    (*stats).bps = len;
                    (*stats).next_update = now + NANO_TO_SEC;
                } else {
                    atomic_add(core::ptr::addr_of_mut!((*stats).pps), 1);
                    atomic_add(core::ptr::addr_of_mut!((*stats).bps), len);
                }
                (
                    core::ptr::read_volatile(&(*stats).pps),
                    core::ptr::read_volatile(&(*stats).bps),
                )
            }
        }
        None => {
            let new = ClientStats {
                pps: 1,
                bps: len,
                next_update: now + NANO_TO_SEC,
            };
            let _ = map.insert(key, &new, ANY);
            (1, len)
        }
    }
}

/// `process_rule`: 1 ends the walk, 0 goes on to the next filter.
#[inline(never)]
unsafe extern "C" fn process_rule(idx: u32, data: *mut c_void) -> i64 {
    // SAFETY: data is the `RuleCtx` the filter passed, alive for the whole loop.
    let ctx = unsafe { &mut *(data as *mut RuleCtx) };
    let Some(filter) = BENCH_XDPFW_FILTERS.get_ptr(idx) else {
        return 1;
    };
    // SAFETY: this CPU's value of a per-CPU map, for this program run.
    let filter = unsafe { &*filter };
    if filter.set == 0 {
        return 1;
    }
    if filter.ip_pps != 0 && ctx.ip_pps < filter.ip_pps {
        return 0;
    }
    if filter.ip_bps != 0 && ctx.ip_bps < filter.ip_bps {
        return 0;
    }
    if filter.udp != 0 {
        if ctx.udp == 0 {
            return 0;
        }
        if filter.dport_min != 0 && ctx.udp_dport < filter.dport_min {
            return 0;
        }
        if filter.dport_max != 0 && ctx.udp_dport > filter.dport_max {
            return 0;
        }
    }
    ctx.matched = 1;
    ctx.action = filter.action;
    ctx.block_time = filter.block_time;
    1
}

/// `__sync_fetch_and_add` (BPF_ATOMIC | BPF_ADD); the bpf targets of Rust declare no
/// atomic read-modify-write.
#[inline(always)]
unsafe fn atomic_add(ptr: *mut u64, value: u64) {
    // SAFETY: the caller's: ptr is valid map memory.
    unsafe {
        core::arch::asm!(
            "lock *(u64 *)({ptr} + 0) += {value}",
            ptr = in(reg) ptr,
            value = in(reg) value,
            options(nostack),
        );
    }
}
