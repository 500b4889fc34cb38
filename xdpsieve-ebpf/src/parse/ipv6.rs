//! IPv6: the fixed header, then the extension-header chain, walked as far as the kernel
//! behind the firewall would: the first [`FAST_IPV6_EXT_HEADERS`] headers with direct reads
//! (what real traffic carries), then up to [`MAX_IPV6_EXT_HEADERS`] through
//! `bpf_xdp_load_bytes`. A chain the walk cannot finish makes the packet unclassifiable.

use aya_ebpf::{helpers::generated::bpf_xdp_load_bytes, programs::XdpContext};
use xdpsieve_common::{FAST_IPV6_EXT_HEADERS, MAX_IPV6_EXT_HEADERS, family};

use super::{
    Frame, IPPROTO_TCP, L4Bytes, Packet, TCP_OVERLAP_FRAGMENT_OFFSET, header, load, parse_l4,
    special,
};

const IPV6_HDR_LEN: usize = 40;
const IPV6_PAYLOAD_LEN_OFFSET: usize = 4;
const IPV6_NEXT_HDR_OFFSET: usize = 6;
const IPV6_SRC_OFFSET: usize = 8;
const IPV6_DST_OFFSET: usize = 24;
const IPV6_FRAG_HDR_LEN: usize = 8;
const IPV6_FRAG_OFFSET_MASK: u16 = 0xfff8;
const IPV6_MORE_FRAGMENTS: u16 = 0x0001;
const IPV6_FRAG_ID_OFFSET: usize = 4;

const IPPROTO_HOPOPTS: u8 = 0;
const IPPROTO_ROUTING: u8 = 43;
const IPPROTO_FRAGMENT: u8 = 44;
const IPPROTO_AH: u8 = 51;
const IPPROTO_DSTOPTS: u8 = 60;

#[inline(always)]
fn is_ipv6_extension(next_hdr: u8) -> bool {
    matches!(
        next_hdr,
        IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS | IPPROTO_AH | IPPROTO_FRAGMENT
    )
}

/// Where the IPv6 extension-header walk stands.
struct Chain {
    next_hdr: u8,
    offset: usize,
    /// False once a fragment header at a non-zero offset was read: what follows is payload.
    first_fragment: bool,
    /// An extension header could not be read (the helper walk sets it) or ran past the
    /// packet.
    cut: bool,
}

/// Steps over one extension header whose first four bytes are `bytes`: returns the header's
/// length, and records fragment headers in `pkt`. `id` reads the fragment identification.
#[inline(always)]
fn step_extension(
    chain: &mut Chain,
    bytes: [u8; 4],
    id: impl FnOnce() -> Option<u32>,
    pkt: &mut Packet,
) -> usize {
    let [nh, len, frag_hi, frag_lo] = bytes;
    let header_len = match chain.next_hdr {
        IPPROTO_AH => (len as usize + 2) * 4,
        IPPROTO_FRAGMENT => {
            let frag = u16::from_be_bytes([frag_hi, frag_lo]);
            // An atomic fragment (offset 0, no more fragments) is a whole datagram.
            if frag & (IPV6_FRAG_OFFSET_MASK | IPV6_MORE_FRAGMENTS) != 0 {
                pkt.fragment_id = id().unwrap_or(0);
                if frag & IPV6_FRAG_OFFSET_MASK != 0 {
                    // After a non-first fragment header comes payload, not headers: the walk
                    // stops there, so bytes forged to look like another fragment header can
                    // never make the packet look like a first fragment.
                    chain.first_fragment = false;
                    pkt.special |= special::LATER_FRAGMENT;
                    if nh == IPPROTO_TCP && frag >> 3 == TCP_OVERLAP_FRAGMENT_OFFSET {
                        pkt.special |= special::TINY_FRAGMENT | special::UNCLASSIFIABLE;
                    }
                } else {
                    pkt.special |= special::FIRST_FRAGMENT;
                }
            }
            IPV6_FRAG_HDR_LEN
        }
        _ => (len as usize + 1) * 8,
    };
    chain.next_hdr = nh;
    header_len
}

