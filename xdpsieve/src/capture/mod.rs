//! Capture files: classic pcap (nanosecond timestamps) and pcapng (per-interface blocks, the
//! packet's XDP verdict in the standard `epb_verdict` option, the matched rule in a comment).
//!
//! Both writers take a [`std::io::Write`]; the caller supplies buffering and decides when to
//! flush (after each drain of the ring, so `-w -` piped into tcpdump stays live).

mod pcap;
mod pcapng;

use std::{fmt, io, str::FromStr, time::Duration};

pub use pcap::PcapWriter;
pub use pcapng::PcapngWriter;

/// Ethernet, the only link type XDP sees.
pub const LINKTYPE_ETHERNET: u16 = 1;

/// File format of a capture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    #[default]
    Pcap,
    Pcapng,
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "pcap" => Ok(Format::Pcap),
            "pcapng" => Ok(Format::Pcapng),
            other => Err(format!(
                "unknown format `{other}` (expected pcap or pcapng)"
            )),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Pcap => "pcap",
            Format::Pcapng => "pcapng",
        })
    }
}

/// An interface packets may arrive on, described once in pcapng files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    pub ifindex: u32,
    pub name: String,
}

/// One packet to write, with what the file formats can say about it.
#[derive(Clone, Copy, Debug)]
pub struct Packet<'a> {
    /// Since the Unix epoch.
    pub timestamp: Duration,
    pub ifindex: u32,
    pub rx_queue: u32,
    pub orig_len: u32,
    /// `enum xdp_action` value.
    pub verdict: u8,
    /// Free text for pcapng's packet comment (the matched rule); ignored by pcap.
    pub comment: &'a str,
    pub data: &'a [u8],
}

/// A capture file of either format.
pub enum CaptureWriter<W: io::Write> {
    Pcap(PcapWriter<W>),
    Pcapng(PcapngWriter<W>),
}

impl<W: io::Write> CaptureWriter<W> {
    /// Whether [`Packet::comment`] reaches the file (pcapng only).
    pub fn writes_comments(&self) -> bool {
        matches!(self, CaptureWriter::Pcapng(_))
    }

    /// Writes the file header (and, for pcapng, one interface block per interface).
    pub fn new(format: Format, out: W, snaplen: u32, interfaces: &[Interface]) -> io::Result<Self> {
        Ok(match format {
            Format::Pcap => CaptureWriter::Pcap(PcapWriter::new(out, snaplen)?),
            Format::Pcapng => CaptureWriter::Pcapng(PcapngWriter::new(out, snaplen, interfaces)?),
        })
    }

    pub fn write(&mut self, packet: &Packet<'_>) -> io::Result<()> {
        match self {
            CaptureWriter::Pcap(w) => w.write(packet),
            CaptureWriter::Pcapng(w) => w.write(packet),
        }
    }

    pub fn flush(&mut self) -> io::Result<()> {
        match self {
            CaptureWriter::Pcap(w) => w.flush(),
            CaptureWriter::Pcapng(w) => w.flush(),
        }
    }

    /// At close, per interface: pcapng writes an interface statistics block; pcap has none.
    pub fn write_interface_statistics(
        &mut self,
        ifindex: u32,
        counters: &xdpsieve_common::InterfaceCounters,
    ) -> io::Result<()> {
        match self {
            CaptureWriter::Pcap(_) => Ok(()),
            CaptureWriter::Pcapng(w) => w.write_interface_statistics(ifindex, counters),
        }
    }

    pub fn into_inner(self) -> W {
        match self {
            CaptureWriter::Pcap(w) => w.into_inner(),
            CaptureWriter::Pcapng(w) => w.into_inner(),
        }
    }
}

#[cfg(test)]
mod tests;
