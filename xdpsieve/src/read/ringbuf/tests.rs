//! The record walk of [`RingReader::drain`](super::RingReader::drain) on plain memory laid
//! out as the kernel lays out a ring (kernel/bpf/ringbuf.c): 8-byte headers (length with
//! the busy and discard bits, then a page offset), records 8-aligned, and the data area
//! followed by its copy, as the double mapping shows it. A real ring cannot be corrupted
//! from userspace, so this is where a corrupt length is tested.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::{BUSY, Corrupt, DISCARD, HEADER, View, walk};

/// A ring of `SIZE` data bytes, the producer's side written by the test.
struct Ring {
    /// 2 * SIZE bytes as u64s: 8-aligned like the kernel's pages.
    words: Vec<u64>,
    producer: AtomicUsize,
    consumer: AtomicUsize,
    /// The reader's position.
    pos: usize,
}

const SIZE: usize = 256;

impl Ring {
    fn new() -> Ring {
        Ring {
            words: vec![0; 2 * SIZE / 8],
            producer: AtomicUsize::new(0),
            consumer: AtomicUsize::new(0),
            pos: 0,
        }
    }

    fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: the u64s' bytes, 2 * SIZE of them, borrowed mutably with the Vec.
        unsafe { std::slice::from_raw_parts_mut(self.words.as_mut_ptr().cast(), 2 * SIZE) }
    }

    /// Writes byte `i` of the data area and its copy, as the double mapping shows it.
    fn put(&mut self, at: usize, byte: u8) {
        let at = at & (SIZE - 1);
        self.bytes()[at] = byte;
        self.bytes()[at + SIZE] = byte;
    }

    /// Appends a record at the producer position with header `len | flags` (the length
    /// may lie: `real` bytes are reserved) and moves the producer past it.
    fn push_raw(&mut self, header: u32, body: &[u8], real: usize) {
        let at = self.producer.load(Ordering::Relaxed);
        for (i, b) in header.to_le_bytes().into_iter().enumerate() {
            self.put(at + i, b);
        }
        for (i, b) in 0u32.to_le_bytes().into_iter().enumerate() {
            self.put(at + 4 + i, b);
        }
        for (i, &b) in body.iter().enumerate() {
            self.put(at + HEADER + i, b);
        }
        self.producer
            .store(at + (real + HEADER).next_multiple_of(8), Ordering::Release);
    }

    fn push(&mut self, body: &[u8], flags: u32) {
        self.push_raw(body.len() as u32 | flags, body, body.len());
    }

    /// One drain: the records read and the corrupt headers met.
    fn walk(&mut self) -> (Vec<Vec<u8>>, Vec<Corrupt>) {
        let (mut records, mut corrupt) = (Vec::new(), Vec::new());
        let view = View {
            data: self.words.as_ptr().cast(),
            mask: SIZE - 1,
            publish_every: SIZE / 4,
            consumer: &self.consumer,
            producer: &self.producer,
        };
        let mut pos = self.pos;
        // SAFETY: `words` is 2 * SIZE bytes, 8-aligned, written as the kernel writes.
        let n = unsafe {
            walk(
                &view,
                &mut pos,
                |r| records.push(r.to_vec()),
                |c| corrupt.push(c),
            )
        };
        self.pos = pos;
        assert_eq!(n, records.len());
        (records, corrupt)
    }

    fn published(&self) -> usize {
        self.consumer.load(Ordering::Relaxed)
    }
}

#[test]
fn good_and_discarded_records_are_read_in_order_and_published() {
    let mut ring = Ring::new();
    ring.push(b"first", 0);
    ring.push(b"dropped", DISCARD);
    ring.push(&[7; 24], 0);
    let (records, corrupt) = ring.walk();
    assert_eq!(records, vec![b"first".to_vec(), vec![7; 24]]);
    assert!(corrupt.is_empty());
    // 8 + 5 -> 16, 8 + 7 -> 16, 8 + 24 -> 32.
    assert_eq!(ring.pos, 64);
    assert_eq!(ring.published(), 64);
    // Nothing new: nothing read, nothing moves.
    assert_eq!(ring.walk(), (Vec::new(), Vec::new()));
    assert_eq!(ring.pos, 64);
}

