//! Types shared across the kernel boundary between the XDP program and userspace.
//!
//! Every struct here is `#[repr(C)]` with its padding spelled out as named fields, so the
//! verifier never sees uninitialised bytes and both sides agree on every offset. The
//! `const` blocks at the bottom fail the build if a layout drifts.
#![no_std]

pub mod walk;

/// Most rules the kernel program evaluates. Matching costs the same for any count up to
/// this (see [`classify`]); the limit sets the size of the rule bitmaps ([`RuleBits`]).
/// A kernel test loads exactly this many.
pub const MAX_RULES: u32 = 1024;

/// 64-bit words in a [`RuleBits`].
pub const RULE_WORDS: usize = (MAX_RULES as usize).div_ceil(64);

/// A set of rules, by position in evaluation order: bit `i % 64` of word `i / 64` is rule
/// `i`. The lowest set bit is the first rule in order.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleBits {
    pub words: [u64; RULE_WORDS],
}

impl RuleBits {
    pub const EMPTY: Self = Self {
        words: [0; RULE_WORDS],
    };

    pub fn set(&mut self, rule: usize) {
        self.words[rule / 64] |= 1 << (rule % 64);
    }

    pub fn contains(&self, rule: usize) -> bool {
        self.words[rule / 64] & (1 << (rule % 64)) != 0
    }
}

/// The rules one value of a field allows, with a summary of where they are: bit `w` of
/// `summary` is set when word `w` of `bits` may hold a rule. The program ANDs the fields'
/// summaries and looks only at the words left (see the program's `rules` module): with
/// many rules, a packet no rule matches costs a few words, not all sixteen.
///
/// The summary may claim words that are empty (only a cost), never miss one that is not
/// (a rule would not match): it is computed in one place, [`FieldBits::of`], and a field
/// without one (a set class) stands as [`FieldBits::ALL_WORDS`]. The kernel's zero fill
/// (no rules, no words) is consistent.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldBits {
    pub summary: u64,
    pub bits: RuleBits,
}

impl FieldBits {
    /// A summary claiming every word.
    pub const ALL_WORDS: u64 = (1 << RULE_WORDS) - 1;

    /// `bits` with their exact summary.
    pub fn of(bits: RuleBits) -> Self {
        let mut summary = 0;
        for (w, word) in bits.words.iter().enumerate() {
            if *word != 0 {
                summary |= 1 << w;
            }
        }
        Self { summary, bits }
    }
}

const _: () = {
    assert!(size_of::<FieldBits>() == 8 + size_of::<RuleBits>());
    assert!(RULE_WORDS <= 64);
};

/// Matching by bitmaps (the "linear bit vector search" of packet classifiers): for each
/// field of a packet, one map lookup gives the set of rules whose condition on that field
/// holds; the first rule in all the sets matches. The cost depends on the fields in use,
/// not on the number of rules. Userspace computes the sets when it loads the rules.
pub mod classify {
    use super::MAX_RULES;

    /// Bits of [`Config::classify`](super::Config::classify): the fields some rule has a
    /// condition on. The program looks up only those; the family, protocol and
    /// ports-present set ([`proto_index`]) is always looked up.
    pub const SRC_ADDR: u32 = 1;
    pub const DST_ADDR: u32 = 2;
    pub const SRC_PORT: u32 = 4;
    pub const DST_PORT: u32 = 8;
    /// Some rule's source (destination) is an address set (`src = "@name"`): the address
    /// is looked up in the set trie ([`sets`](super::sets)) too.
    pub const SRC_SET: u32 = 16;
    pub const DST_SET: u32 = 32;

    /// Entries of the family/protocol map: IPv4 or IPv6, ports read or not, protocol.
    pub const PROTO_ENTRIES: u32 = 2 * 2 * 256;

    /// The family/protocol map's index for a packet (`family` is IPv4 or IPv6).
    pub const fn proto_index(family: u8, has_ports: u8, protocol: u8) -> u32 {
        let v6 = (family == super::family::IPV6) as u32;
        (v6 << 9) | (((has_ports != 0) as u32) << 8) | protocol as u32
    }

    /// Port equivalence classes: ports with the same rule set share a class. N ranges cut
    /// 0..=65535 into at most 2N + 1 intervals.
    pub const PORT_CLASSES: u32 = 2 * MAX_RULES + 1;
    /// Entries of a port-to-class map.
    pub const PORTS: u32 = 65536;

    /// Key data of the address tries: the family as a 32-bit word, then the address as
    /// four 32-bit words in network byte order (IPv4 in the first). A prefix of `n` bits
    /// has `prefix_len` `FAMILY_BITS + n`; `FAMILY_BITS` alone matches the whole family.
    pub type AddrKeyData = [u32; 5];
    pub const FAMILY_BITS: u32 = 32;
    /// Entries of an address trie: one per distinct prefix, and one per family.
    pub const ADDR_ENTRIES: u32 = MAX_RULES + 2;
}

