//! Rule evaluation, first match wins, by bitmaps (see `xdpsieve_common::classify`): one
//! map lookup per field some rule has a condition on gives the rules that field allows;
//! the lowest bit set in all of them is the first matching rule. The cost depends on the
//! fields in use, not on the number of rules. An address field whose rules name address
//! sets adds the set class's rules (see `sets`) to those of the literal prefixes.
//!
//! With more than `DENSE_WORDS` words of rules, the scan first ANDs the fields' summaries
//! (which words may hold rules, see `FieldBits`) and reads only the words left: a packet
//! no rule matches among 1,024 rules costs a word or two, not sixteen.
//!
//! A short rule set without sets or continuing rules is matched instead by code compiled
//! for it at load ([`compiled`]): a few tests per rule cost less than the lookups of the
//! bitmaps, which are the general case.

mod compiled;

use aya_ebpf::maps::{Array, LpmTrie, PerCpuArray, lpm_trie::Key};
use xdpsieve_common::{
    Config, FieldBits, RULE_WORDS, Rule, RuleBits, SetClass, SetGroup,
    classify::{self, AddrKeyData, FAMILY_BITS},
    family,
    walk::features,
};

use crate::{
    parse::Packet,
    rule_table::RULES,
    sets,
    walk::{self, WalkOutcome},
};

/// The rule that decided a packet.
pub(crate) struct Decision {
    /// Position in evaluation order.
    pub index: u32,
    pub id: u32,
    pub verdict: u8,
    pub log: bool,
}

/// The maps matching reads.
pub(crate) struct RuleMaps<'a> {
    pub proto_sets: &'a Array<FieldBits>,
    pub src_port_class: &'a Array<u16>,
    pub dst_port_class: &'a Array<u16>,
    pub src_port_sets: &'a Array<FieldBits>,
    pub dst_port_sets: &'a Array<FieldBits>,
    pub src_addr_sets: &'a LpmTrie<AddrKeyData, FieldBits>,
    pub dst_addr_sets: &'a LpmTrie<AddrKeyData, FieldBits>,
    pub set_nodes: &'a Array<SetGroup>,
    pub set_classes: &'a Array<SetClass>,
    /// Per-CPU scratch for a field whose rules come from both tries (see [`join`]).
    pub joined: &'a PerCpuArray<FieldBits>,
    /// Carries the matched index out (see [`first_match`]): this CPU's slot in a map
    /// value, valid for writes for the program run.
    pub matched: *mut u32,
}

