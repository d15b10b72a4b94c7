//! Pass `inputs`: every input names a source or operator (not a sink, not itself), once, and a
//! side output its producer has.

use std::collections::BTreeSet;

use super::Ctx;
use crate::diag::{Diagnostics, did_you_mean};
use crate::model::{Input, Manifest, OnError, Port};

pub(super) fn check(cx: &Ctx<'_>, d: &mut Diagnostics) {
    let m = cx.m;
    let producers: Vec<&str> = m
        .sources
        .keys()
        .chain(m.operators.keys())
        .map(String::as_str)
        .collect();
    let consumers = m
        .operators
        .iter()
        .map(|(n, o)| (n, "operator", &o.inputs))
        .chain(m.sinks.iter().map(|(n, s)| (n, "sink", &s.inputs)));
    for (name, kind, inputs) in consumers {
        let mut seen = BTreeSet::new();
        for input in inputs {
            if !seen.insert((&input.node, &input.port)) {
                d.error_hint(
                    input.pos,
                    format!("{kind} `{name}` lists the input `{input}` twice"),
                    "list each input once",
                );
            }
            if exists(m, (kind, name), input, &producers, d) {
                side_output(m, (kind, name), input, d);
            }
        }
    }
}

/// Whether `input` names a producer (reporting it when it does not).
fn exists(
    m: &Manifest,
    (kind, name): (&str, &str),
    input: &Input,
    producers: &[&str],
    d: &mut Diagnostics,
) -> bool {
    if m.sinks.contains_key(&input.node) {
        d.error_hint(
            input.pos,
            format!(
                "{kind} `{name}` reads from `{}`, which is a sink",
                input.node
            ),
            "sinks have no output; read from the operator that feeds it",
        );
        return false;
    }
    if !m.positions.contains_key(&input.node) {
        let hint = did_you_mean(&input.node, producers.iter().copied())
            .unwrap_or_else(|| format!("sources and operators: {}", producers.join(", ")));
        d.error_hint(
            input.pos,
            format!(
                "{kind} `{name}` reads from `{}`, which does not exist",
                input.node
            ),
            hint,
        );
        return false;
    }
    if input.node == name {
        d.error_hint(
            input.pos,
            format!("operator `{name}` reads its own output"),
            "an operator cannot be its own input",
        );
    }
    true
}

/// A side output read must be one its producer has.
fn side_output(m: &Manifest, (kind, name): (&str, &str), input: &Input, d: &mut Diagnostics) {
    if let Port::Named(port) = &input.port {
        named_output(m, (kind, name), input, port, d);
        return;
    }
    if input.port == Port::DeadLetter
        && let Some((producer, policy)) = on_error_of(m, &input.node)
        && policy != OnError::DeadLetter
    {
        d.error_hint(
            input.pos,
            format!(
                "{kind} `{name}` reads `{input}`, but {producer} `{}` does not dead-letter",
                input.node
            ),
            format!("set `on-error: dead-letter` on {producer} `{}`", input.node),
        );
    }
    if input.port != Port::Late {
        return;
    }
    if m.operators
        .get(&input.node)
        .is_some_and(|o| o.window.is_none() && o.join.is_none())
    {
        d.error_hint(
            input.pos,
            format!(
                "{kind} `{name}` reads `{input}`, but operator `{}` has no window",
                input.node
            ),
            "only window aggregates and joins (operators with `window:` or `join:`) have a late output",
        );
    } else if m.sources.contains_key(&input.node) {
        d.error_hint(
            input.pos,
            format!(
                "{kind} `{name}` reads `{input}`, but `{}` is a source",
                input.node
            ),
            "only window aggregates have a late output",
        );
    }
}

/// Whether `node` is a source or an operator, and its `on-error` policy.
fn on_error_of(m: &Manifest, node: &str) -> Option<(&'static str, OnError)> {
    match (m.sources.get(node), m.operators.get(node)) {
        (Some(s), _) => Some(("source", s.on_error)),
        (_, Some(o)) => Some(("operator", o.on_error)),
        _ => None,
    }
}

/// A named output read must be one of its producer's `outputs:`.
fn named_output(
    m: &Manifest,
    (kind, name): (&str, &str),
    input: &Input,
    port: &str,
    d: &mut Diagnostics,
) {
    let producer = &input.node;
    if m.sources.contains_key(producer) {
        d.error_hint(
            input.pos,
            format!("{kind} `{name}` reads `{input}`, but `{producer}` is a source"),
            format!("a source has one output (and `.dead-letter`); read it as `{producer}`"),
        );
        return;
    }
    // An operator whose entry did not parse has its own error already.
    let Some(op) = m.operators.get(producer) else {
        return;
    };
    if op.outputs.iter().any(|o| o == port) {
        return;
    }
    let candidates = op
        .outputs
        .iter()
        .map(String::as_str)
        .chain(Port::SIDE_OUTPUTS);
    let hint = match did_you_mean(port, candidates) {
        Some(h) => h,
        None if op.outputs.is_empty() => format!(
            "operator `{producer}` declares no `outputs:`; add `outputs: [{port}]` to it (its plugin must route events there)"
        ),
        None => format!(
            "operator `{producer}` has the outputs: {}, dead-letter, late",
            op.outputs.join(", ")
        ),
    };
    d.error_hint(
        input.pos,
        format!(
            "{kind} `{name}` reads `{input}`, but operator `{producer}` has no output `{port}`"
        ),
        hint,
    );
}