/// Address sets: named sets of IPv4/IPv6 prefixes that rules refer to (`src = "@name"`).
///
/// All sets of a rule generation share one multibit trie, stored as groups of 256 entries
/// in one array map (`SET_NODES`). Each level consumes one byte of the address: the root
/// is 256 groups per family selected by the first byte, indexed by the second; then one
/// group per further byte (IPv4: at most 3 reads; IPv6: at most 15). An entry is either
/// a pointer to a group ([`POINTER`] set) or a *class*: the index of the combination of
/// sets that covers the address (class 0: no set). The class's
/// [`SetClass`](super::SetClass) gives the rules each direction allows. The cost of a
/// lookup depends on the longest prefix on the address's path, not on the set's size.
///
/// The maps are `BPF_F_MMAPABLE` arrays, so userspace builds and changes them with plain
/// memory writes (a million prefixes load in a fraction of a second, no syscall each).
pub mod sets {
    /// Most sets one rule generation holds: a class is identified by a 64-bit set mask.
    pub const MAX_SETS: u32 = 64;
    /// Entries of a group: one byte of the address.
    pub const GROUP_ENTRIES: usize = 256;
    /// First root group of IPv4 (256 groups: the first address byte picks one).
    pub const V4_ROOT: u32 = 0;
    /// First root group of IPv6.
    pub const V6_ROOT: u32 = 256;
    /// Groups below this are roots; others are allocated as prefixes need them.
    pub const FIRST_GROUP: u32 = 512;
    /// Entry bit: the rest is a group number, not a class.
    pub const POINTER: u32 = 1 << 31;
    /// Levels after the root (bytes 2.. of the address): IPv4 2, IPv6 14.
    pub const V4_LEVELS: usize = 2;
    pub const V6_LEVELS: usize = 14;
    /// Most classes (distinct combinations of sets covering some address).
    pub const MAX_CLASSES: u32 = 4096;
    /// `BPF_F_MMAPABLE`: the set maps are written by userspace through a memory mapping.
    pub const MMAPABLE: u32 = 1 << 10;
    /// [`SetEntry::state`](super::SetEntry::state).
    pub const ENTRY_FREE: u8 = 0;
    /// Loaded from the rule file (or its set files).
    pub const ENTRY_FILE: u8 = 1;
    /// Added at run time (`xdpsieve set add`).
    pub const ENTRY_RUNTIME: u8 = 2;
    /// [`SetEntry::origin`](super::SetEntry::origin): added by an operator (`set add`) or
    /// loaded from a file.
    pub const ORIGIN_OPERATOR: u8 = 0;
    /// [`SetEntry::origin`](super::SetEntry::origin): an automatic ban by a limit rule.
    pub const ORIGIN_BAN: u8 = 1;
    /// Entry 1 of a free group of the set trie (see [`SetMeta::free_head`](super::SetMeta)):
    /// a check that the free list leads only to free groups.
    pub const FREE_GROUP: u32 = 0x0f2e_e0f2;
    /// Slot of [`SetRules`](super::SetClass) holding the rules with no address condition.
    pub const ANY_SLOT: u32 = MAX_SETS;
}

/// A group of the set trie: 256 entries, one per value of an address byte.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetGroup {
    pub entries: [u32; sets::GROUP_ENTRIES],
}

/// What one set class allows: the rules whose source (destination) condition holds for an
/// address of this class. Both include the rules with no condition on that direction, so
/// the program can use the class alone when no rule names a literal prefix there. Also the
/// shape of `SET_RULES`, which keeps per set the rules naming it (slot `sets::ANY_SLOT`:
/// the rules with no condition), so a live change can compute a new class.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetClass {
    pub src: RuleBits,
    pub dst: RuleBits,
}

/// One prefix of one set, in the generation's entry table (`SET_ENTRIES`, an mmapable
/// array): the record of what each set holds, read by `set list`, `set del`, expiry and
/// a reload or takeover. The XDP program never reads it (it reads the trie).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetEntry {
    /// `CLOCK_BOOTTIME` nanoseconds after which the entry is removed; 0: never.
    pub expires_ns: u64,
    /// Index of the set in the generation (its position among the rule file's sets).
    pub set: u16,
    /// One of [`family`].
    pub family: u8,
    pub prefix_len: u8,
    /// One of `sets::ENTRY_*`.
    pub state: u8,
    /// One of `sets::ORIGIN_*`: who added a runtime entry (kept across reloads and
    /// takeovers, so bans stay bans).
    pub origin: u8,
    pub _pad: [u8; 2],
    /// The masked address, network byte order; IPv4 in the first 4 bytes.
    pub addr: [u8; 16],
}

