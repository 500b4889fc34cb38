//! Writing generated code into the XDP object before it is loaded: a placeholder function
//! (a translated capture filter's slot, `xdpsieve-ebpf/src/capture_filter/translated.rs`;
//! the compiled rules', `xdpsieve-ebpf/src/rules/compiled.rs`) is found by name in the ELF
//! symbol table and overwritten, whole, in a copy of the object. Its size, BTF and line
//! information stay as they were, so aya links and loads the object as if the compiler had
//! written the code.

use object::{Object as _, ObjectSection as _, ObjectSymbol as _};

use super::EbpfInsn;

/// A copy of the object, 8-byte aligned as the ELF parser wants it.
pub struct PatchedObject {
    words: Vec<u64>,
    len: usize,
}

impl PatchedObject {
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: any u64 is 8 valid bytes; `len` is at most the words' byte length.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast::<u8>(), self.len) }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as `bytes`, and the borrow is unique.
        unsafe { std::slice::from_raw_parts_mut(self.words.as_mut_ptr().cast::<u8>(), self.len) }
    }
}

/// `object` with each function `(name, code)` replaced by `code`, which must be exactly as
/// long (see [`super::padded`]).
pub fn place(object: &[u8], functions: &[(&str, Vec<EbpfInsn>)]) -> Result<PatchedObject, String> {
    let mut patched = PatchedObject {
        words: vec![0u64; object.len().div_ceil(8)],
        len: object.len(),
    };
    patched.bytes_mut().copy_from_slice(object);
    let mut writes = Vec::new();
    {
        let file = object::File::parse(object).map_err(|e| format!("reading the object: {e}"))?;
        for (name, code) in functions {
            let symbol = file
                .symbols()
                .find(|s| s.name() == Ok(name))
                .ok_or_else(|| format!("the object has no function {name}"))?;
            let want = (code.len() * 8) as u64;
            if symbol.size() != want {
                return Err(format!(
                    "{name} is {} bytes, the code written over it {want} (they must agree)",
                    symbol.size(),
                ));
            }
            let index = symbol
                .section_index()
                .ok_or_else(|| format!("{name} is in no section"))?;
            let section = file
                .section_by_index(index)
                .map_err(|e| format!("{name}'s section: {e}"))?;
            let (section_offset, section_size) = section
                .file_range()
                .ok_or_else(|| format!("{name}'s section has no data"))?;
            let start = symbol.address();
            if start.checked_add(want).is_none_or(|end| end > section_size) {
                return Err(format!("{name} lies outside its section"));
            }
            // A relocation inside the placeholder would be applied to the new code.
            if let Some((at, _)) = section
                .relocations()
                .find(|(at, _)| (start..start + want).contains(at))
            {
                return Err(format!("{name} has a relocation at {at:#x}"));
            }
            writes.push(((section_offset + start) as usize, code));
        }
    }
    let bytes = patched.bytes_mut();
    for (offset, code) in writes {
        for (i, insn) in code.iter().enumerate() {
            let at = offset + 8 * i;
            bytes[at..at + 8].copy_from_slice(&insn.to_bytes());
        }
    }
    Ok(patched)
}
