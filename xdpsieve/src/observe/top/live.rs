//! `xdpsieve top`: the full-screen view, one sample of the pinned state a tick, drawn by
//! [`super::render`] until `q`, Esc or Ctrl-C (or SIGINT, SIGTERM, SIGHUP).
//!
//! It only reads: the firewall goes on whether a view runs or not, with or without a
//! recorder. The description is read at every tick, so a reload's rules show at the next
//! one (rates over a reload are matched by rule name, as counters are carried); a firewall
//! that goes away is said on the screen, and the view picks it up again when one comes
//! back. The terminal is put back as it was on every way out: the guard restores it on an
//! error, ratatui's panic hook on a panic.

use std::{
    io::IsTerminal as _,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use ratatui::{
    DefaultTerminal,
    crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers},
};

use super::{
    model::TopModel,
    render::{self, Screen, State},
    sample::{self, TopSample},
};
use crate::{
    base::text::escape,
    configure::privileges::{self, Verb},
    instance::sets::command::choose_instance,
};

/// One `xdpsieve top`, as its flags say.
#[derive(Clone, Debug)]
pub struct TopPlan {
    /// The interface; `None`: the only firewall in force in this network namespace.
    pub interface: Option<String>,
    /// Between two samples.
    pub interval: Duration,
}

/// Restores the terminal when dropped (an error, or the end of the view).
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// Runs the view until the operator quits.
pub fn run(plan: &TopPlan) -> Result<()> {
    privileges::check(Verb::Top)?;
    if !std::io::stdout().is_terminal() {
        bail!(
            "`xdpsieve top` draws on a terminal, and its standard output is not one; for a \
             script or a pipe use `xdpsieve status --top N` (add --json for JSON)"
        );
    }
    let iface = match &plan.interface {
        Some(iface) => iface.clone(),
        None => choose_instance(None)?.iface,
    };
    // A mistyped interface is said at once, not as a view waiting forever.
    let first = sample::read(&iface)?.with_context(|| {
        format!(
            "no xdpsieve firewall is in force on {} (in this network namespace); `xdpsieve \
             status` shows what is here",
            escape(&iface)
        )
    })?;
    let quit = Arc::new(AtomicBool::new(false));
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        signal_hook::flag::register(signal, Arc::clone(&quit))
            .context("setting up the signal handlers")?;
    }
    let mut terminal = ratatui::try_init().context("setting up the terminal")?;
    let _restore = Restore;
    view(&mut terminal, &iface, plan.interval, first, &quit)
}

/// What woke the view up.
enum Wake {
    Quit,
    Redraw,
    Tick,
}

/// Waits for a key, a resize, a signal or the tick at `deadline`.
fn wait(quit: &AtomicBool, deadline: Instant) -> Result<Wake> {
    loop {
        if quit.load(Ordering::Relaxed) {
            return Ok(Wake::Quit);
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(Wake::Tick);
        }
        // Short waits, so that a signal is seen promptly.
        let wait = (deadline - now).min(Duration::from_millis(200));
        if !event::poll(wait).context("reading the terminal")? {
            continue;
        }
        match event::read().context("reading the terminal")? {
            Event::Key(key) if key.kind == KeyEventKind::Press => {
                let ctrl_c =
                    key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL);
                if ctrl_c || matches!(key.code, KeyCode::Char('q' | 'Q') | KeyCode::Esc) {
                    return Ok(Wake::Quit);
                }
            }
            Event::Resize(..) => return Ok(Wake::Redraw),
            _ => {}
        }
    }
}

fn view(
    terminal: &mut DefaultTerminal,
    iface: &str,
    interval: Duration,
    first: TopSample,
    quit: &AtomicBool,
) -> Result<()> {
    let mut screen = Screen {
        interface: iface.to_string(),
        interval_s: interval.as_secs_f64(),
        state: State::Measuring,
    };
    let mut previous = Some(first);
    let mut next_tick = Instant::now() + interval;
    loop {
        terminal
            .draw(|frame| render::draw(frame, &screen))
            .context("drawing on the terminal")?;
        match wait(quit, next_tick)? {
            Wake::Quit => return Ok(()),
            Wake::Redraw => continue,
            Wake::Tick => {}
        }
        // A tick late (a suspended terminal) starts the count again rather than racing.
        next_tick += interval;
        if next_tick < Instant::now() {
            next_tick = Instant::now() + interval;
        }
        (screen.state, previous) = match sample::read(iface) {
            Ok(Some(now)) => {
                let state = match &previous {
                    Some(before) => State::Rates(Box::new(TopModel::between(before, &now))),
                    None => State::Measuring,
                };
                (state, Some(now))
            }
            Ok(None) => (State::Absent, None),
            Err(e) => (State::Failed(format!("{e:#}")), None),
        };
    }
}
