//! Configure: what the firewall is and how it gets into the kernel. Rules and the address
//! sets they name are read and checked ([`rules`], [`sets`], [`input`], [`flags`]),
//! compiled into the bitmaps the program matches with ([`classify`]) or, when short, into
//! eBPF code of their own ([`matcher`]) and, for capture filters, into the programs it runs
//! ([`capture_filter`]; generated code goes into the object through [`ebpf_code`]), and
//! loaded with the program and attached ([`loader`], which moves a link to another program
//! with [`relink`]). What each
//! subcommand needs of the process's privileges is in [`privileges`], and what `run` needs of
//! the kernel in [`kernel_features`]. A run's configuration file, which holds the rules or
//! names their file, is read in [`config`]. What becomes of a firewall once it is in force
//! (its pins, a takeover, a reload, live set changes, a stop) is the layer above,
//! `instance`.

pub mod capture_filter;
pub mod classify;
pub mod config;
pub mod ebpf_code;
pub mod flags;
pub mod input;
pub mod kernel_features;
pub mod loader;
pub mod matcher;
pub mod privileges;
pub mod relink;
pub mod rules;
pub mod sets;