/// Bookkeeping of a generation's set maps (`SET_META`, one entry), for the processes that
/// change them: how much of each table is in use, the free trie groups, and whether a
/// change is being written. Userspace only.
///
/// A change writes this first with `in_change` set (and every class it will use), then the
/// trie and the entry table, then this again with `in_change` clear: a process that finds
/// it set knows the last writer died part-way and rebuilds the rest from the maps
/// themselves (see `instance::sets::recover`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetMeta {
    /// Groups in use (roots included).
    pub groups_used: u32,
    /// Classes in use; class i's set mask is `class_masks[i]`.
    pub classes_used: u32,
    /// Entry slots ever used (free ones below may be reused).
    pub entries_used: u32,
    /// Changes made to the sets at run time (wrapping): the recorder's expiry scans the
    /// entry table again only when this moved or an expiry it knows of is due.
    pub changes: u32,
    /// Groups below this have been handed out; those above were never used.
    pub groups_high: u32,
    /// The first free group below `groups_high` (0: none). Free groups form a list:
    /// entry 0 of each is the next one, entry 1 is [`sets::FREE_GROUP`].
    pub free_head: u32,
    /// Nonzero while a change is being written (see above).
    pub in_change: u32,
    pub _pad: u32,
    pub class_masks: [u64; sets::MAX_CLASSES as usize],
}

/// Largest snap length: the per-CPU scratch buffer holds a header plus this many bytes.
/// Covers jumbo frames (MTU 9000); longer frames are cut here but keep their true length.
pub const MAX_SNAPLEN: u32 = 16384;

/// How many IPv6 extension headers the parser walks before it gives up and calls the packet
/// unclassifiable (see [`Config::unclassifiable`]). Real traffic rarely carries more than
/// two or three. Kernels differ in what they accept behind such a chain: some any number that
/// fits in the packet, others discard a dozen or more headers by themselves (see
/// `xdpsieve/tests/README.md`); past this bound the packet is unclassifiable either way.
pub const MAX_IPV6_EXT_HEADERS: usize = 64;

/// How many of those the parser walks with direct packet reads (the cheap, common case);
/// longer chains continue with `bpf_xdp_load_bytes`, so only they pay for the long walk.
pub const FAST_IPV6_EXT_HEADERS: usize = 8;

/// First fragments whose verdict the program remembers for the fragments that follow them
/// (an LRU map: the oldest datagrams are forgotten first).
pub const MAX_FRAGMENTED_DATAGRAMS: u32 = 16384;

/// How many VLAN tags (802.1Q / 802.1ad) the parser strips.
pub const MAX_VLAN_TAGS: usize = 2;

/// Interfaces with their own counters; packets from any other interface share the slot
/// after them.
pub const MAX_INTERFACES: usize = 8;

/// Slots of the `COUNTERS` map: one per interface of [`Config::ifindexes`], then one for any
/// other interface.
pub const COUNTER_SLOTS: u32 = MAX_INTERFACES as u32 + 1;

/// Slots in the per-rule maps: slot 0 is the default verdict, slot `i + 1` is rule `i`.
pub const RULE_SLOTS: u32 = MAX_RULES + 1;

/// How records reach userspace: bits of [`Config::transport`].
pub mod transport {
    /// BPF ring buffer (Linux 5.8+): one shared buffer, records in order.
    pub const RINGBUF: u32 = 0;
    /// Per-CPU perf buffers (Linux 4.3+): the aya book's PerfEventArray.
    pub const PERF: u32 = 1;
}

/// XDP verdicts as the kernel numbers them (`enum xdp_action`).
pub mod verdict {
    pub const ABORTED: u8 = 0;
    pub const DROP: u8 = 1;
    pub const PASS: u8 = 2;
}

/// Which verdicts are captured or logged: bits of [`Config::capture`] and [`Config::log`].
pub mod capture {
    pub const DROPPED: u32 = 1 << 0;
    pub const PASSED: u32 = 1 << 1;
}

/// Address families, as the parser records a packet's ([`Event::family`]).
pub mod family {
    pub const NONE: u8 = 0;
    pub const IPV4: u8 = 4;
    pub const IPV6: u8 = 6;
}

/// Bits of [`CaptureHeader::flags`] and [`Event::flags`].
pub mod record_flags {
    /// The parser found the packet malformed (it was passed or matched on what parsed).
    pub const MALFORMED: u8 = 1 << 0;
    /// TCP or UDP ports were read.
    pub const HAS_PORTS: u8 = 1 << 1;
    /// ICMP or ICMPv6 type and code were read.
    pub const HAS_ICMP: u8 = 1 << 2;
    /// The frame carried a VLAN tag (the outer one's id is reported).
    pub const HAS_VLAN: u8 = 1 << 3;
    /// The program could not reach the L4 header the rules need (IPv6 extension chain too
    /// long or cut short, TCP/UDP header cut short, RFC 1858 tiny TCP fragment): its verdict
    /// is [`Config::unclassifiable`](super::Config::unclassifiable) unless that is pass.
    pub const UNCLASSIFIABLE: u8 = 1 << 4;
    /// A rule in monitor mode marked the packet: it would have decided it (its id is in
    /// `shadow_rule_id`; see [`walk`](super::walk)).
    pub const MONITOR: u8 = 1 << 5;
    /// The packet was over a limit rule's budget: dropped by it (`rule_id`), or marked by
    /// it in monitor mode (`shadow_rule_id`).
    pub const OVER_LIMIT: u8 = 1 << 6;
}

