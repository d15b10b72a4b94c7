//! Write flowlet operators in Rust.
//!
//! An operator is a type implementing [`Operator`]: build it from its configuration in
//! [`Operator::init`], then turn each input [`Event`] into zero or more output events in
//! [`Operator::process`]. One macro, [`export_operator!`], makes the crate a Wasm component of
//! flowlet's `processor` world when it is built with
//! `cargo build --target wasm32-wasip2 --release`:
//!
//! ```
//! use flowlet_sdk::{Config, Error, Event, Operator, Output};
//!
//! /// Passes the events whose `/amount` is at least `min`.
//! pub struct MinAmount {
//!     min: f64,
//! }
//!
//! impl Operator for MinAmount {
//!     fn init(config: Config) -> Result<Self, Error> {
//!         #[derive(serde::Deserialize)]
//!         struct Settings {
//!             min: f64,
//!         }
//!         let settings: Settings = config.parse()?;
//!         Ok(Self { min: settings.min })
//!     }
//!
//!     fn process(&mut self, event: &Event<'_>, out: &mut Output<'_>) -> Result<(), Error> {
//!         #[derive(serde::Deserialize)]
//!         struct Payment {
//!             amount: f64,
//!         }
//!         let payment: Payment = event.json()?; // not JSON, or no amount: rejected
//!         if payment.amount >= self.min {
//!             out.forward();
//!         }
//!         Ok(())
//!     }
//! }
//!
//! flowlet_sdk::export_operator!(MinAmount);
//!
//! // The same operator runs natively under plain `cargo test`:
//! let mut op = flowlet_sdk::testing::Harness::<MinAmount>::new(serde_json::json!({"min": 10})).unwrap();
//! let out = op.process_json(&[r#"{"amount": 5}"#, r#"{"amount": 50}"#, "not json"]).unwrap();
//! assert_eq!(out.values(), vec![r#"{"amount": 50}"#]);
//! assert_eq!(out.rejected.len(), 1);
//! ```
//!
//! Natively (any target but `wasm32`) the macro expands to nothing and [`testing::Harness`] runs
//! the operator in-process, so an operator is unit-tested without Wasm.

// The generated bindings refer to this crate by name.
extern crate self as flowlet_sdk;

pub mod aggregate;
mod event;
pub mod log;
pub mod metrics;
mod output;
pub mod state;
pub mod testing;

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod __wasm;

pub use event::Event;
pub use flowlet_types::json::{Pointer, number_after};
pub use flowlet_types::{Batch, Setup, Timestamp};
pub use output::{Emitter, Output};

pub use serde_json;
pub use state::{KeyState, TimeDomain, Timer};

use std::fmt;

/// The configuration an operator receives: its manifest's `config:` as JSON (`null` if absent),
/// and where it sits in the topology (its inputs and named outputs).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    value: serde_json::Value,
    setup: Setup,
}

impl Config {
    /// A configuration for an operator with one input and no named outputs.
    pub fn new(value: serde_json::Value) -> Self {
        Self::with_setup(value, Setup::default())
    }

    pub fn with_setup(value: serde_json::Value, setup: Setup) -> Self {
        Self { value, setup }
    }

    /// Deserialize the configuration; a mismatch becomes [`Error::InvalidConfig`] naming the field.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_value(self.value.clone()).map_err(|e| Error::InvalidConfig(e.to_string()))
    }

    pub fn value(&self) -> &serde_json::Value {
        &self.value
    }

    /// The operator's name, inputs and named outputs.
    pub fn setup(&self) -> &Setup {
        &self.setup
    }

    /// The named output `name` (one of the manifest's `outputs:`), to route events to with
    /// [`Output::emit_to`] and [`Output::forward_to`]; resolve it once, in `init`. An output the
    /// manifest does not declare is an invalid configuration naming the ones it does.
    pub fn output(&self, name: &str) -> Result<Port, Error> {
        match self.setup.outputs.iter().position(|o| o == name) {
            Some(i) => Ok(Port(1 << (i + 1))),
            None => Err(Error::InvalidConfig(format!(
                "operator `{}` has no output `{name}`; add it to the operator's `outputs:` in the manifest (it has: {})",
                self.setup.operator,
                if self.setup.outputs.is_empty() {
                    "none".to_owned()
                } else {
                    self.setup.outputs.join(", ")
                }
            ))),
        }
    }
}

