//! Who is dropped (`TOP_SOURCES`, read by `top` and `status --top`): a source is held
//! within a few dozen of its dropped packets and counted exactly from then on, by kind
//! (dropped, would-drop, over a limit); a source whose packets pass is not tracked.

use aya::maps::PerCpuHashMap;
use xdpsieve::configure::loader::Firewall;
use xdpsieve_common::{
    family,
    walk::{SourceKey, SourceStats},
};
use xdpsieve_testkit::frame::Frame;
use xdpsieve_testkit::gate::root_or_skip;

use crate::support::*;

/// The source's counts summed over CPUs; `None` when it is not held.
fn held(fw: &mut Firewall, src: [u8; 4]) -> Option<SourceStats> {
    let map = fw.map_mut("TOP_SOURCES").expect("a TOP_SOURCES map");
    let hash: PerCpuHashMap<_, SourceKey, SourceStats> =
        PerCpuHashMap::try_from(map).expect("a per-CPU hash");
    let key = SourceKey {
        family: family::IPV4,
        _pad: [0; 3],
        addr: [u32::from_ne_bytes(src), 0, 0, 0],
    };
    let values = hash.get(&key, 0).ok()?;
    let mut total = SourceStats::default();
    for v in values.iter() {
        total.dropped += v.dropped;
        total.would += v.would;
        total.limited += v.limited;
    }
    Some(total)
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