/// What decides a packet (an IPv4 or IPv6 packet).
pub(crate) enum Matched {
    /// The first rule that matches (it ends evaluation).
    Rule(Decision),
    /// No rule matches: the default verdict.
    Default,
    /// The first rule that matches continues (a monitor or limit rule): the walk past it
    /// decided, with its marks (see `walk`).
    Walked(&'static WalkOutcome),
}

/// Returns what decides `pkt`: the first rule that matches, unless that one continues.
///
/// Fields no rule looks at are not looked up: `cfg` is read-only data, so the verifier
/// and the JIT drop those branches. The index found leaves through `matched` (a per-CPU
/// map slot) rather than a register: read back, it is a value the verifier does not know,
/// so the paths that found it (one per word and bit position) merge into one.
#[inline(always)]
pub(crate) fn first_match(
    maps: &RuleMaps<'_>,
    cfg: &Config,
    pkt: &Packet,
    frame_len: u32,
) -> Matched {
    let found = if cfg.rules_compiled != 0 {
        compiled_matching(cfg, pkt)
    } else {
        matching(maps, cfg, pkt, frame_len)
    };
    found.unwrap_or(Matched::Default)
}

/// [`matching`] by the compiled rules. Userspace compiles no rule set with a continuing
/// rule: the rule found decides.
#[inline(always)]
fn compiled_matching(cfg: &Config, pkt: &Packet) -> Option<Matched> {
    let index = compiled::first_rule(pkt);
    if index >= cfg.rule_count {
        return None;
    }
    Some(Matched::Rule(decision(index, RULES.get(index)?)))
}

#[inline(always)]
fn matching(maps: &RuleMaps<'_>, cfg: &Config, pkt: &Packet, frame_len: u32) -> Option<Matched> {
    if cfg.rule_count == 0 {
        return None;
    }
    let proto = maps.proto_sets.get(classify::proto_index(
        pkt.family,
        pkt.has_ports,
        pkt.protocol,
    ))?;
    // A field without conditions allows every rule: it is not looked up, and the loop
    // below skips it (the verifier knows `cfg` and removes the dead branches).
    let (use_src_port, use_dst_port, use_src_addr, use_dst_addr) = (
        cfg.classify & classify::SRC_PORT != 0,
        cfg.classify & classify::DST_PORT != 0,
        cfg.classify & classify::SRC_ADDR != 0,
        cfg.classify & classify::DST_ADDR != 0,
    );
    let (use_src_set, use_dst_set) = (
        cfg.classify & classify::SRC_SET != 0,
        cfg.classify & classify::DST_SET != 0,
    );
    let src_port = if use_src_port {
        let class = *maps.src_port_class.get(u32::from(pkt.src_port))?;
        maps.src_port_sets.get(u32::from(class))?
    } else {
        proto
    };
    let dst_port = if use_dst_port {
        let class = *maps.dst_port_class.get(u32::from(pkt.dst_port))?;
        maps.dst_port_sets.get(u32::from(class))?
    } else {
        proto
    };
    // An address field's rules: the literal prefixes' (LPM trie), the set class's (set
    // trie), or both joined. A set class holds the rules without a condition on the field
    // too, so alone it stands for the field. A set class has no summary: it is copied, or
    // joined, into a per-CPU slot that has one (any word), so that every field is a
    // `FieldBits` and the word loop below stays the same whatever the field's source.
    let v6 = pkt.family == family::IPV6;
    let src_addr = match (use_src_addr, use_src_set) {
        (false, false) => proto,
        (true, false) => maps.src_addr_sets.get(addr_key(pkt.family, &pkt.src))?,
        (false, true) => join(maps, 0, cfg, None, &set_class(maps, v6, &pkt.src)?.src)?,
        (true, true) => join(
            maps,
            0,
            cfg,
            Some(&maps.src_addr_sets.get(addr_key(pkt.family, &pkt.src))?.bits),
            &set_class(maps, v6, &pkt.src)?.src,
        )?,
    };
    let dst_addr = match (use_dst_addr, use_dst_set) {
        (false, false) => proto,
        (true, false) => maps.dst_addr_sets.get(addr_key(pkt.family, &pkt.dst))?,
        (false, true) => join(maps, 1, cfg, None, &set_class(maps, v6, &pkt.dst)?.dst)?,
        (true, true) => join(
            maps,
            1,
            cfg,
            Some(&maps.dst_addr_sets.get(addr_key(pkt.family, &pkt.dst))?.bits),
            &set_class(maps, v6, &pkt.dst)?.dst,
        )?,
    };
    let slot = maps.matched;
    // SAFETY: slot points into this CPU's value of a map we own.
    unsafe { *slot = u32::MAX };
    let words = core::cmp::min(cfg.rule_words as usize, RULE_WORDS);
    // The fields in use, packed to the front. The flags come from `cfg` (read-only data),
    // so the verifier knows `n` and keeps only the scan below that reads exactly the
    // fields in use: no flag is tested per word, and no unused field is loaded.
    let (mut a, mut b, mut c, mut d) = (proto, proto, proto, proto);
    let mut n = 0u32;
    for (used, field) in [
        (use_src_port, src_port),
        (use_dst_port, dst_port),
        (use_src_addr || use_src_set, src_addr),
        (use_dst_addr || use_dst_set, dst_addr),
    ] {
        if used {
            match n {
                0 => a = field,
                1 => b = field,
                2 => c = field,
                _ => d = field,
            }
            n += 1;
        }
    }
    // SAFETY: slot points to this CPU's value of a map we own (every arm).
    unsafe {
        if words <= DENSE_WORDS {
            match n {
                0 => scan([proto], words, slot),
                1 => scan([proto, a], words, slot),
                2 => scan([proto, a, b], words, slot),
                3 => scan([proto, a, b, c], words, slot),
                _ => scan([proto, a, b, c, d], words, slot),
            }
        } else {
            match n {
                0 => scan_sparse([proto], words, slot),
                1 => scan_sparse([proto, a], words, slot),
                2 => scan_sparse([proto, a, b], words, slot),
                3 => scan_sparse([proto, a, b, c], words, slot),
                _ => scan_sparse([proto, a, b, c, d], words, slot),
            }
        }
    }
    let (proto, a, b, c, d) = (&proto.bits, &a.bits, &b.bits, &c.bits, &d.bits);
    // SAFETY: as above; volatile so the compiler reads the map, not its own copy.
    let index = unsafe { core::ptr::read_volatile(slot) };
    if index >= cfg.rule_count {
        return None;
    }
    let rule = RULES.get(index)?;
    let decision = decision(index, rule);
    if cfg.features & features::CONTINUE != 0 && rule.kind != 0 {
        // Without the walk's slot (it always exists), the rule found decides: its own
        // verdict, never a pass the rules did not give.
        return Some(
            match walk::walk_on(cfg, [proto, a, b, c, d], words, index, pkt, frame_len) {
                Some(outcome) => Matched::Walked(outcome),
                None => Matched::Rule(decision),
            },
        );
    }
    Some(Matched::Rule(decision))
}

#[inline(always)]
fn decision(index: u32, rule: &Rule) -> Decision {
    Decision {
        index,
        id: rule.id,
        verdict: rule.verdict,
        log: rule.log != 0,
    }
}

/// Writes to `slot` the index of the first rule in all of `fields` (the lowest bit set in
/// the AND of their first `words` words); leaves it alone when there is none.
///
/// # Safety
/// `slot` must be valid for writes.
#[inline(always)]
unsafe fn scan<const N: usize>(fields: [&FieldBits; N], words: usize, slot: *mut u32) {
    let word = |w: usize| {
        fields
            .iter()
            .fold(u64::MAX, |bits, f| bits & f.bits.words[w])
    };
    // Unrolled by hand: whether LLVM unrolls a loop here swings the common path by a third
    // of its instructions as the code around it changes.
    macro_rules! scan {
        ($($w:literal)*) => {
            $(
                if $w >= words {
                    return;
                }
                let bits = word($w);
                if bits != 0 {
                    // SAFETY: the caller's.
                    unsafe { *slot = $w * 64 + lowest_bit(bits) };
                    return;
                }
            )*
        };
    }
    const { assert!(RULE_WORDS == 16) };
    scan!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);
}

