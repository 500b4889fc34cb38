//! The capture's side of rotation: closes the current file between two whole records and
//! opens the next, as [`Rotation`] decides. Every file stands alone: a pcap file starts with
//! its header; a pcapng file with its section header and interface blocks, and it ends with
//! an interface statistics block per interface for its own packets. A packet goes to
//! exactly one file: the switch happens before it is written, never inside it.
//!
//! With a [`CounterProbe`] (a run's rotator has one), a pcapng file's statistics also give
//! what the kernel counted while the file was open: packets seen and dropped on the
//! interface, chosen for capture, lost, and left out by sampling (not loss).
//!
//! Each finished file joins the ring (with `-W`, the files the sink may remove when the
//! disk is full, and whose names the ring comes round to again) with its packet count, and
//! goes to the `-z` command. The packets of the finished files are kept
//! in [`Rotator::written_before`], so the counts are of the whole capture.

use std::{
    io,
    path::{Path, PathBuf},
    time::Duration,
};

use super::{
    Decision, Rotation, RotationPlan,
    command::PostRotate,
    ring::{Ring, SharedRing},
};
use xdpsieve_common::InterfaceCounters;

use crate::{
    base::counters::{self, INTERFACE},
    base::text::escape_path,
    write::capture::{CaptureWriter, Format, Interface},
    write::output::{Output, Sink},
};

/// How long the end of the run waits for the `-z` commands still running.
pub const COMMANDS_AT_EXIT: Duration = Duration::from_secs(10);

/// Opens the output of a new file.
pub type Opener<W> = Box<dyn FnMut(&Path) -> io::Result<W>>;

/// Reads each interface's counters now (ifindex, counters); `None` when it cannot.
pub type CounterProbe = Box<dyn FnMut() -> Option<Vec<(u32, InterfaceCounters)>>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    /// `-G` with `-W`: the last file is done; nothing more is written.
    Stopped,
    /// The next file could not be named or opened: the capture stopped.
    Failed,
}

/// Switches the capture's files (see the module doc).
pub struct Rotator<W: Output> {
    rotation: Rotation,
    open: Opener<W>,
    format: Format,
    snaplen: u32,
    interfaces: Vec<Interface>,
    current: PathBuf,
    /// When the current file was opened, in ns since the epoch.
    opened_ns: u64,
    /// Packets in the current file, per ifindex.
    packets: Vec<(u32, u64)>,
    written_before: u64,
    ring: Option<SharedRing>,
    command: Option<PostRotate>,
    state: State,
    probe: Option<CounterProbe>,
    /// The interfaces' counters when the current file was opened (with a probe).
    opened_counters: Option<Vec<(u32, InterfaceCounters)>>,
}

impl Rotator<Sink> {
    /// Opens the first file of the capture `pattern` names (`-w`), now.
    pub fn start(
        plan: RotationPlan,
        pattern: &str,
        format: Format,
        snaplen: u32,
        interfaces: &[Interface],
    ) -> io::Result<(Rotator<Sink>, CaptureWriter<Sink>)> {
        let ring = plan.files.map(|_| new_ring());
        let room = ring.clone();
        let open: Opener<Sink> = Box::new(move |path| Sink::create_in_ring(path, room.clone()));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let parts = (plan, format, snaplen);
        Rotator::with_opener(parts, pattern, interfaces, now, ring, open)
    }
}

