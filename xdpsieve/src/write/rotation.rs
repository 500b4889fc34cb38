//! When a capture starts a new file, and what it is called: tcpdump's `-C`, `-G` and `-W`,
//! with tcpdump's names (its `MakeFilename`), so scripts written for tcpdump's files find
//! ours.
//!
//! - `-C MB`: before a packet is written, a file already larger than MB × 1,000,000 bytes
//!   is closed and the next one opened. The files after the first take a number after the
//!   `-w` name, from 1 upward (`drops.pcap`, `drops.pcap1`, `drops.pcap2`, ...).
//! - `-G SECS`: the first packet SECS seconds or more after the current file was opened
//!   starts a new one; the `-w` name is a strftime(3) pattern, formatted in local time
//!   with the time the file is opened (libc's own `strftime`, as tcpdump uses). A quiet
//!   period makes no file.
//! - `-W N` with `-C`: N files named with a number `0`..`N-1`, zero-padded to the digits
//!   of N-1, the next overwriting the oldest (a ring). With `-G` alone: N files, then the
//!   capture stops (tcpdump exits). With both, the number restarts at 0 each period.
//!
//! [`Rotation`] holds tcpdump's state (the period's start, the counts) and decides, given
//! the current file's size and the time (both passed in, so tests inject them).

use std::{ffi::CString, io, time::Duration};

pub mod command;
pub mod ring;
pub mod rotator;

/// The rotation flags, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RotationPlan {
    /// `-C`, in bytes (MB × 1,000,000).
    pub size: Option<u64>,
    /// `-G`.
    pub period: Option<Duration>,
    /// `-W`.
    pub files: Option<u32>,
    /// `-z`: a program, run with the finished file's name as its only argument.
    pub command: Option<String>,
}

/// `-C MB` in bytes, as tcpdump counts them.
pub const MEGABYTE: u64 = 1_000_000;

/// tcpdump's `getWflagChars`: the digits of `files - 1` (0 for one file).
pub fn number_width(files: Option<u32>) -> usize {
    let mut x = files.unwrap_or(0).saturating_sub(1);
    let mut width = 0;
    while x > 0 {
        width += 1;
        x /= 10;
    }
    width
}

/// tcpdump's `MakeFilename`: the pattern, through strftime (local time of `time`) when
/// `-G` is given, then `count` zero-padded to `width` digits, unless both are 0.
pub fn file_name(pattern: &str, time: Option<i64>, count: u32, width: usize) -> io::Result<String> {
    if pattern.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "an empty string is not a valid file name",
        ));
    }
    let base = match time {
        Some(t) => strftime_local(pattern, t)?,
        None => pattern.to_string(),
    };
    if count == 0 && width == 0 {
        return Ok(base);
    }
    Ok(format!("{base}{count:0width$}"))
}

/// `pattern` formatted by the C library's strftime in local time (TZ as the C library
/// reads it), as tcpdump formats its `-G` names.
fn strftime_local(pattern: &str, time: i64) -> io::Result<String> {
    let format = CString::new(pattern).map_err(|_| {
        io::Error::new(io::ErrorKind::InvalidInput, "a file name cannot hold a NUL")
    })?;
    // SAFETY: tm is plain data for localtime_r to fill.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // time_t is i64 on the targets we build (a build for another fails here, not at run time).
    let t: libc::time_t = time;
    // SAFETY: both pointers are valid for the call.
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        return Err(io::Error::other("localtime_r failed for the -G file name"));
    }
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    // SAFETY: buf holds PATH_MAX + 1 bytes, the format is NUL-terminated, tm was filled.
    let n = unsafe {
        libc::strftime(
            buf.as_mut_ptr().cast(),
            libc::PATH_MAX as usize,
            format.as_ptr(),
            &tm,
        )
    };
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the -w name, formatted with strftime, is empty or longer than PATH_MAX",
        ));
    }
    buf.truncate(n);
    String::from_utf8(buf)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file name is not UTF-8"))
}

/// What to do before the next packet.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Write it to the current file.
    Keep,
    /// Close the current file and write it to a new one with this name.
    Rotate(String),
    /// Close the current file and write no more (`-G` with `-W`: the last file is done).
    Stop,
}

/// tcpdump's rotation state: `Gflag_time`, `Gflag_count`, `Cflag_count`.
#[derive(Debug)]
pub struct Rotation {
    plan: RotationPlan,
    pattern: String,
    width: usize,
    period_start: i64,
    periods: u32,
    number: u32,
}

impl Rotation {
    /// Starts at `now` (Unix seconds); returns the state and the first file's name.
    pub fn start(plan: RotationPlan, pattern: &str, now: i64) -> io::Result<(Rotation, String)> {
        let width = number_width(plan.files);
        let rotation = Rotation {
            pattern: pattern.to_string(),
            width,
            period_start: now,
            periods: 0,
            number: 0,
            plan,
        };
        let first = rotation.name(0, rotation.first_width())?;
        Ok((rotation, first))
    }

    pub fn plan(&self) -> &RotationPlan {
        &self.plan
    }

    /// The first file of a period is numbered only with `-C` (and then `0` only with `-W`).
    fn first_width(&self) -> usize {
        if self.plan.size.is_some() {
            self.width
        } else {
            0
        }
    }

    fn name(&self, count: u32, width: usize) -> io::Result<String> {
        let time = self.plan.period.map(|_| self.period_start);
        file_name(&self.pattern, time, count, width)
    }

    /// Before a packet is written: `file_len` is the current file's size in bytes
    /// (written and buffered), `now` the time in Unix seconds.
    pub fn before_packet(&mut self, file_len: u64, now: i64) -> io::Result<Decision> {
        if let Some(period) = self.plan.period
            && now.saturating_sub(self.period_start) >= period.as_secs() as i64
        {
            self.period_start = now;
            self.periods += 1;
            if self.plan.size.is_none()
                && let Some(files) = self.plan.files
                && self.periods >= files
            {
                return Ok(Decision::Stop);
            }
            // A new period's file is as small as a file gets: -C has nothing to say.
            self.number = 0;
            return Ok(Decision::Rotate(self.name(0, self.first_width())?));
        }
        if let Some(size) = self.plan.size
            && file_len > size
        {
            self.number += 1;
            if self.plan.files.is_some_and(|files| self.number >= files) {
                self.number = 0;
            }
            return Ok(Decision::Rotate(self.name(self.number, self.width)?));
        }
        Ok(Decision::Keep)
    }
}

#[cfg(test)]
mod tests;
