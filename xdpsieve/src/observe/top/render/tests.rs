//! The view drawn on fixed-size terminal buffers from recorded state, compared line by
//! line with what an operator should see.
//!
//! `recorded-pair.json` is two samples of a real firewall read one second apart
//! (`sample::read`, on a veth in a test namespace, while DNS responses from port 53 were
//! dropped at about 1,900 per second): a drop rule, a set rule, the default, four timed set
//! entries. Its program counted no per-source, would-drop or over-limit figures; the
//! "plugged" cases add them to the same recording as the kernel's maps will fill them.

use ratatui::{Terminal, backend::TestBackend, buffer::Buffer, style::Color};

use super::*;
use crate::observe::top::sample::{SourceSample, TopSample};

fn recorded() -> (TopSample, TopSample) {
    let pair: [TopSample; 2] = serde_json::from_str(include_str!("recorded-pair.json"))
        .expect("the fixture is two samples");
    let [a, b] = pair;
    (a, b)
}

/// The recording with what the kernel's new maps will add: per-source counts, a monitor
/// rule's would-drop and a limit rule's over-limit counts.
fn plugged() -> (TopSample, TopSample) {
    let (mut a, mut b) = recorded();
    for (s, scale) in [(&mut a, 0), (&mut b, 1)] {
        s.sources_tracked = true;
        let source = |addr: &str, dropped: u64, limited: u64| SourceSample {
            addr: addr.parse().unwrap(),
            dropped: dropped * scale,
            dropped_bytes: dropped * scale * 142,
            would: 0,
            would_bytes: 0,
            limited: limited * scale,
            limited_bytes: limited * scale * 80,
        };
        s.sources = vec![
            source("192.0.2.2", 1_900, 0),
            source("2001:db8:bad:1::53", 40, 700),
            source("198.51.100.23", 3, 0),
        ];
        s.rules[2].would_drop = Some(25 * scale);
        s.rules[1].over_limit = Some(0);
    }
    b.losses.insert("capture_lost".into(), 120);
    (a, b)
}

fn screen(a: &TopSample, b: &TopSample) -> Screen {
    Screen {
        interface: b.interface.clone(),
        interval_s: 1.0,
        state: State::Rates(Box::new(TopModel::between(a, b))),
    }
}

/// The lines `screen` draws on a `width` x `height` terminal.
fn drawn(screen: &Screen, width: u16, height: u16) -> Buffer {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test terminal");
    terminal
        .draw(|frame| draw(frame, screen))
        .expect("drawing on a test terminal");
    terminal.backend().buffer().clone()
}

fn lines(buffer: &Buffer) -> Vec<String> {
    let width = usize::from(buffer.area.width);
    buffer
        .content
        .chunks(width)
        .map(|row| row.iter().map(|c| c.symbol()).collect::<String>())
        .collect()
}

/// Compares line by line, saying which line differs (and showing the whole screen).
fn assert_lines(buffer: &Buffer, expected: &[&str]) {
    let got = lines(buffer);
    let width = usize::from(buffer.area.width);
    let want: Vec<String> = expected.iter().map(|l| format!("{l:<width$}")).collect();
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "line {i} differs; the screen:\n{}", got.join("\n"));
    }
    assert_eq!(got.len(), want.len(), "the screen:\n{}", got.join("\n"));
}

#[test]
fn recorded_state_on_a_100_by_30_terminal() {
    let (a, b) = recorded();
    let mut expected = vec![
        " xdpsieve top  tdfw0  generation 1  recorder alive  every 1.0 s  q quits",
        r" seen 2.0k pkt/s 2.3M bit/s   dropped 1.9k pkt/s 2.2M bit/s   passed 97 pkt/s",
        r"   id rule                                                            action  drop/s   pkt/s   bit/s",
        r"    1 dns-responses                                                   drop      1.9k    1.9k    2.2M",
        r"    0 default                                                         pass         0      97   71.1k",
        r"    2 banned-sources                                                  drop         0       0       0",
        "",
        r"top sources                                                    pkt/s   bit/s  drop/s would/s limit/s",
        "not counted by this firewall's program",
        "",
        r"timed set entries (4)                                             set              origin       left",
        r"192.0.2.77/32                                                     banned           runtime     1m01s",
        r"198.51.100.9/32                                                   banned           runtime     1m01s",
        r"198.51.100.7/32                                                   banned           runtime     9m31s",
        r"2001:db8:bad::/48                                                 banned           runtime     1h59m",
    ];
    expected.resize(29, "");
    expected.push(" losses: none");
    assert_lines(&drawn(&screen(&a, &b), 100, 30), &expected);
}

