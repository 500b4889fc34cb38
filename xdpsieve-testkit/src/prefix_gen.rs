//! Deterministic address sets for benchmarks and tests: IPv4 and IPv6 prefix sets of any size
//! whose prefix lengths and layout look like a real routing table or blocklist, always the
//! same for the same seed, plus a reference membership model and a `.netset` writer.
//!
//! It lives in the test kit so that the set benchmark, the set tests and any later tool all
//! draw the *same* sets. Its random generator is the kit's [`Rng`], fixed forever: a set
//! named by its seed must stay the same set, or measurements taken on different days would
//! not be of the same thing.
//!
//! Shape of a generated set:
//! - prefix lengths drawn from [`IPV4_LENGTH_SHARES`] / [`IPV6_LENGTH_SHARES`];
//! - a prefix is placed inside a shorter prefix already in the set (a more-specific, as about
//!   half of a BGP table is; sets therefore overlap), or inside one of a pool of "clusters"
//!   (/16 for IPv4, /32 for IPv6: the blocks of the organisations announcing many
//!   prefixes), or anywhere in the routed space;
//! - nothing overlaps the special-purpose ranges (private, loopback, multicast, ...) nor the
//!   documentation ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32):
//!   tests can add documentation prefixes to a generated set and know that every other
//!   documentation address is not a member.
//!
//! The addresses are public ones: use them in `BPF_PROG_TEST_RUN` frames and in userspace,
//! never as traffic on an interface (the network tests keep to documentation addresses).

use std::{
    collections::HashSet,
    fmt,
    io::{self, Write as _},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::Path,
};

use crate::rng::Rng;

/// The seed of the sets the benchmarks report on (issue 9).
pub const SEED: u64 = 0x5e75_0009_b9f3_c0de;

/// IPv4 prefix lengths in parts per million. Rounded from the IPv4 default-free zone's
/// length distribution as published by the CIDR Report / bgp.potaroo.net (2024, about
/// 1M routes: /24 about 60%, /22 about 11%, /23 about 9%, /21 and /20 about 4.5% each,
/// /16 about 1.3%, a handful of /8), with 5% of /25 to /32 added, mostly /32, as
/// blocklists (FireHOL level 1-4, Spamhaus DROP) hold single hosts and small blocks that a
/// routing table does not. The exact shares matter little to a lookup's cost; the
/// dominance of /24, the long tail of short prefixes and a share of host routes do.
pub const IPV4_LENGTH_SHARES: &[(u8, u32)] = &[
    (8, 15),
    (9, 15),
    (10, 40),
    (11, 110),
    (12, 330),
    (13, 650),
    (14, 1_300),
    (15, 2_300),
    (16, 13_000),
    (17, 8_000),
    (18, 13_500),
    (19, 24_000),
    (20, 43_000),
    (21, 44_000),
    (22, 110_000),
    (23, 87_000),
    (24, 602_740),
    (25, 1_500),
    (26, 1_500),
    (27, 1_500),
    (28, 1_500),
    (29, 1_500),
    (30, 1_000),
    (31, 500),
    (32, 41_000),
];

/// IPv6 prefix lengths in parts per million. Rounded from the IPv6 table of the CIDR
/// Report / bgp.potaroo.net (2024, about 200k routes: /48 about 45%, /32 about 12%, /44
/// about 10%, /40 about 7%, /36 about 4%, /29 and /28 as RIR allocations), with /56 to
/// /64 (end-site and subnet blocks) and a few /128 (single hosts) as blocklists have them.
pub const IPV6_LENGTH_SHARES: &[(u8, u32)] = &[
    (16, 50),
    (20, 950),
    (24, 1_000),
    (28, 20_000),
    (29, 30_000),
    (30, 5_000),
    (32, 120_000),
    (33, 10_000),
    (34, 10_000),
    (35, 8_000),
    (36, 40_000),
    (38, 8_000),
    (40, 70_000),
    (42, 8_000),
    (44, 100_000),
    (45, 5_000),
    (46, 20_000),
    (47, 10_000),
    (48, 400_000),
    (52, 4_000),
    (56, 40_000),
    (60, 10_000),
    (64, 50_000),
    (128, 10_000),
];

