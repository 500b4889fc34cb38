//! The walk past a continuing rule (see `xdpsieve_common::walk`): when the first rule a
//! packet matches is a monitor or limit rule, the program goes on to the next matching
//! rule, and the next, until one decides (a rule that ends evaluation, or a limit rule the
//! packet is over) or none is left (the default verdict).
//!
//! The rules a packet matches are the bits of the AND of its fields' rule sets; the walk
//! writes that AND once into a per-CPU slot and then steps through its set bits. One step
//! is one `bpf_loop` iteration, so the verifier checks the step once whatever the rule
//! set; userspace allows at most `MAX_CONTINUING_RULES` continuing rules, so `WALK_STEPS`
//! steps always reach the decision. Only packets whose first match continues come here:
//! the common path (no match, or a first match that decides) never does.

use core::ffi::c_void;

use aya_ebpf::{helpers::generated::bpf_loop, macros::map, maps::PerCpuArray};
use xdpsieve_common::{
    Config, RULE_WORDS, RuleBits, capture, record_flags, verdict,
    walk::{WALK_STEPS, rule_kind},
};

use crate::{
    limits::{self, Arrival},
    parse::Packet,
    rule_table::{RULE_EXTRA, RULES},
};

/// One packet's walk, in map memory (too big for the stack, and read by the loop body).
#[repr(C)]
pub(crate) struct Walk {
    /// The rules the packet matches.
    bits: RuleBits,
    /// What the limits charge.
    arrival: Arrival,
    /// The next rule index to look at.
    cursor: u32,
    /// Index of the rule that decided; [`NONE`]: the default verdict.
    decided: u32,
    /// Index of the first monitor rule that marked the packet; [`NONE`]: none.
    shadow: u32,
    rule_count: u32,
    words: u32,
    /// Where a step parks a value it reads back as map memory, so the paths that computed
    /// it (one per word and bit position; within or over) merge for the verifier.
    next: u32,
    over: u32,
    /// Bits of `record_flags` (`MONITOR`, `OVER_LIMIT`).
    marks: u8,
    _pad: [u8; 3],
    /// The rule generation (`Config::generation`), for ban notices.
    generation: u32,
    /// The limit rule the packet went over ([`NONE`]: none), and its id: its key may be
    /// told to userspace for a ban, after the loop (see [`limits::notice`]).
    notice: u32,
    notice_id: u32,
    _pad2: u32,
    /// The default verdict (from `Config`), for a walk that finds no rule.
    default_verdict: u32,
    _pad3: u32,
    /// The outcome, written by the step that ends the walk: read back by the filter as
    /// map memory, so the paths inside the walk do not multiply the paths after it.
    pub(crate) out: WalkOutcome,
}

/// What the walk decided, as `outcome::Outcome` holds it.
#[repr(C)]
pub(crate) struct WalkOutcome {
    pub rule_id: u32,
    pub slot: u32,
    pub record_slot: u32,
    pub shadow_id: u32,
    pub shadow_slot: u32,
    /// Bits of `capture` the packet is also wanted under (the monitor rule's verdict).
    pub extra_wanted: u32,
    pub verdict: u8,
    pub log: u8,
    pub marks: u8,
    pub _pad: u8,
}

#[map]
static WALK: PerCpuArray<Walk> = PerCpuArray::with_max_entries(1, 0);

/// "No rule" for the walk's indexes.
pub(crate) const NONE: u32 = u32::MAX;

/// Continue the loop / stop it (`bpf_loop`'s callback contract).
const CONTINUE: i64 = 0;
const STOP: i64 = 1;

/// What the loop body gets.
#[repr(C)]
struct Run {
    walk: *mut Walk,
}

