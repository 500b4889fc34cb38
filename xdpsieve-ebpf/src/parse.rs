//! Packet parsing: Ethernet, up to two VLAN tags, IPv4 (with options) or IPv6 (with its
//! extension-header chain), then the first bytes of TCP, UDP, ICMP or ICMPv6.
//!
//! Every packet read goes through [`load`], the one bounds-checked accessor (or, past the
//! first `FAST_IPV6_EXT_HEADERS` extension headers, through `bpf_xdp_load_bytes`). The
//! parser never trusts a length field beyond the bytes actually present: a length that lies
//! marks the packet malformed, and fields it could not read stay unknown so that no rule
//! matches them by accident.
//!
//! The parser judges a packet on what the host behind the firewall will see: when it
//! cannot reach the L4 header the rules need, it marks the packet *unclassifiable*
//! ([`special::UNCLASSIFIABLE`]) rather than letting it slip past port rules; fragments are
//! marked so that the filter can give later fragments their first fragment's verdict.

mod ipv6;

use aya_ebpf::programs::XdpContext;
use xdpsieve_common::{MAX_VLAN_TAGS, family};

const ETH_HDR_LEN: usize = 14;
const ETH_TYPE_OFFSET: usize = 12;
const VLAN_TAG_LEN: usize = 4;
const ETH_P_IPV4: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;

const IPV4_MIN_HDR_LEN: usize = 20;
const IPV4_TOTAL_LEN_OFFSET: usize = 2;
/// Identification, then flags and fragment offset.
const IPV4_ID_OFFSET: usize = 4;
const IPV4_FRAG_OFFSET_MASK: u16 = 0x1fff;
const IPV4_MORE_FRAGMENTS: u16 = 0x2000;
const IPV4_TTL_OFFSET: usize = 8; // TTL, then protocol
const IPV4_SRC_OFFSET: usize = 12;
const IPV4_DST_OFFSET: usize = 16;

const IPPROTO_ICMP: u8 = 1;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ICMPV6: u8 = 58;

const TCP_MIN_HDR_LEN: usize = 20;
/// Data offset, then the flags byte.
const TCP_FLAGS_OFFSET: usize = 12;
/// Bytes of TCP header a first fragment must carry for the flags to be in it (RFC 1858).
const TCP_FLAGS_END: usize = TCP_FLAGS_OFFSET + 2;
/// Source and destination port: what a rule needs of a TCP or UDP header.
const PORTS_LEN: usize = 4;
/// A TCP fragment at this offset (8 bytes, in 8-byte units) can only serve to overwrite the
/// first fragment's flags: RFC 1858's overlapping-fragment attack.
const TCP_OVERLAP_FRAGMENT_OFFSET: u16 = 1;
const UDP_HDR_LEN: usize = 8;
/// Type, code and checksum: enough to classify any ICMP message.
const ICMP_MIN_HDR_LEN: usize = 4;

/// What the parser learned about one frame, written straight into a per-CPU map value
/// (see `filter`). `repr(C)` with its padding spelled out and 8-aligned, so [`clear`]
/// can zero it with six stores.
///
/// [`clear`]: Packet::clear
#[repr(C, align(8))]
#[derive(Clone, Copy)]
pub(crate) struct Packet {
    /// One of [`family`]; `NONE` for non-IP frames and for IP headers that could not be read.
    pub family: u8,
    pub protocol: u8,
    /// 1 when a TCP or UDP header was present and read (never for non-first fragments).
    /// A u8 rather than a bool so rule matching can use it in arithmetic.
    pub has_ports: u8,
    /// The frame is inconsistent: truncated header, lying length, bad version or IHL, too
    /// many VLAN tags or extension headers.
    pub malformed: bool,
    pub src: [u32; 4],
    pub dst: [u32; 4],
    pub src_port: u16,
    pub dst_port: u16,
    /// 1 when ICMP or ICMPv6 type and code were read.
    pub has_icmp: u8,
    pub icmp_type: u8,
    pub icmp_code: u8,
    pub tcp_flags: u8,
    /// 1 when the frame had a VLAN tag; `vlan_id` is the outer tag's.
    pub has_vlan: u8,
    /// Bits of [`special`]: 0 for the common packet, so the filter tests one byte to know
    /// whether it must look at fragments or unclassifiable packets at all.
    pub special: u8,
    pub vlan_id: u16,
    /// The IP identification (IPv4: 16 bits; IPv6: the fragment header's 32). Only written,
    /// and only meaningful, when `special` has a fragment bit: [`Packet::clear`] leaves it.
    pub fragment_id: u32,
    pub _pad: u32,
}

