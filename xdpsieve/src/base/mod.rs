//! What every layer shares, and which uses none of them: the counter catalogue
//! ([`counters`]: every counter xdpsieve keeps, in the kernel and in userspace, defined
//! once) and its reader ([`snapshot`]), and the escaping of untrusted text for terminals
//! and text files ([`text`]); and the one way out to standard error, with each line's
//! priority for the journal ([`log`]).

pub mod counters;
pub mod log;
pub mod snapshot;
pub mod text;
