//! What every layer shares, and which uses none of them: the escaping of untrusted text for
//! terminals and text files ([`text`]).
pub mod text;