/// Bits of [`Packet::special`].
pub(crate) mod special {
    /// The first fragment of a fragmented datagram (offset 0, more fragments follow).
    pub(crate) const FIRST_FRAGMENT: u8 = 1 << 0;
    /// A fragment at a non-zero offset: no L4 header, only payload.
    pub(crate) const LATER_FRAGMENT: u8 = 1 << 1;
    /// The rules need an L4 header the parser could not reach.
    pub(crate) const UNCLASSIFIABLE: u8 = 1 << 2;
    /// A TCP fragment too short for the flags, or at offset 8 (RFC 1858); also unclassifiable.
    pub(crate) const TINY_FRAGMENT: u8 = 1 << 3;
    /// No IP header the parser could read (`family::NONE`): no rule looks at the frame.
    /// [`Packet::clear`] sets it and [`Packet::set_family`] clears it, so that the filter
    /// finds every frame that leaves the common path by testing this one byte.
    ///
    /// [`Packet::clear`]: super::Packet::clear
    /// [`Packet::set_family`]: super::Packet::set_family
    pub(crate) const NOT_IP: u8 = 1 << 4;
}

/// Bytes [`Packet::clear`] writes: everything but `fragment_id`.
const CLEARED_LEN: usize = 48;

/// The 8-byte word of `Packet` that holds `special`, and that word's value with
/// `special == NOT_IP` and every other byte zero (BPF here is little-endian).
const SPECIAL_WORD: usize = core::mem::offset_of!(Packet, special) / 8;
const SPECIAL_WORD_NOT_IP: u64 =
    (special::NOT_IP as u64) << (8 * (core::mem::offset_of!(Packet, special) % 8));
const _: () = assert!(cfg!(target_endian = "little"));

const _: () = {
    assert!(size_of::<Packet>() == 56);
    assert!(core::mem::offset_of!(Packet, src) == 4);
    assert!(core::mem::offset_of!(Packet, vlan_id) == 46);
    assert!(core::mem::offset_of!(Packet, fragment_id) == CLEARED_LEN);
};

impl Packet {
    /// All zero (`family::NONE` is 0) up to `fragment_id` but for `special`, which says
    /// [`special::NOT_IP`] until a family is set: six 8-byte stores. Volatile, because the
    /// compiler turns a zero literal into calls to `memset`: BPF-to-BPF calls on every
    /// packet.
    #[inline(always)]
    fn clear(&mut self) {
        const { assert!(family::NONE == 0) };
        let words = core::ptr::from_mut(self).cast::<u64>();
        for i in 0..CLEARED_LEN / 8 {
            let word = if i == SPECIAL_WORD {
                SPECIAL_WORD_NOT_IP
            } else {
                0
            };
            // SAFETY: in bounds, and Packet is 8-aligned.
            unsafe { core::ptr::write_volatile(words.add(i), word) };
        }
    }

    /// The packet is IP, of `family`: it goes on to the rules.
    #[inline(always)]
    fn set_family(&mut self, family: u8) {
        self.family = family;
        self.special = 0;
    }
}

/// The linear part of the frame: `start..end` in the kernel's address space.
struct Frame {
    start: usize,
    end: usize,
}

/// Reads a `T` at `offset` bytes into the packet's linear data, or `None` past its end.
///
/// `T` must be at least two bytes: for a one-byte read LLVM folds `p + 1 > end` into
/// `p >= end`, from which the verifier derives no readable range. Read byte pairs instead.
///
/// The read is a plain load of `T`'s size, as C XDP programs do with `iph->saddr`, although
/// header fields are only 2-aligned (Ethernet's 14 bytes shift them): the verifier allows
/// unaligned packet loads on machines that do them in hardware (x86, arm64), and the JIT
/// emits one instruction. An unaligned read would have the compiler assemble each field
/// from byte loads, shifts and ORs, which cost a third of the program's time.
#[inline(always)]
fn load<T: Copy>(frame: &Frame, offset: usize) -> Option<T> {
    // SAFETY: `header` checked that a whole T lies there. Its alignment may fall short of
    // T's: see above.
    header::<T>(frame, offset).map(|at| unsafe { core::ptr::read(at) })
}

/// Where a `T` lies at `offset` bytes into the packet's linear data, or `None` past its
/// end: one bounds check, after which its fields are read straight from the packet where
/// they are needed. [`load`] would copy the whole `T` first: for an IPv6 header, whose
/// addresses go on to the parse result, that was a copy onto the stack and a second one
/// from it (about 40 instructions per packet). Same rules as `load` on size and alignment.
#[inline(always)]
fn header<T: Copy>(frame: &Frame, offset: usize) -> Option<*const T> {
    const { assert!(size_of::<T>() >= 2) };
    let (start, end) = (frame.start, frame.end);
    if start + offset + size_of::<T>() > end {
        return None;
    }
    Some((start + offset) as *const T)
}