/// Ranges a generated set never touches (RFC 6890 special-purpose and documentation).
const IPV4_EXCLUDED: &[(u32, u8)] = &[
    (0x0000_0000, 8),  // 0.0.0.0/8
    (0x0a00_0000, 8),  // 10.0.0.0/8
    (0x6440_0000, 10), // 100.64.0.0/10
    (0x7f00_0000, 8),  // 127.0.0.0/8
    (0xa9fe_0000, 16), // 169.254.0.0/16
    (0xac10_0000, 12), // 172.16.0.0/12
    (0xc000_0000, 24), // 192.0.0.0/24
    (0xc000_0200, 24), // 192.0.2.0/24
    (0xc058_6300, 24), // 192.88.99.0/24
    (0xc0a8_0000, 16), // 192.168.0.0/16
    (0xc612_0000, 15), // 198.18.0.0/15
    (0xc633_6400, 24), // 198.51.100.0/24
    (0xcb00_7100, 24), // 203.0.113.0/24
    (0xe000_0000, 3),  // 224.0.0.0/3: multicast and reserved
];
const IPV6_EXCLUDED: &[(u128, u8)] = &[
    (0x2001_0000 << 96, 32), // Teredo
    (0x2001_0db8 << 96, 32), // documentation
];
/// Where IPv6 prefixes are drawn: the RIRs' main blocks (IANA, 2001::/16 shared).
const IPV6_REGIONS: &[(u128, u8)] = &[
    (0x2001 << 112, 16),
    (0x2400 << 112, 12),
    (0x2600 << 112, 12),
    (0x2800 << 112, 12),
    (0x2a00 << 112, 12),
    (0x2c00 << 112, 12),
];

/// One prefix of a generated set; host bits are always zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Prefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl Prefix {
    /// True when `addr` is inside this prefix.
    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self.addr, addr) {
            (IpAddr::V4(p), IpAddr::V4(a)) => {
                let m = mask(32, self.len);
                u128::from(u32::from(a)) & m == u128::from(u32::from(p))
            }
            (IpAddr::V6(p), IpAddr::V6(a)) => u128::from(a) & mask(128, self.len) == u128::from(p),
            _ => false,
        }
    }

    /// The last address inside the prefix (the first is `addr`): the edges a lookup gets
    /// wrong when it masks one bit too many or too few.
    pub fn last(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => {
                let host = !mask(32, self.len) as u32;
                IpAddr::V4(Ipv4Addr::from(u32::from(a) | host))
            }
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) | !mask(128, self.len))),
        }
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

fn mask(width: u32, len: u8) -> u128 {
    let all = if width == 128 {
        u128::MAX
    } else {
        (1u128 << width) - 1
    };
    if len == 0 {
        0
    } else if u32::from(len) >= width {
        all
    } else {
        all & !(all >> u32::from(len))
    }
}

/// A family's generation parameters, with addresses as right-aligned u128.
struct Family {
    width: u32,
    shares: &'static [(u8, u32)],
    excluded: Vec<(u128, u8)>,
    cluster_len: u8,
}

impl Family {
    fn v4() -> Family {
        Family {
            width: 32,
            shares: IPV4_LENGTH_SHARES,
            excluded: IPV4_EXCLUDED
                .iter()
                .map(|&(a, l)| (u128::from(a), l))
                .collect(),
            cluster_len: 16,
        }
    }

    fn v6() -> Family {
        Family {
            width: 128,
            shares: IPV6_LENGTH_SHARES,
            excluded: IPV6_EXCLUDED.to_vec(),
            cluster_len: 32,
        }
    }

    fn length(&self, rng: &mut Rng) -> u8 {
        let total: u64 = self.shares.iter().map(|&(_, w)| u64::from(w)).sum();
        let mut pick = rng.below(total);
        for &(len, weight) in self.shares {
            if pick < u64::from(weight) {
                return len;
            }
            pick -= u64::from(weight);
        }
        self.shares[self.shares.len() - 1].0
    }

    /// A random address in the routed space (not yet checked against the exclusions).
    fn anywhere(&self, rng: &mut Rng) -> u128 {
        if self.width == 32 {
            // 1.0.0.0 to 223.255.255.255: unicast.
            u128::from((1u64 << 24) + rng.below(223u64 << 24))
        } else {
            let (base, len) = IPV6_REGIONS[rng.below(IPV6_REGIONS.len() as u64) as usize];
            base | (rng.bits128() & !mask(128, len))
        }
    }

    fn excluded(&self, addr: u128, len: u8) -> bool {
        self.excluded.iter().any(|&(e, elen)| {
            let m = mask(self.width, len.min(elen));
            addr & m == e & m
        })
    }

