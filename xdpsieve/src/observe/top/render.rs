//! The full-screen view of `xdpsieve top`, drawn from a [`TopModel`] into a ratatui
//! [`Frame`]: a header line and the totals, then the rules (the ones dropping most first),
//! the busiest sources and the timed set entries (bans), and the losses on the last line.
//!
//! Borderless, so a small terminal still shows rows rather than frames: each section is
//! its column header and its rows. The rows are shared out by [`allocate`]: every section
//! gets its header and one row first (rules, then sources, then bans), then one row each
//! in turn while any wants more; a section cut short says how many rows it could not show.
//! Columns of counters the program does not have (would-drop, over-limit) are left out.
//! Every name that came from a file (rule and set names, the interface) is escaped.

use ratatui::{
    Frame,
    layout::{Alignment, Constraint, Layout, Rect},
    style::{Color, Modifier, Style},
    text::{Line, Span},
    widgets::{Cell, Paragraph, Row, Table, Wrap},
};

use super::{
    model::TopModel,
    text::{bits_per_second, loss_label, maybe, per_second, time_left},
};
use crate::base::text::escape;

/// What the view shows at one moment.
#[derive(Clone, Debug)]
pub struct Screen {
    pub interface: String,
    /// Seconds between two samples.
    pub interval_s: f64,
    pub state: State,
}

/// The view's state.
#[derive(Clone, Debug)]
pub enum State {
    /// One sample read: the rates come with the next.
    Measuring,
    Rates(Box<TopModel>),
    /// No firewall is in force on the interface (any more): waiting for one.
    Absent,
    /// The last read failed (the reason): tried again at the next tick.
    Failed(String),
}

const HEADER: Style = Style::new().add_modifier(Modifier::REVERSED);
const TITLE: Style = Style::new().add_modifier(Modifier::BOLD);
const ALARM: Style = Style::new().fg(Color::Red).add_modifier(Modifier::BOLD);

/// Draws `screen` into the whole frame.
pub fn draw(frame: &mut Frame<'_>, screen: &Screen) {
    let [title, totals, middle, losses] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    let iface = escape(&screen.interface);
    let narrow = frame.area().width < NARROW;
    let line = title_line(&iface, screen, narrow);
    frame.render_widget(Paragraph::new(line).style(HEADER), title);
    let message = match &screen.state {
        State::Rates(model) => {
            frame.render_widget(Paragraph::new(traffic_line(model, narrow)), totals);
            sections(frame, middle, model);
            frame.render_widget(Paragraph::new(losses_line(model)), losses);
            return;
        }
        State::Measuring => format!(
            "Reading the counters of {iface}: the first rates come in {:.1} s.",
            screen.interval_s
        ),
        State::Absent => format!(
            "No xdpsieve firewall is in force on {iface} (in this network namespace). \
             Waiting for one: start it with `xdpsieve run -i {iface} ...`, or quit with q."
        ),
        State::Failed(why) => format!(
            "Cannot read the firewall on {iface}: {}. Trying again every {:.1} s; q quits.",
            escape(why),
            screen.interval_s
        ),
    };
    let area = middle.union(totals);
    frame.render_widget(
        Paragraph::new(message)
            .alignment(Alignment::Left)
            .wrap(Wrap { trim: true }),
        area,
    );
}

/// The first line: what is watched, how, and how to quit (shorter when narrow).
fn title_line(iface: &str, screen: &Screen, narrow: bool) -> String {
    let words = match &screen.state {
        State::Rates(model) => format!(
            "generation {}  {}",
            model.generation,
            if model.recorder {
                "recorder alive"
            } else {
                "NO RECORDER (fail-static)"
            }
        ),
        _ => String::new(),
    };
    let every = format!("every {:.1} s", screen.interval_s);
    let parts = if narrow {
        vec![iface, &words, "q quits"]
    } else {
        vec!["xdpsieve top", iface, &words, &every, "q quits"]
    };
    let parts: Vec<&str> = parts.into_iter().filter(|p| !p.is_empty()).collect();
    format!(" {}", parts.join("  "))
}

