//! A consumer of a BPF ring buffer that tells the kernel how far it has read once per batch
//! of records instead of once per record.
//!
//! The kernel reads the consumer position on every reservation, so publishing it after each
//! record (as aya's `RingBuf` and libbpf do) moves that cache line between the reader's CPU
//! and the XDP program's for every packet. Here the position is published every
//! [`PUBLISH_EVERY`] bytes (a quarter of smaller rings) and whenever the reader catches up,
//! which is what the kernel's wakeup logic needs: it wakes the reader when it commits the
//! record at the published position.
//!
//! Layout (kernel/bpf/ringbuf.c): a read-write consumer page, then a read-only producer page
//! followed by the data pages mapped twice in a row, so a record that wraps around the end
//! reads as one slice. Each record starts with an 8-byte header: its length with a busy bit
//! (still being written) and a discard bit, then the page offset; records are 8-aligned.
//!
//! A length that cannot be (longer than the ring, or past the producer position) leaves the
//! next record's start unknown: rather than stop there for good, which would silently stall
//! every later read, the reader skips to the producer position, counts the header and the
//! bytes skipped ([`RingReader::corrupt_headers`], [`RingReader::skipped_bytes`], shown with
//! the recorder's counts as `ring_corrupt`), warns, and reads on. The record walk
//! ([`walk`]) works on any memory laid out as the ring, which is how it is tested: a real
//! ring cannot be corrupted from userspace (its data pages are mapped read-only).

use std::{
    io,
    os::fd::{AsFd as _, AsRawFd as _, RawFd},
    ptr::NonNull,
    sync::atomic::{AtomicU32, AtomicUsize, Ordering, fence},
};

use aya::maps::MapData;

const BUSY: u32 = 1 << 31;
const DISCARD: u32 = 1 << 30;
const HEADER: usize = 8;
/// Bytes consumed between two publications of the position, for rings of 256 KiB and more.
const PUBLISH_EVERY: usize = 64 * 1024;

/// One mapping, unmapped on drop.
struct Mapping {
    base: NonNull<u8>,
    len: usize,
}

