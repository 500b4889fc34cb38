//! Who is dropped (`TOP_SOURCES`, read by `top` and `status --top`): a source is held
//! within a few dozen of its dropped packets and counted exactly from then on, by kind
//! (dropped, would-drop, over a limit); a source whose packets pass is not tracked.

use xdpsieve::{base::snapshot::top_sources_of, configure::loader::Firewall};
use xdpsieve_common::{
    family,
    walk::{SourceKey, SourceStats, TOP_SOURCES_ENTRIES, top_sources_slot},
};
use xdpsieve_testkit::frame::Frame;
use xdpsieve_testkit::gate::root_or_skip;

use crate::support::*;

/// The source's counts summed over CPUs (as `status --top` reads them); `None` when it is
/// not held.
fn held(fw: &mut Firewall, src: [u8; 4]) -> Option<SourceStats> {
    let map = fw.map_mut("TOP_SOURCES").expect("a TOP_SOURCES map");
    let sources = top_sources_of(map).expect("the per-CPU array of source slots");
    let key = SourceKey {
        family: family::IPV4,
        _pad: [0; 3],
        addr: [u32::from_ne_bytes(src), 0, 0, 0],
    };
    sources.into_iter().find(|(k, _)| *k == key).map(|(_, s)| s)
}

#[test]
fn dropped_marked_and_limited_packets_are_counted_per_source_once_held() {
    if !root_or_skip() {
        return;
    }
    let mut fw = load(&xdpsieve::configure::loader::Settings {
        rules: xdpsieve::configure::rules::RuleSet::from_toml(
            "[[rule]]\naction = \"drop\"\nmode = \"monitor\"\nprotocol = \"udp\"\ndst_port = 7\n\
             [[rule]]\naction = \"limit\"\nprotocol = \"udp\"\ndst_port = 9\nrate = \"1/h\"\n\
             burst = 10\n[[rule]]\naction = \"drop\"\nprotocol = \"udp\"\ndst_port = 53\n",
            "test",
        )
        .expect("rules"),
        ..Default::default()
    });
    let dropped = Frame::ipv4(HOSTILE4, HOST4).udp(1, 53).build();
    let marked = Frame::ipv4(WATCHED4, HOST4).udp(1, 7).build();
    let limited = Frame::ipv4(RESOLVER4, HOST4).udp(1, 9).build();
    let passed = Frame::ipv4(PEER4, HOST4).udp(1, 80).build();
    run_repeat(&mut fw, &dropped, 2000);
    run_repeat(&mut fw, &marked, 2000);
    run_repeat(&mut fw, &limited, 2010);
    run_repeat(&mut fw, &passed, 2000);
    // Held by the 200th packet but for a chance of (15/16)^200, about 2.5e-6.
    let d = held(&mut fw, HOSTILE4).expect("the dropped source is held");
    assert!(
        (1800..=2000).contains(&d.dropped) && d.would + d.limited == 0,
        "{d:?}"
    );
    let m = held(&mut fw, WATCHED4).expect("the marked source is held");
    assert!(
        (1800..=2000).contains(&m.would) && m.dropped + m.limited == 0,
        "{m:?}"
    );
    let l = held(&mut fw, RESOLVER4).expect("the limited source is held");
    assert!(
        (1800..=2000).contains(&l.limited) && l.dropped == 0,
        "{l:?}"
    );
    assert_eq!(held(&mut fw, PEER4), None, "a passed source is not tracked");
}

/// A spoofed flood (a new source per packet, every slot hit many times over) does not take
/// the slot of a source that is still sending: its count stays exact from when it was held.
#[test]
fn a_spoofed_flood_does_not_push_out_a_source_that_is_still_sending() {
    if !root_or_skip() {
        return;
    }
    let mut fw = load(&xdpsieve::configure::loader::Settings {
        rules: xdpsieve::configure::rules::RuleSet::from_toml(
            "[[rule]]\naction = \"drop\"\nprotocol = \"udp\"\ndst_port = 53\n",
            "test",
        )
        .expect("rules"),
        ..Default::default()
    });
    let heavy = Frame::ipv4(HOSTILE4, HOST4).udp(1, 53).build();
    run_repeat(&mut fw, &heavy, 200);
    let before = held(&mut fw, HOSTILE4)
        .expect("the heavy source is held")
        .dropped;
    // 16 spoofed packets per slot on average (203.0.113.0/24 and 2001:db8::/32-like spread
    // by the hash), interleaved with the heavy source's.
    let spoofed = TOP_SOURCES_ENTRIES * 16;
    let heavy_slot = top_sources_slot(family::IPV4, &[u32::from_ne_bytes(HOSTILE4), 0, 0, 0]);
    let mut in_heavy_slot = 0;
    for i in 0..spoofed {
        let src = (0x0a00_0000u32 + i).to_be_bytes();
        if top_sources_slot(family::IPV4, &[u32::from_ne_bytes(src), 0, 0, 0]) == heavy_slot {
            in_heavy_slot += 1;
        }
        run_repeat(&mut fw, &Frame::ipv4(src, HOST4).udp(1, 53).build(), 1);
        if i % 64 == 0 {
            run_repeat(&mut fw, &heavy, 1);
        }
    }
    let after = held(&mut fw, HOSTILE4).expect("the heavy source is still held");
    assert_eq!(
        after.dropped,
        before + u64::from(spoofed.div_ceil(64)),
        "{in_heavy_slot} spoofed packets fell in its slot"
    );
    assert!(
        in_heavy_slot > 0,
        "the flood must reach the heavy source's slot"
    );
}

/// A source dropped by the default verdict (no rule matched, the drop not recorded: the
/// program's early way out) is counted as one a rule dropped.
#[test]
fn a_source_the_default_drops_is_counted() {
    if !root_or_skip() {
        return;
    }
    let mut rules = xdpsieve::configure::rules::RuleSet::from_toml(
        "[[rule]]\naction = \"pass\"\nprotocol = \"udp\"\ndst_port = 53\n",
        "test",
    )
    .expect("rules");
    rules.default_action = xdpsieve::configure::rules::Action::Drop;
    let mut fw = load(&xdpsieve::configure::loader::Settings {
        rules,
        capture: 0,
        ..Default::default()
    });
    let dropped = Frame::ipv4(HOSTILE4, HOST4).udp(1, 80).build();
    let passed = Frame::ipv4(PEER4, HOST4).udp(1, 53).build();
    run_repeat(&mut fw, &dropped, 2000);
    run_repeat(&mut fw, &passed, 2000);
    // Held by the 200th packet but for a chance of (15/16)^200, about 2.5e-6.
    let d = held(&mut fw, HOSTILE4).expect("the dropped source is held");
    assert!(
        (1800..=2000).contains(&d.dropped) && d.would + d.limited == 0,
        "{d:?}"
    );
    assert_eq!(held(&mut fw, PEER4), None, "a passed source is not tracked");
}
