//! pcapng: a section header naming the tool, one interface description block per interface
//! (name, snap length, nanosecond resolution), and enhanced packet blocks carrying the XDP
//! verdict (`epb_verdict`, type 2 = Linux eBPF XDP), the receive queue and a comment.

use super::{Interface, LINKTYPE_ETHERNET, Packet};
use crate::write::output::{Output, RecordWriter};

const BLOCK_SHB: u32 = 0x0A0D_0D0A;
const BLOCK_IDB: u32 = 0x0000_0001;
const BLOCK_EPB: u32 = 0x0000_0006;
const BLOCK_ISB: u32 = 0x0000_0005;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;

const OPT_END: u16 = 0;
const OPT_COMMENT: u16 = 1;
const SHB_OS: u16 = 3;
const SHB_USERAPPL: u16 = 4;
const IF_NAME: u16 = 2;
const IF_TSRESOL: u16 = 9;
const EPB_QUEUE: u16 = 6;
const EPB_VERDICT: u16 = 7;
const VERDICT_TYPE_EBPF_XDP: u8 = 2;
const ISB_STARTTIME: u16 = 2;
const ISB_ENDTIME: u16 = 3;
const ISB_IFRECV: u16 = 4;
const ISB_IFDROP: u16 = 5;
const ISB_FILTERACCEPT: u16 = 6;
const ISB_OSDROP: u16 = 7;
const ISB_USRDELIV: u16 = 8;

pub struct PcapngWriter<W: Output> {
    out: RecordWriter<W>,
    snaplen: u32,
    /// The ifindex of each pcapng interface id (its position): a few at most, so a scan,
    /// cheaper per packet than hashing.
    interfaces: Vec<u32>,
}

impl<W: Output> PcapngWriter<W> {
    /// Puts the section header and the interface blocks in `out` (they go out with the
    /// first flush).
    pub fn new(out: RecordWriter<W>, snaplen: u32, interfaces: &[Interface]) -> Self {
        let mut writer = PcapngWriter {
            out,
            snaplen,
            interfaces: Vec::new(),
        };
        writer.write_section_header();
        for interface in interfaces {
            writer.write_interface(interface);
        }
        writer
    }

    fn write_section_header(&mut self) {
        let mut body = Vec::new();
        body.extend_from_slice(&BYTE_ORDER_MAGIC.to_ne_bytes());
        body.extend_from_slice(&1u16.to_ne_bytes());
        body.extend_from_slice(&0u16.to_ne_bytes());
        body.extend_from_slice(&(-1i64).to_ne_bytes()); // section length not known
        push_option(
            &mut body,
            SHB_USERAPPL,
            concat!("xdpsieve ", env!("CARGO_PKG_VERSION")).as_bytes(),
        );
        push_option(&mut body, SHB_OS, os_name().as_bytes());
        push_option(&mut body, OPT_END, &[]);
        self.write_block(BLOCK_SHB, &body);
    }

    fn write_interface(&mut self, interface: &Interface) {
        self.interfaces.push(interface.ifindex);
        let mut body = Vec::new();
        body.extend_from_slice(&LINKTYPE_ETHERNET.to_ne_bytes());
        body.extend_from_slice(&0u16.to_ne_bytes());
        body.extend_from_slice(&self.snaplen.to_ne_bytes());
        push_option(&mut body, IF_NAME, interface.name.as_bytes());
        push_option(&mut body, IF_TSRESOL, &[9]); // 10^-9 s
        push_option(&mut body, OPT_END, &[]);
        self.write_block(BLOCK_IDB, &body);
    }

    /// A block other than a packet's: whole or not at all in the file, but not counted.
    fn write_block(&mut self, block_type: u32, body: &[u8]) {
        let total = (12 + body.len()) as u32;
        self.out.put(&block_type.to_ne_bytes());
        self.out.put(&total.to_ne_bytes());
        self.out.put(body);
        self.out.put(&total.to_ne_bytes());
        self.out.end_record(false);
    }

    /// The pcapng interface id of `ifindex`, if announced.
    fn interface_id(&self, ifindex: u32) -> Option<u32> {
        self.interfaces
            .iter()
            .position(|&i| i == ifindex)
            .map(|id| id as u32)
    }

