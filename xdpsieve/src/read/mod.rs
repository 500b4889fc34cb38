//! Read and decode: the records the program sends reach userspace through a ring buffer or
//! perf buffers ([`source`], with our own ring reader [`ringbuf`]) and are decoded into
//! capture records ([`record`]) and events ([`event`]).

pub mod event;
pub mod notice;
pub mod record;
pub mod ringbuf;
pub mod source;