#[inline(always)]
fn load_be16(ctx: &Frame, offset: usize) -> Option<u16> {
    load::<u16>(ctx, offset).map(u16::from_be)
}

/// Parses `ctx`'s frame. `frame_len` is the whole frame's length (with XDP fragments).
#[inline(always)]
pub(crate) fn parse(xdp: &XdpContext, frame_len: usize, pkt: &mut Packet) {
    // The bounds of the linear data, read from the context once.
    let frame = Frame {
        start: xdp.data(),
        end: xdp.data_end(),
    };
    let ctx = &frame;
    pkt.clear();
    let Some(mut ether_type) = load_be16(ctx, ETH_TYPE_OFFSET) else {
        pkt.malformed = true;
        return;
    };
    let mut l3 = ETH_HDR_LEN;
    for _ in 0..MAX_VLAN_TAGS {
        if ether_type != ETH_P_8021Q && ether_type != ETH_P_8021AD {
            break;
        }
        // The tag's TCI comes first, then the encapsulated ethertype.
        let (Some(tci), Some(inner)) = (load_be16(ctx, l3), load_be16(ctx, l3 + 2)) else {
            pkt.malformed = true;
            return;
        };
        if pkt.has_vlan == 0 {
            pkt.has_vlan = 1;
            pkt.vlan_id = tci & 0x0fff;
        }
        ether_type = inner;
        l3 += VLAN_TAG_LEN;
    }
    match ether_type {
        ETH_P_IPV4 => parse_ipv4(ctx, l3, frame_len, pkt),
        ETH_P_IPV6 => ipv6::parse_ipv6(xdp, ctx, l3, frame_len, pkt),
        // A third tag is more than we strip: we cannot see the payload.
        ETH_P_8021Q | ETH_P_8021AD => pkt.malformed = true,
        _ => {}
    }
}

/// The fixed 20 bytes of an IPv4 header, fields in network byte order.
#[repr(C)]
#[derive(Clone, Copy)]
struct Ipv4Header {
    ver_ihl_tos: [u8; 2],
    total_len: u16,
    /// Identification, then flags and fragment offset.
    id_frag: u32,
    ttl_protocol: [u8; 2],
    _checksum: u16,
    src: u32,
    dst: u32,
}

const _: () = {
    assert!(size_of::<Ipv4Header>() == IPV4_MIN_HDR_LEN);
    assert!(core::mem::offset_of!(Ipv4Header, total_len) == IPV4_TOTAL_LEN_OFFSET);
    assert!(core::mem::offset_of!(Ipv4Header, id_frag) == IPV4_ID_OFFSET);
    assert!(core::mem::offset_of!(Ipv4Header, ttl_protocol) == IPV4_TTL_OFFSET);
    assert!(core::mem::offset_of!(Ipv4Header, src) == IPV4_SRC_OFFSET);
    assert!(core::mem::offset_of!(Ipv4Header, dst) == IPV4_DST_OFFSET);
};

#[inline(always)]
fn parse_ipv4(ctx: &Frame, l3: usize, frame_len: usize, pkt: &mut Packet) {
    // One bounds check for the fixed header: with one per field, LLVM merges the checks
    // into the last one and reads fields on paths the verifier cannot rule out.
    let Some(hdr) = load::<Ipv4Header>(ctx, l3) else {
        pkt.malformed = true;
        return;
    };
    let [ver_ihl, _tos] = hdr.ver_ihl_tos;
    let [_ttl, protocol] = hdr.ttl_protocol;
    let (src, dst) = (hdr.src, hdr.dst);
    let total_len = u16::from_be(hdr.total_len);
    // Identification and flags/offset in one read: the common packet pays no extra load
    // for the identification only fragments need.
    let id_frag = u32::from_be(hdr.id_frag);
    let header_len = ((ver_ihl & 0x0f) as usize) * 4;
    if ver_ihl >> 4 != 4 || header_len < IPV4_MIN_HDR_LEN {
        pkt.malformed = true;
        return;
    }
    pkt.set_family(family::IPV4);
    pkt.protocol = protocol;
    pkt.src[0] = src;
    pkt.dst[0] = dst;
    let total_len = total_len as usize;
    let frag = id_frag as u16;
    let fragment_offset = frag & IPV4_FRAG_OFFSET_MASK;
    if total_len < header_len || l3 + total_len > frame_len {
        // The lengths lie: match on the addresses and protocol only, never on ports. (The
        // kernel drops such a packet; a TCP or UDP one is unclassifiable all the same.)
        pkt.malformed = true;
        if fragment_offset == 0 && needs_ports(protocol) {
            pkt.special |= special::UNCLASSIFIABLE;
        }
        return;
    }
    if frag & (IPV4_FRAG_OFFSET_MASK | IPV4_MORE_FRAGMENTS) != 0 {
        pkt.fragment_id = id_frag >> 16;
        if fragment_offset != 0 {
            // Only the first fragment carries the L4 header; later ones never match a port.
            pkt.special |= special::LATER_FRAGMENT;
            if protocol == IPPROTO_TCP && fragment_offset == TCP_OVERLAP_FRAGMENT_OFFSET {
                pkt.special |= special::TINY_FRAGMENT | special::UNCLASSIFIABLE;
            }
            return;
        }
        pkt.special |= special::FIRST_FRAGMENT;
    }
    parse_l4(ctx, l3 + header_len, l3 + total_len, pkt);
}

