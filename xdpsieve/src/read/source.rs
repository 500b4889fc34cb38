//! Where records come from: the BPF ring buffer (one buffer shared by all CPUs, Linux 5.8+)
//! or a perf event array (one buffer per CPU, the aya book's way, Linux 4.3+). Both hand
//! out whole records; the perf side also reports the kernel's lost-sample counts.

use std::{
    io,
    os::fd::{AsRawFd, RawFd},
    time::Duration,
};

use aya::maps::{
    Map, MapData, PerfEventArray,
    perf::{PerfEvent, PerfEventArrayBuffer},
};

use crate::ringbuf::RingReader;

/// Which transport the program uses for its records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    #[default]
    #[value(name = "ringbuf")]
    RingBuf,
    Perf,
}

impl std::str::FromStr for Transport {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ringbuf" => Ok(Transport::RingBuf),
            "perf" => Ok(Transport::Perf),
            other => Err(format!(
                "unknown transport `{other}` (expected ringbuf or perf)"
            )),
        }
    }
}

impl Transport {
    pub fn kernel_value(self) -> u32 {
        match self {
            Transport::RingBuf => xdpsieve_common::transport::RINGBUF,
            Transport::Perf => xdpsieve_common::transport::PERF,
        }
    }
}

pub enum Source {
    Ring(RingReader),
    Perf {
        buffers: Vec<PerfEventArrayBuffer<MapData>>,
        /// Reassembly space for samples that wrap around a buffer's end.
        scratch: Vec<u8>,
        /// Samples the kernel reported lost (PERF_RECORD_LOST).
        lost: u64,
    },
}

impl Source {
    pub fn ring(map: Map) -> io::Result<Source> {
        match map {
            Map::RingBuf(data) => RingReader::new(data).map(Source::Ring),
            _ => Err(io::Error::other("not a ring buffer map")),
        }
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

    pub fn fds(&self) -> Vec<RawFd> {
        match self {
            Source::Ring(ring) => vec![ring.fd()],
            Source::Perf { buffers, .. } => buffers.iter().map(AsRawFd::as_raw_fd).collect(),
        }
    }

    /// Samples the perf buffers reported lost so far (0 for the ring buffer, whose losses
    /// the program counts itself).
    pub fn perf_lost(&self) -> u64 {
        match self {
            Source::Ring(_) => 0,
            Source::Perf { lost, .. } => *lost,
        }
    }

    /// Calls `f` with every record available now; returns how many there were.
    pub fn drain(&mut self, mut f: impl FnMut(&[u8])) -> usize {
        match self {
            Source::Ring(ring) => ring.drain(f),
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
