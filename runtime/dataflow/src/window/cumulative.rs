//! Cumulative windows (Flink's CUMULATE): windows that all start at `n·size` and end every
//! `step` up to `size` — a daily count updated hourly is `size: 1d, step: 1h`. Each fires
//! when time passes its end, with the total from the start so far.

use flowlet_manifest::Diagnostics;
use flowlet_manifest::fields::WindowTime;
use flowlet_types::Timestamp;

use super::assign::Win;
use super::assign::{Absorbed, Assigner, Steps, WindowKind, check_steps, ms};

/// Windows of up to `size`, all starting at the same time, ending every `step`: each gives the
/// total from its start so far. An event is in the windows that end after it.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Cumulative {
    pub size: WindowTime,
    pub step: WindowTime,
}

flowlet_manifest::spec!(Cumulative);

pub(crate) const KIND: WindowKind = WindowKind {
    kind: flowlet_manifest::Kind::new(
        "cumulative",
        parse,
        flowlet_manifest::schema_of::<Cumulative>,
    ),
    assigner: |spec| {
        let c: &Cumulative = spec.downcast_ref().expect("a cumulative window");
        Box::new(Assign {
            size: ms(c.size.0),
            step: ms(c.step.0),
        })
    },
};

fn parse(
    c: &flowlet_manifest::Config<'_, '_>,
    d: &mut Diagnostics,
) -> Option<std::sync::Arc<dyn flowlet_manifest::Spec>> {
    let w: Cumulative = c.parse(d)?;
    let steps = Steps {
        field: "step",
        kind: "cumulative",
        example: "size 1d with step 1h",
        up_to: "up to ",
        too_many: "choose a larger step",
    };
    check_steps(c, d, w.size.0, w.step.0, &steps).then(|| std::sync::Arc::new(w) as _)
}

struct Assign {
    size: Timestamp,
    step: Timestamp,
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
        let before = out.len();
        let start = ts.div_euclid(self.size) * self.size;
        // The first window that ends after the event, then every `step` up to the whole size.
        let mut end = start + (ts - start).div_euclid(self.step) * self.step + self.step;
        let last = start.saturating_add(self.size);
        while end <= last {
            if end.saturating_add(lateness) > now {
                out.push(Win { start, end });
            }
            end += self.step;
        }
        out.len() > before
    }
}