/// `seen ... dropped ... passed ...` per second (packets only when narrow).
fn traffic_line(model: &TopModel, narrow: bool) -> Line<'static> {
    let t = &model.traffic;
    let bits = |bytes: f64| {
        if narrow {
            String::new()
        } else {
            format!(" {} bit/s", bits_per_second(bytes))
        }
    };
    Line::from(vec![
        Span::raw(format!(
            " seen {} pkt/s{}   ",
            per_second(t.seen_pps),
            bits(t.seen_bytes_per_s)
        )),
        Span::styled(
            format!(
                "dropped {} pkt/s{}",
                per_second(t.dropped_pps),
                bits(t.dropped_bytes_per_s)
            ),
            TITLE,
        ),
        Span::raw(format!("   passed {} pkt/s", per_second(t.passed_pps))),
    ])
}

/// The losses that ever counted, red when they grew during the interval; `none`.
fn losses_line(model: &TopModel) -> Line<'static> {
    let mut spans = vec![Span::styled(" losses: ", TITLE)];
    let counted: Vec<_> = model.losses.iter().filter(|l| l.total > 0).collect();
    if counted.is_empty() {
        spans.push(Span::raw("none"));
    }
    for (i, l) in counted.iter().enumerate() {
        if i > 0 {
            spans.push(Span::raw(", "));
        }
        let text = format!(
            "{} {}/s ({} total)",
            escape(loss_label(&l.key)),
            per_second(l.per_s),
            l.total
        );
        spans.push(if l.per_s > 0.0 {
            Span::styled(text, ALARM)
        } else {
            Span::raw(text)
        });
    }
    Line::from(spans)
}

/// Heights (header included) of sections that want `wants` rows each, in `height` lines.
pub fn allocate(height: u16, wants: [usize; 3]) -> [u16; 3] {
    let mut heights = [0u16; 3];
    let mut left = height;
    for (h, &want) in heights.iter_mut().zip(&wants) {
        if left >= 2 && want > 0 {
            *h = 2;
            left -= 2;
        }
    }
    while left > 0 {
        let mut gave = false;
        for (h, &want) in heights.iter_mut().zip(&wants) {
            if left > 0 && *h > 0 && usize::from(*h - 1) < want {
                *h += 1;
                left -= 1;
                gave = true;
            }
        }
        if !gave {
            break;
        }
    }
    heights
}

/// A right-aligned number cell.
fn num(text: String) -> Cell<'static> {
    Cell::from(Line::from(text).right_aligned())
}

/// Below this width, each section keeps its essential columns only.
const NARROW: u16 = 80;

/// One column of a section: its title, its width, whether it holds numbers (aligned
/// right, title too), and whether a narrow terminal keeps it.
struct Column {
    title: String,
    width: Constraint,
    number: bool,
    essential: bool,
}

fn column(title: &str, width: Constraint, number: bool, essential: bool) -> Column {
    Column {
        title: title.into(),
        width,
        number,
        essential,
    }
}

/// A number column of the usual width.
fn figure(title: &str, essential: bool) -> Column {
    column(title, Constraint::Length(7), true, essential)
}

/// A section: its columns, and its rows (a cell per column) or a note instead of them.
struct Section {
    columns: Vec<Column>,
    rows: Result<Vec<Vec<Cell<'static>>>, &'static str>,
}

impl Section {
    /// How many lines its rows (or note) want, its header aside.
    fn wants(&self) -> usize {
        self.rows.as_ref().map_or(1, |rows| rows.len().max(1))
    }

    /// The section as a table `height` lines high (its header among them), `narrow` or
    /// not. The rows that fit are shown, the last one saying how many more there are when
    /// not all do, unless only one fits: that one is worth more than the count. A note
    /// and the count go in the first column with room for words (the `Fill` one).
    fn table(self, height: u16, narrow: bool) -> Table<'static> {
        let keep: Vec<bool> = self
            .columns
            .iter()
            .map(|c| c.essential || !narrow)
            .collect();
        let columns: Vec<&Column> = self
            .columns
            .iter()
            .zip(&keep)
            .filter(|k| *k.1)
            .map(|k| k.0)
            .collect();
        let wide = columns
            .iter()
            .position(|c| matches!(c.width, Constraint::Fill(_)))
            .unwrap_or(0);
        let text_row = |text: String| {
            Row::new(std::iter::repeat_n(Cell::from(""), wide).chain([Cell::from(text)]))
        };
        let room = usize::from(height.saturating_sub(1));
        let rows: Vec<Row<'static>> = match self.rows {
            Err(note) => vec![text_row(note.to_string())],
            Ok(rows) => {
                let total = rows.len();
                let shown = if total > room && room >= 2 {
                    room - 1
                } else {
                    room
                };
                let mut out: Vec<Row<'static>> = rows
                    .into_iter()
                    .take(shown)
                    .map(|cells| {
                        Row::new(cells.into_iter().zip(&keep).filter(|k| *k.1).map(|k| k.0))
                    })
                    .collect();
                if total > shown && shown + 1 == room {
                    out.push(text_row(format!("... {} more", total - shown)));
                }
                out
            }
        };
        let header = Row::new(columns.iter().map(|c| {
            if c.number {
                num(c.title.clone())
            } else {
                Cell::from(c.title.clone())
            }
        }))
        .style(HEADER);
        Table::new(rows, columns.iter().map(|c| c.width))
            .header(header)
            .column_spacing(1)
    }
}

