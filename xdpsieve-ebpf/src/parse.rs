//! Packet parsing: Ethernet, up to two VLAN tags, IPv4 (with options) or IPv6 (with its
//! extension-header chain), then the first bytes of TCP, UDP, ICMP or ICMPv6.
//!
//! Every packet read goes through [`load`], the one bounds-checked accessor. The parser
//! never trusts a length field beyond the bytes actually present: a length that lies marks
//! the packet malformed, and fields it could not read stay unknown so that no rule matches
//! them by accident.

use aya_ebpf::programs::XdpContext;
use xdpsieve_common::{MAX_IPV6_EXT_HEADERS, MAX_VLAN_TAGS, family};

const ETH_HDR_LEN: usize = 14;
const ETH_TYPE_OFFSET: usize = 12;
const VLAN_TAG_LEN: usize = 4;
const ETH_P_IPV4: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;

const IPV4_MIN_HDR_LEN: usize = 20;
const IPV4_TOTAL_LEN_OFFSET: usize = 2;
const IPV4_FRAG_OFFSET: usize = 6;
const IPV4_FRAG_OFFSET_MASK: u16 = 0x1fff;
const IPV4_TTL_OFFSET: usize = 8; // TTL, then protocol
const IPV4_SRC_OFFSET: usize = 12;
const IPV4_DST_OFFSET: usize = 16;

const IPV6_HDR_LEN: usize = 40;
const IPV6_PAYLOAD_LEN_OFFSET: usize = 4;
const IPV6_NEXT_HDR_OFFSET: usize = 6;
const IPV6_SRC_OFFSET: usize = 8;
const IPV6_DST_OFFSET: usize = 24;
const IPV6_FRAG_HDR_LEN: usize = 8;
const IPV6_FRAG_OFFSET_MASK: u16 = 0xfff8;

const IPPROTO_HOPOPTS: u8 = 0;
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ROUTING: u8 = 43;
const IPPROTO_FRAGMENT: u8 = 44;
const IPPROTO_AH: u8 = 51;
const IPPROTO_ICMPV6: u8 = 58;
const IPPROTO_DSTOPTS: u8 = 60;

const TCP_MIN_HDR_LEN: usize = 20;
/// Data offset, then the flags byte.
const TCP_FLAGS_OFFSET: usize = 12;
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
pub struct Packet {
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
    pub _pad: u8,
    pub vlan_id: u16,
}

const _: () = {
    assert!(core::mem::size_of::<Packet>() == 48);
    assert!(core::mem::offset_of!(Packet, src) == 4);
    assert!(core::mem::offset_of!(Packet, vlan_id) == 46);
};

impl Packet {
    /// All zero (`family::NONE` is 0), by six 8-byte stores. Volatile, because the compiler
    /// turns a zero literal into calls to `memset`: BPF-to-BPF calls on every packet.
    #[inline(always)]
    fn clear(&mut self) {
        const { assert!(family::NONE == 0) };
        let words = (self as *mut Packet).cast::<u64>();
        for i in 0..core::mem::size_of::<Packet>() / 8 {
            // SAFETY: in bounds, and Packet is 8-aligned.
            unsafe { core::ptr::write_volatile(words.add(i), 0) };
        }
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
    const { assert!(core::mem::size_of::<T>() >= 2) };
    let (start, end) = (frame.start, frame.end);
    if start + offset + core::mem::size_of::<T>() > end {
        return None;
    }
    // SAFETY: the range [start + offset, start + offset + size_of::<T>()) was just checked to
    // lie inside the packet. Its alignment may fall short of T's: see above.
    Some(unsafe { core::ptr::read((start + offset) as *const T) })
}

#[inline(always)]
fn load_be16(ctx: &Frame, offset: usize) -> Option<u16> {
    load::<u16>(ctx, offset).map(u16::from_be)
}

/// Parses `ctx`'s frame. `frame_len` is the whole frame's length (with XDP fragments).
#[inline(always)]
pub fn parse(xdp: &XdpContext, frame_len: usize, pkt: &mut Packet) {
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
        ETH_P_IPV6 => parse_ipv6(ctx, l3, frame_len, pkt),
        // A third tag is more than we strip: we cannot see the payload.
        ETH_P_8021Q | ETH_P_8021AD => pkt.malformed = true,
        _ => {}
    }
}

#[inline(always)]
fn parse_ipv4(ctx: &Frame, l3: usize, frame_len: usize, pkt: &mut Packet) {
    let (
        Some([ver_ihl, _tos]),
        Some(src),
        Some(dst),
        Some([_ttl, protocol]),
        Some(total_len),
        Some(frag),
    ) = (
        load::<[u8; 2]>(ctx, l3),
        load::<u32>(ctx, l3 + IPV4_SRC_OFFSET),
        load::<u32>(ctx, l3 + IPV4_DST_OFFSET),
        load::<[u8; 2]>(ctx, l3 + IPV4_TTL_OFFSET),
        load_be16(ctx, l3 + IPV4_TOTAL_LEN_OFFSET),
        load_be16(ctx, l3 + IPV4_FRAG_OFFSET),
    )
    else {
        pkt.malformed = true;
        return;
    };
    let header_len = ((ver_ihl & 0x0f) as usize) * 4;
    if ver_ihl >> 4 != 4 || header_len < IPV4_MIN_HDR_LEN {
        pkt.malformed = true;
        return;
    }
    pkt.family = family::IPV4;
    pkt.protocol = protocol;
    pkt.src[0] = src;
    pkt.dst[0] = dst;
    let total_len = total_len as usize;
    if total_len < header_len || l3 + total_len > frame_len {
        // The lengths lie: match on the addresses and protocol only, never on ports.
        pkt.malformed = true;
        return;
    }
    // Only the first fragment carries the L4 header; later ones must never match a port.
    if frag & IPV4_FRAG_OFFSET_MASK != 0 {
        return;
    }
    parse_l4(ctx, l3 + header_len, l3 + total_len, pkt);
}

