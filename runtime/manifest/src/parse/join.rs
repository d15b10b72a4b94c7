//! `join:` of an operator: which two inputs, on what keys, and which kind of join (interval,
//! window, temporal) with its bounds.

use std::time::Duration;

use super::{Node, Obj, as_str, bound, input_item, pointer, string, whole_ms, window};
use crate::config::{Catalog, describe, pos};
use crate::diag::Diagnostics;
use crate::model::{Join, JoinKind, JoinMode};

/// The plugin a join without `plugin:` runs: the host's merge of each pair.
pub const MERGE: &str = "join-merge";

const FIELDS: &[&str] = &[
    "kind",
    "left",
    "right",
    "left-key",
    "right-key",
    "type",
    "between",
    "window",
    "ttl",
];

/// The fields only one kind has: (field, kind).
const KIND_FIELDS: &[(&str, &str)] = &[
    ("between", "interval"),
    ("window", "window"),
    ("ttl", "temporal"),
];

pub(crate) fn parse(
    n: &Node<'_>,
    of: &str,
    catalog: &Catalog,
    d: &mut Diagnostics,
) -> Option<Join> {
    let what = format!("`join` of {of}");
    let mut o = Obj::new(n, &what, d)?;
    let kind_node = o.require("kind", pos(n), d);
    let kind_name = kind_node.and_then(|k| string(k, &format!("`kind` of {what}"), d));
    for (field, kind) in KIND_FIELDS {
        if let Some(f) = o.has(field).then(|| o.take(field)).flatten()
            && kind_name.as_deref().is_some_and(|k| k != *kind)
        {
            d.error_hint(
                pos(f),
                format!("{what}: `{field}` is for `kind: {kind}` joins"),
                format!("remove `{field}`"),
            );
        }
    }
    let side = |o: &mut Obj<'_, '_>, f: &str, d: &mut Diagnostics| {
        o.require(f, pos(n), d)
            .and_then(|x| input_item(x, &format!("`{f}` of {what}"), d))
    };
    let left = side(&mut o, "left", d);
    let right = side(&mut o, "right", d);
    let key = |o: &mut Obj<'_, '_>, f: &str, d: &mut Diagnostics| match o.take(f) {
        None => Some(None),
        Some(k) => pointer(k, &format!("`{f}` of {what}"), d).map(Some),
    };
    let left_key = key(&mut o, "left-key", d);
    let right_key = key(&mut o, "right-key", d);
    let mode = mode(o.take("type"), &what, d);
    let kind = match kind_name.as_deref() {
        Some("interval") => interval(o.take("between"), n, &what, d),
        Some("window") => match o.take("window") {
            Some(w) => window(w, &what, catalog, d).map(JoinKind::Window),
            None => {
                d.error_hint(
                    pos(n),
                    format!("{what} has no `window`"),
                    "add `window: {kind: tumbling, size: 10s}`",
                );
                None
            }
        },
        Some("temporal") => ttl(o.take("ttl"), &what, d),
        Some(other) => {
            d.error_hint(
                kind_node.map_or(pos(n), pos),
                format!("{what}: unknown join kind `{other}`"),
                "choose `interval`, `window` or `temporal`",
            );
            None
        }
        None => None,
    };
    o.finish(FIELDS, d);
    let (left, right) = (left?, right?);
    if left == right || (left.node == right.node && left.port == right.port) {
        d.error_hint(
            right.pos,
            format!("{what} joins `{left}` with itself"),
            "`left` and `right` are two different inputs",
        );
        return None;
    }
    Some(Join {
        kind: kind?,
        left,
        right,
        left_key: left_key?,
        right_key: right_key?,
        mode: mode?,
    })
}

fn mode(n: Option<&Node<'_>>, what: &str, d: &mut Diagnostics) -> Option<JoinMode> {
    let Some(n) = n else {
        return Some(JoinMode::Inner);
    };
    match as_str(n) {
        Some("inner") => Some(JoinMode::Inner),
        Some("left-outer") => Some(JoinMode::LeftOuter),
        Some("semi") => Some(JoinMode::Semi),
        _ => {
            d.error_hint(
                pos(n),
                format!("`type` of {what} cannot be {}", describe(n)),
                "choose `inner` (default), `left-outer` or `semi`",
            );
            None
        }
    }
}

/// `between: [LOWER, UPPER]`: signed durations (`-10s`), whole milliseconds, lower ≤ upper.
fn interval(
    n: Option<&Node<'_>>,
    at: &Node<'_>,
    what: &str,
    d: &mut Diagnostics,
) -> Option<JoinKind> {
    let hint = "write `between: [-10s, 5s]`: a right event matches a left one when `left.ts + lower <= right.ts <= left.ts + upper`";
    let Some(n) = n else {
        d.error_hint(pos(at), format!("{what} has no `between`"), hint);
        return None;
    };
    let saphyr::YamlData::Sequence(items) = &n.data else {
        d.error_hint(
            pos(n),
            format!(
                "`between` of {what} must be a list of two durations, not {}",
                describe(n)
            ),
            hint,
        );
        return None;
    };
    if items.len() != 2 {
        d.error_hint(
            pos(n),
            format!(
                "`between` of {what} must have two durations, not {}",
                items.len()
            ),
            hint,
        );
        return None;
    }
    let lower = signed_ms(&items[0], &format!("the lower bound in {what}"), d);
    let upper = signed_ms(&items[1], &format!("the upper bound in {what}"), d);
    let (lower, upper) = (lower?, upper?);
    if lower > upper {
        d.error_hint(
            pos(n),
            format!(
                "`between` of {what}: the lower bound ({lower} ms) is above the upper ({upper} ms)"
            ),
            hint,
        );
        return None;
    }
    Some(JoinKind::Interval { lower, upper })
}

/// A duration with an optional leading `-`, in whole milliseconds.
fn signed_ms(n: &Node<'_>, what: &str, d: &mut Diagnostics) -> Option<i64> {
    let negative = as_str(n).is_some_and(|s| s.trim_start().starts_with('-'));
    let magnitude = if negative {
        let text = as_str(n)?.trim_start().trim_start_matches('-').to_owned();
        let node = Node {
            span: n.span,
            data: saphyr::YamlData::Value(saphyr::Scalar::String(text.into())),
        };
        let v = bound(&node, what, d)?;
        whole_ms(&node, &v, what, d).then_some(v)?
    } else {
        let v = bound(n, what, d)?;
        whole_ms(n, &v, what, d).then_some(v)?
    };
    let ms = magnitude.as_millis() as i64;
    Some(if negative { -ms } else { ms })
}

fn ttl(n: Option<&Node<'_>>, what: &str, d: &mut Diagnostics) -> Option<JoinKind> {
    let ttl: Option<Duration> = match n {
        None => None,
        Some(t) => {
            let what = format!("`ttl` of {what}");
            Some(bound(t, &what, d).filter(|v| whole_ms(t, v, &what, d))?)
        }
    };
    Some(JoinKind::Temporal { ttl })
}
