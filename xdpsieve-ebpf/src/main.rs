//! The xdpsieve XDP program: parse each frame, evaluate the rules (first match wins), count
//! the outcome per CPU, and copy the packets userspace asked for into a ring buffer.
//!
//! A frame whose IP header cannot be read is passed and counted as malformed: the host's
//! stack cannot read it either. A frame whose IP header parsed but whose length fields lie
//! is also counted as malformed; rules still match it on the fields that did parse (so an
//! attacker cannot slip past an address rule by truncating the UDP header), and port rules
//! never match it.
//!
//! No evasion: an IP packet whose L4 header the parser cannot reach (IPv6 chain too long or
//! cut short, TCP/UDP header cut short, RFC 1858 tiny TCP fragment) is *unclassifiable*
//! and gets `Config::unclassifiable` (drop, by default, when a rule has a protocol or port
//! condition). A first fragment's verdict is remembered (see `fragments`); the
//! fragments that follow it take that verdict, so the host never reassembles a datagram
//! whose first fragment a rule dropped, nor loses one a rule passed. Only fragments and
//! unclassifiable packets take that path (`Packet::special`).
//!
//! A packet of the common path whose verdict is not recorded (no rule matched, or a rule
//! without `log` decided, and the configuration records neither capture nor event for
//! that verdict) is counted and let go as soon as the rules are done (`count_unrecorded`):
//! building its outcome and deciding whether to record it cost about fifty instructions,
//! a third of what such a packet costs after parsing.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

// The kernel LPM trie baseline of the set benchmark; never loaded by the product.
#[cfg(target_arch = "bpf")]
mod bench_lpm;
// XDP-Firewall's per-source rate limiter, the limit-rule benchmark's peer; never loaded by
// the product.
#[cfg(target_arch = "bpf")]
mod bench_xdpfw;
#[cfg(target_arch = "bpf")]
mod capture_filter;
#[cfg(target_arch = "bpf")]
mod fragments;
#[cfg(target_arch = "bpf")]
mod limits;
#[cfg(target_arch = "bpf")]
mod outcome;
#[cfg(target_arch = "bpf")]
mod parse;
#[cfg(target_arch = "bpf")]
mod records;
#[cfg(target_arch = "bpf")]
mod rule_table;
#[cfg(target_arch = "bpf")]
mod rules;
#[cfg(target_arch = "bpf")]
mod sampling;
#[cfg(target_arch = "bpf")]
mod sets;
#[cfg(target_arch = "bpf")]
mod top_sources;
#[cfg(target_arch = "bpf")]
mod walk;

#[cfg(target_arch = "bpf")]
mod program {
    use aya_ebpf::{
        helpers::generated::{bpf_ktime_get_tai_ns, bpf_xdp_get_buff_len},
        macros::{map, xdp},
        maps::{Array, LpmTrie, PerCpuArray},
        programs::XdpContext,
    };
    use xdpsieve_common::{
        COUNTER_SLOTS, Config, Counters, FieldBits, MAX_INTERFACES, RULE_SLOTS, RuleCounters,
        SetClass, SetEntry, SetGroup, SetMeta, capture,
        classify::{ADDR_ENTRIES, AddrKeyData, PORT_CLASSES, PORTS, PROTO_ENTRIES},
        family, reader,
        sets::{MAX_SETS, MMAPABLE},
        verdict,
        walk::features as walk_features,
    };

    use crate::{
        capture_filter, fragments,
        outcome::{self, decide_special, record_params, remember_first_fragment},
        parse,
        parse::{Packet, special},
        records::{
            Record, capture_packet, rate_allows, reader_gone, record_flags, send_event,
            streams_read,
        },
        rules, sampling, top_sources,
    };

    /// Set by userspace before load (read-only data: the verifier treats it as constants).
    #[unsafe(no_mangle)]
    static CONFIG: Config = Config::DEFAULT;

