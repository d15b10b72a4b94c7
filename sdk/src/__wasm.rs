//! Glue between the generated bindings and [`Operator`](crate::Operator); used by
//! [`export_operator!`](crate::export_operator). Not public API.

use std::any::Any;
use std::cell::RefCell;

pub use wit_bindgen;

pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "processor",
        pub_export_macro: true,
        default_bindings_module: "flowlet_sdk::__wasm::bindings",
        runtime_path: "flowlet_sdk::__wasm::wit_bindgen::rt",
    });
}

use bindings::flowlet::operator::types as wit;

thread_local! {
    /// The one operator of this component instance (Wasm instances are single-threaded).
    static INSTANCE: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
}

fn to_wit_error(e: crate::Error) -> wit::Error {
    match e {
        crate::Error::InvalidConfig(m) => wit::Error::InvalidConfig(m),
        // A rejection outside `process` (e.g. from a `process_batch` override) fails the batch.
        crate::Error::Reject(m) | crate::Error::Failed(m) => wit::Error::Failed(m),
    }
}

pub fn init<O: crate::Operator>(config: String) -> Result<(), wit::Error> {
    let value: serde_json::Value = serde_json::from_str(&config)
        .map_err(|e| wit::Error::InvalidConfig(format!("config is not JSON: {e}")))?;
    let op = O::init(crate::Config(value)).map_err(to_wit_error)?;
    INSTANCE.with_borrow_mut(|slot| *slot = Some(Box::new(op)));
    Ok(())
}

pub fn process<O: crate::Operator>(input: wit::Batch) -> Result<wit::Output, wit::Error> {
    let input = flowlet_types::Batch {
        values: input.values,
        value_ends: input.value_ends,
        keys: input.keys,
        key_ends: input.key_ends,
        timestamps: input.timestamps,
        headers: input
            .headers
            .into_iter()
            .map(|h| flowlet_types::Header {
                event: h.event,
                name: h.name,
                value: h.value,
            })
            .collect(),
    };
    INSTANCE.with_borrow_mut(|slot| {
        let op = slot
            .as_mut()
            .and_then(|op| op.downcast_mut::<O>())
            .ok_or_else(|| wit::Error::Failed("process called before init".into()))?;
        let out = crate::run_batch(op, &input).map_err(to_wit_error)?;
        let e = out.events;
        Ok(wit::Output {
            events: wit::Batch {
                values: e.values,
                value_ends: e.value_ends,
                keys: e.keys,
                key_ends: e.key_ends,
                timestamps: e.timestamps,
                headers: e
                    .headers
                    .into_iter()
                    .map(|h| wit::Header {
                        event: h.event,
                        name: h.name,
                        value: h.value,
                    })
                    .collect(),
            },
            rejected: out
                .rejected
                .into_iter()
                .map(|r| wit::Rejection {
                    event: r.event,
                    reason: r.reason,
                })
                .collect(),
        })
    })
}
