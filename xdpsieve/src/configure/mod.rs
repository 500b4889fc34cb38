//! Configure: what the firewall does and where it lives in the kernel. Rules and the address
//! sets they name are read and checked ([`rules`], [`sets`], [`input`], [`flags`]), compiled
//! into the bitmaps the program matches with ([`classify`]), and loaded with the program
//! ([`loader`], which moves a link to another program with [`relink`]); the firewall is pinned in bpffs so it outlives its recorder ([`crate::instance::pins`]),
//! taken over by a new run ([`crate::instance::takeover`]), given new rules without a gap ([`crate::instance::reload`]) and
//! removed only by an explicit [`crate::instance::stop`]. What each subcommand needs of the process's
//! privileges is in [`privileges`].

pub mod capture_filter;
pub mod classify;
pub mod flags;
pub mod input;
pub mod loader;
pub mod privileges;
pub mod relink;
pub mod rules;
pub mod sets;
