//! Where captures and event lines go, and the buffered writer that knows record boundaries.
//!
//! A failed write (disk full, I/O error, the reader of a pipe gone) must not leave a file
//! that ends in half a record, nor counts that claim records the file does not hold. A
//! `BufWriter` cannot help: when its flush fails part-way, it does not say which records
//! reached the file. [`RecordWriter`] is a small buffer of whole records: the caller appends
//! a record's bytes with [`RecordWriter::put`] and ends it with [`RecordWriter::end_record`];
//! only whole records are handed to the output, and the writer knows how many bytes, and so
//! how many records, the output took before an error. After an error it cuts a regular file
//! back to its last whole record ([`Output::cut_back`]; nothing can be taken back from a
//! pipe), keeps the error, and swallows everything after it: the caller counts those
//! records as not written.
//!
//! The hot path is the same as with a `BufWriter`: one copy into a 16 KiB buffer per
//! record, one `write` per buffer full. See [`WRITE_BUFFER`].

use std::{
    fs::File,
    io::{self, Write},
    os::fd::{AsFd as _, AsRawFd as _},
    path::PathBuf,
};

/// Output buffer of the capture file and the event log. Small on purpose: the records are
/// copied from the ring into it and from it into the page cache, and a buffer that stays
/// in the CPU's cache makes both copies cheap. With 1 MiB, 512-byte captures cost the
/// writer 2-4x the CPU per packet at full rate (and lost packets); with 16 KiB it keeps up
/// where tcpdump does (`cargo xtask bench`).
pub const WRITE_BUFFER: usize = 16 << 10;

/// Something records are written to, which can (or cannot) be cut back after a failure.
pub trait Output: Write {
    /// Takes back the last `bytes` bytes this writer wrote (the start of a record the
    /// failure cut). Outputs that cannot take bytes back (pipes, terminals, devices) do
    /// nothing and say so: `Ok(false)`.
    fn cut_back(&mut self, bytes: u64) -> io::Result<bool>;
}

impl Output for Vec<u8> {
    fn cut_back(&mut self, bytes: u64) -> io::Result<bool> {
        let keep = self
            .len()
            .saturating_sub(usize::try_from(bytes).unwrap_or(usize::MAX));
        self.truncate(keep);
        Ok(true)
    }
}

impl<T: Output + ?Sized> Output for Box<T> {
    fn cut_back(&mut self, bytes: u64) -> io::Result<bool> {
        (**self).cut_back(bytes)
    }
}

/// Where a sink takes room from when the disk is full: with `-W`, the ring of a rotating
/// capture's finished files (`write::rotation::ring`).
pub trait Room: Send {
    /// Removes the oldest file that can go to make room; which one, or `None` when none is
    /// left.
    fn remove_oldest(&mut self) -> Option<PathBuf>;
}

/// A capture file, the event log file, or standard output, written unbuffered (the
/// [`RecordWriter`] in front of it buffers).
pub struct Sink {
    file: File,
    /// Only a regular file can be cut back.
    regular: bool,
    /// With `-W`, the finished files of the ring: a write that finds the disk full removes
    /// the oldest of them and tries again.
    room: Option<Box<dyn Room>>,
}

impl Sink {
    /// Creates (truncates) the file at `path`.
    pub fn create(path: &std::path::Path) -> io::Result<Sink> {
        Ok(Sink::from_file(File::create(path)?))
    }

    /// Creates (truncates) a file of a rotating capture; `room`, with `-W`, is the ring of
    /// finished files to take room from when the disk is full.
    pub fn create_in_ring(
        path: &std::path::Path,
        room: Option<impl Room + 'static>,
    ) -> io::Result<Sink> {
        let mut sink = Sink::create(path)?;
        sink.room = room.map(|r| -> Box<dyn Room> { Box::new(r) });
        Ok(sink)
    }

    /// Standard output, through its own descriptor: binary records bypass Rust's line
    /// buffering of stdout, and failures reach us as plain `io::Error`s (the Rust runtime
    /// ignores SIGPIPE, so a reader that went away is an `EPIPE` error, not a death).
    pub fn stdout() -> io::Result<Sink> {
        let fd = io::stdout().as_fd().try_clone_to_owned()?;
        Ok(Sink::from_file(File::from(fd)))
    }

    fn from_file(file: File) -> Sink {
        let regular = file.metadata().is_ok_and(|m| m.is_file());
        Sink {
            file,
            regular,
            room: None,
        }
    }

    /// On a full disk, removes the oldest finished file of the ring; whether one went.
    fn make_room(&mut self) -> bool {
        let Some(room) = &mut self.room else {
            return false;
        };
        match room.remove_oldest() {
            Some(path) => {
                crate::base::log::warning(format_args!(
                    "xdpsieve: disk full: removed the oldest capture file {} to make room",
                    crate::base::text::escape_path(&path)
                ));
                true
            }
            None => false,
        }
    }
}

impl Write for Sink {
    /// A write that fails for lack of space (nothing of `buf` written) is tried again
    /// after each file the ring gives up, before the failure is passed on.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            match self.file.write(buf) {
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) && self.make_room() => {}
                result => return result,
            }
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Output for Sink {
    /// Cuts the file where the descriptor's offset says our last write ended, less `bytes`:
    /// right whether the file started empty, was opened for appending (`>>`), or is
    /// standard output shared with what the shell wrote before us.
    fn cut_back(&mut self, bytes: u64) -> io::Result<bool> {
        if !self.regular {
            return Ok(false);
        }
        // SAFETY: lseek on a descriptor we own; it touches no memory of ours.
        let end = unsafe { libc::lseek(self.file.as_raw_fd(), 0, libc::SEEK_CUR) };
        let end = u64::try_from(end).map_err(|_| io::Error::last_os_error())?;
        self.file.set_len(end.saturating_sub(bytes))?;
        Ok(true)
    }
}