impl<W: Output> Rotator<W> {
    /// Opens the first file through `open` at `now` (since the epoch); `ring` is where
    /// finished files go when there is a `-W`.
    pub fn with_opener(
        (plan, format, snaplen): (RotationPlan, Format, u32),
        pattern: &str,
        interfaces: &[Interface],
        now: Duration,
        ring: Option<SharedRing>,
        mut open: Opener<W>,
    ) -> io::Result<(Rotator<W>, CaptureWriter<W>)> {
        let (rotation, first) = Rotation::start(plan, pattern, now.as_secs() as i64)?;
        let first = PathBuf::from(first);
        let out = open(&first).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot open capture file {}: {e}", escape_path(&first)),
            )
        })?;
        let command = rotation.plan().command.as_deref().map(PostRotate::new);
        let writer = CaptureWriter::new(format, out, snaplen, interfaces);
        let rotator = Rotator {
            rotation,
            open,
            format,
            snaplen,
            interfaces: interfaces.to_vec(),
            current: first,
            opened_ns: now.as_nanos() as u64,
            packets: Vec::new(),
            written_before: 0,
            ring,
            command,
            state: State::Open,
            probe: None,
            opened_counters: None,
        };
        Ok((rotator, writer))
    }

    /// Gives each file's statistics what the kernel counted while the file was open,
    /// read through `probe`, from now on.
    pub fn with_counters(mut self, mut probe: CounterProbe) -> Self {
        self.opened_counters = probe();
        self.probe = Some(probe);
        self
    }

    /// The file being written.
    pub fn current(&self) -> &Path {
        &self.current
    }

    /// Whether `-G` with `-W` ended the capture.
    pub fn stopped(&self) -> bool {
        self.state == State::Stopped
    }

    /// Whether the next file could not be opened (the capture stopped, and said so).
    pub fn failed(&self) -> bool {
        self.state == State::Failed
    }

    /// Packets wholly in the files finished before the current one.
    pub fn written_before(&self) -> u64 {
        self.written_before
    }

    /// Captured packets no longer on disk (with `-W`): (in files the ring overwrote, in
    /// files removed to make room on a full disk).
    pub fn packets_gone(&self) -> (u64, u64) {
        self.ring
            .as_ref()
            .and_then(|ring| ring.lock().ok().map(|r| r.packets_gone()))
            .unwrap_or_default()
    }

    /// The finished files still in the ring (with `-W`), oldest first.
    pub fn ring_files(&self) -> Vec<PathBuf> {
        let Some(ring) = &self.ring else {
            return Vec::new();
        };
        ring.lock()
            .map(|r| r.files().map(Path::to_path_buf).collect())
            .unwrap_or_default()
    }

    /// Before a packet is written to `writer`, at `now`: starts the next file if it is
    /// time. Whether the packet may be written (not when the capture stopped or failed).
    pub fn before_packet(&mut self, writer: &mut CaptureWriter<W>, now: Duration) -> bool {
        if self.state != State::Open {
            return false;
        }
        let len = writer.output().whole_len();
        let decision = match self.rotation.before_packet(len, now.as_secs() as i64) {
            Ok(decision) => decision,
            Err(e) => {
                self.fail(&format!("cannot name the next file: {e}"));
                return false;
            }
        };
        match decision {
            Decision::Keep => true,
            Decision::Stop => {
                let files = self.rotation.plan().files.unwrap_or(0);
                self.close(writer, now);
                if writer.output().failure().is_none() {
                    let current = self.current.clone();
                    self.finished(&current, writer.written());
                }
                self.state = State::Stopped;
                crate::base::log::info(format_args!(
                    "xdpsieve: -W {files} files of -G written: the capture is done, stopping"
                ));
                false
            }
            Decision::Rotate(name) => self.rotate(writer, PathBuf::from(name), now),
        }
    }

    fn rotate(&mut self, writer: &mut CaptureWriter<W>, next: PathBuf, now: Duration) -> bool {
        self.close(writer, now);
        if writer.output().failure().is_some() {
            // Reported (once) by the recorder; the capture stops on the old file.
            return false;
        }
        if let Some(ring) = &self.ring
            && let Ok(mut ring) = ring.lock()
        {
            ring.reopen(&next);
        }
        let done = writer.written();
        let out = match (self.open)(&next) {
            Ok(out) => out,
            Err(e) => {
                let current = self.current.clone();
                self.finished(&current, done);
                self.fail(&format!("cannot open {}: {e}", escape_path(&next)));
                return false;
            }
        };
        let new = CaptureWriter::new(self.format, out, self.snaplen, &self.interfaces);
        // The old writer is dropped here, which closes its file before it is handed on.
        drop(std::mem::replace(writer, new));
        self.written_before += done;
        let finished = std::mem::replace(&mut self.current, next);
        self.finished(&finished, done);
        self.opened_ns = now.as_nanos() as u64;
        self.packets.clear();
        self.opened_counters = self.probe.as_mut().and_then(|probe| probe());
        // The header goes out now, so a file exists from its first moment.
        let _ = writer.flush();
        writer.output().failure().is_none()
    }

    /// A file holding `packets` is closed for good: into the ring, and to the `-z` command.
    fn finished(&mut self, path: &Path, packets: u64) {
        if let Some(ring) = &self.ring
            && let Ok(mut ring) = ring.lock()
        {
            ring.push(path, packets);
        }
        if let Some(command) = &mut self.command
            && let Some(line) = command.start(&path.to_string_lossy())
        {
            crate::base::log::warning(format_args!("{line}"));
        }
    }

    /// The closing blocks of the current file and the last flush (a failure stays in
    /// the writer, for the recorder to report).
    fn close(&mut self, writer: &mut CaptureWriter<W>, now: Duration) {
        if writer.output().failure().is_some() {
            return;
        }
        let span = (self.opened_ns, now.as_nanos() as u64);
        let mut ifindexes: Vec<u32> = self.interfaces.iter().map(|i| i.ifindex).collect();
        ifindexes.extend(
            self.packets
                .iter()
                .map(|&(i, _)| i)
                .filter(|i| !self.interfaces.iter().any(|known| known.ifindex == *i)),
        );
        let now_counters = self.probe.as_mut().and_then(|probe| probe());
        for ifindex in ifindexes {
            let packets = self
                .packets
                .iter()
                .find(|&&(i, _)| i == ifindex)
                .map_or(0, |&(_, n)| n);
            let counted = match (&self.opened_counters, &now_counters) {
                (Some(then), Some(now)) => {
                    let find = |all: &Vec<(u32, InterfaceCounters)>| {
                        all.iter().find(|(i, _)| *i == ifindex).map(|(_, c)| *c)
                    };
                    find(now).map(|now| {
                        counters::difference(INTERFACE, &now, &find(then).unwrap_or_default())
                    })
                }
                _ => None,
            };
            writer.write_file_statistics(ifindex, span, packets, counted.as_ref());
        }
        let _ = writer.flush();
    }

    fn fail(&mut self, reason: &str) {
        self.state = State::Failed;
        crate::base::log::warning(format_args!(
            "xdpsieve: capture stopped: {reason}; filtering goes on; records not written are counted"
        ));
    }

    /// A packet of `ifindex` went into the current file.
    #[inline]
    pub fn wrote(&mut self, ifindex: u32) {
        match self.packets.iter_mut().find(|(i, _)| *i == ifindex) {
            Some((_, n)) => *n += 1,
            None => self.packets.push((ifindex, 1)),
        }
    }

    /// Reaps the `-z` commands that ended, says which failed or hang.
    pub fn poll_commands(&mut self) {
        if let Some(command) = &mut self.command {
            for line in command.poll() {
                crate::base::log::warning(format_args!("{line}"));
            }
        }
    }

    /// At the end of the run, at `now`: closes the current file (unless the capture
    /// stopped before), hands it to `-z`, and waits up to `wait` for the commands.
    pub fn finish(&mut self, writer: &mut CaptureWriter<W>, now: Duration, wait: Duration) {
        if self.state == State::Open {
            self.close(writer, now);
            if writer.output().failure().is_none() {
                let current = self.current.clone();
                self.finished(&current, writer.written());
            }
            self.state = State::Stopped;
        }
        if let Some(command) = &mut self.command {
            for line in command.finish(wait) {
                crate::base::log::warning(format_args!("{line}"));
            }
        }
    }
}

/// An empty ring of finished files, to share between a rotator and its sinks.
pub fn new_ring() -> SharedRing {
    SharedRing::new(std::sync::Mutex::new(Ring::default()))
}

#[cfg(test)]
mod tests;