/// Load-time configuration, written into the program's read-only data before load so the
/// verifier sees constants and prunes the paths that are switched off.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Verdict for IP packets no rule matched ([`verdict::DROP`] or [`verdict::PASS`]).
    pub default_verdict: u32,
    /// Bits of [`capture`]: which verdicts are captured.
    pub capture: u32,
    /// Bytes of each packet to capture, 1..=[`MAX_SNAPLEN`].
    pub snaplen: u32,
    /// Rules in the `RULES` map, 0..=[`MAX_RULES`].
    pub rule_count: u32,
    /// Words of each [`RuleBits`] in use: `rule_count` rounded up to 64, over 64.
    pub rule_words: u32,
    /// Bits of [`classify`]: the fields the program looks up.
    pub classify: u32,
    /// Bits of [`capture`]: which verdicts are logged as events (rules may add their own).
    pub log: u32,
    /// One of [`transport`].
    pub transport: u32,
    /// Rate limit of the default verdict's records: one per this many ns, 0 = unlimited.
    pub default_rate_interval_ns: u64,
    /// How far ahead of schedule a burst may run: `interval * (burst - 1)` ns.
    pub default_rate_tolerance_ns: u64,
    /// Interfaces with their own counter slot, in slot order from the first; 0 = unused, and
    /// every slot after an unused one is unused too (the program stops at the first).
    pub ifindexes: [u32; MAX_INTERFACES],
    /// Verdict for IP packets whose L4 header the program cannot reach
    /// ([`record_flags::UNCLASSIFIABLE`]): [`verdict::DROP`] drops them before any rule, so
    /// no port rule can be evaded; [`verdict::PASS`] lets the rules judge them on the fields
    /// that parsed. Userspace defaults it to drop when a rule has a protocol or port condition.
    pub unclassifiable: u32,
    /// The rule generation this program was loaded with (1 at start, one more per reload);
    /// its low byte is stamped into every record, so userspace names each record's rule
    /// from the rules of the generation that judged it (rule ids differ between files).
    pub generation: u32,
    /// Sampling of the records (events and captures) of packets no rule with its own
    /// `sample` decided: one in this many is recorded, 1 = all (see [`Rule::sample`]).
    pub sample: u32,
    /// The capture filter in force for capture records: 0 none, else 1 + its slot in the
    /// program's filter table (see [`filter`]). Read-only data: with no filter the verifier
    /// prunes the filter path, so the common path costs nothing.
    pub capture_filter: u32,
    /// The same for events: the capture filter's slot when it applies to the log too, the
    /// log filter's own slot, or 0.
    pub log_filter: u32,
    /// Bit `1 << slot` set: that slot's filter runs as eBPF translated at load into the
    /// slot's function ([`filter::SLOT_FUNCTIONS`]); clear: the program interprets the
    /// slot's classic instructions in `FILTER_PROGRAMS`.
    pub filter_translated: u32,
    /// Bits of [`walk::features`].
    pub features: u32,
    /// 1: the first matching rule is found by the rule set compiled to eBPF at load
    /// ([`matcher`]); 0: by the bitmaps ([`classify`]). Read-only data: the verifier keeps
    /// only the way in use.
    pub rules_compiled: u32,
}

impl Config {
    pub const DEFAULT: Self = Self {
        default_verdict: verdict::PASS as u32,
        capture: capture::DROPPED,
        snaplen: MAX_SNAPLEN,
        rule_count: 0,
        rule_words: 0,
        classify: 0,
        log: 0,
        transport: transport::RINGBUF,
        default_rate_interval_ns: 0,
        default_rate_tolerance_ns: 0,
        ifindexes: [0; MAX_INTERFACES],
        unclassifiable: verdict::PASS as u32,
        generation: 0,
        sample: 1,
        capture_filter: 0,
        log_filter: 0,
        filter_translated: 0,
        features: 0,
        rules_compiled: 0,
    };
}

