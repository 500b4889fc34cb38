//! What the program writes for userspace, and the checks before it writes: the capture
//! and event records (ring buffer or perf), whether a recorder still reads them (its
//! heartbeat) and which of them it writes somewhere, and each rule's rate limit. The entry point (`main.rs`) decides which
//! records a packet gets; this module writes them.

use aya_ebpf::{
    bindings::BPF_F_CURRENT_CPU,
    btf_maps::{ArrayOfMaps, RingBuf as BtfRingBuf},
    helpers::generated::bpf_get_smp_processor_id,
    helpers::generated::{
        bpf_ktime_get_coarse_ns, bpf_ktime_get_ns, bpf_perf_event_output, bpf_ringbuf_discard,
        bpf_ringbuf_output, bpf_ringbuf_reserve, bpf_ringbuf_submit, bpf_xdp_load_bytes,
    },
    macros::{btf_map, map},
    maps::{Array, PerfEventArray, RingBuf},
    programs::XdpContext,
};
use xdpsieve_common::{
    CAPTURE_HEADER_LEN, CaptureHeader, Config, Event, MAX_SNAPLEN, READER_TIMEOUT_NS, RULE_SLOTS,
    reader, record_flags, transport,
};

use crate::{
    outcome::Outcome,
    parse::{Packet, special},
};

/// Rate limiter state per rule slot: the theoretical arrival time of the next record
/// (GCRA), in CLOCK_MONOTONIC ns. Shared by all CPUs.
#[map]
static RATE_LIMITER: Array<u64> = Array::with_max_entries(RULE_SLOTS, 0);

/// Capture records: one ring per CPU, indexed by CPU, so CPUs never share a ring's lock
/// or its producer position. Userspace makes the rings (`--ring-size` split between the
/// CPUs) and puts them in before the program runs; the inner definition is only the
/// template the kernel checks them against (a ring of any size matches it).
#[btf_map]
static CAPTURE_RINGS: ArrayOfMaps<BtfRingBuf<u8, 4096>, 1> = ArrayOfMaps::new();

/// Events; userspace sizes it at load time (`--ring-size`).
#[map]
static EVENT_RING: RingBuf = RingBuf::with_byte_size(8 * 1024 * 1024, 0);

/// What the recorder tells the program (slots: `xdpsieve_common::reader`). Its heartbeat:
/// CLOCK_MONOTONIC ns of its last sign of life, 0 when not tracked. The firewall outlives
/// its recorder (it is pinned); records made once the heartbeat is stale are counted as
/// `no_reader` instead of filling a ring nobody reads. And which streams a writer reads:
/// a record of another is counted as `capture_no_writer` or `event_no_writer`.
#[map]
static READER: Array<u64> = Array::with_max_entries(reader::SLOTS, 0);

#[map]
static CAPTURE_PERF: PerfEventArray<CaptureHeader> = PerfEventArray::new(0);

#[map]
static EVENT_PERF: PerfEventArray<Event> = PerfEventArray::new(0);

/// True when a recorder was tracked and its heartbeat is older than `READER_TIMEOUT_NS`.
/// Only the record path asks: the plain filter path never pays for it.
#[inline(always)]
pub(crate) fn reader_gone() -> bool {
    let Some(&heartbeat) = READER.get(reader::HEARTBEAT) else {
        return false;
    };
    if heartbeat == 0 {
        return false;
    }
    // The coarse clock (CLOCK_MONOTONIC at the last tick, a few ms behind at most) is
    // enough against a timeout of READER_TIMEOUT_NS and reads no hardware clock: the record
    // path's precise clock reads were a fifth of its cost under a flood (perf). Behind
    // the heartbeat, it only ever errs towards a live reader.
    // SAFETY: helper without arguments.
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    now > heartbeat && now - heartbeat > READER_TIMEOUT_NS
}

/// The record streams a writer of the run reads (bits of `reader`): those it published, or
/// every stream when it published nothing (a loader that reads its rings itself) or the
/// map has no such slot (a reload sharing an older run's map).
#[inline(always)]
pub(crate) fn streams_read() -> u64 {
    match READER.get(reader::WRITERS) {
        Some(&writers) if writers & reader::PUBLISHED != 0 => writers,
        _ => reader::CAPTURE | reader::EVENTS,
    }
}

