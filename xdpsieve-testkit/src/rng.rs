//! The one random generator of the tests, the benchmarks and xtask: SplitMix64 (Steele,
//! Lea, Flood 2014), seeded, so that a failing case can be drawn again from its seed.
//!
//! Hand-written rather than a crate: a sequence named by its seed must stay the same
//! across dependency upgrades (the benchmarks' address sets are named by theirs, see
//! [`crate::prefix_gen`]), and this is tiny, fast and fixed forever. Not for secrets.

/// A seeded SplitMix64 generator; any seed, zero included.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub const fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0); the multiply-shift bias is below 2^-32 for our n.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// An index into a slice of `len` items (len > 0).
    pub fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    /// One of `items` (not empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.index(items.len())]
    }

    /// 128 random bits (an IPv6 address, say).
    pub fn bits128(&mut self) -> u128 {
        (u128::from(self.next_u64()) << 64) | u128::from(self.next_u64())
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    /// The first outputs for seed 0, as published with SplitMix64: the sets named by a seed
    /// depend on this sequence never changing.
    #[test]
    fn the_sequence_is_splitmix64() {
        let mut rng = Rng::new(0);
        assert_eq!(rng.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(rng.next_u64(), 0x6e78_9e6a_a1b9_65f4);
        assert_eq!(rng.next_u64(), 0x06c4_5d18_8009_454f);
    }

    #[test]
    fn draws_stay_in_range() {
        let mut rng = Rng::new(7);
        for n in [1u64, 2, 3, 10, 1 << 40] {
            assert!((0..1000).all(|_| rng.below(n) < n));
        }
        let items = ["a", "b", "c"];
        assert!((0..100).all(|_| items.contains(rng.pick(&items))));
        assert_eq!(rng.bytes(5).len(), 5);
    }
}