/// Capture filters: tcpdump expressions that libpcap compiles to classic BPF, which the
/// program runs in the kernel for the packets a rule selected for recording, before any
/// copy. A filter runs either translated to eBPF, written at load into its slot's function
/// (one of [`SLOT_FUNCTIONS`], [`SLOT_FUNCTION_INSNS`] instructions of placeholder), or
/// interpreted from the program's read-only data (`FILTER_PROGRAMS`, [`SLOTS`] programs of
/// [`MAX_INSNS`] instructions each); [`Config::capture_filter`] and [`Config::log_filter`]
/// say which slot applies to which record, [`Config::filter_translated`] how each runs.
pub mod filter {
    /// Most instructions of one classic BPF program (the kernel's `BPF_MAXINSNS`).
    pub const MAX_INSNS: u32 = 4096;
    /// Programs in the table: the capture filter (slot 0) and the log filter (slot 1).
    pub const SLOTS: u32 = 2;
    /// Instructions in the whole table.
    pub const TABLE_INSNS: usize = (MAX_INSNS * SLOTS) as usize;
    /// Slot of the capture filter.
    pub const CAPTURE_SLOT: u32 = 0;
    /// Slot of a separate log filter.
    pub const LOG_SLOT: u32 = 1;
    /// Most instructions one run of a filter executes. Classic BPF only jumps forward, so a
    /// run takes at most [`MAX_INSNS`] steps, except for libpcap's `protochain`, which
    /// loops over the IPv6/IPv4 header chain with a backward `ja`; a run still going after
    /// this many steps rejects the packet.
    pub const STEP_BUDGET: u32 = 4 * MAX_INSNS;
    /// Words of scratch memory (`M[]`) of the classic machine (`BPF_MEMWORDS`).
    pub const MEM_WORDS: usize = 16;
    /// The program's functions that a slot's translated filter replaces, by slot.
    pub const SLOT_FUNCTIONS: [&str; SLOTS as usize] =
        ["xdpsieve_filter_slot0", "xdpsieve_filter_slot1"];
    /// eBPF instructions in each slot function: the longest translation that fits.
    pub const SLOT_FUNCTION_INSNS: usize = 16384;
    /// What a translated filter returns: the packet is not selected...
    pub const TRANSLATED_REJECT: u32 = 0;
    /// ... it is selected ...
    pub const TRANSLATED_SELECT: u32 = 1;
    /// ... or the filter read past the linear data (XDP fragments, or the frame's end):
    /// the interpreter decides.
    pub const TRANSLATED_INTERPRET: u32 = 2;
}

/// The rule set compiled to eBPF at load: a rule set is matched by code written for it
/// (one test per condition, rule after rule, or first a binary search on a port) instead
/// of the bitmaps, whose lookups cost the same whatever the rules, when a packet's path
/// through that code is short ([`MAX_PATH`](matcher::MAX_PATH)). Userspace writes the code over the placeholder function
/// [`FUNCTION`](matcher::FUNCTION) in the object, as it does a translated capture filter,
/// and sets [`Config::rules_compiled`].
///
/// The function takes the parsed packet (`r1`, the program's `Packet` in its per-CPU
/// scratch) and returns the index of the first rule that matches, or [`NO_MATCH`]. The
/// offsets below are where it reads the packet's fields; the program asserts its `Packet`
/// has them.
///
/// [`NO_MATCH`]: matcher::NO_MATCH
pub mod matcher {
    /// The placeholder function's name in the object's symbol table.
    pub const FUNCTION: &str = "xdpsieve_rules";
    /// eBPF instructions in the placeholder, padding included: the longest code that fits
    /// (as many as a capture filter's slot). A packet runs only its path through it.
    pub const FUNCTION_INSNS: usize = 16384;
    /// Most instructions of compiled code one packet may run (jumps only go forward, so the
    /// compiler knows): a rule set whose code could run more is matched by the bitmaps,
    /// whose path is about fifty instructions with protocols alone in use and a hundred
    /// or more with a port (BENCHMARKS.md).
    pub const MAX_PATH: usize = 110;
    /// What the function returns when no rule matches.
    pub const NO_MATCH: u32 = u32::MAX;

    /// Byte offsets of the packet's fields (`xdpsieve-ebpf/src/parse.rs`, `Packet`).
    pub mod packet {
        /// u8: one of [`family`](crate::family).
        pub const FAMILY: i16 = 0;
        /// u8: the IP protocol (the last header's, for IPv6).
        pub const PROTOCOL: i16 = 1;
        /// u8: 1 when the TCP or UDP ports were read.
        pub const HAS_PORTS: i16 = 2;
        /// Four u32 words in network byte order (IPv4: the first).
        pub const SRC: i16 = 4;
        pub const DST: i16 = 20;
        /// u16, host byte order.
        pub const SRC_PORT: i16 = 36;
        pub const DST_PORT: i16 = 38;
        /// The struct's size: what the verifier lets the function read.
        pub const SIZE: usize = 56;
    }
}

/// One classic BPF instruction, as `struct sock_filter` (and libpcap's `struct bpf_insn`)
/// lays it out.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FilterInsn {
    pub code: u16,
    /// Forward jump when the condition holds (instructions skipped).
    pub jt: u8,
    /// Forward jump when it does not.
    pub jf: u8,
    pub k: u32,
}

impl FilterInsn {
    /// `ret #0`: rejects. Fills the unused table entries (and keeps the table out of
    /// `.bss`, so it stays read-only data the loader can set).
    pub const REJECT: Self = Self {
        code: 0x06,
        jt: 0,
        jf: 0,
        k: 0,
    };
}

