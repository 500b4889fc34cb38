//! Write and log: the [`recorder`] drains the record sources into pcap or pcapng files
//! ([`capture`]) and event lines ([`event_log`]), each record's rule named from the rule
//! generation that judged it ([`generations`]), through a buffered writer that keeps only
//! whole records in a file and counts what it could not write ([`output`]).

pub mod ban_line;
pub mod capture;
pub mod event_log;
pub mod generations;
pub mod output;
pub mod recorder;
pub mod rotation;
