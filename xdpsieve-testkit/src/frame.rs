//! Frames built field by field, so every length and offset can be made to lie. Lengths the
//! caller does not override are computed from what is actually built; checksums stay zero
//! (the program never reads them).
//!
//! For the tests that run the XDP program on crafted frames (`BPF_PROG_TEST_RUN`, or
//! replayed raw over veth) and the `prog_cost` bench.

pub const ETH_P_IPV4: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86dd;
pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_LLDP: u16 = 0x88cc;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_8021AD: u16 = 0x88a8;

pub const ETH_HDR_LEN: usize = 14;
pub const IPV4_HDR_LEN: usize = 20;
pub const IPV6_HDR_LEN: usize = 40;

const DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
// Documentation addresses (RFC 5737, RFC 3849), for the headers the builder fills in itself.
const HOST4: [u8; 4] = [192, 0, 2, 10];
const PEER4: [u8; 4] = [192, 0, 2, 20];
const HOST6: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

#[derive(Clone, Debug)]
enum L4 {
    Tcp {
        src: u16,
        dst: u16,
    },
    Udp {
        src: u16,
        dst: u16,
    },
    /// Echo request.
    Icmp,
    /// Echo request.
    Icmp6,
    Raw {
        protocol: u8,
        bytes: Vec<u8>,
    },
}

impl L4 {
    fn protocol(&self) -> u8 {
        match self {
            L4::Tcp { .. } => 6,
            L4::Udp { .. } => 17,
            L4::Icmp => 1,
            L4::Icmp6 => 58,
            L4::Raw { protocol, .. } => *protocol,
        }
    }

    /// The header followed by `payload` filler bytes.
    fn bytes(&self, payload: usize) -> Vec<u8> {
        let mut b = Vec::new();
        match self {
            L4::Tcp { src, dst } => {
                b.extend(src.to_be_bytes());
                b.extend(dst.to_be_bytes());
                b.extend(1u32.to_be_bytes()); // sequence
                b.extend(0u32.to_be_bytes()); // acknowledgement
                b.extend([5 << 4, 0x02]); // data offset 5 words, SYN
                b.extend(65535u16.to_be_bytes());
                b.extend([0; 4]); // checksum, urgent pointer
            }
            L4::Udp { src, dst } => {
                b.extend(src.to_be_bytes());
                b.extend(dst.to_be_bytes());
                b.extend(((8 + payload) as u16).to_be_bytes());
                b.extend([0; 2]);
            }
            L4::Icmp => b.extend([8, 0, 0, 0, 0x12, 0x34, 0, 1]),
            L4::Icmp6 => b.extend([128, 0, 0, 0, 0x12, 0x34, 0, 1]),
            L4::Raw { bytes, .. } => b.extend(bytes),
        }
        b.resize(b.len() + payload, 0xa5);
        b
    }
}

/// An IPv6 extension header; its next-header byte is filled in when the chain is built.
#[derive(Clone, Debug)]
pub enum Ext {
    /// `(units + 1) * 8` bytes of padding options.
    HopByHop { units: u8 },
    /// `(units + 1) * 8` bytes of padding options.
    DestOpts { units: u8 },
    /// A type 2 routing header (24 bytes, length field 2).
    Routing,
    /// `offset` in 8-byte units.
    Fragment { offset: u16, more: bool },
    /// `(len + 2) * 4` bytes.
    Ah { len: u8 },
    /// Any header with any contents, to make its length field lie.
    Raw { number: u8, bytes: Vec<u8> },
}

impl Ext {
    fn number(&self) -> u8 {
        match self {
            Ext::HopByHop { .. } => 0,
            Ext::Routing => 43,
            Ext::Fragment { .. } => 44,
            Ext::Ah { .. } => 51,
            Ext::DestOpts { .. } => 60,
            Ext::Raw { number, .. } => *number,
        }
    }

