//! Rules that let evaluation go on: monitor (shadow) rules and rate limits.
//!
//! Most rules end evaluation when they match (first match wins). Two kinds do not:
//!
//! - a rule in **monitor** mode ([`rule_kind::MONITOR`]) drops nothing: the packets it
//!   matches are counted as "would drop" (or "would pass"), recorded with a mark, and
//!   evaluation goes on as if it had not matched. So the packets it marks are exactly those
//!   its enforcing twin, at the same place, would decide;
//! - a **limit** rule ([`rule_kind::LIMIT`]) charges each matching packet to a token bucket
//!   (per source address, per source prefix, or one for the rule): a packet within the
//!   budget goes on to the next rules, a packet over it is dropped (or, in monitor mode,
//!   marked).
//!
//! Only packets whose first match is such a rule take the walk (`Config::features` has
//! [`features::CONTINUE`] only when some rule continues; it is read-only data, so the
//! verifier removes the walk from programs without one).

/// Bits of [`Rule::kind`](super::Rule::kind).
pub mod rule_kind {
    /// The rule is in monitor mode: it marks what it would decide, and evaluation goes on.
    pub const MONITOR: u8 = 1 << 0;
    /// The rule limits: its parameters are in `LIMITS` at the rule's index.
    pub const LIMIT: u8 = 1 << 1;
}

/// Bits of [`Config::features`](super::Config::features).
pub mod features {
    /// Some rule continues (see [`rule_kind`]): the program walks on past it.
    pub const CONTINUE: u32 = 1 << 0;
    /// Count dropped, would-drop and over-limit packets per source in `TOP_SOURCES`
    /// (see [`SourceStats`](super::SourceStats)).
    pub const TOP_SOURCES: u32 = 1 << 1;
}

/// Slots of `TOP_SOURCES`, a per-CPU array indexed by a hash of the source (direct
/// mapped: no hash-table helper on the drop path, the cost of which doubled it). 2^12.
pub const TOP_SOURCES_BITS: u32 = 12;
pub const TOP_SOURCES_ENTRIES: u32 = 1 << TOP_SOURCES_BITS;

/// A source not in its slot takes it with a chance of 1 in this many per packet (*sample
/// and hold*): a source sending many packets is held within a few dozen and then counted
/// exactly, while a flood of spoofed one-packet sources rarely churns the slots.
pub const TOP_SOURCES_HOLD_ONE_IN: u32 = 16;

/// A held source's claim on its slot: each of its packets adds one (up to this), each
/// sampled packet of another source hashed to the slot takes one, and the other source
/// takes the slot only once the claim is spent. A source that is still sending keeps its
/// slot against a spoofed flood; one that stopped gives it up after this many sampled
/// packets of others.
pub const TOP_SOURCES_MAX_CLAIM: u32 = 64;

/// The slot of a source in `TOP_SOURCES` (the same on every CPU): the address words
/// folded, multiplied by a constant (Fibonacci hashing), the top `TOP_SOURCES_BITS`.
#[inline(always)]
pub const fn top_sources_slot(family: u8, addr: &[u32; 4]) -> u32 {
    let folded = addr[0] ^ addr[1] ^ addr[2] ^ addr[3] ^ family as u32;
    folded.wrapping_mul(0x9e37_79b1) >> (32 - TOP_SOURCES_BITS)
}

/// One slot of `TOP_SOURCES` on one CPU: the source held there (family 0: none), its claim
/// and its counts.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SourceSlot {
    pub key: SourceKey,
    /// See [`TOP_SOURCES_MAX_CLAIM`].
    pub claim: u32,
    pub stats: SourceStats,
}

/// Key of `TOP_SOURCES`: a source address.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceKey {
    /// One of [`family`](super::family).
    pub family: u8,
    pub _pad: [u8; 3],
    /// Four words in network byte order; IPv4 in the first.
    pub addr: [u32; 4],
}

/// What one source sent that the rules dropped, would have dropped (monitor) or found
/// over a limit, counted from the packet that got it held (per CPU).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SourceStats {
    pub dropped: u64,
    pub dropped_bytes: u64,
    pub would: u64,
    pub would_bytes: u64,
    pub limited: u64,
    pub limited_bytes: u64,
}

