//! Count and observe: every counter is defined once ([`counters`]) and read into a
//! [`stats::Snapshot`] for the summary and the live line, `xdpsieve status` ([`status`]) and
//! Prometheus ([`metrics`]); the interfaces are watched for anything that would let packets
//! bypass the program ([`watch`]).

pub mod counters;
pub mod metrics;
pub mod stats;
pub mod status;
pub mod watch;