    /// The header's bytes; `fragment_id` is what a fragment header carries.
    fn bytes(&self, next: u8, fragment_id: u32) -> Vec<u8> {
        match self {
            Ext::HopByHop { units } | Ext::DestOpts { units } => {
                let mut b = vec![next, *units];
                b.resize((usize::from(*units) + 1) * 8, 0);
                pad_options(&mut b[2..]);
                b
            }
            Ext::Routing => {
                let mut b = vec![next, 2, 2, 1, 0, 0, 0, 0];
                b.extend(HOST6);
                b
            }
            Ext::Fragment { offset, more } => {
                let mut b = vec![next, 0];
                b.extend(((offset << 3) | u16::from(*more)).to_be_bytes());
                b.extend(fragment_id.to_be_bytes());
                b
            }
            Ext::Ah { len } => {
                let mut b = vec![next, *len, 0, 0];
                b.extend(0x100u32.to_be_bytes()); // SPI
                b.extend(1u32.to_be_bytes()); // sequence
                b.resize((usize::from(*len) + 2) * 4, 0); // ICV
                b
            }
            Ext::Raw { bytes, .. } => {
                let mut b = bytes.clone();
                b[0] = next;
                b
            }
        }
    }
}

/// Fills an option area with valid PadN (and a trailing Pad1) options.
fn pad_options(mut area: &mut [u8]) {
    while area.len() >= 2 {
        let n = (area.len() - 2).min(255);
        area[0] = 1;
        area[1] = n as u8;
        area[2..2 + n].fill(0);
        area = &mut area[2 + n..];
    }
    if let Some(b) = area.first_mut() {
        *b = 0;
    }
}

#[derive(Clone, Debug)]
struct V4 {
    version: u8,
    ihl: Option<u8>,
    options: Vec<u8>,
    src: [u8; 4],
    dst: [u8; 4],
    flags_fragment: u16,
    total_len: Option<u16>,
    ident: u16,
}

impl V4 {
    fn packet(&self, protocol: u8, l4: &[u8]) -> Vec<u8> {
        let mut options = self.options.clone();
        options.resize(options.len().next_multiple_of(4), 0); // end-of-options
        let header_len = IPV4_HDR_LEN + options.len();
        let ihl = self.ihl.unwrap_or((header_len / 4) as u8);
        let total_len = self.total_len.unwrap_or((header_len + l4.len()) as u16);
        let mut p = vec![(self.version << 4) | (ihl & 0x0f), 0];
        p.extend(total_len.to_be_bytes());
        p.extend(self.ident.to_be_bytes());
        p.extend(self.flags_fragment.to_be_bytes());
        p.extend([64, protocol, 0, 0]);
        p.extend(self.src);
        p.extend(self.dst);
        p.extend(options);
        p.extend(l4);
        p
    }
}

#[derive(Clone, Debug)]
struct V6 {
    version: u8,
    src: [u8; 16],
    dst: [u8; 16],
    exts: Vec<Ext>,
    payload_len: Option<u16>,
    /// The identification its fragment headers carry.
    ident: u32,
}

impl V6 {
    fn packet(&self, protocol: u8, l4: &[u8]) -> Vec<u8> {
        let mut chain = Vec::new();
        for (i, ext) in self.exts.iter().enumerate() {
            let next = self.exts.get(i + 1).map_or(protocol, Ext::number);
            chain.extend(ext.bytes(next, self.ident));
        }
        chain.extend(l4);
        let first = self.exts.first().map_or(protocol, Ext::number);
        let payload_len = self.payload_len.unwrap_or(chain.len() as u16);
        let mut p = vec![self.version << 4, 0, 0, 0];
        p.extend(payload_len.to_be_bytes());
        p.extend([first, 64]);
        p.extend(self.src);
        p.extend(self.dst);
        p.extend(chain);
        p
    }
}

#[derive(Clone, Debug)]
enum L3 {
    V4(V4),
    V6(V6),
    Other { ethertype: u16, bytes: Vec<u8> },
}

/// An Ethernet frame: VLAN tags, an IPv4 or IPv6 packet (or any other ethertype), then
/// an L4 header and filler.
#[derive(Clone, Debug)]
pub struct Frame {
    tags: Vec<u16>,
    l3: L3,
    l4: L4,
    payload: usize,
    trailer: usize,
    truncate: Option<usize>,
}

