//! Tumbling windows: `[n·size, (n+1)·size)`, one per event.

use flowlet_types::Timestamp;

use super::assign::{Absorbed, Assigner};
use super::store::Win;

pub(crate) struct Tumbling {
    pub size: Timestamp,
}

impl Assigner for Tumbling {
    fn assign(
        &mut self,
        _: &[u8],
        ts: Timestamp,
        now: Timestamp,
        lateness: Timestamp,
        out: &mut Vec<Win>,
        _: &mut Vec<Absorbed>,
    ) -> bool {
        let start = ts.div_euclid(self.size) * self.size;
        let end = start.saturating_add(self.size);
        if end.saturating_add(lateness) <= now {
            return false;
        }
        out.push(Win { start, end });
        true
    }
}