#[inline(always)]
fn is_ipv6_extension(next_hdr: u8) -> bool {
    matches!(
        next_hdr,
        IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS | IPPROTO_AH | IPPROTO_FRAGMENT
    )
}

#[inline(always)]
fn parse_ipv6(ctx: &Frame, l3: usize, frame_len: usize, pkt: &mut Packet) {
    let (Some([ver, _]), Some(payload_len), Some([mut next_hdr, _hop_limit]), Some(src), Some(dst)) = (
        load::<[u8; 2]>(ctx, l3),
        load_be16(ctx, l3 + IPV6_PAYLOAD_LEN_OFFSET),
        load::<[u8; 2]>(ctx, l3 + IPV6_NEXT_HDR_OFFSET),
        load::<[u32; 4]>(ctx, l3 + IPV6_SRC_OFFSET),
        load::<[u32; 4]>(ctx, l3 + IPV6_DST_OFFSET),
    ) else {
        pkt.malformed = true;
        return;
    };
    if ver >> 4 != 6 {
        pkt.malformed = true;
        return;
    }
    pkt.family = family::IPV6;
    pkt.src = src;
    pkt.dst = dst;
    // A zero payload length with a hop-by-hop header announces a jumbogram (RFC 2675), whose
    // length sits in an option we do not read: bound it by the frame instead.
    let jumbogram = payload_len == 0 && next_hdr == IPPROTO_HOPOPTS;
    let l3_end = if jumbogram {
        frame_len
    } else {
        l3 + IPV6_HDR_LEN + payload_len as usize
    };
    if l3_end > frame_len {
        // The length lies: match on the addresses only, never on ports.
        pkt.malformed = true;
        return;
    }
    let mut offset = l3 + IPV6_HDR_LEN;
    let mut first_fragment = true;
    for _ in 0..MAX_IPV6_EXT_HEADERS {
        if !is_ipv6_extension(next_hdr) || !first_fragment {
            break;
        }
        // Every extension header starts with its next-header byte and a length byte.
        let Some([nh, len]) = load::<[u8; 2]>(ctx, offset) else {
            break;
        };
        let header_len = match next_hdr {
            IPPROTO_AH => (len as usize + 2) * 4,
            IPPROTO_FRAGMENT => match load_be16(ctx, offset + 2) {
                Some(frag) => {
                    // After a non-first fragment header comes payload, not headers: the
                    // walk stops there, so bytes forged to look like another fragment
                    // header can never make the packet look like a first fragment.
                    first_fragment = frag & IPV6_FRAG_OFFSET_MASK == 0;
                    IPV6_FRAG_HDR_LEN
                }
                None => break,
            },
            _ => (len as usize + 1) * 8,
        };
        next_hdr = nh;
        offset += header_len;
    }
    pkt.protocol = next_hdr;
    if !first_fragment {
        return;
    }
    if is_ipv6_extension(next_hdr) {
        // Either an extension header was cut short or the chain was longer than we walk.
        pkt.malformed = true;
        return;
    }
    parse_l4(ctx, offset, l3_end, pkt);
}

/// Reads ports (or ICMP type and code) from the L4 header at `offset`, which must end before
/// `l4_end` (the smaller of the IP length and the frame length).
#[inline(always)]
fn parse_l4(ctx: &Frame, offset: usize, l4_end: usize, pkt: &mut Packet) {
    let min_len = match pkt.protocol {
        IPPROTO_TCP => TCP_MIN_HDR_LEN,
        IPPROTO_UDP => UDP_HDR_LEN,
        IPPROTO_ICMP | IPPROTO_ICMPV6 => ICMP_MIN_HDR_LEN,
        _ => return,
    };
    if offset + min_len > l4_end {
        pkt.malformed = true;
        return;
    }
    if min_len == ICMP_MIN_HDR_LEN {
        // ICMP carries no ports (rules do not match on its type and code; the log shows them).
        if let Some([icmp_type, code]) = load::<[u8; 2]>(ctx, offset) {
            pkt.icmp_type = icmp_type;
            pkt.icmp_code = code;
            pkt.has_icmp = 1;
        }
        return;
    }
    if min_len == TCP_MIN_HDR_LEN
        && let Some([_data_offset, flags]) = load::<[u8; 2]>(ctx, offset + TCP_FLAGS_OFFSET)
    {
        pkt.tcp_flags = flags;
    }
    if let (Some(src), Some(dst)) = (load_be16(ctx, offset), load_be16(ctx, offset + 2)) {
        pkt.src_port = src;
        pkt.dst_port = dst;
        pkt.has_ports = 1;
    } else {
        // The IP length promised the header but the linear data ends first.
        pkt.malformed = true;
    }
}