/// One or more outputs of an operator: [`Port::MAIN`], or named outputs from
/// [`Config::output`]; `a | b` is both (the event goes to each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Port(pub u32);

impl Port {
    /// The main output (what reads the operator by its name).
    pub const MAIN: Port = Port(flowlet_types::MAIN_ROUTE);
}

impl std::ops::BitOr for Port {
    type Output = Port;
    fn bitor(self, other: Port) -> Port {
        Port(self.0 | other.0)
    }
}

/// Why an operator did not handle an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// This event is bad (not JSON, a missing field, a value out of range). The host applies the
    /// operator's `on-error` policy to this event only — skip, dead-letter or fail — and the
    /// events the operator emitted for it are discarded.
    Reject(String),
    /// The configuration handed to `init` is unusable.
    InvalidConfig(String),
    /// The operator itself failed and cannot go on with this batch.
    Failed(String),
}

impl Error {
    pub fn reject(reason: impl fmt::Display) -> Self {
        Self::Reject(reason.to_string())
    }

    pub fn invalid_config(reason: impl fmt::Display) -> Self {
        Self::InvalidConfig(reason.to_string())
    }

    pub fn failed(reason: impl fmt::Display) -> Self {
        Self::Failed(reason.to_string())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Reject(m) => write!(f, "event rejected: {m}"),
            Self::InvalidConfig(m) => write!(f, "invalid config: {m}"),
            Self::Failed(m) => write!(f, "operator failed: {m}"),
        }
    }
}

impl std::error::Error for Error {}

/// An event that is not valid JSON, or does not have the shape the operator asked for, is a bad
/// event: `?` on a `serde_json` error rejects it.
impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Self::Reject(format!("event is not the expected JSON: {e}"))
    }
}

