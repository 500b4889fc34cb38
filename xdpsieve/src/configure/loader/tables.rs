//! Writing the matching tables (see `configure::classify`) into a loaded program's maps,
//! before it is attached.

use aya::{
    Ebpf,
    maps::{Array, LpmTrie, lpm_trie::Key},
};
use xdpsieve_common::{FieldBits, RuleBits, classify::AddrKeyData};

use super::LoaderError;
use crate::configure::classify::Tables;

/// Fills the matching maps (see [`classify`]). Only what differs from the kernel's zero
/// fill is written: a port map entry per port outside class 0, a set per class. Every set
/// goes in with its summary, computed here and only here ([`FieldBits::of`]).
pub(super) fn write(ebpf: &mut Ebpf, tables: &Tables) -> Result<(), LoaderError> {
    fn array<'a, V: aya::Pod>(
        ebpf: &'a mut Ebpf,
        name: &str,
    ) -> Result<Array<&'a mut aya::maps::MapData, V>, LoaderError> {
        let map = ebpf
            .map_mut(name)
            .ok_or_else(|| LoaderError::Load(format!("the object has no {name} map")))?;
        Array::try_from(map).map_err(|e| LoaderError::Load(format!("{name}: {e}")))
    }
    let failed = |name: &str, e: aya::maps::MapError| {
        LoaderError::Load(format!("writing the rule table {name}: {e}"))
    };
    let mut write_sets = |name: &str, sets: &[RuleBits]| -> Result<(), LoaderError> {
        let mut map = array::<FieldBits>(ebpf, name)?;
        for (index, set) in sets.iter().enumerate() {
            if *set != RuleBits::EMPTY {
                map.set(index as u32, FieldBits::of(*set), 0)
                    .map_err(|e| failed(name, e))?;
            }
        }
        Ok(())
    };
    write_sets("PROTO_SETS", &tables.proto)?;
    write_sets("SRC_PORT_SETS", &tables.src_ports.sets)?;
    write_sets("DST_PORT_SETS", &tables.dst_ports.sets)?;
    for (name, ports) in [
        ("SRC_PORT_CLASS", &tables.src_ports),
        ("DST_PORT_CLASS", &tables.dst_ports),
    ] {
        let mut map = array::<u16>(ebpf, name)?;
        for (port, &class) in ports.class_of.iter().enumerate() {
            if class != 0 {
                map.set(port as u32, class, 0)
                    .map_err(|e| failed(name, e))?;
            }
        }
    }
    for (name, entries) in [
        ("SRC_ADDR_SETS", &tables.src_addrs),
        ("DST_ADDR_SETS", &tables.dst_addrs),
    ] {
        let map = ebpf
            .map_mut(name)
            .ok_or_else(|| LoaderError::Load(format!("the object has no {name} map")))?;
        let mut trie: LpmTrie<_, AddrKeyData, FieldBits> =
            LpmTrie::try_from(map).map_err(|e| LoaderError::Load(format!("{name}: {e}")))?;
        for entry in entries.iter() {
            trie.insert(
                &Key::new(entry.prefix_len, entry.data),
                FieldBits::of(entry.rules),
                0,
            )
            .map_err(|e| failed(name, e))?;
        }
    }
    Ok(())
}
