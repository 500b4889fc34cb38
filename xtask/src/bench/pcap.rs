//! Counts the frames in a pcap or pcapng file that a predicate accepts, streaming, so a
//! capture of millions of frames needs no more memory than one frame. The tools under
//! test write different formats (xdpdump: pcapng; tcpdump and xdpsieve: pcap).

use std::{
    fs::File,
    io::{BufReader, ErrorKind, Read},
    path::Path,
};

use anyhow::{Context as _, Result, bail};

const PCAP_US: u32 = 0xa1b2_c3d4;
const PCAP_NS: u32 = 0xa1b2_3c4d;
const PCAPNG_SHB: u32 = 0x0a0d_0d0a;
const PCAPNG_EPB: u32 = 6;
const PCAPNG_SPB: u32 = 3;
/// Larger blocks or records than this mean a corrupt file, not a big frame.
const MAX_RECORD: usize = 1 << 20;

/// Frames in `path` for which `keep` returns true. A missing file counts as empty (the
/// tool captured nothing); a file cut short after its last whole record is fine (a tool
/// that was stopped mid-write), a malformed one is an error.
pub(crate) fn count_matching(path: &Path, keep: impl Fn(&[u8]) -> bool) -> Result<u64> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
    };
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut magic = [0u8; 4];
    if !read_or_eof(&mut r, &mut magic)? {
        return Ok(0);
    }
    match u32::from_le_bytes(magic) {
        PCAP_US | PCAP_NS => pcap(&mut r, false, keep),
        m if m.swap_bytes() == PCAP_US || m.swap_bytes() == PCAP_NS => pcap(&mut r, true, keep),
        PCAPNG_SHB => pcapng(&mut r, keep),
        m => bail!("{}: not pcap or pcapng (magic {m:#010x})", path.display()),
    }
}

fn pcap(r: &mut impl Read, swapped: bool, keep: impl Fn(&[u8]) -> bool) -> Result<u64> {
    let word = |b: &[u8]| {
        let v = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        if swapped { v.swap_bytes() } else { v }
    };
    let mut header = [0u8; 20];
    r.read_exact(&mut header).context("pcap file header")?;
    let mut count = 0;
    let mut record = [0u8; 16];
    let mut data = Vec::new();
    while read_or_eof(r, &mut record)? {
        let len = word(&record[8..12]) as usize;
        if len > MAX_RECORD {
            bail!("pcap record {count} claims {len} bytes");
        }
        data.resize(len, 0);
        if !read_or_eof(r, &mut data)? {
            break;
        }
        count += u64::from(keep(&data));
    }
    Ok(count)
}

fn pcapng(r: &mut impl Read, keep: impl Fn(&[u8]) -> bool) -> Result<u64> {
    // The SHB's length follows its type; its byte-order magic tells the endianness.
    let mut head = [0u8; 8];
    r.read_exact(&mut head).context("pcapng section header")?;
    let swapped = match u32::from_le_bytes([head[4], head[5], head[6], head[7]]) {
        0x1a2b_3c4d => false,
        0x4d3c_2b1a => true,
        m => bail!("pcapng byte-order magic {m:#010x}"),
    };
    let word = |b: &[u8]| {
        let v = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        if swapped { v.swap_bytes() } else { v }
    };
    let shb_len = word(&head[0..4]) as usize;
    let mut block = vec![0u8; shb_len.saturating_sub(12)];
    r.read_exact(&mut block).context("pcapng section header")?;
    let mut count = 0;
    loop {
        if !read_or_eof(r, &mut head)? {
            return Ok(count);
        }
        let (kind, len) = (word(&head[0..4]), word(&head[4..8]) as usize);
        if !(12..=MAX_RECORD).contains(&len) || len % 4 != 0 {
            bail!("pcapng block of type {kind} claims {len} bytes");
        }
        block.resize(len - 8, 0);
        if !read_or_eof(r, &mut block)? {
            return Ok(count);
        }
        let frame = match kind {
            // interface, ts high, ts low, captured length, original length, data
            PCAPNG_EPB if block.len() >= 20 => {
                let captured = word(&block[12..16]) as usize;
                block.get(20..20 + captured)
            }
            // original length, data (the rest, padded)
            PCAPNG_SPB if block.len() >= 4 => block.get(4..block.len() - 4),
            _ => continue,
        };
        let frame = frame.with_context(|| format!("pcapng block {kind} cut short"))?;
        count += u64::from(keep(frame));
    }
}