/// The fixed 40 bytes of an IPv6 header, fields in network byte order.
#[repr(C)]
#[derive(Clone, Copy)]
struct Ipv6Header {
    ver_class: [u8; 2],
    _flow: u16,
    payload_len: u16,
    next_hop: [u8; 2],
    src: [u32; 4],
    dst: [u32; 4],
}

const _: () = {
    assert!(size_of::<Ipv6Header>() == IPV6_HDR_LEN);
    assert!(core::mem::offset_of!(Ipv6Header, payload_len) == IPV6_PAYLOAD_LEN_OFFSET);
    assert!(core::mem::offset_of!(Ipv6Header, next_hop) == IPV6_NEXT_HDR_OFFSET);
    assert!(core::mem::offset_of!(Ipv6Header, src) == IPV6_SRC_OFFSET);
    assert!(core::mem::offset_of!(Ipv6Header, dst) == IPV6_DST_OFFSET);
};

#[inline(always)]
pub(super) fn parse_ipv6(
    xdp: &XdpContext,
    ctx: &Frame,
    l3: usize,
    frame_len: usize,
    pkt: &mut Packet,
) {
    // One bounds check for the fixed header (see `parse_ipv4`).
    // The addresses go from the packet straight into `pkt` (see `header`).
    let Some(hdr) = header::<Ipv6Header>(ctx, l3) else {
        pkt.malformed = true;
        return;
    };
    // SAFETY: `header` checked that the whole fixed header lies inside the packet (its
    // alignment may fall short of the struct's, as `load` explains).
    let hdr = unsafe { &*hdr };
    let [ver, _] = hdr.ver_class;
    let payload_len = u16::from_be(hdr.payload_len);
    let [next_hdr, _hop_limit] = hdr.next_hop;
    if ver >> 4 != 6 {
        pkt.malformed = true;
        return;
    }
    pkt.set_family(family::IPV6);
    // Word by word, with volatile reads: LLVM turns a copy of the arrays into a call to
    // `memcpy`, which BPF gets as a byte loop (about 230 instructions per packet).
    for i in 0..4 {
        // SAFETY: inside the checked header, as above.
        unsafe {
            pkt.src[i] = core::ptr::read_volatile(&hdr.src[i]);
            pkt.dst[i] = core::ptr::read_volatile(&hdr.dst[i]);
        }
    }
    // A zero payload length with a hop-by-hop header announces a jumbogram (RFC 2675), whose
    // length sits in an option we do not read: bound it by the frame instead.
    let jumbogram = payload_len == 0 && next_hdr == IPPROTO_HOPOPTS;
    let l3_end = if jumbogram {
        frame_len
    } else {
        l3 + IPV6_HDR_LEN + payload_len as usize
    };
    if l3_end > frame_len {
        // The length lies: match on the addresses only, never on ports. The protocol behind
        // the chain is unknown, so the packet is unclassifiable too.
        pkt.malformed = true;
        pkt.special |= special::UNCLASSIFIABLE;
        return;
    }
    let mut chain = Chain {
        next_hdr,
        offset: l3 + IPV6_HDR_LEN,
        first_fragment: true,
        cut: false,
    };
    // The first headers with direct reads: what real traffic carries. `ended` records that
    // the walk stopped at the chain's end (or at a later fragment's payload), so the common
    // packet does not test its protocol again below.
    let mut ended = false;
    for _ in 0..FAST_IPV6_EXT_HEADERS {
        if !is_ipv6_extension(chain.next_hdr) || !chain.first_fragment {
            ended = true;
            break;
        }
        // Every extension header starts with its next-header byte and a length byte (and a
        // fragment header then has its offset); a header is at least 8 bytes. Past the
        // linear data (XDP fragments) the helper walk below takes over.
        let Some(bytes) = load::<[u8; 4]>(ctx, chain.offset) else {
            break;
        };
        let offset = chain.offset;
        let header_len = step_extension(
            &mut chain,
            bytes,
            || load::<u32>(ctx, offset + IPV6_FRAG_ID_OFFSET).map(u32::from_be),
            pkt,
        );
        chain.offset += header_len;
    }
    if !ended && chain.first_fragment && is_ipv6_extension(chain.next_hdr) {
        // A longer chain (or one that leaves the linear data): the rare packet pays for the
        // rest of the walk, and for reading its L4 header through the helper.
        walk_long_chain(xdp, &mut chain, l3_end, pkt);
        pkt.protocol = chain.next_hdr;
        if chain.first_fragment {
            finish_chain(&chain, l3_end, pkt, &Helper(xdp));
        }
        return;
    }
    pkt.protocol = chain.next_hdr;
    if chain.first_fragment {
        finish_chain(&chain, l3_end, pkt, &LinearOrHelper { frame: ctx, xdp });
    }
}

