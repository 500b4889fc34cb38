//! `xdpsieve top` and `status --top N`: what a firewall is dropping now, from its pinned
//! state, beside a running recorder or on a firewall left without one.
//!
//! A [`sample::TopSample`] is one read of the counters (per rule, per source, the losses)
//! and of the set entries with a timeout; [`model::TopModel::between`] turns two samples
//! into rates (pure, tested without a kernel); [`text`] prints a model for `status --top`
//! (text or JSON), [`render`] draws it into a terminal frame, and [`live`] runs the
//! full-screen view, one sample a tick.
//!
//! Per-source figures stay here: they never become Prometheus labels (one series per
//! address would grow without bound under a spoofed flood); the metrics keep per-rule
//! series.

pub mod live;
pub mod model;
pub mod render;
pub mod sample;
pub mod text;
