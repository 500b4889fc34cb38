//! The buckets of limit rules (see `xdpsieve_common::walk`): one token bucket (GCRA) per
//! key, shared by every CPU and updated with compare-and-swap, so the budget holds
//! whatever CPU a packet arrives on.
//!
//! Why shared rather than per-CPU: per-CPU buckets give a source the budget once per CPU
//! it reaches (N times the limit), or a fraction of it when the NIC steers one source to
//! one CPU; the limit would depend on hardware the operator does not see. The cost is one
//! atomic compare-and-swap per limited packet, on a cache line the CPUs share only when the
//! same key arrives on several of them.
//!
//! Keys live in an LRU hash (`LIMIT_STATE`, sized by userspace: `max_tracked`): a flood of
//! new sources evicts the least recently used. A key the table cannot take is charged to
//! the rule's own bucket (`LIMIT_RULE_STATE`), which is also the one bucket of
//! `per = "rule"`; it is never evicted, so a spoofed flood cannot reset it.

use aya_ebpf::{
    macros::map,
    maps::{Array, LruHashMap},
};
use xdpsieve_common::{
    MAX_RULES, family,
    walk::{LimitKey, LimitParams, LimitState, RuleExtraCounters, gcra},
};

use crate::walk::Walk;

/// Each limit rule's parameters, at its index (set by userspace before attach).
#[map]
pub(crate) static LIMITS: Array<LimitParams> = Array::with_max_entries(MAX_RULES, 0);

/// The tracked keys' buckets; userspace sets the size before load.
#[map]
static LIMIT_STATE: LruHashMap<LimitKey, LimitState> = LruHashMap::with_max_entries(1, 0);

/// Each limit rule's own bucket, at its index: `per = "rule"`, and keys the table could
/// not take.
#[map]
static LIMIT_RULE_STATE: Array<LimitState> = Array::with_max_entries(MAX_RULES, 0);

/// Compare-and-swap rounds before a charge gives up (and counts it).
const CAS_TRIES: u32 = 4;

/// `BPF_NOEXIST`: insert only a key not in the map.
const NOEXIST: u64 = 1;
const EEXIST: i32 = 17;

/// Whether the packet of `w` is over the budget of the limit rule at `index`. Charges the
/// bucket when it is within.
#[inline(always)]
pub(crate) fn over(index: u32, w: &Walk, mut extra: Option<&mut RuleExtraCounters>) -> bool {
    let Some(params) = LIMITS.get(index) else {
        // Cannot happen (index < MAX_RULES): refuse rather than let through.
        return true;
    };
    // A byte rate charges the frame's length; a packet rate (bytes_per_second 0) a
    // fixed cost.
    let cost = (u64::from(w.frame_len) * 1_000_000_000)
        .checked_div(params.bytes_per_second)
        .unwrap_or(params.packet_cost_ns);
    let now = w.now;
    let burst = params.burst_ns;
    let state = if params.per_rule != 0 {
        LIMIT_RULE_STATE.get_ptr_mut(index)
    } else {
        let key = key(index, params, w);
        match LIMIT_STATE.get_ptr_mut(key) {
            Some(state) => Some(state),
            None => {
                let within = gcra::step(0, now, cost, burst);
                let fresh = LimitState {
                    tat_ns: within.unwrap_or(now),
                    seen: 1,
                    first_ns: now,
                    noticed_ns: 0,
                };
                match LIMIT_STATE.insert(key, fresh, NOEXIST) {
                    Ok(()) => {
                        if let Some(extra) = extra.as_deref_mut() {
                            extra.new_keys += 1;
                        }
                        return within.is_none();
                    }
                    // Another CPU inserted it first: charge that one.
                    Err(err) if err == -EEXIST => LIMIT_STATE.get_ptr_mut(key),
                    Err(_) => {
                        if let Some(extra) = extra.as_deref_mut() {
                            extra.insert_failed += 1;
                        }
                        LIMIT_RULE_STATE.get_ptr_mut(index)
                    }
                }
            }
        }
    };
    let Some(state) = state else {
        // Evicted between insert and lookup, or cannot happen for the array: the rule's
        // bucket takes it, so the packet is still limited.
        return match LIMIT_RULE_STATE.get_ptr_mut(index) {
            Some(state) => charge(state, now, cost, burst, extra),
            None => true,
        };
    };
    charge(state, now, cost, burst, extra)
}

/// One GCRA step committed with compare-and-swap. Returns whether the packet is over.
#[inline(always)]
fn charge(
    state: *mut LimitState,
    now: u64,
    cost: u64,
    burst: u64,
    extra: Option<&mut RuleExtraCounters>,
) -> bool {
    // SAFETY: state points into a map value, valid for this program run; every write to
    // it is atomic.
    unsafe {
        let tat = core::ptr::addr_of_mut!((*state).tat_ns);
        atomic_add(core::ptr::addr_of_mut!((*state).seen), 1);
        for _ in 0..CAS_TRIES {
            let old = core::ptr::read_volatile(tat);
            let Some(new) = gcra::step(old, now, cost, burst) else {
                return true;
            };
            if cmpxchg(tat, old, new) == old {
                return false;
            }
        }
    }
    if let Some(extra) = extra {
        extra.cas_exhausted += 1;
    }
    false
}

/// The bucket's key: the rule and the source masked to the rule's prefix length (the
/// masks come from userspace, so no branch per word).
#[inline(always)]
fn key(index: u32, params: &LimitParams, w: &Walk) -> LimitKey {
    let v6 = usize::from(w.family == family::IPV6);
    let masks = &params.masks[v6 & 1];
    LimitKey {
        rule: index,
        family: w.family,
        prefix_len: if v6 != 0 {
            params.v6_prefix
        } else {
            params.v4_prefix
        },
        _pad: [0; 2],
        addr: [
            w.src[0] & masks[0],
            w.src[1] & masks[1],
            w.src[2] & masks[2],
            w.src[3] & masks[3],
        ],
    }
}

/// `*ptr += value`, atomically (BPF_ATOMIC | BPF_ADD). The bpf targets of Rust declare no
/// atomic read-modify-write, so these two are written in assembly.
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

/// Compare-and-swap (BPF_ATOMIC | BPF_CMPXCHG): stores `new` at `ptr` if it holds `old`;
/// returns what it held.
#[inline(always)]
unsafe fn cmpxchg(ptr: *mut u64, old: u64, new: u64) -> u64 {
    let mut seen = old;
    // SAFETY: the caller's: ptr is valid map memory.
    unsafe {
        core::arch::asm!(
            "r0 = cmpxchg_64(r1 + 0, r0, r2)",
            in("r1") ptr,
            in("r2") new,
            inout("r0") seen,
            options(nostack),
        );
    }
    seen
}