#[test]
fn per_source_would_drop_and_over_limit_counts_get_their_columns() {
    let (a, b) = plugged();
    let mut expected = vec![
        " xdpsieve top  tdfw0  generation 1  recorder alive  every 1.0 s  q quits",
        r" seen 2.0k pkt/s 2.3M bit/s   dropped 1.9k pkt/s 2.2M bit/s   passed 97 pkt/s",
        r"   id rule                                            action  drop/s   pkt/s   bit/s would/s  over/s",
        r"    1 dns-responses                                   drop      1.9k    1.9k    2.2M       -       0",
        r"    2 banned-sources                                  drop         0       0       0      25       -",
        r"    0 default                                         pass         0      97   71.1k       -       -",
        "",
        r"top sources                                                    pkt/s   bit/s  drop/s would/s limit/s",
        r"192.0.2.2                                                       1.9k    2.2M    1.9k       0       0",
        r"2001:db8:bad:1::53                                               737  491.6k      40       0     697",
        r"198.51.100.23                                                    3.0    3.4k     3.0       0       0",
        "",
        r"timed set entries (4)                                             set              origin       left",
        r"192.0.2.77/32                                                     banned           runtime     1m01s",
        r"198.51.100.9/32                                                   banned           runtime     1m01s",
        r"198.51.100.7/32                                                   banned           runtime     9m31s",
        r"2001:db8:bad::/48                                                 banned           runtime     1h59m",
    ];
    expected.resize(29, "");
    expected.push(" losses: capture buffer full 120/s (120 total)");
    let buffer = drawn(&screen(&a, &b), 100, 30);
    assert_lines(&buffer, &expected);
    // A loss that grew during the interval is in red; the header row is reversed.
    assert_eq!(buffer[(10, 29)].fg, Color::Red);
    assert_eq!(buffer[(2, 29)].fg, Color::Reset);
    assert!(buffer[(0, 7)].modifier.contains(Modifier::REVERSED));
}

#[test]
fn a_small_terminal_keeps_the_top_rule_source_ban_and_the_losses() {
    let (a, b) = plugged();
    assert_lines(
        &drawn(&screen(&a, &b), 60, 12),
        &[
            " tdfw0  generation 1  recorder alive  q quits",
            r" seen 2.0k pkt/s   dropped 1.9k pkt/s   passed 97 pkt/s",
            r"   id rule                            drop/s would/s  over/s",
            r"    1 dns-responses                     1.9k       -       0",
            r"      ... 2 more",
            r"top sources                                    pkt/s   bit/s",
            r"192.0.2.2                                       1.9k    2.2M",
            "... 2 more",
            r"timed set entries (4)              set                  left",
            r"192.0.2.77/32                      banned              1m01s",
            "... 3 more",
            " losses: capture buffer full 120/s (120 total)",
        ],
    );
}

#[test]
fn any_terminal_size_is_drawn_without_a_panic() {
    let (a, b) = plugged();
    let screens = [
        screen(&a, &b),
        Screen {
            interface: "fw0".into(),
            interval_s: 1.0,
            state: State::Absent,
        },
    ];
    for s in &screens {
        for width in [0, 1, 2, 5, 13, 40, 79, 80, 250] {
            for height in [0, 1, 2, 3, 4, 5, 7, 40] {
                drawn(s, width, height);
            }
        }
    }
}

#[test]
fn without_rates_the_view_says_why() {
    let say = |state: State| {
        let s = Screen {
            interface: "fw0".into(),
            interval_s: 1.0,
            state,
        };
        lines(&drawn(&s, 120, 8))
            .iter()
            .map(|l| l.trim_end())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let absent = say(State::Absent);
    assert!(
        absent.contains("No xdpsieve firewall is in force on fw0"),
        "{absent}"
    );
    assert!(absent.contains("xdpsieve run -i fw0"), "{absent}");
    assert!(say(State::Measuring).contains("the first rates come in 1.0 s"));
    let failed = say(State::Failed("reading\u{1b}[2J the pins".into()));
    assert!(
        failed.contains("Cannot read the firewall on fw0"),
        "{failed}"
    );
    assert!(!failed.contains('\u{1b}'), "escaped: {failed}");
}

#[test]
fn names_from_files_reach_the_terminal_escaped() {
    let (a, mut b) = recorded();
    b.rules[1].name = "evil\u{1b}]0;owned\u{7}".into();
    b.timed[0].set = "set\u{1b}[2J".into();
    let text = lines(&drawn(&screen(&a, &b), 100, 30)).join("\n");
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{7}'),
        "{text}"
    );
}

#[test]
fn rows_are_shared_header_and_first_row_first_then_in_turn() {
    assert_eq!(allocate(30, [3, 1, 4]), [4, 2, 5]);
    assert_eq!(allocate(9, [3, 3, 4]), [3, 3, 3]);
    assert_eq!(allocate(8, [10, 10, 10]), [3, 3, 2]);
    assert_eq!(allocate(5, [10, 1, 1]), [3, 2, 0]);
    assert_eq!(allocate(3, [10, 1, 1]), [3, 0, 0]);
    assert_eq!(allocate(1, [1, 1, 1]), [0, 0, 0]);
    assert_eq!(allocate(0, [1, 1, 1]), [0, 0, 0]);
}
