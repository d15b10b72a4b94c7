//! Operators linked into the binary: the shipped Rust plugins compiled natively, usable as
//! `plugin: builtin:NAME` (no sandbox: trusted code only).

use std::marker::PhantomData;
use std::sync::Arc;

use flowlet_dataflow::{Operator, OperatorError, OperatorFactory};
use flowlet_sdk::{Batch, Config, Error};

pub const NAMES: [&str; 3] = ["filter", "map", "flat-map"];

struct Builtin<O> {
    name: &'static str,
    config: serde_json::Value,
    _op: PhantomData<fn() -> O>,
}

struct Native<O>(O);

fn to_operator_error(e: Error) -> OperatorError {
    match e {
        Error::InvalidConfig(m) => OperatorError::InvalidConfig(m),
        Error::Reject(m) | Error::Failed(m) => OperatorError::Failed(m),
    }
}

impl<O: flowlet_sdk::Operator + Send> Operator for Native<O> {
    fn process(&mut self, input: &Batch) -> Result<flowlet_dataflow::Output, OperatorError> {
        flowlet_sdk::run_batch(&mut self.0, input).map_err(to_operator_error)
    }
}

impl<O: flowlet_sdk::Operator + Send> OperatorFactory for Builtin<O> {
    fn instantiate(&self) -> Result<Box<dyn Operator>, OperatorError> {
        let op = O::init(Config(self.config.clone())).map_err(to_operator_error)?;
        Ok(Box::new(Native(op)))
    }

    fn plugin_id(&self) -> String {
        format!("builtin:{}", self.name)
    }
}

fn make<O: flowlet_sdk::Operator + Send>(
    name: &'static str,
    config: serde_json::Value,
) -> Arc<dyn OperatorFactory> {
    Arc::new(Builtin::<O> {
        name,
        config,
        _op: PhantomData,
    })
}

/// The factory of built-in operator `name`.
pub fn factory(name: &str, config: serde_json::Value) -> Option<Arc<dyn OperatorFactory>> {
    Some(match name {
        "filter" => make::<flowlet_plugin_filter::Filter>("filter", config),
        "map" => make::<flowlet_plugin_map::Mapper>("map", config),
        "flat-map" => make::<flowlet_plugin_flat_map::FlatMap>("flat-map", config),
        _ => return None,
    })
}