/// Walks on from the continuing rule at `index`, which the packet matched first: the
/// rules it matches are the AND of `fields`. Returns the outcome, in map memory; `None`
/// only if the walk's per-CPU slot cannot be had (it always can).
#[inline(always)]
pub(crate) fn walk_on(
    cfg: &Config,
    fields: [&RuleBits; 5],
    words: usize,
    index: u32,
    pkt: &Packet,
    frame_len: u32,
) -> Option<&'static WalkOutcome> {
    let walk = WALK.get_ptr_mut(0)?;
    // SAFETY: walk points to this CPU's value of a map we own, for this program run.
    unsafe {
        let w = &mut *walk;
        for i in 0..RULE_WORDS {
            w.bits.words[i] = if i < words {
                fields
                    .iter()
                    .fold(u64::MAX, |bits, field| bits & field.words[i])
            } else {
                0
            };
        }
        w.arrival = Arrival {
            src: pkt.src,
            now: aya_ebpf::helpers::generated::bpf_ktime_get_ns(),
            frame_len,
            family: pkt.family,
            _pad: [0; 3],
        };
        w.cursor = index;
        w.decided = NONE;
        w.shadow = NONE;
        w.rule_count = cfg.rule_count;
        w.words = words as u32;
        w.marks = 0;
        w.generation = cfg.generation;
        w.notice = NONE;
        w.notice_id = 0;
        w.default_verdict = cfg.default_verdict;
        // Should the walk run out of steps (userspace bounds the continuing rules so it
        // cannot), the rule that matched first decides: a limit or monitor rule's own
        // verdict, never a pass the rules did not give.
        w.decided = index;
        finish(w);
        let mut run = Run { walk };
        let body = step as *const () as *mut c_void;
        let data = core::ptr::addr_of_mut!(run).cast();
        bpf_loop(WALK_STEPS, body, data, 0);
        let laundered: *const Walk = core::ptr::read_volatile(&(walk as *const Walk));
        let w = &*laundered;
        let over = core::ptr::read_volatile(&w.notice);
        if over != NONE {
            // Outside the loop body: its branches stay out of the paths the verifier
            // follows through the loop, and its stack out of the step's call chain.
            limits::notice(over, w.notice_id, w.generation, &w.arrival);
        }
        Some(&(*laundered).out)
    }
}

/// Writes the outcome of a walk that ends at `w.decided` (or the default).
#[inline(never)]
fn finish(w: &mut Walk) -> i64 {
    let decider = if w.decided == NONE {
        None
    } else {
        RULES.get(w.decided)
    };
    let o = &mut w.out;
    match decider {
        Some(rule) => {
            o.verdict = rule.verdict;
            o.rule_id = rule.id;
            o.slot = w.decided + 1;
            o.log = rule.log;
        }
        None => {
            o.verdict = w.default_verdict as u8;
            o.rule_id = 0;
            o.slot = 0;
            o.log = 0;
        }
    }
    o.record_slot = o.slot;
    o.marks = w.marks;
    o.shadow_id = 0;
    o.shadow_slot = 0;
    o.extra_wanted = 0;
    let shadow = if w.shadow == NONE {
        None
    } else {
        RULES.get(w.shadow)
    };
    if let Some(rule) = shadow {
        o.shadow_id = rule.id;
        o.shadow_slot = w.shadow + 1;
        o.extra_wanted = if rule.verdict == verdict::DROP {
            capture::DROPPED
        } else {
            capture::PASSED
        };
        // Recorded as the monitor rule's enforcing twin would record it, unless the
        // verdict it got is the one that rule would have given (then the rule that gave
        // it records it, with the mark). Its sampling, rate limit and snap length go with
        // the record slot (see `outcome::record_params`).
        if rule.verdict != o.verdict {
            o.log = rule.log;
            o.record_slot = o.shadow_slot;
        }
    }
    STOP
}