    // The rule sets each field allows (see `rules` and `xdpsieve_common::classify`).
    #[map]
    static PROTO_SETS: Array<FieldBits> = Array::with_max_entries(PROTO_ENTRIES, 0);
    #[map]
    static SRC_PORT_CLASS: Array<u16> = Array::with_max_entries(PORTS, 0);
    #[map]
    static DST_PORT_CLASS: Array<u16> = Array::with_max_entries(PORTS, 0);
    #[map]
    static SRC_PORT_SETS: Array<FieldBits> = Array::with_max_entries(PORT_CLASSES, 0);
    #[map]
    static DST_PORT_SETS: Array<FieldBits> = Array::with_max_entries(PORT_CLASSES, 0);
    #[map]
    static SRC_ADDR_SETS: LpmTrie<AddrKeyData, FieldBits> =
        LpmTrie::with_max_entries(ADDR_ENTRIES, 0);
    #[map]
    static DST_ADDR_SETS: LpmTrie<AddrKeyData, FieldBits> =
        LpmTrie::with_max_entries(ADDR_ENTRIES, 0);

    // Address sets (see `sets` and `xdpsieve_common::sets`). Userspace sizes them before
    // load (1 entry when no rule names a set) and writes the mmapable ones as memory.
    #[map]
    static SET_NODES: Array<SetGroup> = Array::with_max_entries(1, MMAPABLE);
    #[map]
    static SET_CLASSES: Array<SetClass> = Array::with_max_entries(1, 0);
    /// Where the source (0) and destination (1) rules of literal prefixes and sets join.
    #[map]
    static JOINED_RULES: PerCpuArray<FieldBits> = PerCpuArray::with_max_entries(2, 0);
    // Read by userspace only: what each set holds, the per-set rules new classes are made
    // of, and how much of the tables is in use.
    #[map]
    static SET_ENTRIES: Array<SetEntry> = Array::with_max_entries(1, MMAPABLE);
    #[map]
    static SET_RULES: Array<SetClass> = Array::with_max_entries(MAX_SETS + 1, 0);
    #[map]
    static SET_META: Array<SetMeta> = Array::with_max_entries(1, 0);

    /// Per interface slot (see `Config::ifindexes`; the last slot takes any other
    /// interface): the one counter value every packet touches besides its rule's.
    #[map]
    static COUNTERS: PerCpuArray<Counters> = PerCpuArray::with_max_entries(COUNTER_SLOTS, 0);

    /// One packet's working memory, per CPU: the parse result, laundered there (see
    /// `filter`), and where the rule scan leaves the index it found (see
    /// `rules::first_match`). One value for both: one lookup per packet.
    #[map]
    static PACKET_SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

    #[repr(C)]
    struct Scratch {
        packet: Packet,
        matched: u32,
        _pad: u32,
    }

    /// Per rule slot; slot 0 counts packets that fell to the default verdict.
    #[map]
    static RULE_COUNTERS: PerCpuArray<RuleCounters> = PerCpuArray::with_max_entries(RULE_SLOTS, 0);

    /// Sampling position per rule slot and CPU: packets selected for recording since the
    /// last one kept (see `sampling`).
    #[map]
    static SAMPLE_POSITION: PerCpuArray<u32> = PerCpuArray::with_max_entries(RULE_SLOTS, 0);

    // inline(always): without it LLVM may keep the body as a BPF-to-BPF call from the
    // entry point that the macro generates, a call and a return on every packet.
    #[xdp(frags)]
    #[inline(always)]
    pub(crate) fn xdpsieve(ctx: XdpContext) -> u32 {
        filter(&ctx)
    }

    /// The same firewall under a second program id, sharing every map. Userspace swaps an
    /// attachment's bpf_link between the two to make a driver set the program up again on
    /// every rx queue (veth leaves queues added by `ethtool -L` without it); swapping to the
    /// same program is a no-op in the kernel. Loaded only when needed.
    #[xdp(frags)]
    #[inline(always)]
    pub(crate) fn xdpsieve_twin(ctx: XdpContext) -> u32 {
        filter(&ctx)
    }

