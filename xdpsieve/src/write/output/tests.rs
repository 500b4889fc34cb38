//! The record-boundary writer against outputs that fill up part-way through a record.

use std::io::{self, Write};

use xdpsieve_testkit::tempdir::TempDir;

use super::*;

/// An output with room for `room` bytes: a write that does not fit takes what fits (as a
/// full disk does), the next one fails with ENOSPC.
struct Full {
    data: Vec<u8>,
    room: usize,
    cuttable: bool,
    writes: usize,
}

impl Full {
    fn new(room: usize, cuttable: bool) -> Full {
        Full {
            data: Vec::new(),
            room,
            cuttable,
            writes: 0,
        }
    }
}

impl Write for Full {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writes += 1;
        let free = self.room - self.data.len();
        if free == 0 {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        let n = buf.len().min(free);
        self.data.extend_from_slice(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Output for Full {
    fn cut_back(&mut self, bytes: u64) -> io::Result<bool> {
        if self.cuttable {
            self.data.truncate(self.data.len() - bytes as usize);
        }
        Ok(self.cuttable)
    }
}

/// Writes `count` records of `len` bytes each (byte value = record number), a header of 8
/// bytes first (not counted).
fn fill(w: &mut RecordWriter<impl Output>, count: u8, len: usize) {
    w.put(&[0xff; 8]);
    w.end_record(false);
    for i in 0..count {
        // In two pieces, as the capture writers put a header and the packet bytes.
        w.put(&[i; 3]);
        w.put(&vec![i; len - 3]);
        w.end_record(true);
    }
}

#[test]
fn healthy_output_gets_everything_in_order() {
    let mut w = RecordWriter::new(Vec::new(), 64);
    fill(&mut w, 20, 10);
    // The 64-byte buffer went out whenever it filled: only whole records were written.
    assert_eq!(w.written() + w.pending(), 20);
    assert_eq!(w.good_len(), 8 + 10 * w.written());
    w.flush().unwrap();
    assert_eq!((w.written(), w.pending()), (20, 0));
    assert_eq!(w.good_len(), 8 + 200);
    let data = w.into_inner();
    assert_eq!(data.len(), 208);
    for (i, chunk) in data[8..].chunks(10).enumerate() {
        assert!(chunk.iter().all(|&b| b as usize == i));
    }
}

#[test]
fn records_in_the_buffer_are_not_written_until_flushed() {
    let mut w = RecordWriter::new(Vec::new(), 1024);
    fill(&mut w, 5, 10);
    assert_eq!((w.written(), w.pending()), (0, 5));
    w.flush().unwrap();
    assert_eq!((w.written(), w.pending()), (5, 0));
}

#[test]
fn a_full_output_keeps_whole_records_only() {
    // Room for the header and 3.5 records: the fourth is cut, then cut back off.
    let mut w = RecordWriter::new(Full::new(8 + 35, true), 1024);
    fill(&mut w, 10, 10);
    let err = w.flush().unwrap_err();
    assert_eq!(err.raw_os_error(), None); // kept as a kind and a message
    assert_eq!(err.kind(), io::ErrorKind::StorageFull);
    assert_eq!(w.written(), 3);
    assert_eq!(w.good_len(), 8 + 30);
    let failure = w.failure().expect("failed");
    assert_eq!(failure.message, "No space left on device");
    assert!(failure.cut_error.is_none());
    // Reported once.
    assert!(w.take_unannounced_failure().is_some());
    assert!(w.take_unannounced_failure().is_none());
    // Later records are swallowed, not written, not counted.
    fill(&mut w, 4, 10);
    assert!(w.flush().is_err());
    assert_eq!((w.written(), w.pending()), (3, 0));
    let out = w.into_inner();
    assert_eq!(out.data.len(), 38);
    assert_eq!(out.data[8..38], [[0u8; 10], [1; 10], [2; 10]].concat()[..]);
}

#[test]
fn failure_while_the_buffer_fills_mid_record() {
    // A small buffer flushes whole records while a record is open; the output fills on
    // a record boundary exactly.
    let mut w = RecordWriter::new(Full::new(8 + 50, true), 32);
    fill(&mut w, 10, 10);
    let _ = w.flush();
    assert_eq!(w.written(), 5);
    assert_eq!(w.good_len(), 58);
    assert!(w.into_inner().writes > 1);
}

#[test]
fn a_pipe_cannot_be_cut_but_the_counts_hold() {
    let mut w = RecordWriter::new(Full::new(8 + 25, false), 1024);
    fill(&mut w, 10, 10);
    assert!(w.flush().is_err());
    // Two whole records reached the reader; half of the third did too, and cannot be
    // taken back, but it is not counted as written.
    assert_eq!(w.written(), 2);
    assert_eq!(w.good_len(), 28);
    assert_eq!(w.into_inner().data.len(), 33);
}

#[test]
fn a_record_larger_than_the_buffer_is_written_whole() {
    let mut w = RecordWriter::new(Vec::new(), 16);
    fill(&mut w, 3, 100);
    w.flush().unwrap();
    assert_eq!(w.written(), 3);
    assert_eq!(w.into_inner().len(), 308);
}

#[test]
fn a_file_opened_for_appending_is_cut_after_what_it_held() {
    // As `-w - >> capture` would give us: the cut must not touch what was there before.
    let dir = TempDir::new("sink-append");
    let path = dir.file("capture");
    std::fs::write(&path, b"before|").unwrap();
    let file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    let mut sink = Sink::from_file(file);
    sink.write_all(b"whole|cut").unwrap();
    assert!(sink.cut_back(3).unwrap());
    let text = std::fs::read(&path).unwrap();
    assert_eq!(text, b"before|whole|");
}