    /// One enhanced packet block, put straight into the output in pieces of fixed size
    /// (its length is known before the first byte): no block is assembled apart and
    /// copied again, which at 64-byte packets would cost as much as the rest.
    pub fn write(&mut self, packet: &Packet<'_>) {
        let interface_id = match self.interface_id(packet.ifindex) {
            Some(id) => id,
            None => {
                // A packet from an interface not announced up front: describe it now.
                let interface = Interface {
                    ifindex: packet.ifindex,
                    name: format!("ifindex{}", packet.ifindex),
                };
                self.write_interface(&interface);
                (self.interfaces.len() - 1) as u32
            }
        };
        let data = &packet.data[..packet.data.len().min(self.snaplen as usize)];
        let comment = packet.comment.as_bytes();
        // A comment longer than an option can say is cut (rule texts are far shorter).
        let comment = &comment[..comment.len().min(usize::from(u16::MAX))];
        let comment_option = if comment.is_empty() {
            0
        } else {
            4 + comment.len().next_multiple_of(4)
        };
        // Header, data padded, verdict and queue options, comment, end of options, length.
        let total = 28 + data.len().next_multiple_of(4) + 16 + 8 + comment_option + 4 + 4;
        let total = (total as u32).to_ne_bytes();
        let ts = packet.timestamp.as_nanos() as u64;
        let mut header = [0u8; 28];
        header[0..4].copy_from_slice(&BLOCK_EPB.to_ne_bytes());
        header[4..8].copy_from_slice(&total);
        header[8..12].copy_from_slice(&interface_id.to_ne_bytes());
        header[12..16].copy_from_slice(&((ts >> 32) as u32).to_ne_bytes());
        header[16..20].copy_from_slice(&(ts as u32).to_ne_bytes());
        header[20..24].copy_from_slice(&(data.len() as u32).to_ne_bytes());
        header[24..28].copy_from_slice(&packet.orig_len.max(data.len() as u32).to_ne_bytes());
        self.out.put(&header);
        self.out.put(data);
        self.out
            .put(&PADDING[..data.len().next_multiple_of(4) - data.len()]);
        // epb_verdict (type, then the XDP action as 8 bytes), padded; epb_queue.
        let mut options = [0u8; 24];
        options[0..2].copy_from_slice(&EPB_VERDICT.to_ne_bytes());
        options[2..4].copy_from_slice(&9u16.to_ne_bytes());
        options[4] = VERDICT_TYPE_EBPF_XDP;
        options[5..13].copy_from_slice(&u64::from(packet.verdict).to_ne_bytes());
        options[16..18].copy_from_slice(&EPB_QUEUE.to_ne_bytes());
        options[18..20].copy_from_slice(&4u16.to_ne_bytes());
        options[20..24].copy_from_slice(&packet.rx_queue.to_ne_bytes());
        self.out.put(&options);
        if !comment.is_empty() {
            let mut head = [0u8; 4];
            head[0..2].copy_from_slice(&OPT_COMMENT.to_ne_bytes());
            head[2..4].copy_from_slice(&(comment.len() as u16).to_ne_bytes());
            self.out.put(&head);
            self.out.put(comment);
            self.out
                .put(&PADDING[..comment.len().next_multiple_of(4) - comment.len()]);
        }
        // opt_endofopt, then the block's length again.
        let mut tail = [0u8; 8];
        tail[4..8].copy_from_slice(&total);
        self.out.put(&tail);
        self.out.end_record(true);
    }