/// GCRA token bucket: a burst of up to `tolerance_ns / interval_ns + 1` records, then one
/// per `interval_ns`.
/// The state is shared by all CPUs without a lock: under contention a few extra records
/// may pass, but every suppressed one is counted.
#[inline(always)]
pub(crate) fn rate_allows(slot: u32, interval_ns: u64, tolerance_ns: u64) -> bool {
    if interval_ns == 0 {
        return true;
    }
    let Some(tat) = RATE_LIMITER.get_ptr_mut(slot) else {
        return true;
    };
    // SAFETY: helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    // SAFETY: tat points into the map value for this slot.
    let current = unsafe { *tat };
    let start = if current > now { current } else { now };
    if start - now > tolerance_ns {
        return false;
    }
    // SAFETY: as above.
    unsafe { *tat = start + interval_ns };
    true
}

#[inline(always)]
pub(crate) fn record_flags(pkt: &Packet) -> u8 {
    let mut flags = 0;
    if pkt.malformed {
        flags |= record_flags::MALFORMED;
    }
    if pkt.has_ports != 0 {
        flags |= record_flags::HAS_PORTS;
    }
    if pkt.has_icmp != 0 {
        flags |= record_flags::HAS_ICMP;
    }
    if pkt.has_vlan != 0 {
        flags |= record_flags::HAS_VLAN;
    }
    if pkt.special & special::UNCLASSIFIABLE != 0 {
        flags |= record_flags::UNCLASSIFIABLE;
    }
    flags
}

#[inline(always)]
pub(crate) fn send_event(
    ctx: &XdpContext,
    cfg: &Config,
    pkt: &Packet,
    outcome: &Outcome,
    frame_len: usize,
    now: u64,
    flags: u8,
) -> bool {
    let (src_port, dst_port) = if pkt.has_icmp != 0 {
        (u16::from(pkt.icmp_type), u16::from(pkt.icmp_code))
    } else {
        (pkt.src_port, pkt.dst_port)
    };
    let event = Event {
        timestamp_ns: now,
        src: pkt.src,
        dst: pkt.dst,
        // SAFETY: ctx.ctx is the xdp_md the kernel passed to this program.
        ifindex: unsafe { (*ctx.ctx).ingress_ifindex },
        rule_id: outcome.rule_id,
        frame_len: frame_len as u32,
        src_port,
        dst_port,
        vlan_id: pkt.vlan_id,
        family: pkt.family,
        protocol: pkt.protocol,
        tcp_flags: pkt.tcp_flags,
        verdict: outcome.verdict,
        flags,
        generation: cfg.generation as u8,
        shadow_rule_id: outcome.shadow_id,
        _pad: 0,
    };
    let data = core::ptr::addr_of!(event).cast_mut().cast();
    let len = size_of::<Event>() as u64;
    // SAFETY: the event lives on the stack for the call; the maps are ours.
    unsafe {
        if cfg.transport == transport::PERF {
            let map = core::ptr::addr_of!(EVENT_PERF).cast_mut().cast();
            bpf_perf_event_output(ctx.ctx.cast(), map, BPF_F_CURRENT_CPU, data, len) == 0
        } else {
            let ring = core::ptr::addr_of!(EVENT_RING).cast_mut().cast();
            bpf_ringbuf_output(ring, data, len, 0) == 0
        }
    }
}

/// One capture record to send.
pub(crate) struct Record {
    pub frame_len: usize,
    pub now: u64,
    pub verdict: u8,
    pub rule_id: u32,
    /// The monitor rule that marked the packet, 0: none.
    pub shadow_rule_id: u32,
    pub flags: u8,
    /// Bytes to capture at most (the outcome's snap length).
    pub snaplen: u32,
}

