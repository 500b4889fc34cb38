//! A firewall in force, whatever process holds it: what it says about itself
//! ([`description`], with the [`recipe`] its rules are rebuilt from), where it lives when
//! no process does ([`pins`]: its pins in bpffs, its description in /run, one owner per
//! interface); a new run taking over one whose recorder died ([`takeover`]), its rules
//! replaced without a gap ([`reload`]: SIGHUP, `xdpsieve reload`), its address sets
//! changed live ([`sets`]: `xdpsieve set`, expiry), and its removal by an explicit
//! [`stop`].

pub mod bans;
pub mod description;
pub mod pins;
pub mod recipe;
pub mod reload;
pub mod sets;
pub mod stop;
pub mod takeover;
