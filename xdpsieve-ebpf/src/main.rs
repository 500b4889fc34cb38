//! The xdpsieve XDP program: parse each frame, evaluate the rules (first match wins), count
//! the outcome per CPU, and copy the packets userspace asked for into a ring buffer.
//!
//! Fail-open: a frame whose IP header cannot be read is passed and counted as malformed. A
//! frame whose IP header parsed but whose length fields lie, or whose L4 header is cut short,
//! is also counted as malformed; rules still match it on the fields that did parse (so an
//! attacker cannot slip past an address rule by truncating the UDP header), and port rules
//! never match it.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod parse;
#[cfg(target_arch = "bpf")]
mod rules;

#[cfg(target_arch = "bpf")]
mod program {
    use aya_ebpf::{
        helpers::generated::{
            bpf_ktime_get_tai_ns, bpf_ringbuf_output, bpf_xdp_get_buff_len, bpf_xdp_load_bytes,
        },
        macros::{map, xdp},
        maps::{Array, PerCpuArray, RingBuf},
        programs::XdpContext,
    };
    use xdpsieve_common::{
        CAPTURE_HEADER_LEN, CaptureBuffer, CaptureHeader, Config, Counters, MAX_RULES, MAX_SNAPLEN,
        Rule, capture, record_flags, verdict,
    };

    use crate::{parse, rules};

    /// Set by userspace before load (read-only data: the verifier treats it as constants).
    #[unsafe(no_mangle)]
    static CONFIG: Config = Config::DEFAULT;

    #[map]
    static RULES: Array<Rule> = Array::with_max_entries(MAX_RULES, 0);

    #[map]
    static COUNTERS: PerCpuArray<Counters> = PerCpuArray::with_max_entries(1, 0);

    /// Hits per rule index; slot 0 counts packets that fell to the default verdict.
    #[map]
    static RULE_HITS: PerCpuArray<u64> = PerCpuArray::with_max_entries(MAX_RULES + 1, 0);

    #[map]
    static CAPTURE_SCRATCH: PerCpuArray<CaptureBuffer> = PerCpuArray::with_max_entries(1, 0);

    /// Capture records; userspace sizes it at load time (`--ring-size`).
    #[map]
    static CAPTURE_RING: RingBuf = RingBuf::with_byte_size(8 * 1024 * 1024, 0);

    #[xdp(frags)]
    pub fn xdpsieve(ctx: XdpContext) -> u32 {
        filter(&ctx)
    }

    #[inline(always)]
    fn config() -> Config {
        // SAFETY: CONFIG is a plain static; the volatile read stops the compiler from folding
        // in the default value, so the loader's value is what the program sees.
        unsafe { core::ptr::read_volatile(&CONFIG) }
    }

    #[inline(always)]
    fn filter(ctx: &XdpContext) -> u32 {
        let cfg = config();
        // SAFETY: ctx.ctx is the xdp_md the kernel passed to this program.
        let frame_len = unsafe { bpf_xdp_get_buff_len(ctx.ctx) } as usize;
        let pkt = parse::parse(ctx, frame_len);

        let (verdict, rule_id, rule_slot) = if pkt.family == xdpsieve_common::family::NONE {
            // Non-IP frames (ARP, LLDP, ...) and unreadable IP headers always pass: dropping
            // ARP under a default-drop policy would cut the host off.
            (verdict::PASS, 0, u32::MAX)
        } else {
            match rules::first_match(&RULES, cfg.rule_count, &pkt) {
                Some(rule) => (rule.verdict, rule.id, rule.index + 1),
                None => (cfg.default_verdict as u8, 0, 0),
            }
        };

        let Some(counters) = COUNTERS.get_ptr_mut(0) else {
            return verdict as u32;
        };
        // SAFETY: the map value belongs to this CPU for the duration of the program.
        let counters = unsafe { &mut *counters };
        counters.seen += 1;
        counters.bytes_seen += frame_len as u64;
        if pkt.malformed {
            counters.malformed += 1;
        }
        if verdict == verdict::DROP {
            counters.dropped += 1;
            counters.bytes_dropped += frame_len as u64;
        } else {
            counters.passed += 1;
        }
        if rule_slot == u32::MAX {
            counters.non_ip += 1;
        } else if let Some(hits) = RULE_HITS.get_ptr_mut(rule_slot) {
            // SAFETY: per-CPU slot, as above.
            unsafe { *hits += 1 };
        }

        let wanted = if verdict == verdict::DROP {
            capture::DROPPED
        } else {
            capture::PASSED
        };
        if cfg.capture & wanted != 0 {
            let flags = if pkt.malformed {
                record_flags::MALFORMED
            } else {
                0
            };
            if capture_packet(ctx, &cfg, frame_len, verdict, rule_id, flags) {
                counters.captured += 1;
            } else {
                counters.capture_lost += 1;
            }
        }
        verdict as u32
    }

    /// Copies the header and the first `snaplen` bytes into the ring. Returns false when the
    /// record could not be written (ring full), so the caller counts it as lost.
    #[inline(always)]
    fn capture_packet(
        ctx: &XdpContext,
        cfg: &Config,
        frame_len: usize,
        verdict: u8,
        rule_id: u32,
        flags: u8,
    ) -> bool {
        let Some(buf) = CAPTURE_SCRATCH.get_ptr_mut(0) else {
            return false;
        };
        let wanted = core::cmp::min(frame_len as u32, cfg.snaplen);
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
        // SAFETY: buf points to this CPU's scratch value; cap_len fits its data array.
        unsafe {
            if bpf_xdp_load_bytes(ctx.ctx, 0, (*buf).data.as_mut_ptr().cast(), cap_len) != 0 {
                return false;
            }
            (*buf).header = CaptureHeader {
                timestamp_ns: bpf_ktime_get_tai_ns(),
                ifindex: (*ctx.ctx).ingress_ifindex,
                rx_queue: (*ctx.ctx).rx_queue_index,
                orig_len: frame_len as u32,
                cap_len,
                rule_id,
                verdict,
                flags,
                _pad: 0,
            };
            let record_len = CAPTURE_HEADER_LEN as u64 + cap_len as u64;
            // RingBuf is a transparent wrapper around the map definition the helper expects.
            let ring = core::ptr::addr_of!(CAPTURE_RING).cast_mut().cast();
            bpf_ringbuf_output(ring, buf.cast(), record_len, 0) == 0
        }
    }
}

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
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
