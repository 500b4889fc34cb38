//! Classic pcap with nanosecond timestamps (magic `0xa1b23c4d`), in host byte order as
//! libpcap writes it.

use crate::write::output::{Output, RecordWriter};

use super::{LINKTYPE_ETHERNET, Packet};

const MAGIC_NANOSECONDS: u32 = 0xa1b2_3c4d;

pub struct PcapWriter<W: Output> {
    out: RecordWriter<W>,
    snaplen: u32,
}

impl<W: Output> PcapWriter<W> {
    /// Puts the file header in `out` (it goes out with the first flush).
    pub fn new(mut out: RecordWriter<W>, snaplen: u32) -> Self {
        let mut header = [0u8; 24];
        header[0..4].copy_from_slice(&MAGIC_NANOSECONDS.to_ne_bytes());
        header[4..6].copy_from_slice(&2u16.to_ne_bytes());
        header[6..8].copy_from_slice(&4u16.to_ne_bytes());
        // thiszone and sigfigs stay 0.
        header[16..20].copy_from_slice(&snaplen.to_ne_bytes());
        header[20..24].copy_from_slice(&u32::from(LINKTYPE_ETHERNET).to_ne_bytes());
        out.put(&header);
        out.end_record(false);
        PcapWriter { out, snaplen }
    }

    pub fn write(&mut self, packet: &Packet<'_>) {
        let data = &packet.data[..packet.data.len().min(self.snaplen as usize)];
        let mut header = [0u8; 16];
        // pcap's seconds field is 32 bits: it wraps in 2106.
        header[0..4].copy_from_slice(&(packet.timestamp.as_secs() as u32).to_ne_bytes());
        header[4..8].copy_from_slice(&packet.timestamp.subsec_nanos().to_ne_bytes());
        header[8..12].copy_from_slice(&(data.len() as u32).to_ne_bytes());
        header[12..16].copy_from_slice(&packet.orig_len.max(data.len() as u32).to_ne_bytes());
        self.out.put(&header);
        self.out.put(data);
        self.out.end_record(true);
    }

    pub fn output(&mut self) -> &mut RecordWriter<W> {
        &mut self.out
    }

    pub fn into_inner(self) -> RecordWriter<W> {
        self.out
    }
}