/// Most continuing rules (monitor or limit) in one rule set: the walk past a continuing
/// rule takes one step per continuing rule it meets and one for the rule that decides, so
/// with this bound it always ends at a decision (userspace refuses more).
pub const MAX_CONTINUING_RULES: u32 = 32;

/// Steps of the walk: every continuing rule, then the rule (or default) that decides.
pub const WALK_STEPS: u32 = MAX_CONTINUING_RULES + 1;

/// Per-CPU counters of one rule slot that only continuing rules move (`RULE_EXTRA`
/// map, slot as [`RULE_SLOTS`](super::RULE_SLOTS)). Apart from [`RuleCounters`]
/// (super::RuleCounters), so `hits` keeps meaning "packets this rule decided".
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuleExtraCounters {
    /// Packets a monitor rule marked: those it would have decided.
    pub would_hit: u64,
    pub would_hit_bytes: u64,
    /// Packets a limit rule found within its budget (they went on to the next rules).
    pub within_limit: u64,
    /// Packets over a limit rule's budget (dropped, or marked in monitor mode).
    pub over_limit: u64,
    pub over_limit_bytes: u64,
    /// Keys the limit rule started tracking. Tracked keys live in an LRU table; keys it
    /// evicted are `new_keys` minus the keys still tracked.
    pub new_keys: u64,
    /// Keys the table could not take: their packets were charged to the rule's own
    /// bucket instead (as `per = "rule"`), never let through unlimited.
    pub insert_failed: u64,
    /// Charges that lost the compare-and-swap race on a bucket four times in a row: the
    /// packet was treated as within the budget (the only way the budget is exceeded).
    pub cas_exhausted: u64,
    /// Keys over the budget of a rule with a ban that the program told userspace about
    /// (`LIMIT_NOTICES`): at most one per key per [`NOTICE_INTERVAL_NS`], whatever the CPUs.
    pub ban_notices: u64,
    /// Notices the ring could not take (no recorder reading it, or one far behind): the
    /// key is told again after [`NOTICE_INTERVAL_NS`] if it stays over.
    pub ban_notices_lost: u64,
}

/// Least time between two notices of one key (bans): one CPU wins the compare-and-swap on
/// the key's `noticed_ns`, the others stay quiet, so a flood makes one notice per second
/// per key, not one per packet.
pub const NOTICE_INTERVAL_NS: u64 = 1_000_000_000;

/// Bytes of the `LIMIT_NOTICES` ring: 1170 notices, far more than one second of keys
/// going over a limit for the first time needs between two drains (100 ms apart at most).
pub const NOTICE_RING_BYTES: u32 = 64 * 1024;

/// A key went over the budget of a limit rule with a ban (ring `LIMIT_NOTICES`): the
/// recorder bans it (see `instance::bans`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LimitNotice {
    /// CLOCK_MONOTONIC ns of the packet that went over.
    pub timestamp_ns: u64,
    /// Packets the key's bucket was charged since `first_ns` (within and over).
    pub seen: u64,
    /// CLOCK_MONOTONIC ns of the key's first packet.
    pub first_ns: u64,
    /// The limit rule's id, in the rule file of `generation`.
    pub rule_id: u32,
    pub generation: u32,
    /// One of [`family`](super::family).
    pub family: u8,
    pub prefix_len: u8,
    pub _pad: [u8; 6],
    /// The masked source, four words in network byte order; IPv4 in the first.
    pub addr: [u32; 4],
}

/// How a limit rule charges packets (`LIMITS` map, at the rule's index).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LimitParams {
    /// Nanoseconds of budget one packet costs (packet rates); 0 for byte rates.
    pub packet_cost_ns: u64,
    /// Bytes per second (byte rates): a frame costs `len * 1e9 / this` ns; 0 for packet
    /// rates.
    pub bytes_per_second: u64,
    /// Depth of the bucket, in ns of budget: `burst` packets (or bytes) may pass at once.
    pub burst_ns: u64,
    /// Source prefix lengths the key keeps (32 and 128: each address).
    pub v4_prefix: u8,
    pub v6_prefix: u8,
    /// 1: one bucket for the whole rule (`per = "rule"`), not per key.
    pub per_rule: u8,
    /// 1: the rule bans keys that go over: they are told to userspace (`LimitNotice`).
    pub ban: u8,
    pub _pad: [u8; 4],
    /// The masks of the source's four words (network byte order) that make the key:
    /// IPv4's (first word only), then IPv6's. Computed here so the program masks
    /// without a branch per word.
    pub masks: [[u32; 4]; 2],
}