impl Frame {
    fn with(l3: L3) -> Frame {
        Frame {
            tags: Vec::new(),
            l3,
            l4: L4::Udp {
                src: 40000,
                dst: 40001,
            },
            payload: 0,
            trailer: 0,
            truncate: None,
        }
    }

    /// IPv4, carrying UDP 40000 -> 40001 until told otherwise.
    pub fn ipv4(src: [u8; 4], dst: [u8; 4]) -> Frame {
        Frame::with(L3::V4(V4 {
            version: 4,
            ihl: None,
            options: Vec::new(),
            src,
            dst,
            flags_fragment: 0,
            total_len: None,
            ident: 0x1234,
        }))
    }

    /// IPv6, carrying UDP 40000 -> 40001 until told otherwise.
    pub fn ipv6(src: [u8; 16], dst: [u8; 16]) -> Frame {
        Frame::with(L3::V6(V6 {
            version: 6,
            src,
            dst,
            exts: Vec::new(),
            payload_len: None,
            ident: 0xdead_beef,
        }))
    }

    /// Any ethertype with `bytes` after the Ethernet header.
    pub fn ethertype(ethertype: u16, bytes: &[u8]) -> Frame {
        Frame::with(L3::Other {
            ethertype,
            bytes: bytes.to_vec(),
        })
    }

    /// An ARP request (who has 192.0.2.20, tell 192.0.2.10).
    pub fn arp() -> Frame {
        let mut b = vec![0, 1, 0x08, 0x00, 6, 4, 0, 1];
        b.extend(SRC_MAC);
        b.extend(HOST4);
        b.extend([0; 6]);
        b.extend(PEER4);
        Frame::ethertype(ETH_P_ARP, &b)
    }

    /// An LLDP announcement: chassis id, port id, TTL, end.
    pub fn lldp() -> Frame {
        let mut b = vec![0x02, 0x07, 4]; // chassis id: a MAC address
        b.extend(SRC_MAC);
        b.extend([0x04, 0x03, 7, b'p', b'1']); // port id: local "p1"
        b.extend([0x06, 0x02, 0, 120]); // TTL 120 s
        b.extend([0, 0]); // end
        Frame::ethertype(ETH_P_LLDP, &b)
    }

    pub fn tcp(mut self, src: u16, dst: u16) -> Frame {
        self.l4 = L4::Tcp { src, dst };
        self
    }

    pub fn udp(mut self, src: u16, dst: u16) -> Frame {
        self.l4 = L4::Udp { src, dst };
        self
    }

    pub fn icmp(mut self) -> Frame {
        self.l4 = L4::Icmp;
        self
    }

    pub fn icmp6(mut self) -> Frame {
        self.l4 = L4::Icmp6;
        self
    }

    /// Any protocol number followed by exactly `bytes`.
    pub fn l4(mut self, protocol: u8, bytes: &[u8]) -> Frame {
        self.l4 = L4::Raw {
            protocol,
            bytes: bytes.to_vec(),
        };
        self
    }

    /// Adds a VLAN tag inside the ones already added (the first call is outermost).
    pub fn vlan(mut self, tpid: u16) -> Frame {
        self.tags.push(tpid);
        self
    }

    pub fn version(mut self, version: u8) -> Frame {
        match &mut self.l3 {
            L3::V4(v) => v.version = version,
            L3::V6(v) => v.version = version,
            L3::Other { .. } => panic!("version on a non-IP frame"),
        }
        self
    }

    /// Overrides the IHL field; the header actually built stays as long as its options.
    pub fn ihl(mut self, ihl: u8) -> Frame {
        self.v4().ihl = Some(ihl);
        self
    }

    pub fn options(mut self, bytes: &[u8]) -> Frame {
        self.v4().options = bytes.to_vec();
        self
    }

    /// `words` * 4 bytes of NOP options, so IHL is 5 + `words`.
    pub fn nop_options(self, words: usize) -> Frame {
        self.options(&vec![1; words * 4])
    }

    /// Fragment offset (8-byte units) and the more-fragments flag.
    pub fn fragment(mut self, offset: u16, more: bool) -> Frame {
        let v4 = self.v4();
        v4.flags_fragment = (v4.flags_fragment & 0x4000) | (u16::from(more) << 13) | offset;
        self
    }