#[test]
fn a_busy_record_stops_the_walk_without_skipping() {
    let mut ring = Ring::new();
    ring.push(b"one", 0);
    ring.push(b"two", BUSY);
    ring.push(b"three", 0);
    let (records, corrupt) = ring.walk();
    assert_eq!(records, vec![b"one".to_vec()]);
    assert!(corrupt.is_empty());
    assert_eq!((ring.pos, ring.published()), (16, 16));
    // Still busy: the walk waits there, again.
    assert_eq!(ring.walk(), (Vec::new(), Vec::new()));
    assert_eq!(ring.pos, 16);
    // Committed: both are read.
    ring.put(16 + 3, 0);
    let (records, _) = ring.walk();
    assert_eq!(records, vec![b"two".to_vec(), b"three".to_vec()]);
    assert_eq!(ring.pos, ring.producer.load(Ordering::Relaxed));
}

#[test]
fn a_corrupt_length_is_counted_skipped_to_the_producer_and_reading_goes_on() {
    for lie in [
        // Longer than the ring.
        SIZE as u32,
        0x3fff_ffff,
        // In the ring, but past the producer position.
        SIZE as u32 - 64,
    ] {
        let mut ring = Ring::new();
        ring.push(b"before", 0);
        ring.push_raw(lie, b"junk", 4);
        ring.push(b"lost", 0);
        let end = ring.producer.load(Ordering::Relaxed);
        let (records, corrupt) = ring.walk();
        assert_eq!(records, vec![b"before".to_vec()], "length {lie}");
        assert_eq!(
            corrupt,
            vec![Corrupt {
                at: 16,
                header: lie,
                skipped: end - 16,
            }],
            "length {lie}"
        );
        assert_eq!((ring.pos, ring.published()), (end, end), "length {lie}");
        // The next records, committed after the skip, read as ever.
        ring.push(b"after", 0);
        ring.push(b"again", 0);
        let (records, corrupt) = ring.walk();
        assert_eq!(records, vec![b"after".to_vec(), b"again".to_vec()]);
        assert!(corrupt.is_empty());
        assert_eq!(ring.published(), ring.producer.load(Ordering::Relaxed));
    }
}

#[test]
fn records_wrap_around_the_end_through_the_double_mapping() {
    let mut ring = Ring::new();
    // Fill most of the ring and read it, so that the next record crosses the end.
    ring.push(&[1; SIZE - 40 - HEADER], 0);
    assert_eq!(ring.walk().0.len(), 1);
    assert_eq!(ring.pos, SIZE - 40);
    let body: Vec<u8> = (0..64).collect();
    ring.push(&body, 0);
    ring.push(b"next", 0);
    let (records, corrupt) = ring.walk();
    assert_eq!(records, vec![body, b"next".to_vec()]);
    assert!(corrupt.is_empty());
    assert_eq!(ring.pos, SIZE - 40 + 72 + 16);
    // A corrupt header after the wrap is skipped the same way.
    ring.push_raw(SIZE as u32 * 2, b"", 0);
    ring.push(b"lost", 0);
    let end = ring.producer.load(Ordering::Relaxed);
    let (records, corrupt) = ring.walk();
    assert!(records.is_empty());
    assert_eq!(corrupt.len(), 1);
    assert_eq!((ring.pos, ring.published()), (end, end));
    ring.push(b"fine", 0);
    assert_eq!(ring.walk().0, vec![b"fine".to_vec()]);
}

#[test]
fn a_position_ahead_of_the_producer_resyncs_to_it() {
    let mut ring = Ring::new();
    ring.push(b"one", 0);
    // Someone wrote the consumer page: the reader starts past anything committed.
    ring.pos = 64;
    let (records, corrupt) = ring.walk();
    assert!(records.is_empty());
    assert_eq!(
        corrupt,
        vec![Corrupt {
            at: 64,
            header: 0,
            skipped: 0,
        }]
    );
    assert_eq!((ring.pos, ring.published()), (16, 16));
    ring.push(b"two", 0);
    assert_eq!(ring.walk().0, vec![b"two".to_vec()]);
}
