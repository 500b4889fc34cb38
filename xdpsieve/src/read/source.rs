//! Where records come from: BPF ring buffers (Linux 5.8+: one per CPU for captures, one
//! shared by all CPUs for events) or a perf event array (one buffer per CPU, the aya
//! book's way, Linux 4.3+), whichever
//! the program was loaded to send through (`configure::loader::Transport`). Both hand
//! out whole records; the perf side also reports the kernel's lost-sample counts. A third
//! kind, [`Source::Memory`], hands out records queued from userspace in the same byte
//! layout: the recording side ([`crate::session::capture_session`]) runs on it without a kernel,
//! which is how its rotation and shutdown order are tested.

use std::{
    collections::VecDeque,
    io,
    os::fd::{AsRawFd, RawFd},
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use aya::maps::{
    Map, MapData, PerfEventArray,
    perf::{PerfEvent, PerfEventArrayBuffer},
};

use crate::{base::counters::WriterStats, read::ringbuf::RingReader};

pub enum Source {
    /// Ring buffers drained in turn: one per CPU for the capture records, one for the
    /// events and the ban notices.
    Rings(Vec<RingReader>),
    Perf {
        buffers: Vec<PerfEventArrayBuffer<MapData>>,
        /// Reassembly space for samples that wrap around a buffer's end.
        scratch: Vec<u8>,
        /// Samples the kernel reported lost (PERF_RECORD_LOST).
        lost: u64,
    },
    /// Records queued through a [`MemoryQueue`], as the kernel would have written them.
    Memory(MemoryQueue),
}

/// The feeding end of a [`Source::Memory`]: whole raw records (a capture record is its
/// `CaptureHeader` followed by the packet's bytes, see [`crate::read::record`]), handed out in
/// the order pushed.
#[derive(Clone, Default)]
pub struct MemoryQueue(Arc<Mutex<VecDeque<Vec<u8>>>>);

impl MemoryQueue {
    /// Queues one raw record for the next drain.
    pub fn push(&self, record: Vec<u8>) {
        self.records().push_back(record);
    }

    /// Records queued and not drained yet.
    pub fn len(&self) -> usize {
        self.records().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn records(&self) -> std::sync::MutexGuard<'_, VecDeque<Vec<u8>>> {
        // A panic while holding the lock leaves whole records behind: still usable.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Source {
    pub fn ring(map: Map) -> io::Result<Source> {
        match map {
            Map::RingBuf(data) => RingReader::new(data).map(|ring| Source::Rings(vec![ring])),
            _ => Err(io::Error::other("not a ring buffer map")),
        }
    }

    /// Reads the per-CPU rings (all of them, in turn).
    pub fn rings(rings: Vec<MapData>) -> io::Result<Source> {
        rings
            .into_iter()
            .map(RingReader::new)
            .collect::<io::Result<Vec<_>>>()
            .map(Source::Rings)
    }

    /// Opens one perf buffer per online CPU, about `bytes_per_cpu` each.
    pub fn perf(map: Map, bytes_per_cpu: usize) -> io::Result<Source> {
        let mut array = PerfEventArray::try_from(map).map_err(io::Error::other)?;
        let page = 4096;
        let pages = (bytes_per_cpu / page).max(1).next_power_of_two();
        let cpus = aya::util::online_cpus()
            .map_err(|(what, e)| io::Error::new(e.kind(), format!("{what}: {e}")))?;
        let buffers = cpus
            .into_iter()
            .map(|cpu| array.open(cpu, Some(pages)).map_err(io::Error::other))
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Source::Perf {
            buffers,
            scratch: Vec::new(),
            lost: 0,
        })
    }

    /// A source fed from userspace (see [`MemoryQueue`]), and its feeding end.
    pub fn memory() -> (Source, MemoryQueue) {
        let queue = MemoryQueue::default();
        (Source::Memory(queue.clone()), queue)
    }

    /// The descriptors to wait on; none for a memory source (see [`Source::ready_now`]).
    pub fn fds(&self) -> Vec<RawFd> {
        match self {
            Source::Rings(rings) => rings.iter().map(RingReader::fd).collect(),
            Source::Perf { buffers, .. } => buffers.iter().map(AsRawFd::as_raw_fd).collect(),
            Source::Memory(_) => Vec::new(),
        }
    }

    /// Whether records are known to wait without polling: only a memory source can tell.
    pub fn ready_now(&self) -> bool {
        match self {
            Source::Memory(queue) => !queue.is_empty(),
            Source::Rings(_) | Source::Perf { .. } => false,
        }
    }

    /// The size of the smallest of its rings (see [`RingReader::size`]); `None` for the
    /// sources that have none.
    pub fn smallest_ring(&self) -> Option<usize> {
        match self {
            Source::Rings(rings) => rings.iter().map(RingReader::size).min(),
            Source::Perf { .. } | Source::Memory(_) => None,
        }
    }

    /// How full the fullest ring was when the last drain began (see [`RingReader::fill`]);
    /// `None` for the sources that cannot tell.
    pub fn fill(&self) -> Option<f64> {
        match self {
            Source::Rings(rings) => rings.iter().map(RingReader::fill).reduce(f64::max),
            Source::Perf { .. } | Source::Memory(_) => None,
        }
    }

    /// Samples the perf buffers reported lost so far (0 for the ring buffer, whose losses
    /// the program counts itself).
    pub fn perf_lost(&self) -> u64 {
        match self {
            Source::Rings(_) | Source::Memory(_) => 0,
            Source::Perf { lost, .. } => *lost,
        }
    }

    /// Corrupt record lengths the ring reader skipped past, and the bytes it skipped
    /// (see `read::ringbuf`); (0, 0) for the other sources, which hand out whole records.
    pub fn ring_corrupt(&self) -> (u64, u64) {
        match self {
            Source::Rings(rings) => rings.iter().fold((0, 0), |(h, b), r| {
                (h + r.corrupt_headers(), b + r.skipped_bytes())
            }),
            Source::Perf { .. } | Source::Memory(_) => (0, 0),
        }
    }

    /// The [`WriterStats`] of the source itself: what [`Source::ring_corrupt`] counts.
    pub fn stats(&self) -> WriterStats {
        let (ring_corrupt, ring_skipped_bytes) = self.ring_corrupt();
        WriterStats {
            ring_corrupt,
            ring_skipped_bytes,
            ..WriterStats::default()
        }
    }

    /// Calls `f` with every record available now; returns how many there were.
    pub fn drain(&mut self, mut f: impl FnMut(&[u8])) -> usize {
        match self {
            Source::Rings(rings) => rings.iter_mut().map(|r| r.drain(&mut f)).sum(),
            Source::Perf {
                buffers,
                scratch,
                lost,
            } => {
                let mut n = 0;
                for buffer in buffers {
                    buffer.for_each(|event| match event {
                        PerfEvent::Sample { head, tail: [] } => {
                            f(head);
                            n += 1;
                        }
                        PerfEvent::Sample { head, tail } => {
                            scratch.clear();
                            scratch.extend_from_slice(head);
                            scratch.extend_from_slice(tail);
                            f(scratch);
                            n += 1;
                        }
                        PerfEvent::Lost { count } => *lost += count,
                    });
                }
                n
            }
            Source::Memory(queue) => {
                // Taken out first: `f` must not run under the lock.
                let records = std::mem::take(&mut *queue.records());
                records.iter().for_each(|r| f(r));
                records.len()
            }
        }
    }
}

/// Waits up to `timeout` until any of `fds` is readable. A signal ends the wait early.
pub fn wait_readable(fds: &[RawFd], timeout: Duration) -> io::Result<bool> {
    if fds.is_empty() {
        std::thread::sleep(timeout);
        return Ok(false);
    }
    let mut pollfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: pollfds is a valid array of pollfd of the given length.
    let ready = unsafe { libc::poll(pollfds.as_mut_ptr(), pollfds.len() as libc::nfds_t, ms) };
    if ready < 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(err);
    }
    Ok(ready > 0)
}
