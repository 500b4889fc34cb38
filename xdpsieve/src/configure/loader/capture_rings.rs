//! One capture ring per CPU (`CAPTURE_RINGS`, an array of ring buffers indexed by CPU): a
//! CPU reserves its records in a ring of its own, so CPUs never wait on each other's ring
//! lock nor bounce its producer position between caches. The rings are made here, one for
//! each possible CPU, sized `--ring-size` / CPUs (rounded down to a power of two, at
//! least a page: the budget the operator set is the total), and put into the array before
//! the program runs. Each is pinned beside the array (`CAPTURE_RING_N`), so a takeover can
//! look into them without CAP_SYS_ADMIN, and a reload finds them again.

use std::path::Path;

use aya::{
    Ebpf,
    maps::{Map, MapData, of_maps::ArrayOfMaps},
};

use super::{LoaderError, shared::second_handle};

/// Slots of `CAPTURE_RINGS`: the possible CPUs, as `bpf_get_smp_processor_id` numbers them.
pub fn cpus() -> Result<u32, LoaderError> {
    let n = aya::util::nr_cpus().map_err(|(what, e)| {
        LoaderError::Load(format!("counting the possible CPUs ({what}): {e}"))
    })?;
    u32::try_from(n.max(1)).map_err(|e| LoaderError::Load(format!("CPU count: {e}")))
}

/// Bytes of each CPU's ring when the rings share `total` between `cpus`.
pub fn ring_bytes_per_cpu(total: u32, cpus: u32, page: u32) -> u32 {
    let share = total / cpus.max(1);
    if share < page {
        page
    } else {
        1 << share.ilog2()
    }
}

/// The pin name of CPU `cpu`'s ring (bpffs refuses names with a dot).
pub(crate) fn pin_name(cpu: u32) -> String {
    format!("CAPTURE_RING_{cpu}")
}

/// Makes each possible CPU's ring (`total` bytes between them) and puts it into
/// `CAPTURE_RINGS`; the rings, in CPU order.
pub(crate) fn fill(ebpf: &mut Ebpf, total: u32, page: u32) -> Result<Vec<MapData>, LoaderError> {
    let n = cpus()?;
    let bytes = ring_bytes_per_cpu(total, n, page);
    let map: &mut Map = ebpf
        .map_mut("CAPTURE_RINGS")
        .ok_or_else(|| LoaderError::Load("the object has no CAPTURE_RINGS map".into()))?;
    let mut outer = ArrayOfMaps::<&mut MapData, MapData>::try_from(map)
        .map_err(|e| LoaderError::Load(format!("opening CAPTURE_RINGS: {e}")))?;
    let mut rings = Vec::new();
    for cpu in 0..n {
        let obj = aya_obj::Map::new_from_params(
            aya_obj::generated::bpf_map_type::BPF_MAP_TYPE_RINGBUF as u32,
            0,
            0,
            bytes,
            0,
        );
        let ring = MapData::create(obj, "CAPTURE_RING", None).map_err(|e| {
            LoaderError::Load(format!(
                "making the {bytes}-byte capture ring of CPU {cpu}: {e} \
                 (a smaller --ring-size needs less locked memory)"
            ))
        })?;
        outer
            .set(cpu, &ring, 0)
            .map_err(|e| LoaderError::Load(format!("putting CPU {cpu}'s ring in place: {e}")))?;
        rings.push(ring);
    }
    Ok(rings)
}

/// The rings of the running program pinned in `dir` (a reload shares them).
pub(crate) fn pinned(dir: &Path) -> Result<Vec<MapData>, LoaderError> {
    (0..cpus()?)
        .map(|cpu| {
            let path = dir.join(pin_name(cpu));
            MapData::from_pin(&path).map_err(|e| {
                LoaderError::Load(format!(
                    "opening {}: {e}; the running firewall does not share its capture rings \
                     (started by an older xdpsieve?): restart it to reload",
                    path.display()
                ))
            })
        })
        .collect()
}

/// Second handles of `rings`, named for their pins.
pub(super) fn handles(rings: &[MapData]) -> Result<Vec<(String, Map)>, LoaderError> {
    (0u32..)
        .zip(rings)
        .map(|(cpu, ring)| {
            let name = pin_name(cpu);
            second_handle(&name, ring).map(|handle| (name, handle))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::ring_bytes_per_cpu;

    #[test]
    fn the_budget_is_split_between_cpus_in_powers_of_two() {
        const PAGE: u32 = 4096;
        assert_eq!(ring_bytes_per_cpu(8 << 20, 2, PAGE), 4 << 20);
        assert_eq!(ring_bytes_per_cpu(8 << 20, 3, PAGE), 2 << 20);
        assert_eq!(ring_bytes_per_cpu(8 << 20, 1, PAGE), 8 << 20);
        assert_eq!(ring_bytes_per_cpu(PAGE, 4, PAGE), PAGE);
        assert_eq!(ring_bytes_per_cpu(1 << 20, 0, PAGE), 1 << 20);
    }
}
