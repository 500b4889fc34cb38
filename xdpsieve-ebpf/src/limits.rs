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
    maps::{Array, LruHashMap, RingBuf},
};
use xdpsieve_common::{
    MAX_RULES, family,
    walk::{
        LimitKey, LimitNotice, LimitParams, LimitState, NOTICE_INTERVAL_NS, NOTICE_RING_BYTES,
        RuleExtraCounters, gcra,
    },
};

use crate::rule_table::RULE_EXTRA;

/// What a limit charges of a packet: its source and family (the key), its length (byte
/// rates) and when it came (CLOCK_MONOTONIC ns, read once per packet).
#[repr(C)]
pub(crate) struct Arrival {
    pub src: [u32; 4],
    pub now: u64,
    pub frame_len: u32,
    pub family: u8,
    pub _pad: [u8; 3],
}

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

/// Keys over the budget of a rule with a ban, for the recorder to ban (see [`notice`]).
#[map]
static LIMIT_NOTICES: RingBuf = RingBuf::with_byte_size(NOTICE_RING_BYTES, 0);

/// Compare-and-swap rounds before a charge gives up (and counts it).
const CAS_TRIES: u32 = 4;

/// `BPF_NOEXIST`: insert only a key not in the map.
const NOEXIST: u64 = 1;
const EEXIST: i32 = 17;

/// Whether the packet of `w` is over the budget of the limit rule at `index`. Charges the
/// bucket when it is within.
#[inline(always)]
pub(crate) fn over(index: u32, w: &Arrival, mut extra: Option<&mut RuleExtraCounters>) -> bool {
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

/// Tells userspace that the key of `w` went over the budget of the rule at `index`
/// (`rule_id` in `generation`), if that rule bans and the key was not told in the last
/// [`NOTICE_INTERVAL_NS`]: the CPU whose compare-and-swap on the key's `noticed_ns` wins
/// sends the notice, so a flood on every CPU makes one notice per key per interval. A
/// notice the ring cannot take is counted; the key is told again an interval later.
///
/// Its own subprogram: the walk's step calls it only for over-limit packets, and its
/// branches stay out of the step's paths (its result is not used).
#[inline(never)]
pub(crate) fn notice(index: u32, rule_id: u32, generation: u32, w: &Arrival) -> i64 {
    let Some(params) = LIMITS.get(index) else {
        return 0;
    };
    if params.ban == 0 || params.per_rule != 0 {
        return 0;
    }
    let key = key(index, params, w);
    // A key the table could not take has no state: its packets are limited through the
    // rule's bucket, and it is not banned (the table is full of other keys).
    let Some(state) = LIMIT_STATE.get_ptr_mut(key) else {
        return 0;
    };
    let now = w.now;
    // SAFETY: state points into a map value, valid for this program run; noticed_ns is
    // changed only by compare-and-swap.
    let (seen, first_ns) = unsafe {
        let noticed = core::ptr::addr_of_mut!((*state).noticed_ns);
        let old = core::ptr::read_volatile(noticed);
        // `now` was read when the packet's walk began: a CPU whose packet came first may
        // get here after another CPU noticed a later packet, so a `now` before `old` is a
        // notice just given too (a wrapping difference would send a second one).
        if old != 0 && now.saturating_sub(old) < NOTICE_INTERVAL_NS {
            return 0;
        }
        if cmpxchg(noticed, old, now) != old {
            // Another CPU told it just now.
            return 0;
        }
        (
            core::ptr::read_volatile(core::ptr::addr_of!((*state).seen)),
            core::ptr::read_volatile(core::ptr::addr_of!((*state).first_ns)),
        )
    };
    // Written in place in the ring (a notice on the stack would pass the stack bound of
    // the program's call chain).
    let sent = match LIMIT_NOTICES.reserve::<LimitNotice>(0) {
        Some(mut entry) => {
            let n = entry.as_mut_ptr();
            // SAFETY: n points to a reserved ring slot of size_of::<LimitNotice>() bytes,
            // aligned to 8; every field is written before the submit.
            unsafe {
                (*n).timestamp_ns = now;
                (*n).seen = seen;
                (*n).first_ns = first_ns;
                (*n).rule_id = rule_id;
                (*n).generation = generation;
                (*n).family = key.family;
                (*n).prefix_len = key.prefix_len;
                (*n)._pad = [0; 6];
                (*n).addr = key.addr;
            }
            entry.submit(0);
            true
        }
        None => false,
    };
    if let Some(extra) = RULE_EXTRA.get_ptr_mut(index + 1) {
        // SAFETY: per-CPU map values belong to this CPU for the duration of the program.
        unsafe {
            (*extra).ban_notices += u64::from(sent);
            (*extra).ban_notices_lost += u64::from(!sent);
        }
    }
    0
}

/// The bucket's key: the rule and the source masked to the rule's prefix length (the
/// masks come from userspace, so no branch per word).
#[inline(always)]
fn key(index: u32, params: &LimitParams, w: &Arrival) -> LimitKey {
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
