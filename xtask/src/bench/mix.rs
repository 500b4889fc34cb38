//! What the generator sends in a capture run: all frames to the usual port, or a cycle
//! with one frame in N to `SELECTED_PORT` for the filtered flood (see `flood`), and
//! whether xdpsieve captures through a filter that selects those.

use crate::netbench::{SELECTED_PORT, udp_frame, udp_frame_to};

/// What the generator sends, and whether xdpsieve captures through a filter.
#[derive(Clone, Copy)]
pub(crate) struct Mix {
    /// Every `one_in`-th frame goes to `SELECTED_PORT`, the others to the usual port.
    pub(crate) one_in: u64,
    /// Capture with `--filter 'udp dst port SELECTED_PORT'` (else: capture everything).
    pub(crate) filtered: bool,
}

impl Mix {
    pub(crate) fn filter(self) -> Option<String> {
        self.filtered
            .then(|| format!("udp dst port {SELECTED_PORT}"))
    }

    /// The cycle the generator sends: `one_in - 1` frames to the usual port, then one to
    /// `SELECTED_PORT` (so that of `sent` frames, exactly `sent / one_in` are selected).
    pub(crate) fn frames(self, bytes: usize, dst: [u8; 6], src: [u8; 6]) -> Vec<Vec<u8>> {
        let mut frames = vec![udp_frame(bytes, dst, src); self.one_in.saturating_sub(1) as usize];
        frames.push(udp_frame_to(bytes, dst, src, SELECTED_PORT));
        frames
    }
}