/// One firewall rule as the program reads it once the bitmaps have chosen it: what to do
/// with the packet and how to record it.
///
/// The conditions are not here: the program matches through the bitmaps userspace builds
/// from the typed rules (see [`classify`]), so a rule is read only after it has matched.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Rate limit of this rule's records (events and captures): one per this many ns,
    /// 0 = unlimited.
    pub rate_interval_ns: u64,
    /// How far ahead of schedule a burst may run: `interval * (burst - 1)` ns.
    pub rate_tolerance_ns: u64,
    /// The id reported in captures and counters; never 0 (0 means "no rule, default verdict").
    pub id: u32,
    /// [`verdict::DROP`] or [`verdict::PASS`].
    pub verdict: u8,
    /// 1 when every packet this rule decides is logged as an event.
    pub log: u8,
    /// Bits of [`walk::rule_kind`]: 0 for a rule that decides when it matches.
    pub kind: u8,
    pub _pad: u8,
    /// Bytes of each packet this rule decides to capture, 1..=[`MAX_SNAPLEN`]; 0 takes
    /// [`Config::snaplen`].
    pub snaplen: u32,
    /// Records (events and captures) of one in this many of the packets this rule decides
    /// that were selected for recording; 0 takes [`Config::sample`], 1 records all.
    pub sample: u32,
}

/// Per-CPU packet counters of one interface slot: `COUNTERS` has [`COUNTER_SLOTS`], the
/// interface's position in [`Config::ifindexes`], the last for any other interface. A packet
/// touches one slot, so the program looks up one map value for all its counts besides its
/// rule's (an older build kept the totals in one slot and the interfaces' in a second map,
/// `INTERFACE_COUNTERS` of [`InterfaceCounters`], three lookups per packet). Userspace sums
/// them over CPUs and slots for the totals.
///
/// Invariant the tests check: every packet the program meant to capture is either
/// `captured` or `capture_lost`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Not written by the program: read [`Counters::seen`] (userspace's counter catalogue
    /// does, so a value it summed or compared has the field right).
    pub seen: u64,
    pub passed: u64,
    pub dropped: u64,
    /// Frames the parser could not make sense of (also counted in passed or dropped).
    pub malformed: u64,
    /// Capture records written to the ring buffer.
    pub captured: u64,
    /// Capture records that did not fit in the ring buffer (userspace too slow).
    pub capture_lost: u64,
    pub bytes_seen: u64,
    pub bytes_dropped: u64,
    /// Frames without a readable IP header (ARP, LLDP, or IP cut too short to read its
    /// addresses): always passed, matched by no rule.
    pub non_ip: u64,
    pub bytes_passed: u64,
    /// Events sent to userspace.
    pub events: u64,
    /// Events that did not fit in the ring or perf buffer.
    pub event_lost: u64,
    /// Packets whose records (event and capture) the rate limiter suppressed.
    pub rate_limited: u64,
    /// Packets whose records (event and capture) were not written because no recorder was
    /// reading: its heartbeat in `READER` is older than [`READER_TIMEOUT_NS`] (the recorder
    /// died and left the firewall in force).
    pub no_reader: u64,
    /// IP packets whose L4 header the program could not reach (see
    /// [`record_flags::UNCLASSIFIABLE`]), tiny fragments included.
    pub unclassifiable: u64,
    /// TCP fragments too short for the flags byte, or at offset 8 bytes (RFC 1858).
    pub tiny_fragments: u64,
    /// Non-first fragments that took the verdict remembered for their first fragment.
    pub fragments_followed: u64,
    /// Non-first fragments whose first fragment was not seen (or forgotten): judged by the
    /// rules that need no ports.
    pub fragment_orphans: u64,
    /// Packets selected for recording whose records (event and capture) sampling left out
    /// (`--sample`, a rule's `sample`): by choice, not loss.
    pub sampled_out: u64,
    /// Packets a rule selected for recording whose capture record or event (or both) the
    /// capture filter (`--filter`, `--log-filter`) turned down: not a loss, the operator
    /// asked for only some of them.
    pub not_selected: u64,
    /// Packets whose capture record the program did not send because no writer of the
    /// run reads the capture stream (see [`reader::WRITERS`]): lost, with that reason.
    pub capture_no_writer: u64,
    /// Packets whose event the program did not send because the run has no event log (a
    /// reload gave a rule `log = true` in a run started without one): lost, with that
    /// reason.
    pub event_no_writer: u64,
}

/// Slots of the `READER` map: what the recorder tells the program about its readers. The
/// program reads them on the record path only.
pub mod reader {
    /// CLOCK_MONOTONIC ns of the recorder's last sign of life (see
    /// [`READER_TIMEOUT_NS`](super::READER_TIMEOUT_NS)); 0: not tracked.
    pub const HEARTBEAT: u32 = 0;
    /// Which record streams a writer of the run reads: [`PUBLISHED`] with [`CAPTURE`] and
    /// [`EVENTS`] as they are. A record of a stream no writer reads is counted
    /// (`capture_no_writer`, `event_no_writer`) instead of being sent to a ring nobody
    /// drains. Nothing published (0, as with a loader that reads the rings itself), or no
    /// such slot (the map of an older run that a reload shares): every stream is read.
    pub const WRITERS: u32 = 1;
    /// Slots in the map.
    pub const SLOTS: u32 = 2;
    /// [`WRITERS`] was published by the run.
    pub const PUBLISHED: u64 = 1 << 0;
    /// A writer reads the capture records.
    pub const CAPTURE: u64 = 1 << 1;
    /// A writer reads the events.
    pub const EVENTS: u64 = 1 << 2;
}

