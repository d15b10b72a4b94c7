//! Sliding (hopping) windows of `size` every `slide`: `size / slide` per event.

use flowlet_manifest::Diagnostics;
use flowlet_manifest::fields::WindowTime;
use flowlet_types::Timestamp;

use super::assign::Win;
use super::assign::{Absorbed, Assigner, Steps, WindowKind, check_steps, ms};

/// Windows of `size` starting every `slide`; an event is in `size / slide` windows.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Sliding {
    pub size: WindowTime,
    pub slide: WindowTime,
}

pub(crate) const KIND: WindowKind = WindowKind {
    kind: flowlet_manifest::Kind::new("sliding", parse, flowlet_manifest::schema_of::<Sliding>),
    assigner: |spec| {
        let s: &Sliding = spec.downcast_ref().expect("a sliding window");
        Box::new(Assign {
            size: ms(s.size.0),
            slide: ms(s.slide.0),
        })
    },
};

flowlet_manifest::spec!(Sliding);

fn parse(
    c: &flowlet_manifest::Config<'_, '_>,
    d: &mut Diagnostics,
) -> Option<std::sync::Arc<dyn flowlet_manifest::Spec>> {
    let s: Sliding = c.parse(d)?;
    let steps = Steps {
        field: "slide",
        kind: "sliding",
        example: "size 1m with slide 10s",
        up_to: "",
        too_many: "choose a larger slide, or count in tumbling windows of the slide and add them up downstream",
    };
    check_steps(c, d, s.size.0, s.slide.0, &steps).then(|| std::sync::Arc::new(s) as _)
}

struct Assign {
    size: Timestamp,
    slide: Timestamp,
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
