//! Count and observe: the counters (catalogued in [`crate::base::counters`]) reported in the
//! summary and the live line ([`stats`]), `xdpsieve status` ([`status`]) and Prometheus
//! ([`metrics`]); the interfaces are watched for anything that would let packets bypass the
//! program ([`watch`]).

pub mod metrics;
pub mod stats;
pub mod status;
pub mod watch;
