//! Sliding (hopping) windows of `size` every `slide`: `size / slide` per event.

use flowlet_types::Timestamp;

use super::assign::{Absorbed, Assigner};
use super::store::Win;

pub(crate) struct Sliding {
    pub size: Timestamp,
    pub slide: Timestamp,
}

impl Assigner for Sliding {
    fn assign(
        &mut self,
        _: &[u8],
        ts: Timestamp,
        now: Timestamp,
        lateness: Timestamp,
        out: &mut Vec<Win>,
        _: &mut Vec<Absorbed>,
    ) -> bool {
        let before = out.len();
        let mut start = ts.div_euclid(self.slide) * self.slide;
        while start > ts - self.size {
            let end = start.saturating_add(self.size);
            if end.saturating_add(lateness) > now {
                out.push(Win { start, end });
            }
            start -= self.slide;
        }
        out.len() > before
    }
}
