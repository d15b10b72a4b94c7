//! Batches and outputs between flowlet's types and the WIT bindings' (a copy each way: the
//! boundary's cost, measured in docs/BENCHMARKS.md).

use flowlet_operator::OperatorError;
use flowlet_types::{Batch, Header, Output, Rejection};

use crate::bindings::types as wit;

pub(crate) fn to_wit(input: &Batch) -> wit::Batch {
    wit::Batch {
        values: input.values.clone(),
        value_ends: input.value_ends.clone(),
        keys: input.keys.clone(),
        key_ends: input.key_ends.clone(),
        timestamps: input.timestamps.clone(),
        headers: input
            .headers
            .iter()
            .map(|h| wit::Header {
                event: h.event,
                name: h.name.clone(),
                value: h.value.clone(),
            })
            .collect(),
    }
}

pub(crate) fn from_wit(e: wit::Batch) -> Batch {
    Batch {
        values: e.values,
        value_ends: e.value_ends,
        keys: e.keys,
        key_ends: e.key_ends,
        timestamps: e.timestamps,
        headers: e
            .headers
            .into_iter()
            .map(|h| Header {
                event: h.event,
                name: h.name,
                value: h.value,
            })
            .collect(),
    }
}

pub(super) fn from_wit_rejections(rejected: Vec<wit::Rejection>) -> Vec<Rejection> {
    rejected
        .into_iter()
        .map(|r| Rejection {
            event: r.event,
            reason: r.reason,
        })
        .collect()
}

pub(super) fn from_wit_output(out: wit::Output) -> Output {
    Output {
        events: from_wit(out.events),
        rejected: from_wit_rejections(out.rejected),
    }
}

pub(super) fn guest_error(e: wit::Error) -> OperatorError {
    match e {
        wit::Error::Failed(m) | wit::Error::InvalidConfig(m) => OperatorError::Failed(m),
    }
}