    /// The interface statistics block written at close. In xdpsieve's terms: received =
    /// packets the program saw on the interface, dropped = packets the firewall dropped,
    /// accepted by filter = packets chosen for capture, OS drop = of those, the ones the
    /// capture lost (buffer full or rate limit), delivered = captured. Packets sampling left
    /// out (`--sample`) are not loss and not in osdrop: the comment gives their count.
    pub fn write_interface_statistics(
        &mut self,
        ifindex: u32,
        c: &xdpsieve_common::InterfaceCounters,
    ) {
        let Some(id) = self.interface_id(ifindex) else {
            return;
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64;
        let stamp = |v: u64| {
            let mut b = [0u8; 8];
            b[..4].copy_from_slice(&((v >> 32) as u32).to_ne_bytes());
            b[4..].copy_from_slice(&(v as u32).to_ne_bytes());
            b
        };
        let lost = c.capture_lost + c.rate_limited;
        let mut body = Vec::new();
        body.extend_from_slice(&id.to_ne_bytes());
        body.extend_from_slice(&stamp(now));
        push_option(&mut body, ISB_ENDTIME, &stamp(now));
        push_option(&mut body, ISB_IFRECV, &c.packets.to_ne_bytes());
        push_option(&mut body, ISB_IFDROP, &c.dropped.to_ne_bytes());
        push_option(
            &mut body,
            ISB_FILTERACCEPT,
            &(c.captured + lost).to_ne_bytes(),
        );
        push_option(&mut body, ISB_OSDROP, &lost.to_ne_bytes());
        push_option(&mut body, ISB_USRDELIV, &c.captured.to_ne_bytes());
        let comment = format!(
            "ifdrop: packets the firewall dropped; osdrop: packets the capture lost; \
             sampled out (by choice, not loss): {}",
            c.sampled_out
        );
        push_option(&mut body, OPT_COMMENT, comment.as_bytes());
        push_option(&mut body, OPT_END, &[]);
        self.write_block(BLOCK_ISB, &body);
    }

    /// The interface statistics block that closes one file of a rotating capture: the
    /// file's own time span and the packets of the interface it holds (delivered = in this
    /// file), and with `counted`, what the kernel counted on the interface while the file
    /// was open (received, dropped, accepted by filter = chosen for capture, OS drop = of
    /// those, lost; the comment gives the packets sampling left out). The run's totals are
    /// in the summary and `status`.
    pub fn write_file_statistics(
        &mut self,
        ifindex: u32,
        span: (u64, u64),
        packets: u64,
        counted: Option<&xdpsieve_common::InterfaceCounters>,
    ) {
        let Some(id) = self.interface_id(ifindex) else {
            return;
        };
        let stamp = |v: u64| {
            let mut b = [0u8; 8];
            b[..4].copy_from_slice(&((v >> 32) as u32).to_ne_bytes());
            b[4..].copy_from_slice(&(v as u32).to_ne_bytes());
            b
        };
        let mut body = Vec::new();
        body.extend_from_slice(&id.to_ne_bytes());
        body.extend_from_slice(&stamp(span.1));
        push_option(&mut body, ISB_STARTTIME, &stamp(span.0));
        push_option(&mut body, ISB_ENDTIME, &stamp(span.1));
        push_option(&mut body, ISB_USRDELIV, &packets.to_ne_bytes());
        let mut comment =
            "one file of a rotating capture: usrdeliv = packets of this interface in this file"
                .to_string();
        if let Some(c) = counted {
            let lost = c.capture_lost + c.rate_limited;
            push_option(&mut body, ISB_IFRECV, &c.packets.to_ne_bytes());
            push_option(&mut body, ISB_IFDROP, &c.dropped.to_ne_bytes());
            push_option(
                &mut body,
                ISB_FILTERACCEPT,
                &(c.captured + lost).to_ne_bytes(),
            );
            push_option(&mut body, ISB_OSDROP, &lost.to_ne_bytes());
            comment += &format!(
                "; the others counted by the kernel while this file was open (records in \
                 flight at a switch may sit in the next file); ifdrop: packets the firewall \
                 dropped; osdrop: packets the capture lost; sampled out (by choice, not \
                 loss): {}",
                c.sampled_out
            );
        }
        push_option(&mut body, OPT_COMMENT, comment.as_bytes());
        push_option(&mut body, OPT_END, &[]);
        self.write_block(BLOCK_ISB, &body);
    }

    pub fn output(&mut self) -> &mut RecordWriter<W> {
        &mut self.out
    }

    pub fn into_inner(self) -> RecordWriter<W> {
        self.out
    }
}

/// Zeros to pad a field to 4 bytes.
const PADDING: [u8; 3] = [0; 3];

fn push_option(buf: &mut Vec<u8>, code: u16, value: &[u8]) {
    buf.extend_from_slice(&code.to_ne_bytes());
    buf.extend_from_slice(&(value.len() as u16).to_ne_bytes());
    buf.extend_from_slice(value);
    pad4(buf);
}

fn pad4(buf: &mut Vec<u8>) {
    let padded = buf.len().next_multiple_of(4);
    buf.resize(padded, 0);
}

fn os_name() -> String {
    // SAFETY: utsname is plain data (arrays of chars); all zero is a valid value.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: uts is a valid utsname for uname to fill.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return "Linux".into();
    }
    let field = |f: &[libc::c_char]| {
        let bytes: Vec<u8> = f
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    format!("{} {}", field(&uts.sysname), field(&uts.release))
}
