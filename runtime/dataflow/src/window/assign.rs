//! Window assigners: which windows an event belongs to. One file per kind; the window task
//! knows none of them by name.

use std::time::Duration;

use flowlet_manifest::{Component, Spec};
use flowlet_types::Timestamp;

/// A window: `[start, end)`. Ordered by end first, so that firing and purging walk a prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Win {
    pub end: Timestamp,
    pub start: Timestamp,
}

/// A window of a key that a merge absorbed into another (session windows).
pub(crate) type Absorbed = (Box<[u8]>, Win);

/// Which windows an event belongs to.
pub(crate) trait Assigner: Send {
    /// Push the windows of an event of `key` at `ts` that are still open at time `now` (their
    /// end plus `lateness` is after it) onto `out`; `false` when there is none (the event is
    /// too late). A kind whose windows merge reports the windows it absorbed.
    fn assign(
        &mut self,
        key: &[u8],
        ts: Timestamp,
        now: Timestamp,
        lateness: Timestamp,
        out: &mut Vec<Win>,
        absorbed: &mut Vec<Absorbed>,
    ) -> bool;

    /// The window a window pushed by [`Assigner::assign`] (or one it absorbed) is part of once
    /// the whole batch is assigned: later events of the batch may have merged it further.
    fn settle(&self, key: &[u8], win: Win) -> Win {
        let _ = key;
        win
    }

    /// Whether windows merge (their pushed windows must be settled once the batch is placed).
    fn merges(&self) -> bool {
        false
    }

    /// A window of `key` was loaded from the store.
    fn loaded(&mut self, key: &[u8], win: Win) {
        let _ = (key, win);
    }

    /// A window of `key` was dropped (its allowed lateness passed).
    fn expired(&mut self, key: &[u8], win: Win) {
        let _ = (key, win);
    }

    /// Whether consecutive windows hold about as many keys (a new window's map is pre-sized
    /// from the last one dropped).
    fn similar_windows(&self) -> bool {
        true
    }
}

/// Milliseconds of a duration (window times are whole milliseconds).
pub(crate) fn ms(d: Duration) -> Timestamp {
    d.as_millis().min(i64::MAX as u128) as Timestamp
}

/// Windows one event may be in, at most (a sliding window's `size / slide`): each is a copy of
/// the event handed to the aggregate.
pub(crate) const MAX_WINDOWS_PER_EVENT: u128 = 10_000;

/// How a kind whose windows advance by a step within their size names things in its errors.
pub(crate) struct Steps {
    /// The field of the step: `slide`, `step`.
    pub field: &'static str,
    /// The kind, as in "a sliding window's slide is at most its size".
    pub kind: &'static str,
    /// A size and step that fit, e.g. `size 1m with slide 10s`.
    pub example: &'static str,
    /// How many windows an event is in: `{n}` or `up to {n}`.
    pub up_to: &'static str,
    /// What to do when an event would be in too many windows.
    pub too_many: &'static str,
}

/// Check a window `size` advancing by `step` (a slide, a cumulative step): the step is at most
/// the size and divides it, and an event is in at most [`MAX_WINDOWS_PER_EVENT`] windows. On
/// failure the error is reported at the window and `false` returned.
pub(crate) fn check_steps(
    c: &flowlet_manifest::Config<'_, '_>,
    d: &mut flowlet_manifest::Diagnostics,
    size: Duration,
    step: Duration,
    s: &Steps,
) -> bool {
    let (what, f) = (c.what(), s.field);
    let (message, hint) = if step > size {
        (
            format!("{what}: `{f}` ({step:?}) is longer than `size` ({size:?})"),
            format!(
                "a {} window's {f} is at most its size (equal: tumbling)",
                s.kind
            ),
        )
    } else if !size.as_millis().is_multiple_of(step.as_millis()) {
        (
            format!("{what}: `size` ({size:?}) is not a multiple of `{f}` ({step:?})"),
            format!("choose a {f} that divides the size, e.g. {}", s.example),
        )
    } else if size.as_millis() / step.as_millis() > MAX_WINDOWS_PER_EVENT {
        (
            format!(
                "{what}: each event would be in {}{} windows (`size` {} / `{f}` {}); at most {MAX_WINDOWS_PER_EVENT}",
                s.up_to,
                size.as_millis() / step.as_millis(),
                humantime::format_duration(size),
                humantime::format_duration(step),
            ),
            s.too_many.to_owned(),
        )
    } else {
        return true;
    };
    c.error_here(d, &message, Some(&hint));
    false
}

/// A window kind: how the manifest parses it, and its assigner.
pub(crate) struct WindowKind {
    pub kind: flowlet_manifest::Kind,
    pub assigner: fn(&dyn Spec) -> Box<dyn Assigner>,
}

/// The assigner of a window.
pub(crate) fn assigner(window: &Component) -> Box<dyn Assigner> {
    let kind = super::KINDS
        .iter()
        .find(|k| k.kind.name == window.kind)
        .expect("the manifest was parsed with these window kinds");
    (kind.assigner)(&*window.spec)
}