/// A flowlet operator.
///
/// Only [`init`](Operator::init) and [`process`](Operator::process) are required.
/// [`process_batch`](Operator::process_batch) may be overridden to work on the whole batch.
pub trait Operator: Sized + 'static {
    /// Build the operator from its configuration. Called once per instance.
    fn init(config: Config) -> Result<Self, Error>;

    /// Handle one event: emit zero or more events through `out`, or return
    /// [`Error::Reject`] when the event is bad.
    fn process(&mut self, event: &Event<'_>, out: &mut Output<'_>) -> Result<(), Error>;

    /// Handle timers that fired (operators of the `stateful-processor` world, see [`state`]).
    /// `out` gives events the timer's key and time.
    fn on_timer(&mut self, timer: &Timer, out: &mut Emitter) -> Result<(), Error> {
        let _ = (timer, out);
        Ok(())
    }

    /// Handle a batch. The default calls [`process`](Operator::process) for each event and turns
    /// rejections into per-event rejections, discarding what was emitted for a rejected event.
    fn process_batch<'a>(&mut self, input: &'a Batch, out: &mut Output<'a>) -> Result<(), Error> {
        let origin = out.origin();
        for event in input.iter() {
            out.begin(event);
            match self.process(&Event::new(event, origin), out) {
                Ok(()) => {}
                Err(Error::Reject(reason)) => out.reject_current(reason),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Run one batch, from the input named `origin`, through an operator natively: what the Wasm
/// glue, the test harness and the host's built-in operators all call.
pub fn run_batch<O: Operator>(
    op: &mut O,
    input: &Batch,
    origin: &str,
) -> Result<flowlet_types::Output, Error> {
    let mut out = Output::new(input, origin);
    op.process_batch(input, &mut out)?;
    Ok(out.finish())
}

/// Run fired timers through an operator natively.
pub fn run_timers<O: Operator>(
    op: &mut O,
    timers: &[Timer],
) -> Result<flowlet_types::Output, Error> {
    let mut out = Emitter::new();
    for t in timers {
        out.set(&t.key, t.at);
        op.on_timer(t, &mut out)?;
    }
    Ok(out.finish())
}

/// Make the crate a Wasm component of flowlet's `processor` world exporting `$op`.
///
/// Expands to nothing when not compiling for `wasm32`, so the crate also builds natively for
/// tests.
#[macro_export]
macro_rules! export_operator {
    ($op:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct FlowletGuest;

            impl $crate::__wasm::bindings::exports::flowlet::operator::handler::Guest for FlowletGuest {
                fn init(
                    config: ::std::string::String,
                    setup: $crate::__wasm::bindings::flowlet::operator::types::Setup,
                ) -> ::std::result::Result<(), $crate::__wasm::bindings::flowlet::operator::types::Error> {
                    $crate::__wasm::init::<$op>(config, setup)
                }

                fn process(
                    input: $crate::__wasm::bindings::flowlet::operator::types::Batch,
                    origin: u32,
                ) -> ::std::result::Result<
                    $crate::__wasm::bindings::flowlet::operator::types::Output,
                    $crate::__wasm::bindings::flowlet::operator::types::Error,
                > {
                    $crate::__wasm::process::<$op>(input, origin)
                }
            }

            $crate::__wasm::bindings::export!(FlowletGuest with_types_in $crate::__wasm::bindings);
        };
    };
}

/// Make the crate a Wasm component of flowlet's `stateful-processor` world exporting `$op`:
/// `$op` may use keyed state and timers ([`state`]) and receives timers in `on_timer`.
#[macro_export]
macro_rules! export_stateful_operator {
    ($op:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct FlowletGuest;

            impl $crate::__wasm::stateful::exports::flowlet::operator::stateful_handler::Guest for FlowletGuest {
                fn init(
                    config: ::std::string::String,
                    setup: $crate::__wasm::bindings::flowlet::operator::types::Setup,
                ) -> ::std::result::Result<(), $crate::__wasm::bindings::flowlet::operator::types::Error> {
                    $crate::__wasm::init::<$op>(config, setup)
                }

                fn process(
                    input: $crate::__wasm::bindings::flowlet::operator::types::Batch,
                    origin: u32,
                ) -> ::std::result::Result<
                    $crate::__wasm::bindings::flowlet::operator::types::Output,
                    $crate::__wasm::bindings::flowlet::operator::types::Error,
                > {
                    $crate::__wasm::process::<$op>(input, origin)
                }

                fn on_timer(
                    fired: ::std::vec::Vec<$crate::__wasm::stateful::exports::flowlet::operator::stateful_handler::Timer>,
                ) -> ::std::result::Result<
                    $crate::__wasm::bindings::flowlet::operator::types::Output,
                    $crate::__wasm::bindings::flowlet::operator::types::Error,
                > {
                    $crate::__wasm::on_timer::<$op>(fired)
                }
            }

            $crate::__wasm::stateful::export!(FlowletGuest with_types_in $crate::__wasm::stateful);
        };
    };
}

/// Make the crate a Wasm component of flowlet's `aggregator` world exporting `$agg`, an
/// [`aggregate::Aggregate`].
#[macro_export]
macro_rules! export_aggregate {
    ($agg:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct FlowletGuest;
            use $crate::__wasm::aggregator::exports::flowlet::operator::aggregate as wit;
            use $crate::__wasm::bindings::flowlet::operator::types as t;

            impl wit::Guest for FlowletGuest {
                fn init(
                    config: ::std::string::String,
                    setup: t::Setup,
                ) -> ::std::result::Result<(), t::Error> {
                    $crate::__wasm::aggregate_init::<$agg>(config, setup)
                }
                fn create_accumulator() -> ::std::result::Result<::std::vec::Vec<u8>, t::Error> {
                    $crate::__wasm::aggregate_create::<$agg>()
                }
                fn add(
                    accumulators: wit::Accumulators,
                    input: t::Batch,
                    slots: ::std::vec::Vec<u32>,
                ) -> ::std::result::Result<wit::Added, t::Error> {
                    $crate::__wasm::aggregate_add::<$agg>(accumulators, input, slots)
                }
                fn merge(
                    a: ::std::vec::Vec<u8>,
                    b: ::std::vec::Vec<u8>,
                ) -> ::std::result::Result<::std::vec::Vec<u8>, t::Error> {
                    $crate::__wasm::aggregate_merge::<$agg>(a, b)
                }
                fn finish(fired: wit::Fired) -> ::std::result::Result<t::Batch, t::Error> {
                    $crate::__wasm::aggregate_finish::<$agg>(fired)
                }
            }

            $crate::__wasm::aggregator::export!(FlowletGuest with_types_in $crate::__wasm::aggregator);
        };
    };
}