/// How old the recorder's heartbeat (CLOCK_MONOTONIC ns in the `READER` map, written every
/// ~100 ms) may be before the program counts records as lost for want of a reader instead
/// of writing them to a ring nobody drains. A heartbeat of 0 means "not tracked" (a loader
/// that never reads, such as the kernel tests).
pub const READER_TIMEOUT_NS: u64 = 2_000_000_000;

/// Per-CPU counters of one rule slot (see [`RULE_SLOTS`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuleCounters {
    pub hits: u64,
    pub bytes: u64,
    /// Packets whose records this rule's rate limit suppressed.
    pub suppressed: u64,
    /// Packets whose records this rule's sampling left out (not loss).
    pub sampled_out: u64,
}

/// What is counted per interface: the view of one [`Counters`] slot that the capture files'
/// statistics and the metrics show. It is also the value of the `INTERFACE_COUNTERS` map of
/// a firewall an older build loaded (one slot per interface as here, beside the totals in a
/// one-slot `COUNTERS`), which `status` and a takeover still read.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InterfaceCounters {
    pub packets: u64,
    pub bytes: u64,
    pub passed: u64,
    pub dropped: u64,
    pub captured: u64,
    pub capture_lost: u64,
    pub rate_limited: u64,
    /// Packets whose records sampling left out (not loss).
    pub sampled_out: u64,
}

impl Counters {
    /// Packets seen: every one is passed or dropped. The program counts only those two,
    /// a load and a store fewer per packet (an older build's program wrote `seen` too,
    /// with the same value). `bytes_seen` stays a count of its own: an older build's
    /// per-interface counts have no bytes by verdict to derive it from.
    pub fn seen(&self) -> u64 {
        self.passed + self.dropped
    }
}

// The two views' field correspondence, both ways, in one place.
impl From<&Counters> for InterfaceCounters {
    fn from(c: &Counters) -> Self {
        InterfaceCounters {
            packets: c.seen(),
            bytes: c.bytes_seen,
            passed: c.passed,
            dropped: c.dropped,
            captured: c.captured,
            capture_lost: c.capture_lost,
            rate_limited: c.rate_limited,
            sampled_out: c.sampled_out,
        }
    }
}

/// An older build's per-interface counts as the fields of a slot (the others zero).
impl From<&InterfaceCounters> for Counters {
    fn from(c: &InterfaceCounters) -> Self {
        Counters {
            seen: c.packets,
            bytes_seen: c.bytes,
            passed: c.passed,
            dropped: c.dropped,
            captured: c.captured,
            capture_lost: c.capture_lost,
            rate_limited: c.rate_limited,
            sampled_out: c.sampled_out,
            ..Counters::default()
        }
    }
}

/// One logged packet: what the event log shows, no packet bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// `CLOCK_TAI` nanoseconds when the program saw the packet.
    pub timestamp_ns: u64,
    /// Addresses as four words in network byte order; IPv4 uses word 0.
    pub src: [u32; 4],
    pub dst: [u32; 4],
    pub ifindex: u32,
    /// Rule that decided the verdict, 0 for the default verdict.
    pub rule_id: u32,
    /// Length of the whole frame.
    pub frame_len: u32,
    /// Ports for TCP and UDP; type and code for ICMP (see [`record_flags`]).
    pub src_port: u16,
    pub dst_port: u16,
    /// VLAN id of the outer tag (with [`record_flags::HAS_VLAN`]).
    pub vlan_id: u16,
    /// One of [`family`].
    pub family: u8,
    pub protocol: u8,
    pub tcp_flags: u8,
    pub verdict: u8,
    /// Bits of [`record_flags`].
    pub flags: u8,
    /// Low byte of [`Config::generation`]: the rule set `rule_id` belongs to.
    pub generation: u8,
    /// With [`record_flags::MONITOR`]: the monitor rule that marked the packet; else 0.
    pub shadow_rule_id: u32,
    pub _pad: u32,
}

/// Header of each capture record in the ring buffer; `cap_len` packet bytes follow it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CaptureHeader {
    /// `CLOCK_TAI` nanoseconds when the program saw the packet.
    pub timestamp_ns: u64,
    pub ifindex: u32,
    pub rx_queue: u32,
    /// Length of the whole frame, including any XDP fragments.
    pub orig_len: u32,
    /// Packet bytes that follow this header.
    pub cap_len: u32,
    /// Rule that decided the verdict, 0 for the default verdict.
    pub rule_id: u32,
    /// One of [`verdict`].
    pub verdict: u8,
    /// Bits of [`record_flags`].
    pub flags: u8,
    /// Low byte of [`Config::generation`]: the rule set `rule_id` belongs to.
    pub generation: u8,
    pub _pad: u8,
    /// With [`record_flags::MONITOR`]: the monitor rule that marked the packet; else 0.
    pub shadow_rule_id: u32,
    pub _pad2: u32,
}

