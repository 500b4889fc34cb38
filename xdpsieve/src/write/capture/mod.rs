//! Capture files: classic pcap (nanosecond timestamps) and pcapng (per-interface blocks, the
//! packet's XDP verdict in the standard `epb_verdict` option, the matched rule in a comment).
//!
//! Both writers put whole records (file header and blocks uncounted, packets counted) into a
//! [`RecordWriter`], which buffers and knows which records reached the output when it
//! fails; the caller decides when to flush (after each drain of the ring, so `-w -` piped
//! into tcpdump stays live).

mod pcap;
mod pcapng;

use std::{fmt, io, time::Duration};

use crate::write::output::{Failure, Output, RecordWriter, WRITE_BUFFER};

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
pub enum CaptureWriter<W: Output> {
    Pcap(PcapWriter<W>),
    Pcapng(PcapngWriter<W>),
}

impl<W: Output> CaptureWriter<W> {
    /// Whether [`Packet::comment`] reaches the file (pcapng only).
    pub fn writes_comments(&self) -> bool {
        matches!(self, CaptureWriter::Pcapng(_))
    }

    /// Puts the file header (and, for pcapng, one interface block per interface) in a
    /// [`WRITE_BUFFER`]-sized buffer in front of `out`; the first flush writes it.
    pub fn new(format: Format, out: W, snaplen: u32, interfaces: &[Interface]) -> Self {
        let out = RecordWriter::new(out, WRITE_BUFFER);
        match format {
            Format::Pcap => CaptureWriter::Pcap(PcapWriter::new(out, snaplen)),
            Format::Pcapng => CaptureWriter::Pcapng(PcapngWriter::new(out, snaplen, interfaces)),
        }
    }

    /// Buffers one packet. A failure of the output shows at [`Self::flush`] and in
    /// [`Self::failure`]; packets after it are not written (see [`Self::written`]).
    pub fn write(&mut self, packet: &Packet<'_>) {
        match self {
            CaptureWriter::Pcap(w) => w.write(packet),
            CaptureWriter::Pcapng(w) => w.write(packet),
        }
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.output().flush()
    }

    /// Packets wholly in the output.
    pub fn written(&mut self) -> u64 {
        self.output().written()
    }

    /// Why the output stopped, if it did.
    pub fn failure(&mut self) -> Option<&Failure> {
        self.output().failure()
    }

    /// The record writer in front of the output.
    pub fn output(&mut self) -> &mut RecordWriter<W> {
        match self {
            CaptureWriter::Pcap(w) => w.output(),
            CaptureWriter::Pcapng(w) => w.output(),
        }
    }

    /// At close, per interface: pcapng puts an interface statistics block; pcap has none.
    /// Not on a failed output (nothing more reaches it).
    pub fn write_interface_statistics(
        &mut self,
        ifindex: u32,
        counters: &xdpsieve_common::InterfaceCounters,
    ) {
        match self {
            CaptureWriter::Pcap(_) => {}
            CaptureWriter::Pcapng(w) => w.write_interface_statistics(ifindex, counters),
        }
    }

    /// At the close of one file of a rotating capture, per interface: pcapng puts an
    /// interface statistics block for the file (its span in ns since the epoch, the
    /// interface's packets in it, and what the kernel counted meanwhile when known); pcap
    /// has none.
    pub fn write_file_statistics(
        &mut self,
        ifindex: u32,
        span: (u64, u64),
        packets: u64,
        counted: Option<&xdpsieve_common::InterfaceCounters>,
    ) {
        match self {
            CaptureWriter::Pcap(_) => {}
            CaptureWriter::Pcapng(w) => w.write_file_statistics(ifindex, span, packets, counted),
        }
    }

    /// Flushes (a failure stays recorded) and returns the output.
    pub fn into_inner(self) -> W {
        match self {
            CaptureWriter::Pcap(w) => w.into_inner().into_inner(),
            CaptureWriter::Pcapng(w) => w.into_inner().into_inner(),
        }
    }
}

#[cfg(test)]
mod tests;