/// After the walk (of a packet that is not a later fragment): the L4 header, if the chain
/// ended in one; else the packet is unclassifiable.
#[inline(always)]
fn finish_chain(chain: &Chain, l3_end: usize, pkt: &mut Packet, bytes: &impl L4Bytes) {
    if chain.cut || is_ipv6_extension(chain.next_hdr) || chain.offset > l3_end {
        // The chain was cut short, ran past the packet, or is longer than we walk: the
        // protocol behind it, let alone its ports, is unknown.
        pkt.special |= special::UNCLASSIFIABLE;
        if chain.cut || chain.offset > l3_end {
            pkt.malformed = true;
        }
        return;
    }
    parse_l4(bytes, chain.offset, l3_end, pkt);
}

/// Continues the walk past [`FAST_IPV6_EXT_HEADERS`] up to [`MAX_IPV6_EXT_HEADERS`], reading
/// through `bpf_xdp_load_bytes`: the offset is then only a helper argument, never packet
/// pointer arithmetic, so the verifier checks one iteration per loop step rather than
/// every path through the chain.
#[inline(always)]
fn walk_long_chain(xdp: &XdpContext, chain: &mut Chain, l3_end: usize, pkt: &mut Packet) {
    for _ in FAST_IPV6_EXT_HEADERS..MAX_IPV6_EXT_HEADERS {
        if !is_ipv6_extension(chain.next_hdr) || !chain.first_fragment {
            return;
        }
        if chain.offset + IPV6_FRAG_HDR_LEN > l3_end {
            chain.cut = true;
            return;
        }
        let Some(bytes) = load_bytes::<[u8; 4]>(xdp, chain.offset) else {
            chain.cut = true;
            return;
        };
        let offset = chain.offset;
        let header_len = step_extension(
            chain,
            bytes,
            || load_bytes::<[u8; 4]>(xdp, offset + IPV6_FRAG_ID_OFFSET).map(u32::from_be_bytes),
            pkt,
        );
        chain.offset += header_len;
    }
}

/// Copies a `T` at `offset` (anywhere in the frame, XDP fragments included). `T` must be
/// plain data, integers or byte arrays: any bit pattern is a value.
#[inline(always)]
fn load_bytes<T: Copy + Default>(xdp: &XdpContext, offset: usize) -> Option<T> {
    let mut value = T::default();
    // SAFETY: value is size_of::<T>() writable bytes on the stack, and any bytes make a T;
    // the helper checks the packet bounds.
    let rc = unsafe {
        bpf_xdp_load_bytes(
            xdp.ctx,
            offset as u32,
            (&raw mut value).cast(),
            size_of::<T>() as u32,
        )
    };
    (rc == 0).then_some(value)
}

/// The L4 header from the linear data, else through the helper: only a frame whose header
/// lies past the linear data (a long chain in a jumbo frame) pays for the fallback.
struct LinearOrHelper<'a> {
    frame: &'a Frame,
    xdp: &'a XdpContext,
}

impl L4Bytes for LinearOrHelper<'_> {
    #[inline(always)]
    fn at<T: Copy + Default>(&self, offset: usize) -> Option<T> {
        load::<T>(self.frame, offset).or_else(|| load_bytes::<T>(self.xdp, offset))
    }
}

/// The L4 header through the helper only (after the walk past the fast headers).
struct Helper<'a>(&'a XdpContext);

impl L4Bytes for Helper<'_> {
    #[inline(always)]
    fn at<T: Copy + Default>(&self, offset: usize) -> Option<T> {
        load_bytes::<T>(self.0, offset)
    }
}