pub const CAPTURE_HEADER_LEN: usize = size_of::<CaptureHeader>();

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<Config>() == 112);
    assert!(offset_of!(Config, features) == 104);
    assert!(offset_of!(Config, sample) == 88);
    assert!(offset_of!(Config, capture_filter) == 92);
    assert!(offset_of!(Config, log_filter) == 96);
    assert!(offset_of!(Config, filter_translated) == 100);
    assert!(offset_of!(Config, rules_compiled) == 108);
    assert!(size_of::<FilterInsn>() == 8);
    assert!(offset_of!(FilterInsn, k) == 4);
    assert!(offset_of!(Config, unclassifiable) == 80);
    assert!(offset_of!(Config, generation) == 84);
    assert!(offset_of!(Config, classify) == 20);
    assert!(offset_of!(Config, default_rate_interval_ns) == 32);
    assert!(offset_of!(Config, ifindexes) == 48);
    assert!(size_of::<RuleBits>() == RULE_WORDS * 8);
    assert!(size_of::<classify::AddrKeyData>() == 20);
    assert!(size_of::<Rule>() == 32);
    assert!(offset_of!(Rule, snaplen) == 24);
    assert!(offset_of!(Rule, sample) == 28);
    assert!(offset_of!(Rule, rate_tolerance_ns) == 8);
    assert!(offset_of!(Rule, id) == 16);
    assert!(offset_of!(Rule, verdict) == 20);
    assert!(offset_of!(Rule, log) == 21);
    assert!(offset_of!(Rule, kind) == 22);
    assert!(size_of::<SetClass>() == 2 * RULE_WORDS * 8);
    assert!(size_of::<SetGroup>() == 1024);
    assert!(size_of::<SetEntry>() == 32);
    assert!(offset_of!(SetEntry, addr) == 16);
    assert!(size_of::<SetMeta>() == 32 + 8 * sets::MAX_CLASSES as usize);
    assert!(offset_of!(SetMeta, class_masks) == 32);
    assert!(size_of::<Counters>() == 176);
    assert!(offset_of!(Counters, capture_no_writer) == 160);
    assert!(offset_of!(Counters, event_no_writer) == 168);
    assert!(offset_of!(Counters, sampled_out) == 144);
    assert!(offset_of!(Counters, not_selected) == 152);
    assert!(offset_of!(Counters, no_reader) == 104);
    assert!(offset_of!(Counters, unclassifiable) == 112);
    assert!(size_of::<RuleCounters>() == 32);
    assert!(offset_of!(RuleCounters, sampled_out) == 24);
    assert!(size_of::<InterfaceCounters>() == 64);
    assert!(offset_of!(InterfaceCounters, sampled_out) == 56);
    assert!(size_of::<Event>() == 72);
    assert!(offset_of!(Event, shadow_rule_id) == 64);
    assert!(offset_of!(Event, src) == 8);
    assert!(offset_of!(Event, dst) == 24);
    assert!(offset_of!(Event, ifindex) == 40);
    assert!(offset_of!(Event, rule_id) == 44);
    assert!(offset_of!(Event, frame_len) == 48);
    assert!(offset_of!(Event, src_port) == 52);
    assert!(offset_of!(Event, vlan_id) == 56);
    assert!(offset_of!(Event, family) == 58);
    assert!(offset_of!(Event, tcp_flags) == 60);
    assert!(offset_of!(Event, verdict) == 61);
    assert!(offset_of!(Event, flags) == 62);
    assert!(offset_of!(Event, generation) == 63);
    assert!(size_of::<CaptureHeader>() == 40);
    assert!(offset_of!(CaptureHeader, shadow_rule_id) == 32);
    assert!(offset_of!(CaptureHeader, ifindex) == 8);
    assert!(offset_of!(CaptureHeader, rx_queue) == 12);
    assert!(offset_of!(CaptureHeader, orig_len) == 16);
    assert!(offset_of!(CaptureHeader, cap_len) == 20);
    assert!(offset_of!(CaptureHeader, rule_id) == 24);
    assert!(offset_of!(CaptureHeader, verdict) == 28);
    assert!(offset_of!(CaptureHeader, flags) == 29);
    assert!(offset_of!(CaptureHeader, generation) == 30);
};

#[cfg(feature = "user")]
mod pod {
    use super::{walk::*, *};

    /// aya reads and writes these as map values, byte for byte.
    macro_rules! pod {
        ($($t:ty),* $(,)?) => {$(
            // SAFETY: repr(C), only integers, and no implicit padding (checked by the size
            // asserts above), so every bit pattern is a valid value.
            unsafe impl aya::Pod for $t {}
        )*};
    }

    pod!(
        Config,
        Rule,
        RuleBits,
        Counters,
        RuleCounters,
        InterfaceCounters,
        CaptureHeader,
        Event,
        SetClass,
        FieldBits,
        SetGroup,
        SetEntry,
        SetMeta,
        FilterInsn,
    );
    pod!(
        RuleExtraCounters,
        LimitParams,
        LimitKey,
        LimitState,
        SourceKey,
        SourceStats,
        SourceSlot,
        LimitNotice
    );
}
