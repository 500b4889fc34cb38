//! Tests of the prefix generator: determinism, shape, exclusions, the membership model.

use super::*;

fn share(prefixes: &[Prefix], len: u8) -> f64 {
    prefixes.iter().filter(|p| p.len == len).count() as f64 / prefixes.len() as f64
}

#[test]
fn same_seed_same_set_other_seed_other_set() {
    assert_eq!(ipv4_set(2_000, SEED), ipv4_set(2_000, SEED));
    assert_eq!(ipv6_set(2_000, SEED), ipv6_set(2_000, SEED));
    assert_ne!(ipv4_set(2_000, SEED), ipv4_set(2_000, SEED + 1));
    assert_eq!(ipv4_set(1, SEED).len(), 1);
}

/// A digest of the benchmark's sets, so that a change to the generator (which would make
/// old and new measurements silently incomparable) fails here.
#[test]
fn the_benchmark_sets_do_not_change() {
    let digest = |set: &[Prefix]| {
        // FNV-1a over the text of every prefix.
        set.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, p| {
            p.to_string()
                .bytes()
                .chain([b'\n'])
                .fold(h, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
        })
    };
    let v4 = ipv4_set(10_000, SEED);
    let v6 = ipv6_set(10_000, SEED);
    assert_eq!(v4[0].to_string(), "202.29.104.0/22");
    assert_eq!(
        (digest(&v4), digest(&v6)),
        (PINNED_V4, PINNED_V6),
        "the generated sets changed: BENCHMARKS.md's set figures are of other sets"
    );
}

const PINNED_V4: u64 = 16_145_215_615_547_772_767;
const PINNED_V6: u64 = 12_835_865_962_407_726_953;

#[test]
fn ipv4_sets_are_distinct_clean_and_shaped_like_a_table() {
    let set = ipv4_set(100_000, SEED);
    assert_eq!(set.len(), 100_000);
    let distinct: HashSet<_> = set.iter().collect();
    assert_eq!(distinct.len(), set.len(), "duplicates");
    for p in &set {
        assert!((8..=32).contains(&p.len), "{p}");
        assert!(p.contains(p.addr), "{p}");
        let IpAddr::V4(a) = p.addr else {
            panic!("{p} is not IPv4")
        };
        let bits = u128::from(u32::from(a));
        assert_eq!(bits & !mask(32, p.len) & 0xffff_ffff, 0, "{p}: host bits");
        assert!(
            !Family::v4().excluded(bits, p.len),
            "{p} is special-purpose"
        );
    }
    let s24 = share(&set, 24);
    assert!((0.55..0.66).contains(&s24), "/24 share {s24}");
    assert!((0.09..0.13).contains(&share(&set, 22)));
    assert!((0.03..0.05).contains(&share(&set, 32)));
    // More-specifics: a good share of the prefixes lies inside another one.
    let model = Membership::new(&set);
    let nested = set.iter().filter(|p| shorter_cover(&model, p)).count();
    assert!(nested > set.len() / 10, "only {nested} nested prefixes");
}

/// True if a prefix shorter than `p` covers `p`'s network.
fn shorter_cover(model: &Membership, p: &Prefix) -> bool {
    let nets: &[(u8, HashSet<u32>)] = &model.v4;
    let IpAddr::V4(a) = p.addr else { return false };
    nets.iter()
        .any(|(len, n)| *len < p.len && n.contains(&(u32::from(a) & mask(32, *len) as u32)))
}

#[test]
fn ipv6_sets_are_distinct_clean_and_shaped_like_a_table() {
    let set = ipv6_set(50_000, SEED);
    assert_eq!(set.len(), 50_000);
    let distinct: HashSet<_> = set.iter().collect();
    assert_eq!(distinct.len(), set.len());
    for p in &set {
        assert!((16..=128).contains(&p.len), "{p}");
        let IpAddr::V6(a) = p.addr else {
            panic!("{p} is not IPv6")
        };
        let bits = u128::from(a);
        assert_eq!(bits & !mask(128, p.len), 0, "{p}: host bits");
        assert!(
            !Family::v6().excluded(bits, p.len),
            "{p} is special-purpose"
        );
        assert_eq!(bits >> 125, 1, "{p} is outside 2000::/3");
    }
    let s48 = share(&set, 48);
    assert!((0.36..0.46).contains(&s48), "/48 share {s48}");
    assert!(share(&set, 128) > 0.005);
}

#[test]
fn members_are_members_and_non_members_are_not() {
    for set in [ipv4_set(20_000, SEED), ipv6_set(20_000, SEED)] {
        let model = Membership::new(&set);
        let mut rng = Rng::new(7);
        let inside = members(&set, 2_000, &mut rng);
        assert!(inside.iter().all(|&a| model.contains(a)));
        let ipv6 = set[0].addr.is_ipv6();
        let outside = non_members(&model, ipv6, 2_000, &mut rng);
        assert_eq!(outside.len(), 2_000);
        for a in &outside {
            assert!(!model.contains(*a));
            assert!(!set.iter().any(|p| p.contains(*a)), "{a} is in the set");
        }
    }
}

#[test]
fn the_model_takes_the_longest_match_and_edges() {
    let p = |s: &str| {
        let (a, l) = s.split_once('/').expect("prefix");
        Prefix {
            addr: a.parse().expect("address"),
            len: l.parse().expect("length"),
        }
    };
    let set = [p("198.51.0.0/16"), p("198.51.100.0/24"), p("2001:db8::/32")];
    let model = Membership::new(&set);
    let ip = |s: &str| s.parse::<IpAddr>().expect("address");
    assert_eq!(model.longest_match(ip("198.51.100.255")), Some(24));
    assert_eq!(model.longest_match(ip("198.51.0.0")), Some(16));
    assert_eq!(model.longest_match(ip("198.51.255.255")), Some(16));
    assert_eq!(model.longest_match(ip("198.52.0.0")), None);
    assert_eq!(model.longest_match(ip("2001:db8:ffff::1")), Some(32));
    assert_eq!(model.longest_match(ip("2001:db9::")), None);
    assert_eq!(set[1].last(), ip("198.51.100.255"));
    assert_eq!(set[2].last(), ip("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"));
    let host = p("192.0.2.1/32");
    assert_eq!(host.last(), host.addr);
    // An IPv4 prefix never covers an IPv6 address, nor the other way round.
    assert_eq!(model.longest_match(ip("::ffff:198.51.100.1")), None);
}

#[test]
fn netset_files_hold_one_prefix_a_line_and_bare_hosts() {
    let dir = std::env::temp_dir().join(format!("xdpsieve-prefix-gen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("t.netset");
    let set = [
        Prefix {
            addr: "192.0.2.0".parse().expect("v4"),
            len: 24,
        },
        Prefix {
            addr: "192.0.2.7".parse().expect("v4"),
            len: 32,
        },
        Prefix {
            addr: "2001:db8::".parse().expect("v6"),
            len: 48,
        },
        Prefix {
            addr: "2001:db8::1".parse().expect("v6"),
            len: 128,
        },
    ];
    write_netset(&path, &set, "test set").expect("writing");
    let text = std::fs::read_to_string(&path).expect("reading");
    let _ = std::fs::remove_dir_all(&dir);
    let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        lines,
        ["192.0.2.0/24", "192.0.2.7", "2001:db8::/48", "2001:db8::1"]
    );
    assert!(text.starts_with("# test set\n"));
}