    fn prefix(&self, addr: u128, len: u8) -> Prefix {
        let addr = if self.width == 32 {
            IpAddr::V4(Ipv4Addr::from(addr as u32))
        } else {
            IpAddr::V6(Ipv6Addr::from(addr))
        };
        Prefix { addr, len }
    }

    fn generate(&self, count: usize, seed: u64) -> Vec<Prefix> {
        let mut rng = Rng::new(seed);
        let mut seen: HashSet<(u128, u8)> = HashSet::with_capacity(count);
        let mut layout = Layout {
            made: Vec::with_capacity(count),
            clusters: Vec::new(),
            cluster_target: count / 32 + 1,
        };
        let mut attempts = 0usize;
        while layout.made.len() < count {
            let len = self.length(&mut rng);
            // A place already taken (or special) is drawn again at the same length, so
            // that collisions, frequent at the lengths of the clusters, do not skew the
            // shares.
            for _ in 0..8 {
                attempts += 1;
                assert!(
                    attempts < count * 50 + 10_000,
                    "prefix_gen: cannot draw {count} distinct prefixes (asked for more than \
                     the address space holds at these lengths)"
                );
                let addr = self.place(&mut rng, len, &mut layout);
                if !self.excluded(addr, len) && seen.insert((addr, len)) {
                    layout.made.push((addr, len));
                    break;
                }
            }
        }
        layout
            .made
            .into_iter()
            .map(|(a, l)| self.prefix(a, l))
            .collect()
    }

    /// Where a new prefix of `len` bits goes: its network address.
    fn place(&self, rng: &mut Rng, len: u8, layout: &mut Layout) -> u128 {
        let roll = rng.below(100);
        // (network, its length): what the new prefix goes inside.
        let mut base = None;
        // A more-specific of a prefix already in the set (about a quarter of draws).
        if roll < 25 && !layout.made.is_empty() {
            for _ in 0..3 {
                let (p, plen) = layout.made[rng.below(layout.made.len() as u64) as usize];
                if plen < len {
                    base = Some((p, plen));
                    break;
                }
            }
        }
        // In a cluster (an organisation's block), new or already used.
        if base.is_none() && roll < 70 {
            let clusters = &mut layout.clusters;
            let new = clusters.is_empty()
                || (clusters.len() < layout.cluster_target && rng.below(2) == 0);
            let cluster = if new {
                let c = self.anywhere(rng) & mask(self.width, self.cluster_len);
                clusters.push(c);
                c
            } else {
                clusters[rng.below(clusters.len() as u64) as usize]
            };
            base = Some((cluster, self.cluster_len));
        }
        // Random bits below the base (the base itself cut to `len` if it is longer).
        let addr = match base {
            Some((b, blen)) => {
                let m = mask(self.width, blen.min(len));
                (b & m) | (self.anywhere(rng) & !m)
            }
            None => self.anywhere(rng),
        };
        addr & mask(self.width, len)
    }
}

/// A set being drawn: the prefixes so far and the clusters they gather in.
struct Layout {
    made: Vec<(u128, u8)>,
    clusters: Vec<u128>,
    cluster_target: usize,
}

/// `count` distinct IPv4 prefixes (/8 to /32), the same for the same `seed`.
pub fn ipv4_set(count: usize, seed: u64) -> Vec<Prefix> {
    Family::v4().generate(count, seed)
}

/// `count` distinct IPv6 prefixes (/16 to /128), the same for the same `seed`.
pub fn ipv6_set(count: usize, seed: u64) -> Vec<Prefix> {
    Family::v6().generate(count, seed)
}

/// The reference model of membership: per prefix length, a hash set of the networks. An
/// address is a member if any prefix covers it (longest match not needed, but given).
#[derive(Default)]
pub struct Membership {
    v4: Vec<(u8, HashSet<u32>)>,
    v6: Vec<(u8, HashSet<u128>)>,
}

impl Membership {
    pub fn new(prefixes: &[Prefix]) -> Membership {
        let mut model = Membership::default();
        for p in prefixes {
            match p.addr {
                IpAddr::V4(a) => {
                    let net = u32::from(a) & mask(32, p.len) as u32;
                    insert_by_len(&mut model.v4, p.len, net);
                }
                IpAddr::V6(a) => {
                    insert_by_len(&mut model.v6, p.len, u128::from(a) & mask(128, p.len));
                }
            }
        }
        // Longest first, so that `longest_match` stops at the first hit.
        model.v4.sort_by_key(|b| std::cmp::Reverse(b.0));
        model.v6.sort_by_key(|b| std::cmp::Reverse(b.0));
        model
    }