/// One rule of the walk: the next rule the packet matches.
#[inline(never)]
unsafe extern "C" fn step(_index: u32, data: *mut c_void) -> i64 {
    // SAFETY: data is the `Run` that `walk_on` passed, alive for the whole loop; its walk
    // is this CPU's map value.
    let walk = unsafe { (*(data as *const Run)).walk };
    // SAFETY: as above.
    let w = unsafe { &mut *walk };
    w.next = next_rule(w).unwrap_or(NONE);
    // SAFETY: as above; the volatile read hides the value just written from the compiler.
    let w = unsafe { &mut *core::ptr::read_volatile(&walk) };
    // SAFETY: reads this CPU's map value, as above.
    let index = unsafe { core::ptr::read_volatile(&w.next) };
    if index == NONE {
        w.decided = NONE;
        return finish(w);
    }
    let Some(rule) = RULES.get(index) else {
        // Cannot happen (index < rule_count <= MAX_RULES). Deciding here keeps it a
        // decision by a matching rule, never a silent pass.
        w.decided = index;
        return finish(w);
    };
    if rule.kind == 0 {
        w.decided = index;
        return finish(w);
    }
    w.cursor = index + 1;
    let frame_bytes = u64::from(w.arrival.frame_len);
    // SAFETY: per-CPU map values belong to this CPU for the duration of the program.
    let mut extra = RULE_EXTRA
        .get_ptr_mut(index + 1)
        .map(|p| unsafe { &mut *p });
    let monitor = rule.kind & rule_kind::MONITOR != 0;
    let mut over = false;
    if rule.kind & rule_kind::LIMIT != 0 {
        w.over = u32::from(limits::over(index, &w.arrival, extra.as_deref_mut()));
        // SAFETY: as above.
        over = unsafe { core::ptr::read_volatile(&w.over) } != 0;
        if let Some(extra) = extra.as_deref_mut() {
            if over {
                extra.over_limit += 1;
                extra.over_limit_bytes += frame_bytes;
            } else {
                extra.within_limit += 1;
            }
        }
        if !over {
            return CONTINUE;
        }
        if !monitor {
            w.decided = index;
            w.notice = index;
            w.notice_id = rule.id;
            w.marks |= record_flags::OVER_LIMIT;
            return finish(w);
        }
    }
    if let Some(extra) = extra {
        extra.would_hit += 1;
        extra.would_hit_bytes += frame_bytes;
    }
    if w.shadow == NONE {
        w.shadow = index;
        w.marks |= record_flags::MONITOR;
        if over {
            w.marks |= record_flags::OVER_LIMIT;
        }
    }
    CONTINUE
}

/// A later fragment of a datagram a monitor rule marked (`would` 1; 0: not marked, and
/// slot 0 moves by nothing): one more would-hit for the rule, as its enforcing twin drops
/// the whole datagram. Without a branch, so the rare path does not fork.
#[inline(always)]
pub(crate) fn count_would_hit(slot: u32, would: u8, frame_len: u32) {
    if let Some(extra) = RULE_EXTRA.get_ptr_mut(slot) {
        // SAFETY: per-CPU map values belong to this CPU for the duration of the program.
        let extra = unsafe { &mut *extra };
        extra.would_hit += u64::from(would);
        extra.would_hit_bytes += u64::from(frame_len) * u64::from(would);
    }
}

/// The lowest rule index at or after the cursor that the packet matches.
#[inline(always)]
fn next_rule(w: &Walk) -> Option<u32> {
    let first = w.cursor / 64;
    for word in 0..RULE_WORDS as u32 {
        if word >= w.words {
            return None;
        }
        if word < first {
            continue;
        }
        let mut bits = w.bits.words[word as usize];
        if word == first {
            bits &= u64::MAX << (w.cursor % 64);
        }
        if bits != 0 {
            // The lowest set bit's position without a branch (the bits below it, counted):
            // the step is verified as a loop body, and a branch per halving would give
            // the verifier 64 paths per word to follow.
            let below = (bits & bits.wrapping_neg()) - 1;
            let index = word * 64 + below.count_ones();
            return (index < w.rule_count).then_some(index);
        }
    }
    None
}
