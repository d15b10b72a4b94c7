//! Pass `outputs`: every source and operator is read (an operator with named outputs may leave
//! its main output unread), and so is every dead-letter output; a named output nobody reads is a
//! warning; a window without a key runs as one instance.

use super::Ctx;
use crate::diag::{Diagnostics, Pos};
use crate::model::{OnError, Port};

pub(super) fn check(cx: &Ctx<'_>, d: &mut Diagnostics) {
    let m = cx.m;
    for (name, op) in &m.operators {
        if cx.complete
            && op.on_error == OnError::DeadLetter
            && !cx.read.contains(&(name.clone(), Port::DeadLetter))
        {
            unread_dead_letters(d, cx.at(name), "operator", name, "rejected events");
        }
        for port in &op.outputs {
            if cx.complete && !cx.read.contains(&(name.clone(), Port::Named(port.clone()))) {
                cx.warn(
                    cx.at(name),
                    format!("operator `{name}` routes events to `{name}.{port}`, which nothing reads: they are dropped"),
                );
            }
        }
        if op.window.is_some() && !op.outputs.is_empty() {
            d.error_hint(
                cx.at(name),
                format!("operator `{name}` is a window aggregate and declares `outputs:`, which its world (`aggregator`) cannot emit to"),
                "route the fired windows with a processor (e.g. builtin:router) reading this operator",
            );
        }
        if op.window.is_some() && op.key_by.is_none() && op.parallelism > 1 {
            d.error_hint(
                cx.at(name),
                format!("operator `{name}` has a window but no `key-by`, so it cannot run {} instances", op.parallelism),
                "add `key-by:` to split the windows by key, or set `parallelism: 1` (one window over all events)",
            );
        }
    }
    for (name, src) in &m.sources {
        if cx.complete
            && src.on_error == OnError::DeadLetter
            && !cx.read.contains(&(name.clone(), Port::DeadLetter))
        {
            let what = "events without a readable time";
            unread_dead_letters(d, cx.at(name), "source", name, what);
        }
    }
    let producers = m.sources.keys().chain(m.operators.keys());
    for name in producers {
        let routes = m.operators.get(name).is_some_and(|o| !o.outputs.is_empty());
        if cx.complete && !routes && !cx.read.contains(&(name.to_owned(), Port::Main)) {
            let kind = if m.sources.contains_key(name) {
                "source"
            } else {
                "operator"
            };
            d.error_hint(
                cx.at(name),
                format!("nothing reads the {kind} `{name}`"),
                format!("add `{name}` to the `inputs` of an operator or sink, or remove it"),
            );
        }
    }
}

fn unread_dead_letters(d: &mut Diagnostics, at: Pos, kind: &str, name: &str, what: &str) {
    d.error_hint(
        at,
        format!("{kind} `{name}` dead-letters {what}, but nothing reads `{name}.dead-letter`"),
        format!("add a sink with `inputs: [{name}.dead-letter]`, or choose `on-error: skip`"),
    );
}
