//! Pass `joins`: a join's sides are keyed, come from event time, and it merges pairs itself (a
//! guest `join` export is not there yet).

use super::Ctx;
use crate::diag::Diagnostics;
use crate::model::{Input, Join, JoinKind, Manifest, PluginRef};

pub(super) fn check(cx: &Ctx<'_>, d: &mut Diagnostics) {
    for (name, op) in &cx.m.operators {
        let Some(join) = &op.join else {
            continue;
        };
        if op.plugin != PluginRef::Builtin(crate::JOIN_MERGE.into()) {
            d.error_hint(
                cx.at(name),
                format!("operator `{name}` has a `join` and a `plugin`"),
                "the host merges each pair into {\"left\": …, \"right\": …}: remove `plugin:` and shape the pairs with an operator reading this one (e.g. builtin:map)",
            );
        }
        if op.window.is_some() {
            d.error_hint(
                cx.at(name),
                format!("operator `{name}` has a `join` and a `window`"),
                "a window join's window goes in the join: `join: {kind: window, window: {…}}`",
            );
        }
        for (side, input, key) in [
            ("left", &join.left, &join.left_key),
            ("right", &join.right, &join.right_key),
        ] {
            if key.is_none() && op.key_by.is_none() {
                d.error_hint(
                    input.pos,
                    format!("the {side} side of join `{name}` (`{input}`) has no key"),
                    format!("add `{side}-key: /field` to the join (or `key-by:` to the operator for both sides)"),
                );
            }
            if cx.complete {
                event_timed(cx.m, name, side, input, d);
            }
        }
        window_join(name, join, d, cx);
    }
}

fn window_join(name: &str, join: &Join, d: &mut Diagnostics, cx: &Ctx<'_>) {
    let JoinKind::Window(w) = &join.kind else {
        return;
    };
    if w.time != crate::model::TimeDomain::Event {
        d.error_hint(
            cx.at(name),
            format!("the window join `{name}` has `time: processing` windows"),
            "a join pairs events by event time: remove `time:`",
        );
    }
    if !w.allowed_lateness.is_zero() {
        d.error_hint(
            cx.at(name),
            format!("the window join `{name}` has an `allowed-lateness`"),
            "a window join fires each window once, when the watermark passes its end: remove `allowed-lateness` (late events go to `.late`)",
        );
    }
}

/// Every source upstream of `input` stamps events with event time.
fn event_timed(m: &Manifest, name: &str, side: &str, input: &Input, d: &mut Diagnostics) {
    let mut todo = vec![input.node.as_str()];
    let mut seen = std::collections::BTreeSet::new();
    while let Some(node) = todo.pop() {
        if !seen.insert(node) {
            continue;
        }
        if let Some(s) = m.sources.get(node) {
            if s.event_time.is_none() && !s.kind.spec.own_event_time() {
                d.error_hint(
                    input.pos,
                    format!(
                        "the {side} side of join `{name}` comes from source `{node}`, which has no event time (a {} source stamps events with the time it reads them)",
                        s.kind.kind
                    ),
                    format!("give source `{node}` an `event-time: {{field: /ts}}`: a join pairs events by their time"),
                );
            }
        } else if let Some(op) = m.operators.get(node) {
            todo.extend(op.inputs.iter().map(|i| i.node.as_str()));
        }
    }
}
