//! Sliding (hopping) windows of `size` every `slide`: `size / slide` per event.

use flowlet_manifest::Diagnostics;
use flowlet_manifest::fields::WindowTime;
use flowlet_types::Timestamp;

use super::assign::Win;
use super::assign::{Absorbed, Assigner, MAX_WINDOWS_PER_EVENT, WindowKind, ms};

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
        let s: &Sliding = spec.as_any().downcast_ref().expect("a sliding window");
        Box::new(Assign {
            size: ms(s.size.0),
            slide: ms(s.slide.0),
        })
    },
};

impl flowlet_manifest::Spec for Sliding {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

fn parse(
    c: &flowlet_manifest::Config<'_, '_>,
    d: &mut Diagnostics,
) -> Option<std::sync::Arc<dyn flowlet_manifest::Spec>> {
    let s: Sliding = c.parse(d)?;
    let (size, slide) = (s.size.0, s.slide.0);
    let what = c.what();
    let (message, hint) = if slide > size {
        (
            format!("{what}: `slide` ({slide:?}) is longer than `size` ({size:?})"),
            "a sliding window's slide is at most its size (equal: tumbling)",
        )
    } else if !size.as_millis().is_multiple_of(slide.as_millis()) {
        (
            format!("{what}: `size` ({size:?}) is not a multiple of `slide` ({slide:?})"),
            "choose a slide that divides the size, e.g. size 1m with slide 10s",
        )
    } else if size.as_millis() / slide.as_millis() > MAX_WINDOWS_PER_EVENT {
        (
            format!(
                "{what}: each event would be in {} windows (`size` {} / `slide` {}); at most {MAX_WINDOWS_PER_EVENT}",
                size.as_millis() / slide.as_millis(),
                humantime::format_duration(size),
                humantime::format_duration(slide),
            ),
            "choose a larger slide, or count in tumbling windows of the slide and add them up downstream",
        )
    } else {
        return Some(std::sync::Arc::new(s));
    };
    c.error_here(d, &message, Some(hint));
    None
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