/// Key of one tracked bucket in `LIMIT_STATE`: the rule's index and the masked source.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LimitKey {
    pub rule: u32,
    /// One of [`family`](super::family).
    pub family: u8,
    pub prefix_len: u8,
    pub _pad: [u8; 2],
    /// The masked source address, four words in network byte order; IPv4 in the first.
    pub addr: [u32; 4],
}

/// One bucket (GCRA: the theoretical arrival time of the next packet) and what it saw.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LimitState {
    /// CLOCK_MONOTONIC ns: the bucket is empty until then.
    pub tat_ns: u64,
    /// Packets charged to the bucket (within and over).
    pub seen: u64,
    /// CLOCK_MONOTONIC ns of the first packet.
    pub first_ns: u64,
    /// CLOCK_MONOTONIC ns when userspace was last told this key went over (bans).
    pub noticed_ns: u64,
}

/// The token bucket as a generic cell rate algorithm, shared by the program and the tests:
/// the bucket is a time, `tat`, before which the budget is spent.
pub mod gcra {
    /// One packet of `cost` ns arriving at `now` against a bucket at `tat` that holds
    /// `burst` ns of budget: the new `tat` if the packet is within the budget, else `None`
    /// (a packet over the budget spends nothing).
    #[inline(always)]
    pub const fn step(tat: u64, now: u64, cost: u64, burst: u64) -> Option<u64> {
        let start = if tat > now { tat } else { now };
        let end = start.saturating_add(cost);
        if end - now > burst { None } else { Some(end) }
    }
}

const _: () = {
    use core::mem::size_of;
    assert!(size_of::<RuleExtraCounters>() == 80);
    assert!(size_of::<LimitNotice>() == 56);
    assert!(core::mem::offset_of!(LimitNotice, addr) == 40);
    assert!(size_of::<LimitParams>() == 64);
    assert!(size_of::<LimitKey>() == 24);
    assert!(size_of::<LimitState>() == 32);
    assert!(size_of::<SourceKey>() == 20);
    assert!(size_of::<SourceStats>() == 48);
    assert!(size_of::<SourceSlot>() == 72);
    assert!(core::mem::offset_of!(SourceSlot, stats) == 24);
};

#[cfg(test)]
mod tests {
    use super::gcra::step;

    /// A burst of `burst` packets at one instant, then one per cost.
    #[test]
    fn a_full_bucket_passes_its_burst_then_the_rate() {
        let (cost, burst) = (10, 100);
        let mut tat = 0;
        let mut passed = 0;
        for _ in 0..50 {
            if let Some(next) = step(tat, 1000, cost, burst) {
                tat = next;
                passed += 1;
            }
        }
        assert_eq!(passed, 10);
        assert_eq!(step(tat, 1005, cost, burst), None);
        assert!(step(tat, 1010, cost, burst).is_some());
    }

    /// Over any window, what passes is at most the burst plus the rate times the window,
    /// and a steady sender at the rate is never refused.
    #[test]
    fn what_passes_is_bounded_by_burst_plus_rate() {
        let (cost, burst) = (7u64, 70u64);
        let mut tat = 0;
        let mut passed = 0u64;
        let mut now = 10_000u64;
        for i in 0..100_000u64 {
            now += (i * 2_654_435_761) % 5;
            if let Some(next) = step(tat, now, cost, burst) {
                tat = next;
                passed += 1;
            }
        }
        let window = now - 10_000;
        assert!(passed <= burst / cost + window / cost + 1, "{passed}");
        let mut tat = 0;
        for k in 0..1000 {
            tat = step(tat, 5000 + k * cost, cost, burst).expect("at the rate");
        }
    }
}