/// TCP and UDP: the protocols whose rules can have port conditions.
#[inline(always)]
fn needs_ports(protocol: u8) -> bool {
    protocol == IPPROTO_TCP || protocol == IPPROTO_UDP
}

/// Where [`parse_l4`] reads the L4 header: a `T` (`u16` or `u32`) at `offset`, its bytes as
/// they lie in memory, or `None` where it cannot. One load of the integer's width from the
/// packet, where a `[u8; 2]` took two byte loads, a shift and an OR. `Frame` reads the
/// linear data only; IPv6 adds the helper for headers past it (`ipv6`).
trait L4Bytes {
    /// `T` must be a plain integer: any bit pattern is a value.
    fn at<T: Copy + Default>(&self, offset: usize) -> Option<T>;
}

impl L4Bytes for Frame {
    #[inline(always)]
    fn at<T: Copy + Default>(&self, offset: usize) -> Option<T> {
        load::<T>(self, offset)
    }
}

/// Reads ports (or ICMP type and code) from the L4 header at `offset`, which must end before
/// `l4_end` (the IP packet's end; `bytes` fails past the frame's data). Both ports come
/// from one 4-byte read: one bounds check and one load.
///
/// A first fragment needs only its ports (the first 4 bytes) for port rules to apply; a TCP
/// first fragment without the flags byte is a tiny fragment (RFC 1858). A whole packet
/// whose TCP or UDP header is cut short is malformed, and unclassifiable.
#[inline(always)]
fn parse_l4(bytes: &impl L4Bytes, offset: usize, l4_end: usize, pkt: &mut Packet) {
    let min_len = match pkt.protocol {
        IPPROTO_TCP => TCP_MIN_HDR_LEN,
        IPPROTO_UDP => UDP_HDR_LEN,
        IPPROTO_ICMP | IPPROTO_ICMPV6 => ICMP_MIN_HDR_LEN,
        _ => return,
    };
    if min_len == ICMP_MIN_HDR_LEN {
        if offset + min_len > l4_end {
            pkt.malformed = true;
            return;
        }
        // ICMP carries no ports (rules do not match on its type and code; the log shows them).
        if let Some([icmp_type, code]) = bytes.at::<u16>(offset).map(u16::to_ne_bytes) {
            pkt.icmp_type = icmp_type;
            pkt.icmp_code = code;
            pkt.has_icmp = 1;
        }
        return;
    }
    let first_fragment = pkt.special & special::FIRST_FRAGMENT != 0;
    let needed = if first_fragment { PORTS_LEN } else { min_len };
    let Some(ports) = bytes.at::<u32>(offset) else {
        // Not even the ports are in the frame's data.
        pkt.malformed = true;
        pkt.special |= special::UNCLASSIFIABLE;
        return;
    };
    if offset + needed > l4_end {
        // The IP length ends inside the header the rules need.
        pkt.malformed = true;
        pkt.special |= special::UNCLASSIFIABLE;
        return;
    }
    let [src_hi, src_lo, dst_hi, dst_lo] = ports.to_ne_bytes();
    pkt.src_port = u16::from_be_bytes([src_hi, src_lo]);
    pkt.dst_port = u16::from_be_bytes([dst_hi, dst_lo]);
    pkt.has_ports = 1;
    if min_len == TCP_MIN_HDR_LEN {
        match bytes
            .at::<u16>(offset + TCP_FLAGS_OFFSET)
            .map(u16::to_ne_bytes)
        {
            Some([_data_offset, flags]) if offset + TCP_FLAGS_END <= l4_end => {
                pkt.tcp_flags = flags;
            }
            // A first fragment without its flags: RFC 1858's tiny fragment, which hides the
            // SYN from the first fragment and can only serve to evade.
            _ if first_fragment => {
                pkt.special |= special::TINY_FRAGMENT | special::UNCLASSIFIABLE;
            }
            // A whole header whose flags lie past the frame's linear data.
            _ => pkt.special |= special::UNCLASSIFIABLE,
        }
    }
}