/// Sends the header and the first `record.snaplen` bytes. Returns false when the record did not
/// fit (buffer full), so the caller counts it as lost.
#[inline(always)]
pub(crate) fn capture_packet(ctx: &XdpContext, cfg: &Config, record: &Record) -> bool {
    let wanted = core::cmp::min(record.frame_len as u32, record.snaplen);
    // The verifier must see 1 <= cap_len <= MAX_SNAPLEN on the register it checks; the
    // volatile read keeps LLVM from turning the check into a pointer compare, and the
    // checked value lives in its own binding so later uses are not re-read from memory.
    // SAFETY: reading a local.
    let cap_len = unsafe { core::ptr::read_volatile(&wanted) };
    #[expect(
        clippy::manual_range_contains,
        reason = "both bounds spelled out, as the verifier must see them"
    )]
    if cap_len < 1 || cap_len > MAX_SNAPLEN {
        return false;
    }
    let header = CaptureHeader {
        timestamp_ns: record.now,
        // SAFETY: ctx.ctx is the xdp_md the kernel passed to this program.
        ifindex: unsafe { (*ctx.ctx).ingress_ifindex },
        // SAFETY: as above.
        rx_queue: unsafe { (*ctx.ctx).rx_queue_index },
        orig_len: record.frame_len as u32,
        cap_len,
        rule_id: record.rule_id,
        verdict: record.verdict,
        flags: record.flags,
        generation: cfg.generation as u8,
        _pad: 0,
        shadow_rule_id: record.shadow_rule_id,
        _pad2: 0,
    };
    if cfg.transport == transport::PERF {
        // The XDP flavour of perf output appends cap_len packet bytes (fragments
        // included) after the header, straight from the packet: no copy here.
        let map = core::ptr::addr_of!(CAPTURE_PERF).cast_mut().cast();
        let flags = BPF_F_CURRENT_CPU | (u64::from(cap_len) << 32);
        let data = core::ptr::addr_of!(header).cast_mut().cast();
        // SAFETY: the header lives on the stack for the call.
        return unsafe {
            bpf_perf_event_output(ctx.ctx.cast(), map, flags, data, CAPTURE_HEADER_LEN as u64)
        } == 0;
    }
    // SAFETY: helper without arguments.
    let cpu = unsafe { bpf_get_smp_processor_id() };
    // The loader puts a ring in for every possible CPU before the program is attached;
    // were one missing, the record is counted lost, like one that did not fit.
    let Some(ring) = CAPTURE_RINGS.get(cpu) else {
        return false;
    };
    let ring: *mut core::ffi::c_void = core::ptr::from_ref(ring).cast_mut().cast();
    // One copy: reserve the record in the ring and load the packet bytes straight into it.
    // The verifier wants a constant reservation, so the record takes the smallest size
    // class that holds `cap_len` (the reader reads `cap_len` bytes and skips the rest).
    // Each class is its own branch: there the verifier knows 1 <= cap_len <= CLASS.
    macro_rules! by_class {
        ($($class:literal)*) => {
            $(
                if cap_len <= $class {
                    return reserve_and_fill::<$class>(ctx, ring, &header, cap_len);
                }
            )*
        };
    }
    by_class!(64 128 256 512 1024 1536 2048 4096 8192 16384);
    false
}

/// Size classes must cover every snap length.
const _: () = assert!(MAX_SNAPLEN == 16384);

/// Reserves a record of `CAPTURE_HEADER_LEN + CLASS` bytes, writes the header and loads the
/// first `cap_len` (<= CLASS) packet bytes behind it, then submits it; discards it if the
/// load fails. False when the ring had no room or the load failed.
#[inline(always)]
fn reserve_and_fill<const CLASS: u32>(
    ctx: &XdpContext,
    ring: *mut core::ffi::c_void,
    header: &CaptureHeader,
    cap_len: u32,
) -> bool {
    let size = CAPTURE_HEADER_LEN as u64 + u64::from(CLASS);
    // SAFETY: the ring is ours; the reservation is submitted or discarded on every path.
    unsafe {
        let record = bpf_ringbuf_reserve(ring, size, 0).cast::<u8>();
        if record.is_null() {
            return false;
        }
        // Ring records are 8-aligned, as the header is: an aligned write is five 8-byte
        // stores (write_unaligned copied it byte by byte, 80 instructions).
        core::ptr::write(record.cast::<CaptureHeader>(), *header);
        let data = record.add(CAPTURE_HEADER_LEN);
        if bpf_xdp_load_bytes(ctx.ctx, 0, data.cast(), cap_len) != 0 {
            bpf_ringbuf_discard(record.cast(), 0);
            return false;
        }
        bpf_ringbuf_submit(record.cast(), 0);
    }
    true
}