fn rules_section(model: &TopModel) -> Section {
    let would = model.rules.iter().any(|r| r.would_drop_pps.is_some());
    let over = model.rules.iter().any(|r| r.over_limit_pps.is_some());
    let mut columns = vec![
        column("id", Constraint::Length(5), true, true),
        column("rule", Constraint::Fill(1), false, true),
        column("action", Constraint::Length(6), false, false),
        figure("drop/s", true),
        figure("pkt/s", false),
        figure("bit/s", false),
    ];
    if would {
        columns.push(figure("would/s", true));
    }
    if over {
        columns.push(figure("over/s", true));
    }
    let rows = model
        .rules
        .iter()
        .map(|r| {
            let mut cells = vec![
                num(r.id.to_string()),
                Cell::from(escape(&r.name).into_owned()),
                Cell::from(escape(&r.action).into_owned()),
                num(per_second(r.dropped_pps)),
                num(per_second(r.hits_pps)),
                num(bits_per_second(r.hits_bytes_per_s)),
            ];
            if would {
                cells.push(num(maybe(r.would_drop_pps)));
            }
            if over {
                cells.push(num(maybe(r.over_limit_pps)));
            }
            cells
        })
        .collect();
    Section {
        columns,
        rows: Ok(rows),
    }
}

fn sources_section(model: &TopModel) -> Section {
    let columns = vec![
        column("top sources", Constraint::Fill(1), false, true),
        figure("pkt/s", true),
        figure("bit/s", true),
        figure("drop/s", false),
        figure("would/s", false),
        figure("limit/s", false),
    ];
    let rows = if !model.sources_tracked {
        Err("not counted by this firewall's program")
    } else if model.sources.is_empty() {
        Err("none dropped or limited")
    } else {
        Ok(model
            .sources
            .iter()
            .map(|s| {
                vec![
                    Cell::from(s.addr.to_string()),
                    num(per_second(s.pps)),
                    num(bits_per_second(s.bytes_per_s)),
                    num(per_second(s.dropped_pps)),
                    num(per_second(s.would_pps)),
                    num(per_second(s.limited_pps)),
                ]
            })
            .collect())
    };
    Section { columns, rows }
}

fn bans_section(model: &TopModel) -> Section {
    let title = format!("timed set entries ({})", model.bans.len());
    let columns = vec![
        column(&title, Constraint::Fill(1), false, true),
        column("set", Constraint::Length(16), false, true),
        column("origin", Constraint::Length(8), false, false),
        column("left", Constraint::Length(8), true, true),
    ];
    let rows = if model.bans.is_empty() {
        Err("none")
    } else {
        Ok(model
            .bans
            .iter()
            .map(|b| {
                vec![
                    Cell::from(escape(&b.prefix).into_owned()),
                    Cell::from(escape(&b.set).into_owned()),
                    Cell::from(escape(&b.origin).into_owned()),
                    num(time_left(b.expires_in_ms)),
                ]
            })
            .collect())
    };
    Section { columns, rows }
}

fn sections(frame: &mut Frame<'_>, area: Rect, model: &TopModel) {
    let sections = [
        rules_section(model),
        sources_section(model),
        bans_section(model),
    ];
    let wants = [0, 1, 2].map(|i| sections[i].wants());
    let heights = allocate(area.height, wants);
    // A blank line between sections when everything fits with room to spare.
    let used: u16 = heights.iter().sum();
    let gap = u16::from(used + 2 <= area.height);
    let areas: [Rect; 3] = Layout::vertical(heights.map(Constraint::Length))
        .spacing(gap)
        .areas(area);
    let narrow = area.width < NARROW;
    for ((section, height), rect) in sections.into_iter().zip(heights).zip(areas) {
        if height > 0 {
            frame.render_widget(section.table(height, narrow), rect);
        }
    }
}

#[cfg(test)]
mod tests;
