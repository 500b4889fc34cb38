//! Capture and event records from arbitrary bytes, as a corrupted or hostile ring could
//! hold them: decoding never panics or reads past the record; a decoded capture record is
//! consistent; an event formats as one line (text without control characters, or JSON).
#![no_main]

use libfuzzer_sys::fuzz_target;
use xdpsieve::{
    base::text::is_unsafe,
    configure::rules::{Action, RuleSet},
    read::event,
    read::record::CaptureRecord,
    write::event_log::{EventFormatter, LogFormat},
};
use xdpsieve_common::{CAPTURE_HEADER_LEN, MAX_SNAPLEN};

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = CaptureRecord::decode(data) {
        assert!(record.data.len() <= MAX_SNAPLEN as usize);
        assert!(record.data.len() as u64 <= u64::from(record.orig_len));
        assert_eq!(
            record.data.as_ptr(),
            data[CAPTURE_HEADER_LEN..].as_ptr(),
            "packet bytes follow the header"
        );
    }
    if let Ok(event) = event::decode(data) {
        let mut rules = RuleSet::default();
        let _ = rules.push_expression(Action::Drop, "udp src port 53");
        let interfaces = [(1, "veth-a".to_string()), (2, "odd\u{1b}[2J".to_string())];
        for format in [LogFormat::Text, LogFormat::Json] {
            let formatter = EventFormatter::new(format, &rules, &interfaces);
            let mut line = String::new();
            formatter.write_line(&event, &mut line);
            let body = line.strip_suffix('\n').expect("a line ends in a newline");
            assert!(!body.contains('\n'), "{line:?}");
            match format {
                LogFormat::Text => assert!(!body.chars().any(is_unsafe), "{line:?}"),
                LogFormat::Json => {
                    assert!(body.starts_with('{') && body.ends_with('}'), "{line:?}")
                }
            }
        }
    }
});
