//! Pass `cycles`: the operators form a DAG; and the order in which they can be started.

use std::collections::{BTreeMap, BTreeSet};

use super::Ctx;
use crate::diag::{Diagnostics, Pos};
use crate::model::Manifest;

pub(super) fn check(cx: &Ctx<'_>, d: &mut Diagnostics) {
    if let Some(cycle) = find_cycle(cx.m) {
        d.error_hint(
            cx.at(&cycle[0]),
            format!("the operators form a cycle: {}", cycle.join(" -> ")),
            "a topology is a DAG; remove one of these inputs",
        );
    }
}

/// A cycle among operators, as the path from its first node back to it.
fn find_cycle(m: &Manifest) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut marks: BTreeMap<&str, Mark> = m
        .operators
        .keys()
        .map(|k| (k.as_str(), Mark::New))
        .collect();
    fn visit<'a>(
        m: &'a Manifest,
        node: &'a str,
        marks: &mut BTreeMap<&'a str, Mark>,
        stack: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        marks.insert(node, Mark::Active);
        stack.push(node);
        for input in &m.operators[node].inputs {
            let next = input.node.as_str();
            match marks.get(next) {
                Some(Mark::Active) => {
                    let start = stack
                        .iter()
                        .position(|n| *n == next)
                        .expect("active node is on the stack");
                    // Inputs point upstream; print the cycle in the direction data flows.
                    let mut path = vec![next.to_owned()];
                    path.extend(stack[start + 1..].iter().rev().map(|s| s.to_string()));
                    path.push(next.to_owned());
                    return Some(path);
                }
                Some(Mark::New) => {
                    if let Some(c) = visit(m, next, marks, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        marks.insert(node, Mark::Done);
        None
    }
    let names: Vec<&str> = m.operators.keys().map(String::as_str).collect();
    for name in names {
        if marks[name] == Mark::New {
            let mut stack = Vec::new();
            if let Some(c) = visit(m, name, &mut marks, &mut stack) {
                return Some(c);
            }
        }
    }
    None
}

impl Manifest {
    /// Operators in an order where every operator comes after the operators it reads from.
    pub fn operator_order(&self) -> Vec<&str> {
        let mut order = Vec::new();
        let mut placed = BTreeSet::new();
        while order.len() < self.operators.len() {
            let before = order.len();
            for (name, op) in &self.operators {
                if placed.contains(name.as_str()) {
                    continue;
                }
                if op.inputs.iter().all(|i| {
                    !self.operators.contains_key(&i.node) || placed.contains(i.node.as_str())
                }) {
                    placed.insert(name.as_str());
                    order.push(name.as_str());
                }
            }
            assert!(order.len() > before, "validated manifests have no cycles");
        }
        order
    }

    pub fn position(&self, name: &str) -> Pos {
        self.positions.get(name).copied().unwrap_or_default()
    }
}