/// Fills `buf`; false at a clean end of file or a record cut short by it.
fn read_or_eof(r: &mut impl Read, buf: &mut [u8]) -> Result<bool> {
    match r.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e).context("reading the capture"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours(frame: &[u8]) -> bool {
        frame.first() == Some(&0xaa)
    }

    fn temp(name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!("xtask-pcap-{}-{name}", std::process::id()));
        std::fs::write(&path, bytes).expect("writing a test capture");
        path
    }

    /// A nanosecond pcap (as xdpsieve writes it), host byte order.
    fn pcap_file(frames: &[&[u8]]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(PCAP_NS.to_ne_bytes());
        b.extend(2u16.to_ne_bytes()); // version 2.4
        b.extend(4u16.to_ne_bytes());
        b.extend([0u8; 8]);
        b.extend(65535u32.to_ne_bytes());
        b.extend(1u32.to_ne_bytes());
        for f in frames {
            b.extend([0u8; 8]);
            b.extend((f.len() as u32).to_ne_bytes());
            b.extend((f.len() as u32).to_ne_bytes());
            b.extend(*f);
        }
        b
    }

    fn block(kind: u32, body: &[u8]) -> Vec<u8> {
        let len = (12 + body.len()).next_multiple_of(4) as u32;
        let mut b = Vec::new();
        b.extend(kind.to_ne_bytes());
        b.extend(len.to_ne_bytes());
        b.extend(body);
        b.resize(len as usize - 4, 0);
        b.extend(len.to_ne_bytes());
        b
    }

    /// A pcapng with an interface block, one enhanced and one simple packet block per frame.
    fn pcapng_file(frames: &[&[u8]]) -> Vec<u8> {
        let mut shb = Vec::new();
        shb.extend(0x1a2b_3c4du32.to_ne_bytes());
        shb.extend([1, 0, 0, 0]);
        shb.extend((-1i64).to_ne_bytes());
        let mut b = block(PCAPNG_SHB, &shb);
        b.extend(block(1, &[1, 0, 0, 0, 0, 0, 0, 0]));
        for f in frames {
            let mut epb = Vec::new();
            epb.extend([0u8; 12]);
            epb.extend((f.len() as u32).to_ne_bytes());
            epb.extend((f.len() as u32).to_ne_bytes());
            epb.extend(*f);
            b.extend(block(PCAPNG_EPB, &epb));
            let mut spb = Vec::new();
            spb.extend((f.len() as u32).to_ne_bytes());
            spb.extend(*f);
            b.extend(block(PCAPNG_SPB, &spb));
        }
        b
    }

    #[test]
    fn counts_only_matching_frames_in_pcap() {
        let frames: [&[u8]; 3] = [&[0xaa; 60], &[0xbb; 60], &[0xaa; 512]];
        let path = temp("a.pcap", &pcap_file(&frames));
        assert_eq!(count_matching(&path, ours).expect("count"), 2);
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn counts_enhanced_and_simple_blocks_in_pcapng() {
        let frames: [&[u8]; 2] = [&[0xaa; 61], &[0xbb; 64]];
        let path = temp("b.pcapng", &pcapng_file(&frames));
        // Each frame is in the file twice (EPB and SPB).
        assert_eq!(count_matching(&path, ours).expect("count"), 2);
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn a_record_cut_short_ends_the_count_a_missing_file_counts_zero() {
        let mut bytes = pcap_file(&[&[0xaa; 60], &[0xaa; 60]]);
        bytes.truncate(bytes.len() - 10);
        let path = temp("c.pcap", &bytes);
        assert_eq!(count_matching(&path, ours).expect("count"), 1);
        let _ = std::fs::remove_file(&path);
        assert_eq!(count_matching(&path, ours).expect("count"), 0);
    }

    #[test]
    fn rejects_what_is_not_a_capture() {
        let path = temp("d.txt", b"not a capture file at all");
        assert!(count_matching(&path, ours).is_err());
        let _ = std::fs::remove_file(path);
    }
}