    /// The length of the longest prefix covering `addr`, if any.
    pub fn longest_match(&self, addr: IpAddr) -> Option<u8> {
        match addr {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                self.v4
                    .iter()
                    .find(|(len, nets)| nets.contains(&(a & mask(32, *len) as u32)))
                    .map(|(len, _)| *len)
            }
            IpAddr::V6(a) => {
                let a = u128::from(a);
                self.v6
                    .iter()
                    .find(|(len, nets)| nets.contains(&(a & mask(128, *len))))
                    .map(|(len, _)| *len)
            }
        }
    }

    pub fn contains(&self, addr: IpAddr) -> bool {
        self.longest_match(addr).is_some()
    }
}

fn insert_by_len<T: std::hash::Hash + Eq>(by_len: &mut Vec<(u8, HashSet<T>)>, len: u8, net: T) {
    match by_len.iter_mut().find(|(l, _)| *l == len) {
        Some((_, nets)) => {
            nets.insert(net);
        }
        None => by_len.push((len, HashSet::from([net]))),
    }
}

/// `count` member addresses: each inside a random prefix of `prefixes` (random host bits;
/// one in eight is the prefix's first or last address, the edges a lookup gets wrong).
pub fn members(prefixes: &[Prefix], count: usize, rng: &mut Rng) -> Vec<IpAddr> {
    if prefixes.is_empty() {
        return Vec::new();
    }
    (0..count)
        .map(|_| {
            let p = prefixes[rng.below(prefixes.len() as u64) as usize];
            let host = match rng.below(8) {
                0 => 0,
                1 => u128::MAX,
                _ => rng.bits128(),
            };
            match p.addr {
                IpAddr::V4(a) => {
                    let m = mask(32, p.len);
                    let bits = (u128::from(u32::from(a)) & m) | (host & !m & 0xffff_ffff);
                    IpAddr::V4(Ipv4Addr::from(bits as u32))
                }
                IpAddr::V6(a) => {
                    let m = mask(128, p.len);
                    IpAddr::V6(Ipv6Addr::from((u128::from(a) & m) | (host & !m)))
                }
            }
        })
        .collect()
}

/// `count` addresses of the routed space (IPv6 if `ipv6`) that `model` says are not
/// members. Should the set cover nearly all of it, documentation addresses (never in a
/// generated set) make up the rest.
pub fn non_members(model: &Membership, ipv6: bool, count: usize, rng: &mut Rng) -> Vec<IpAddr> {
    let family = if ipv6 { Family::v6() } else { Family::v4() };
    let mut out = Vec::with_capacity(count);
    let mut attempts = 0;
    while out.len() < count {
        attempts += 1;
        let bits = family.anywhere(rng);
        let addr = if attempts > 1000 * count {
            // Documentation: 203.0.113.x / 2001:db8::x.
            let n = out.len() as u128;
            family.prefix(
                if ipv6 {
                    (0x2001_0db8 << 96) | n
                } else {
                    0xcb00_7100 | (n & 0xff)
                },
                family.width as u8,
            )
        } else if family.excluded(bits, family.width as u8) {
            continue;
        } else {
            family.prefix(bits, family.width as u8)
        };
        if !model.contains(addr.addr) {
            out.push(addr.addr);
        }
    }
    out
}

/// Writes `prefixes` as a FireHOL-style `.netset`: `#` comment lines first, then one
/// prefix per line, a bare address for a /32 or /128 (as the published lists do).
pub fn write_netset(path: &Path, prefixes: &[Prefix], title: &str) -> io::Result<()> {
    let file = std::fs::File::create(path)?;
    let mut out = io::BufWriter::with_capacity(1 << 20, file);
    writeln!(out, "# {title}")?;
    writeln!(
        out,
        "# {} prefixes generated by xdpsieve's prefix_gen (deterministic, not real data)",
        prefixes.len()
    )?;
    for p in prefixes {
        let host = matches!((p.addr, p.len), (IpAddr::V4(_), 32) | (IpAddr::V6(_), 128));
        if host {
            writeln!(out, "{}", p.addr)?;
        } else {
            writeln!(out, "{p}")?;
        }
    }
    out.flush()
}

#[cfg(test)]
mod tests;
