//! Operators linked into the binary: the shipped Rust plugins compiled natively, usable as
//! `plugin: builtin:NAME` (no sandbox: trusted code only).

use std::marker::PhantomData;
use std::sync::Arc;

use flowlet_dataflow::{
    Accumulators, Added, Aggregator, FiredWindows, Instance, InstanceContext, Operator,
    OperatorError, OperatorFactory, PluginKind,
};
use flowlet_sdk::{Batch, Config, Error};

pub const NAMES: [&str; 7] = [
    "filter",
    "router",
    "map",
    "flat-map",
    "aggregate",
    "nexmark-queries",
    "nexmark-windows",
];

struct Builtin<O> {
    name: &'static str,
    config: serde_json::Value,
    _op: PhantomData<fn() -> O>,
}

struct Native<O>(O, Arc<flowlet_dataflow::Setup>);

fn to_operator_error(e: Error) -> OperatorError {
    match e {
        Error::InvalidConfig(m) => OperatorError::InvalidConfig(m),
        Error::Reject(m) | Error::Failed(m) => OperatorError::Failed(m),
    }
}

impl<O: flowlet_sdk::Operator + Send> Operator for Native<O> {
    fn process(
        &mut self,
        input: &Batch,
        origin: u32,
    ) -> Result<flowlet_dataflow::Output, OperatorError> {
        let name = self
            .1
            .inputs
            .get(origin as usize)
            .map_or("", String::as_str);
        flowlet_sdk::run_batch(&mut self.0, input, name).map_err(to_operator_error)
    }
}

impl<O: flowlet_sdk::Operator + Send> OperatorFactory for Builtin<O> {
    fn instantiate(&self, ctx: &InstanceContext) -> Result<Instance, OperatorError> {
        let config = Config::with_setup(self.config.clone(), (*ctx.setup).clone());
        let op = O::init(config).map_err(to_operator_error)?;
        Ok(Instance::Processor(Box::new(Native(op, ctx.setup.clone()))))
    }

    fn plugin_id(&self) -> String {
        format!("builtin:{}", self.name)
    }

    fn kind(&self) -> PluginKind {
        PluginKind::Processor
    }
}

/// A window aggregate linked natively.
struct BuiltinAggregate<A> {
    name: &'static str,
    config: serde_json::Value,
    _agg: PhantomData<fn() -> A>,
}

struct NativeAggregate<A>(A);

impl<A: flowlet_sdk::aggregate::Aggregate + Send> Aggregator for NativeAggregate<A> {
    fn create_accumulator(&mut self) -> Result<Vec<u8>, OperatorError> {
        Ok(flowlet_sdk::aggregate::create(&self.0))
    }

    fn add(
        &mut self,
        accumulators: Accumulators,
        input: &Batch,
        slots: &[u32],
    ) -> Result<Added, OperatorError> {
        let (accumulators, rejected) =
            flowlet_sdk::aggregate::add(&self.0, &accumulators, input, slots)
                .map_err(to_operator_error)?;
        Ok(Added {
            accumulators,
            rejected,
        })
    }

    fn merge(&mut self, a: &[u8], b: &[u8]) -> Result<Vec<u8>, OperatorError> {
        flowlet_sdk::aggregate::merge(&self.0, a, b).map_err(to_operator_error)
    }

    fn finish(&mut self, fired: FiredWindows) -> Result<Batch, OperatorError> {
        flowlet_sdk::aggregate::finish(&self.0, &fired).map_err(to_operator_error)
    }
}

impl<A: flowlet_sdk::aggregate::Aggregate + Send> OperatorFactory for BuiltinAggregate<A> {
    fn instantiate(&self, _: &InstanceContext) -> Result<Instance, OperatorError> {
        let a = A::init(Config::new(self.config.clone())).map_err(to_operator_error)?;
        Ok(Instance::Aggregator(Box::new(NativeAggregate(a))))
    }

    fn plugin_id(&self) -> String {
        format!("builtin:{}", self.name)
    }

    fn kind(&self) -> PluginKind {
        PluginKind::Aggregator
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
        "router" => make::<flowlet_plugin_router::Router>("router", config),
        "map" => make::<flowlet_plugin_map::Mapper>("map", config),
        "flat-map" => make::<flowlet_plugin_flat_map::FlatMap>("flat-map", config),
        "nexmark-queries" => {
            make::<flowlet_plugin_nexmark_queries::Nexmark>("nexmark-queries", config)
        }
        "aggregate" => Arc::new(
            BuiltinAggregate::<flowlet_plugin_aggregate::WindowAggregate> {
                name: "aggregate",
                config,
                _agg: PhantomData,
            },
        ),
        "nexmark-windows" => Arc::new(BuiltinAggregate::<
            flowlet_plugin_nexmark_windows::NexmarkWindows,
        > {
            name: "nexmark-windows",
            config,
            _agg: PhantomData,
        }),
        _ => return None,
    })
}