impl Mapping {
    fn new(fd: RawFd, len: usize, writable: bool, offset: usize) -> io::Result<Mapping> {
        let prot = if writable {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        let offset = libc::off_t::try_from(offset).map_err(io::Error::other)?;
        // SAFETY: a new shared mapping of the map's file descriptor; nothing else uses the
        // address range it returns.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED,
                fd,
                offset,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base =
            NonNull::new(base.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave 0"))?;
        Ok(Mapping { base, len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `new` mapped, once.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

pub struct RingReader {
    /// Keeps the map (and the file descriptor polled for readiness) open.
    map: MapData,
    consumer: Mapping,
    producer: Mapping,
    page: usize,
    mask: usize,
    publish_every: usize,
    /// How far this reader has read; published to the consumer page in batches.
    pos: usize,
    /// Corrupt record lengths skipped past, and the bytes skipped (see [`walk`]).
    corrupt_headers: u64,
    skipped_bytes: u64,
    /// Bytes the kernel had written past `pos` when the last drain began.
    backlog: usize,
}

// SAFETY: the mappings belong to this value alone; the pointers are not shared.
unsafe impl Send for RingReader {}

impl RingReader {
    pub fn new(map: MapData) -> io::Result<RingReader> {
        let size = map.info().map_err(io::Error::other)?.max_entries() as usize;
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
            .map_err(io::Error::other)?;
        if !size.is_power_of_two() || size < page {
            return Err(io::Error::other(format!(
                "ring buffer of {size} bytes: not a power of two of at least a page"
            )));
        }
        let fd = map.fd().as_fd().as_raw_fd();
        let consumer = Mapping::new(fd, page, true, 0)?;
        let producer = Mapping::new(fd, page + 2 * size, false, page)?;
        let reader = RingReader {
            map,
            consumer,
            producer,
            page,
            mask: size - 1,
            publish_every: PUBLISH_EVERY.min(size / 4),
            pos: 0,
            corrupt_headers: 0,
            skipped_bytes: 0,
            backlog: 0,
        };
        let pos = reader.consumer_pos().load(Ordering::Acquire);
        Ok(RingReader { pos, ..reader })
    }

    pub fn fd(&self) -> RawFd {
        self.map.fd().as_fd().as_raw_fd()
    }

    fn consumer_pos(&self) -> &AtomicUsize {
        // SAFETY: the consumer page starts with the kernel's consumer position, an unsigned
        // long, aligned, and lives as long as the mapping.
        unsafe { self.consumer.base.cast::<AtomicUsize>().as_ref() }
    }

    fn producer_pos(&self) -> &AtomicUsize {
        // SAFETY: as above, for the producer page.
        unsafe { self.producer.base.cast::<AtomicUsize>().as_ref() }
    }

    /// Calls `f` with every committed record available now, in order; returns how many.
    /// A corrupt length is skipped past, counted and reported (see [`walk`]).
    pub fn drain(&mut self, f: impl FnMut(&[u8])) -> usize {
        let view = View {
            // SAFETY: the data pages follow the producer page, mapped twice (2 * (mask + 1)).
            data: unsafe { self.producer.base.as_ptr().add(self.page) },
            mask: self.mask,
            publish_every: self.publish_every,
            consumer: self.consumer_pos(),
            producer: self.producer_pos(),
        };
        let (mut corrupt_headers, mut skipped_bytes) = (0, 0);
        let mut pos = self.pos;
        let backlog = view.producer.load(Ordering::Acquire).wrapping_sub(pos);
        // SAFETY: `view` is this ring's mapping, 8-aligned, of 2 * (mask + 1) data bytes,
        // and `pos` is a position the kernel's records start at.
        let records = unsafe {
            walk(&view, &mut pos, f, |c| {
                corrupt_headers += 1;
                skipped_bytes += c.skipped as u64;
                crate::base::log::warning(format_args!(
                    "xdpsieve: ring buffer record at position {} has a corrupt length \
                     (header {:#010x}): skipped {} bytes to the newest record, the records in \
                     them are lost (counted as ring_corrupt); reading goes on",
                    c.at, c.header, c.skipped
                ));
            })
        };
        self.pos = pos;
        self.backlog = backlog;
        self.corrupt_headers += corrupt_headers;
        self.skipped_bytes += skipped_bytes;
        records
    }

    /// The bytes of records the ring holds (its data area).
    pub fn size(&self) -> usize {
        self.mask + 1
    }

    /// The share of the ring that held records not read yet when the last drain began
    /// (what the reader's pause let gather; see `session::capture_session::gather`).
    pub fn fill(&self) -> f64 {
        self.backlog as f64 / self.size() as f64
    }

    /// Corrupt record lengths met so far (each one skipped past, see [`walk`]).
    pub fn corrupt_headers(&self) -> u64 {
        self.corrupt_headers
    }

    /// Bytes skipped after corrupt record lengths so far: records lost, how many unknown.
    pub fn skipped_bytes(&self) -> u64 {
        self.skipped_bytes
    }
}

/// A ring as [`walk`] reads it.
struct View<'a> {
    /// The data area followed by its copy (the double mapping): 2 * (mask + 1) bytes,
    /// 8-aligned.
    data: *const u8,
    mask: usize,
    publish_every: usize,
    /// The consumer position, published here in batches.
    consumer: &'a AtomicUsize,
    producer: &'a AtomicUsize,
}

/// A corrupt header [`walk`] skipped past.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Corrupt {
    /// Its position.
    at: usize,
    header: u32,
    /// Bytes skipped: from it to the producer position.
    skipped: usize,
}

/// Calls `f` with every committed record from `*pos` on, in order, moving `*pos` past them
/// and publishing it to `view.consumer` every `view.publish_every` bytes and whenever it
/// catches up; stops at the producer position or at a record still being written. Returns
/// how many records `f` saw.
///
/// A header whose length cannot be (longer than the ring, or reaching past the producer
/// position, which the kernel moves past a whole record before its header can be seen)
/// leaves the next record's start unknown: the walk skips to the producer position (what
/// was committed or reserved by then), publishes it, tells `corrupt`, and goes on from
/// there. Stopping instead would stall the reader at that header for good.
///
/// # Safety
/// `view.data` must be readable for 2 * (view.mask + 1) bytes, 8-aligned, laid out as the
/// kernel's ring between `*pos` and the producer position.
unsafe fn walk(
    view: &View<'_>,
    pos: &mut usize,
    mut f: impl FnMut(&[u8]),
    mut corrupt: impl FnMut(Corrupt),
) -> usize {
    let mut records = 0;
    let mut published = *pos;
    let mut producer = view.producer.load(Ordering::Acquire);
    loop {
        if *pos == producer {
            // Caught up: publish, then look again, so that either this sees a record the
            // producer commits now or the producer sees the position and wakes us.
            if published != *pos {
                view.consumer.store(*pos, Ordering::Release);
                published = *pos;
            }
            fence(Ordering::SeqCst);
            producer = view.producer.load(Ordering::Acquire);
            if *pos == producer {
                break;
            }
        }
        let offset = *pos & view.mask;
        // SAFETY: offset < size, and a record header is 8-aligned inside the data pages.
        let header = unsafe { &*view.data.add(offset).cast::<AtomicU32>() }.load(Ordering::Acquire);
        if header & BUSY != 0 {
            // Reserved but not committed yet: its commit will wake us (we publish below).
            break;
        }
        let len = (header & !(BUSY | DISCARD)) as usize;
        let size = (len + HEADER).next_multiple_of(8);
        // Saturating: a consumer position ahead of the producer (the consumer page is
        // writable by any process that maps it) is as corrupt, and resyncs the same way.
        if len > view.mask + 1 - HEADER || size > producer.saturating_sub(*pos) {
            // Never from a well-behaved kernel. Where the next record starts is unknown:
            // skip everything committed so far rather than read wild or stall here.
            corrupt(Corrupt {
                at: *pos,
                header,
                skipped: producer.saturating_sub(*pos),
            });
            *pos = producer;
            view.consumer.store(*pos, Ordering::Release);
            published = *pos;
            continue;
        }
        if header & DISCARD == 0 {
            // SAFETY: the record's bytes follow its header; thanks to the double
            // mapping they are contiguous even when they wrap around the end.
            let record = unsafe { std::slice::from_raw_parts(view.data.add(offset + HEADER), len) };
            f(record);
            records += 1;
        }
        *pos += size;
        if *pos - published >= view.publish_every {
            view.consumer.store(*pos, Ordering::Release);
            published = *pos;
        }
    }
    if published != *pos {
        view.consumer.store(*pos, Ordering::Release);
    }
    records
}

/// Records committed to the ring of `map` that no reader consumed, counted without
/// consuming them (nothing is written to the ring). For the rings of a firewall whose
/// recorder died: they were counted as sent by the program but reached no file. A corrupt
/// length ends the count there: it is then of the records before it, a lower bound.
pub fn unread_records(map: &MapData) -> io::Result<u64> {
    let size = map.info().map_err(io::Error::other)?.max_entries() as usize;
    // SAFETY: sysconf has no preconditions.
    let page =
        usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).map_err(io::Error::other)?;
    if !size.is_power_of_two() || size < page {
        return Err(io::Error::other(format!(
            "ring buffer of {size} bytes: not a power of two of at least a page"
        )));
    }
    let fd = map.fd().as_fd().as_raw_fd();
    let consumer = Mapping::new(fd, page, false, 0)?;
    let producer = Mapping::new(fd, page + 2 * size, false, page)?;
    // SAFETY: both pages start with the kernel's position, an aligned unsigned long.
    let (mut pos, end) = unsafe {
        (
            consumer
                .base
                .cast::<AtomicUsize>()
                .as_ref()
                .load(Ordering::Acquire),
            producer
                .base
                .cast::<AtomicUsize>()
                .as_ref()
                .load(Ordering::Acquire),
        )
    };
    // SAFETY: the data pages follow the producer page, mapped twice.
    let data = unsafe { producer.base.as_ptr().add(page) };
    let mut records = 0;
    while pos < end {
        // SAFETY: the offset is inside the data pages and 8-aligned, as in `drain`.
        let header =
            unsafe { &*data.add(pos & (size - 1)).cast::<AtomicU32>() }.load(Ordering::Acquire);
        let len = (header & !(BUSY | DISCARD)) as usize;
        let record = (len + HEADER).next_multiple_of(8);
        if header & BUSY != 0 || len > size - HEADER || record > end - pos {
            // Being written, or a corrupt length (see `walk`): the records past it cannot
            // be found, so the count stops here and is of those before it (a lower bound).
            // Nothing is skipped: this reader moves no position.
            break;
        }
        if header & DISCARD == 0 {
            records += 1;
        }
        pos += record;
    }
    Ok(records)
}

#[cfg(test)]
mod tests;