    #[inline(always)]
    fn config() -> &'static Config {
        // The compiler must not fold in CONFIG's default value: the loader's is what the
        // program sees. Reading the *address* volatile hides the value behind it, while
        // each field is still loaded only where it is used (a volatile read of the whole
        // struct copied all 80 bytes onto the stack for every packet). The verifier still
        // sees read-only map data and treats the fields as constants.
        let address: *const Config = &CONFIG;
        // SAFETY: reads a local; the pointer it yields is CONFIG's, valid for 'static.
        unsafe { &*core::ptr::read_volatile(&address) }
    }

    #[inline(always)]
    fn filter(ctx: &XdpContext) -> u32 {
        let cfg = config();
        // SAFETY: ctx.ctx is the xdp_md the kernel passed to this program.
        let frame_len = unsafe { bpf_xdp_get_buff_len(ctx.ctx) } as usize;
        // The parser writes into a per-CPU map slot, and the rest of the program reads the
        // packet back through a laundered pointer: the verifier sees map memory (unknown
        // values), so the rest of the program is verified once, not once per path through
        // the parser; and the parser's fields live in memory rather than in registers that
        // the compiler spills at every branch. (On the stack, a `Packet` makes the program
        // exceed BPF's 512-byte stack.)
        let Some(scratch) = PACKET_SCRATCH.get_ptr_mut(0) else {
            return verdict::PASS as u32;
        };
        // SAFETY: scratch points to this CPU's value of a map we own, for this program run.
        let pkt: &Packet = unsafe {
            parse::parse(ctx, frame_len, &mut (*scratch).packet);
            let laundered: *const Packet =
                core::ptr::read_volatile(&(&raw const (*scratch).packet));
            &*laundered
        };
        // SAFETY: as above.
        let matched = unsafe { &raw mut (*scratch).matched };

        // For a later fragment: whether its first fragment's verdict was found.
        let mut fragment_found = None;
        // The rules are evaluated in this one place: a second copy of the rule loop would
        // make LLVM stop unrolling it, which costs the common path dearly. Frames that are
        // not IP leave the common path with the rare ones (`special::NOT_IP`).
        let decided = if pkt.special == 0 {
            None
        } else {
            decide_special(cfg, pkt, frame_len as u32, &mut fragment_found)
        };
        let outcome = match decided {
            Some(outcome) => outcome,
            None => {
                let matched = judge(cfg, pkt, frame_len as u32, matched);
                // A packet of the common path whose verdict is not recorded is counted,
                // and done, without the record decision's work. (Fragments and
                // unclassifiable packets the rules judge go on: they are remembered and
                // counted below.)
                let unrecorded = match &matched {
                    rules::Matched::Default if !recorded(cfg, cfg.default_verdict) => {
                        Some((cfg.default_verdict, 0))
                    }
                    rules::Matched::Rule(rule)
                        if !rule.log && !recorded(cfg, u32::from(rule.verdict)) =>
                    {
                        Some((u32::from(rule.verdict), rule.index + 1))
                    }
                    _ => None,
                };
                if let Some((verdict, slot)) = unrecorded
                    && pkt.special == 0
                {
                    return count_unrecorded(cfg, ctx, pkt, frame_len as u64, verdict, slot);
                }
                outcome::of_rules(cfg, matched)
            }
        };
        if pkt.special & special::FIRST_FRAGMENT != 0 {
            remember_first_fragment(pkt, &outcome);
        }
        let dropped = outcome.verdict == verdict::DROP;

        let Some(counters) = COUNTERS.get_ptr_mut(interface_slot(cfg, ctx)) else {
            return outcome.verdict as u32;
        };
        // SAFETY: per-CPU map values belong to this CPU for the duration of the program.
        let counters = unsafe { &mut *counters };
        let frame_bytes = frame_len as u64;
        count_verdict(counters, pkt, frame_bytes, dropped);
        if pkt.special != 0 {
            fragments::count(counters, pkt, fragment_found);
        }
        match outcome.slot {
            None => counters.non_ip += 1,
            Some(slot) => count_rule_hit(slot, frame_bytes),
        }
        count_source(cfg, pkt, frame_len as u32, dropped, outcome.marks);

        // A packet a monitor rule marked is also wanted as that rule would have decided it.
        let wanted = if dropped {
            capture::DROPPED
        } else {
            capture::PASSED
        } | outcome.extra_wanted;
        let mut want_capture = cfg.capture & wanted != 0;
        let mut want_log = cfg.log & wanted != 0 || outcome.log;
        if !want_capture && !want_log {
            return outcome.verdict as u32;
        }
        // The slot whose sampling, rate limit and record counters apply: the deciding
        // rule's, or the monitor rule's for a packet recorded as it would have decided it.
        let slot = outcome.record_slot;
        let params = record_params(cfg, slot);
        // SAFETY: as above.
        let rule_counters = RULE_COUNTERS.get_ptr_mut(slot).map(|p| unsafe { &mut *p });
        // The capture filter first (then sampling, then the rate limit): packets it turns
        // down are counted apart and never move the sampling count; they cost no copy, no
        // ring space and no rate token. Both fields are read-only data, so without a
        // filter the verifier prunes this.
        if cfg.capture_filter != 0 || cfg.log_filter != 0 {
            let wanted_before = (want_capture, want_log);
            (want_capture, want_log) =
                capture_filter::apply(ctx.ctx, cfg, want_capture, want_log, frame_len as u32);
            if (want_capture, want_log) != wanted_before {
                counters.not_selected += 1;
            }
            if !want_capture && !want_log {
                return outcome.verdict as u32;
            }
        }
        // Sampling before the reader check and the rate limit: a packet sampling leaves out
        // would never have been recorded, so it is neither loss (`no_reader`) nor a
        // suppression, and it does not spend the rate limit's budget.
        if !sampling::keeps(&SAMPLE_POSITION, slot, params.sample) {
            counters.sampled_out += 1;
            if let Some(rc) = rule_counters {
                rc.sampled_out += 1;
            }
            return outcome.verdict as u32;
        }
        if reader_gone() {
            counters.no_reader += 1;
            return outcome.verdict as u32;
        }
        // A stream no writer of the run reads (a reload gave a rule `log = true` in a run
        // without an event log): its record is counted with that reason, not sent to a
        // ring nobody drains, and it spends no rate-limit token.
        let read = streams_read();
        if want_log && read & reader::EVENTS == 0 {
            counters.event_no_writer += 1;
            want_log = false;
        }
        if want_capture && read & reader::CAPTURE == 0 {
            counters.capture_no_writer += 1;
            want_capture = false;
        }
        if !want_capture && !want_log {
            return outcome.verdict as u32;
        }
        if !rate_allows(slot, params.rate_interval_ns, params.rate_tolerance_ns) {
            counters.rate_limited += 1;
            if let Some(rc) = rule_counters {
                rc.suppressed += 1;
            }
            return outcome.verdict as u32;
        }
        // SAFETY: helper without arguments.
        let now = unsafe { bpf_ktime_get_tai_ns() };
        let flags = record_flags(pkt) | outcome.marks;
        if want_log {
            if send_event(ctx, cfg, pkt, &outcome, frame_len, now, flags) {
                counters.events += 1;
            } else {
                counters.event_lost += 1;
            }
        }
        if want_capture {
            let record = Record {
                frame_len,
                now,
                verdict: outcome.verdict,
                rule_id: outcome.rule_id,
                shadow_rule_id: outcome.shadow_id,
                flags,
                snaplen: params.snaplen,
            };
            let sent = capture_packet(ctx, cfg, &record);
            if sent {
                counters.captured += 1;
            } else {
                counters.capture_lost += 1;
            }
        }
        outcome.verdict as u32
    }

    /// First match over the rules, else the default verdict. `matched`: this CPU's slot
    /// for the index the rule scan finds.
    #[inline(always)]
    fn judge(cfg: &Config, pkt: &Packet, frame_len: u32, matched: *mut u32) -> rules::Matched {
        let maps = rules::RuleMaps {
            proto_sets: &PROTO_SETS,
            src_port_class: &SRC_PORT_CLASS,
            dst_port_class: &DST_PORT_CLASS,
            src_port_sets: &SRC_PORT_SETS,
            dst_port_sets: &DST_PORT_SETS,
            src_addr_sets: &SRC_ADDR_SETS,
            dst_addr_sets: &DST_ADDR_SETS,
            set_nodes: &SET_NODES,
            set_classes: &SET_CLASSES,
            joined: &JOINED_RULES,
            matched,
        };
        rules::first_match(&maps, cfg, pkt, frame_len)
    }

    /// Whether the configuration records (captures or logs) packets of `verdict`.
    #[inline(always)]
    fn recorded(cfg: &Config, verdict: u32) -> bool {
        // A verdict's capture bit is the verdict's value: no branch to choose it.
        const {
            assert!(capture::DROPPED == verdict::DROP as u32);
            assert!(capture::PASSED == verdict::PASS as u32);
        };
        (cfg.capture | cfg.log) & verdict != 0
    }

    /// Counts a packet of the common path that `slot` decided (0: no rule matched) and
    /// that is not to be recorded, as the path that records would, and returns `verdict`.
    #[inline(always)]
    fn count_unrecorded(
        cfg: &Config,
        ctx: &XdpContext,
        pkt: &Packet,
        frame_bytes: u64,
        verdict: u32,
        slot: u32,
    ) -> u32 {
        let dropped = verdict == u32::from(verdict::DROP);
        let Some(counters) = COUNTERS.get_ptr_mut(interface_slot(cfg, ctx)) else {
            return verdict;
        };
        // SAFETY: per-CPU map values belong to this CPU for the duration of the program.
        count_verdict(unsafe { &mut *counters }, pkt, frame_bytes, dropped);
        count_rule_hit(slot, frame_bytes);
        count_source(cfg, pkt, frame_bytes as u32, dropped, 0);
        verdict
    }

    /// Counts a judged packet on its interface's counters: its bytes, whether it was
    /// malformed, its verdict. (Not `seen`: userspace reads it as passed + dropped.)
    #[inline(always)]
    fn count_verdict(counters: &mut Counters, pkt: &Packet, frame_bytes: u64, dropped: bool) {
        counters.bytes_seen += frame_bytes;
        if pkt.malformed {
            counters.malformed += 1;
        }
        if dropped {
            counters.dropped += 1;
            counters.bytes_dropped += frame_bytes;
        } else {
            counters.passed += 1;
            counters.bytes_passed += frame_bytes;
        }
    }

    /// Counts a dropped or marked IP packet against its source (for `top`). The feature is
    /// read-only data: the verifier prunes this when it is switched off.
    #[inline(always)]
    fn count_source(cfg: &Config, pkt: &Packet, frame_len: u32, dropped: bool, marks: u8) {
        if cfg.features & walk_features::TOP_SOURCES != 0
            && (dropped || marks != 0)
            && pkt.family != family::NONE
        {
            top_sources::count(pkt, frame_len, dropped, marks);
        }
    }

    /// Counts a packet on the counters of the rule slot that decided it.
    #[inline(always)]
    fn count_rule_hit(slot: u32, frame_bytes: u64) {
        if let Some(rc) = RULE_COUNTERS.get_ptr_mut(slot) {
            // SAFETY: per-CPU map values belong to this CPU for the duration of the program.
            let rc = unsafe { &mut *rc };
            rc.hits += 1;
            rc.bytes += frame_bytes;
        }
    }

    /// The interface's counter slot: its position in `Config::ifindexes`, else the last.
    #[inline(always)]
    fn interface_slot(cfg: &Config, ctx: &XdpContext) -> u32 {
        // SAFETY: ctx.ctx is the xdp_md the kernel passed to this program.
        let ifindex = unsafe { (*ctx.ctx).ingress_ifindex };
        let mut slot = MAX_INTERFACES as u32;
        for (i, &candidate) in cfg.ifindexes.iter().enumerate() {
            // Userspace fills the slots from the front: the first empty one ends the list,
            // so the slots after it are not even loaded (`cfg` is read-only data: the
            // verifier knows which test ends the loop, but a load it keeps).
            if candidate == 0 {
                break;
            }
            if candidate == ifindex {
                slot = i as u32;
                break;
            }
        }
        slot
    }
}

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    // The verifier rejects programs that can reach a panic, so this is never called.
    loop {}
}

#[cfg(target_arch = "bpf")]
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

#[cfg(not(target_arch = "bpf"))]
fn main() {
    eprintln!(
        "xdpsieve-ebpf is an eBPF program: it is built for bpfel-unknown-none and embedded in xdpsieve"
    );
}
