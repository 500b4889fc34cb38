//! Sampling of records (`--sample N`, a rule's `sample = N`): whether a packet selected for
//! recording is recorded, one in N per rule slot and CPU (the first, then every Nth after
//! it). It runs after the capture filter and before the reader check and the rate limit.
//!
//! A counter, not a random draw (`bpf_get_prandom_u32`): the counts are exact and
//! predictable (M packets at 1 in N on one CPU give exactly ceil(M / N) records, which
//! operators and tests can check against the file), and it costs one per-CPU map read and
//! write, no helper call and no shared cache line under a flood. Per CPU, so over C CPUs
//! the total may exceed ceil(M / N) by at most C - 1; what is exact always is records +
//! sampled_out = packets selected. The price of determinism: traffic that repeats with a
//! period dividing N is seen in one phase only.

use aya_ebpf::maps::PerCpuArray;

/// Whether this packet's records are kept, one in `every` (0 or 1: all). `positions` holds
/// per rule slot and CPU the packets seen since the last one kept.
#[inline(always)]
pub(crate) fn keeps(positions: &PerCpuArray<u32>, slot: u32, every: u32) -> bool {
    if every <= 1 {
        return true;
    }
    let Some(position) = positions.get_ptr_mut(slot) else {
        return true;
    };
    // SAFETY: per-CPU map value of this slot, ours for this program run.
    let current = unsafe { *position };
    let next = current + 1;
    // `>=`, not `==`: a position at or past `every` (a slot whose sampling changed) wraps
    // to 0 at once instead of counting up to u32::MAX.
    // SAFETY: as above.
    unsafe { *position = if next >= every { 0 } else { next } };
    current == 0
}