/// Up to this many words of rules, [`scan`] reads every word: cheaper than finding the
/// words through the summaries.
const DENSE_WORDS: usize = 4;

/// As [`scan`], reading only the words every field's summary claims (see `FieldBits`),
/// lowest first.
///
/// # Safety
/// `slot` must be valid for writes.
#[inline(always)]
unsafe fn scan_sparse<const N: usize>(fields: [&FieldBits; N], words: usize, slot: *mut u32) {
    let in_use = if words >= 64 {
        u64::MAX
    } else {
        (1u64 << words) - 1
    };
    let mut candidates = fields.iter().fold(in_use, |s, f| s & f.summary);
    for _ in 0..RULE_WORDS {
        if candidates == 0 {
            return;
        }
        // Masked so the verifier sees the index within the words. LLVM proves the mask
        // redundant and drops it; a volatile read of the index keeps it.
        let w = lowest_bit(candidates) as usize;
        // SAFETY: reading a local.
        let w = unsafe { core::ptr::read_volatile(&w) } & (RULE_WORDS - 1);
        let bits = fields
            .iter()
            .fold(u64::MAX, |bits, f| bits & f.bits.words[w]);
        if bits != 0 {
            // SAFETY: the caller's.
            unsafe { *slot = w as u32 * 64 + lowest_bit(bits) };
            return;
        }
        candidates &= candidates - 1;
    }
}

#[inline(always)]
fn set_class<'a>(maps: &RuleMaps<'a>, v6: bool, addr: &[u32; 4]) -> Option<&'a SetClass> {
    maps.set_classes
        .get(sets::class_of(maps.set_nodes, v6, addr)?)
}

/// A set class's rules, joined with the literal prefixes' when the field has both, in this
/// CPU's slot `index` of `joined`, summarised as any word (a set class has no summary).
#[inline(always)]
fn join<'a>(
    maps: &RuleMaps<'a>,
    index: u32,
    cfg: &Config,
    literal: Option<&RuleBits>,
    set: &RuleBits,
) -> Option<&'a FieldBits> {
    let out = maps.joined.get_ptr_mut(index)?;
    let words = core::cmp::min(cfg.rule_words as usize, RULE_WORDS);
    for w in 0..RULE_WORDS {
        if w >= words {
            break;
        }
        let word = match literal {
            Some(literal) => literal.words[w] | set.words[w],
            None => set.words[w],
        };
        // SAFETY: out points to this CPU's value of a map we own.
        unsafe { (*out).bits.words[w] = word };
    }
    // SAFETY: as above; the slot lives as long as the map.
    unsafe {
        (*out).summary = FieldBits::ALL_WORDS;
        Some(&*out)
    }
}

#[inline(always)]
fn addr_key(fam: u8, addr: &[u32; 4]) -> Key<AddrKeyData> {
    let bits = if fam == family::IPV6 { 128 } else { 32 };
    Key::new(
        FAMILY_BITS + bits,
        [u32::from(fam), addr[0], addr[1], addr[2], addr[3]],
    )
}

/// Position of the lowest set bit of a nonzero word, without a branch: the bits below it,
/// counted (LLVM expands `count_ones` to adds of neighbouring bit fields; BPF has no
/// count instruction). The halving search it replaces took 46 instructions and six
/// branches on every match; in the sparse scan, a branch per halving multiplied the
/// verifier's paths past its million instructions.
#[inline(always)]
fn lowest_bit(bits: u64) -> u32 {
    ((bits & bits.wrapping_neg()).wrapping_sub(1)).count_ones()
}
