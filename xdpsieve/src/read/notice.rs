//! Decoding the program's ban notices (`xdpsieve_common::walk::LimitNotice`): a key went
//! over the budget of a limit rule that bans (see `instance::bans`).

use std::net::IpAddr;

use xdpsieve_common::{family, walk::LimitNotice};

/// Decodes one notice. Errors (never expected from the kernel) are counted by the caller.
pub fn decode(bytes: &[u8]) -> Result<LimitNotice, DecodeError> {
    if bytes.len() < size_of::<LimitNotice>() {
        return Err(DecodeError(bytes.len()));
    }
    // SAFETY: LimitNotice is repr(C) plain integers (any bit pattern is valid) and `bytes`
    // holds at least its size.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) })
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("ban notice of {0} bytes is shorter than a notice")]
pub struct DecodeError(pub usize);

/// The notice's key as an address and a prefix length; `None` for a family the program
/// never sends.
pub fn key(notice: &LimitNotice) -> Option<(IpAddr, u8)> {
    let mut bytes = [0u8; 16];
    for (i, word) in notice.addr.iter().enumerate() {
        bytes[i * 4..i * 4 + 4].copy_from_slice(&word.to_ne_bytes());
    }
    match notice.family {
        family::IPV4 if notice.prefix_len <= 32 => {
            let v4: [u8; 4] = [bytes[0], bytes[1], bytes[2], bytes[3]];
            Some((IpAddr::from(v4), notice.prefix_len))
        }
        family::IPV6 if notice.prefix_len <= 128 => Some((IpAddr::from(bytes), notice.prefix_len)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_round_trips_and_names_its_key() {
        let notice = LimitNotice {
            timestamp_ns: 7,
            seen: 120,
            first_ns: 2,
            rule_id: 3,
            generation: 1,
            family: family::IPV4,
            prefix_len: 24,
            _pad: [0; 6],
            addr: [u32::from_ne_bytes([198, 51, 100, 0]), 0, 0, 0],
        };
        // SAFETY: a repr(C) value of plain integers read as its bytes.
        let bytes: &[u8] = unsafe {
            std::slice::from_raw_parts((&raw const notice).cast(), size_of::<LimitNotice>())
        };
        let got = decode(bytes).expect("decodes");
        assert_eq!(got, notice);
        assert_eq!(key(&got), Some(("198.51.100.0".parse().expect("addr"), 24)));
        assert_eq!(decode(&bytes[..55]), Err(DecodeError(55)));
    }
}
