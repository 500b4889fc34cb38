//! Classic pcap with nanosecond timestamps (magic `0xa1b23c4d`), in host byte order as
//! libpcap writes it.

use std::io;

use super::{LINKTYPE_ETHERNET, Packet};

const MAGIC_NANOSECONDS: u32 = 0xa1b2_3c4d;

pub struct PcapWriter<W: io::Write> {
    out: W,
    snaplen: u32,
}

impl<W: io::Write> PcapWriter<W> {
    pub fn new(mut out: W, snaplen: u32) -> io::Result<Self> {
        let mut header = [0u8; 24];
        header[0..4].copy_from_slice(&MAGIC_NANOSECONDS.to_ne_bytes());
        header[4..6].copy_from_slice(&2u16.to_ne_bytes());
        header[6..8].copy_from_slice(&4u16.to_ne_bytes());
        // thiszone and sigfigs stay 0.
        header[16..20].copy_from_slice(&snaplen.to_ne_bytes());
        header[20..24].copy_from_slice(&u32::from(LINKTYPE_ETHERNET).to_ne_bytes());
        out.write_all(&header)?;
        Ok(PcapWriter { out, snaplen })
    }

    pub fn write(&mut self, packet: &Packet<'_>) -> io::Result<()> {
        let data = &packet.data[..packet.data.len().min(self.snaplen as usize)];
        let mut header = [0u8; 16];
        // pcap's seconds field is 32 bits: it wraps in 2106.
        header[0..4].copy_from_slice(&(packet.timestamp.as_secs() as u32).to_ne_bytes());
        header[4..8].copy_from_slice(&packet.timestamp.subsec_nanos().to_ne_bytes());
        header[8..12].copy_from_slice(&(data.len() as u32).to_ne_bytes());
        header[12..16].copy_from_slice(&packet.orig_len.max(data.len() as u32).to_ne_bytes());
        self.out.write_all(&header)?;
        self.out.write_all(data)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}
