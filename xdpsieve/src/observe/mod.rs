//! Count and observe: the counters (catalogued in [`crate::base::counters`]) reported in the
//! summary and the live line ([`stats`]), `xdpsieve status` ([`status`]), the rates per
//! rule and per source of `xdpsieve top` and `status --top` ([`top`]) and Prometheus
//! ([`metrics`]), which read what the recorder wrote and did not write from the file the
//! run publishes it in ([`writer_state`]); the interfaces are watched for anything that
//! would let packets bypass the program ([`watch`]).

pub mod metrics;
pub mod stats;
pub mod status;
pub mod top;
pub mod watch;
pub mod writer_state;
