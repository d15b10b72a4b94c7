//! Tumbling windows: `[n·size, (n+1)·size)`, one per event.

use flowlet_manifest::fields::WindowTime;
use flowlet_types::Timestamp;

use super::assign::Win;
use super::assign::{Absorbed, Assigner, WindowKind, ms};

/// Fixed, non-overlapping windows of `size`, aligned to the Unix epoch.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Tumbling {
    pub size: WindowTime,
}

flowlet_manifest::spec!(Tumbling);

pub(crate) const KIND: WindowKind = WindowKind {
    kind: flowlet_manifest::Kind::of::<Tumbling>("tumbling"),
    assigner: |spec| {
        let t: &Tumbling = spec.downcast_ref().expect("a tumbling window");
        Box::new(Assign { size: ms(t.size.0) })
    },
};

struct Assign {
    size: Timestamp,
}

impl Assigner for Assign {
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