/// Why an output stopped: kept once, reported once.
#[derive(Debug)]
pub struct Failure {
    pub kind: io::ErrorKind,
    /// The error as the OS puts it ("No space left on device").
    pub message: String,
    /// Set when the file could not be cut back to its last whole record.
    pub cut_error: Option<String>,
}

impl Failure {
    fn error(&self) -> io::Error {
        io::Error::new(self.kind, self.message.clone())
    }
}

/// A write buffer that hands only whole records to its output (see the module doc).
pub struct RecordWriter<W: Output> {
    out: W,
    buf: Vec<u8>,
    capacity: usize,
    /// End in `buf` of the last whole record; bytes after it belong to the open record.
    closed: usize,
    /// Ends in `buf` of the whole records not yet written, and whether each one counts
    /// (packets and event lines count; file headers and closing blocks do not).
    ends: Vec<(usize, bool)>,
    /// Counted records among `ends`.
    pending: u64,
    /// Bytes of whole records the output took: where the output ends.
    good_len: u64,
    /// Counted records wholly in the output.
    written: u64,
    failure: Option<Failure>,
    announced: bool,
}

impl<W: Output> RecordWriter<W> {
    pub fn new(out: W, capacity: usize) -> Self {
        RecordWriter {
            out,
            buf: Vec::with_capacity(capacity),
            capacity,
            closed: 0,
            ends: Vec::with_capacity(256),
            pending: 0,
            good_len: 0,
            written: 0,
            failure: None,
            announced: false,
        }
    }

    /// Appends bytes to the open record. Never fails: a failure of the output is kept (see
    /// [`Self::failure`]) and later bytes are dropped.
    #[inline]
    pub fn put(&mut self, bytes: &[u8]) {
        if self.failure.is_some() {
            return;
        }
        if self.buf.len() + bytes.len() > self.capacity && self.closed > 0 {
            self.write_closed();
            if self.failure.is_some() {
                return;
            }
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Ends the open record; `counted` says whether it is one of the records the caller
    /// counts (see [`Self::written`]).
    #[inline]
    pub fn end_record(&mut self, counted: bool) {
        if self.failure.is_some() {
            return;
        }
        self.closed = self.buf.len();
        self.ends.push((self.closed, counted));
        self.pending += u64::from(counted);
    }

    /// Writes every whole record out. Fails (with the kept error) once the output failed.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.closed > 0 {
            self.write_closed();
        }
        if self.failure.is_none()
            && let Err(e) = self.out.flush()
        {
            self.fail(e, 0);
        }
        match &self.failure {
            Some(failure) => Err(failure.error()),
            None => Ok(()),
        }
    }

    /// Counted records wholly in the output.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Counted records in the buffer, not yet written.
    pub fn pending(&self) -> u64 {
        self.pending
    }

    /// Bytes of whole records in the output.
    pub fn good_len(&self) -> u64 {
        self.good_len
    }

    /// Bytes of whole records in the output and in the buffer: the size the file will have
    /// (what tcpdump's `-C` measures, with `ftell`).
    pub fn whole_len(&self) -> u64 {
        self.good_len + self.closed as u64
    }

    pub fn failure(&self) -> Option<&Failure> {
        self.failure.as_ref()
    }

    /// The failure, only the first time it is asked for (to report it once).
    pub fn take_unannounced_failure(&mut self) -> Option<&Failure> {
        if self.announced {
            return None;
        }
        self.announced = self.failure.is_some();
        self.failure.as_ref()
    }

    /// Flushes (a failure stays recorded) and returns the output.
    pub fn into_inner(mut self) -> W {
        let _ = self.flush();
        self.out
    }

    /// Hands `buf[..closed]` to the output, keeping the open record's bytes.
    fn write_closed(&mut self) {
        let end = self.closed;
        let mut done = 0;
        while done < end {
            match self.out.write(&self.buf[done..end]) {
                Ok(0) => {
                    self.fail_after(done, io::Error::from(io::ErrorKind::WriteZero));
                    return;
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.fail_after(done, e);
                    return;
                }
            }
        }
        self.written += self.pending;
        self.good_len += end as u64;
        self.pending = 0;
        self.ends.clear();
        self.buf.copy_within(end.., 0);
        self.buf.truncate(self.buf.len() - end);
        self.closed = 0;
    }

    /// The output took `done` bytes of the buffer, then failed with `error`.
    fn fail_after(&mut self, done: usize, error: io::Error) {
        let mut whole_end = 0;
        for &(end, counted) in &self.ends {
            if end > done {
                break;
            }
            whole_end = end;
            self.written += u64::from(counted);
        }
        self.good_len += whole_end as u64;
        self.fail(error, (done - whole_end) as u64);
    }

    /// Stops the output after `error`, taking back the `partial` bytes of a record it cut.
    fn fail(&mut self, error: io::Error, partial: u64) {
        let cut_error = match partial {
            0 => None,
            _ => self.out.cut_back(partial).err().map(|e| e.to_string()),
        };
        self.failure = Some(Failure {
            kind: error.kind(),
            message: strip_os_code(&error),
            cut_error,
        });
        self.buf = Vec::new();
        self.ends = Vec::new();
        self.closed = 0;
        self.pending = 0;
    }
}

/// "No space left on device" rather than "No space left on device (os error 28)".
fn strip_os_code(error: &io::Error) -> String {
    let text = error.to_string();
    match text.find(" (os error ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests;
