//! Decoding the program's per-packet events (`xdpsieve_common::Event`); the event log
//! writes them out (`write::event_log`).

use xdpsieve_common::Event;

/// Decodes one event record. Errors (never expected from the kernel) are counted by the
/// caller.
pub fn decode(bytes: &[u8]) -> Result<Event, DecodeError> {
    if bytes.len() < size_of::<Event>() {
        return Err(DecodeError(bytes.len()));
    }
    // SAFETY: Event is repr(C) plain integers (any bit pattern is valid) and `bytes` holds at
    // least size_of::<Event>() bytes.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) })
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("event record of {0} bytes is shorter than an event")]
pub struct DecodeError(pub usize);

/// A UDP event from 198.51.100.53:53 to 192.0.2.2:40000, dropped by rule 1: the record
/// the decoder's and the event log's tests start from.
#[cfg(test)]
pub(crate) fn sample_event() -> Event {
    use xdpsieve_common::{family, record_flags};
    Event {
        timestamp_ns: 5,
        src: [u32::from_ne_bytes([198, 51, 100, 53]), 0, 0, 0],
        dst: [u32::from_ne_bytes([192, 0, 2, 2]), 0, 0, 0],
        ifindex: 3,
        rule_id: 1,
        frame_len: 129,
        src_port: 53,
        dst_port: 40000,
        vlan_id: 0,
        family: family::IPV4,
        protocol: 17,
        tcp_flags: 0,
        verdict: 1,
        flags: record_flags::HAS_PORTS,
        generation: 1,
        shadow_rule_id: 0,
        _pad: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_checks_length() {
        assert_eq!(decode(&[0; 10]), Err(DecodeError(10)));
        let e = sample_event();
        // SAFETY: viewing a repr(C) struct without padding as bytes.
        let bytes =
            unsafe { std::slice::from_raw_parts((&raw const e).cast::<u8>(), size_of::<Event>()) };
        assert_eq!(decode(bytes), Ok(e));
    }
}