    /// The IP identification: IPv4's 16-bit field (`id` is truncated), or the 32 bits of
    /// every IPv6 fragment header. Fragments of one datagram share it.
    pub fn ident(mut self, id: u32) -> Frame {
        match &mut self.l3 {
            L3::V4(v) => v.ident = id as u16,
            L3::V6(v) => v.ident = id,
            L3::Other { .. } => panic!("identification on a non-IP frame"),
        }
        self
    }

    /// Replaces the L4 header and payload with exactly `bytes` (a fragment's slice of the
    /// datagram), keeping the protocol number.
    pub fn l4_bytes(mut self, bytes: &[u8]) -> Frame {
        let protocol = self.l4.protocol();
        self.l4 = L4::Raw {
            protocol,
            bytes: bytes.to_vec(),
        };
        self.payload = 0;
        self
    }

    /// The L4 header and payload as built (what a datagram's fragments carry in slices).
    pub fn l4_payload(&self) -> Vec<u8> {
        self.l4.bytes(self.payload)
    }

    pub fn dont_fragment(mut self) -> Frame {
        self.v4().flags_fragment |= 0x4000;
        self
    }

    pub fn total_len(mut self, len: u16) -> Frame {
        self.v4().total_len = Some(len);
        self
    }

    pub fn ext(mut self, ext: Ext) -> Frame {
        self.v6().exts.push(ext);
        self
    }

    pub fn payload_len(mut self, len: u16) -> Frame {
        self.v6().payload_len = Some(len);
        self
    }

    /// Filler after the L4 header, counted in the IP and UDP lengths.
    pub fn payload(mut self, len: usize) -> Frame {
        self.payload = len;
        self
    }

    /// Sets the filler so that the whole frame is `len` bytes.
    pub fn pad_to(mut self, len: usize) -> Frame {
        self.payload = 0;
        let base = self.build().len();
        assert!(
            len >= base,
            "frame is already {base} bytes, cannot pad to {len}"
        );
        self.payload = len - base;
        self
    }

    /// Ethernet padding after the IP packet, not counted in any IP length.
    pub fn trailer(mut self, len: usize) -> Frame {
        self.trailer = len;
        self
    }

    /// Cuts the finished frame to `len` bytes; the length fields keep their full values.
    pub fn truncate(mut self, len: usize) -> Frame {
        self.truncate = Some(len);
        self
    }

    pub fn build(&self) -> Vec<u8> {
        let l4 = self.l4.bytes(self.payload);
        let (ethertype, l3) = match &self.l3 {
            L3::V4(v) => (ETH_P_IPV4, v.packet(self.l4.protocol(), &l4)),
            L3::V6(v) => (ETH_P_IPV6, v.packet(self.l4.protocol(), &l4)),
            L3::Other { ethertype, bytes } => (*ethertype, bytes.clone()),
        };
        let mut f = Vec::new();
        f.extend(DST_MAC);
        f.extend(SRC_MAC);
        for (i, tpid) in self.tags.iter().enumerate() {
            f.extend(tpid.to_be_bytes());
            f.extend((100 + i as u16).to_be_bytes()); // TCI: VLAN 100, 101, ...
        }
        f.extend(ethertype.to_be_bytes());
        f.extend(l3);
        f.resize(f.len() + self.trailer, 0);
        if let Some(len) = self.truncate {
            f.truncate(len);
        }
        f
    }

    fn v4(&mut self) -> &mut V4 {
        match &mut self.l3 {
            L3::V4(v) => v,
            _ => panic!("IPv4 field on a non-IPv4 frame"),
        }
    }

    fn v6(&mut self) -> &mut V6 {
        match &mut self.l3 {
            L3::V6(v) => v,
            _ => panic!("IPv6 field on a non-IPv6 frame"),
        }
    }
}

/// The built frame, so a table of cases can hold frames and raw bytes alike.
impl From<Frame> for Vec<u8> {
    fn from(frame: Frame) -> Vec<u8> {
        frame.build()
    }
}
