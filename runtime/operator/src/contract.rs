//! The traits and types of an operator instance and its factory.

use std::sync::Arc;

use crate::{Accumulators, Batch, FiredWindows, Output, SharedState, Timer};

/// How an operator instance failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum OperatorError {
    /// The instance trapped (panic, deadline, memory cap, stack overflow): it is unusable and
    /// must be replaced.
    #[error("trapped: {0}")]
    Trap(String),
    /// The operator reported that it failed ("I failed").
    #[error("failed: {0}")]
    Failed(String),
    /// `init` rejected the configuration.
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    /// The operator returned a malformed batch or rejection.
    #[error("returned malformed output: {0}")]
    Malformed(String),
}

/// One instance of an operator.
pub trait Operator: Send {
    /// Transform one batch, which came from input `from` (an index into [`Setup::inputs`]).
    fn process(&mut self, input: &Batch, from: u32) -> Result<Output, OperatorError>;

    /// Handle timers that fired (stateful operators). The output's rejections are ignored.
    fn on_timer(&mut self, timers: &[Timer]) -> Result<Output, OperatorError> {
        let _ = timers;
        Ok(Output::default())
    }
}

pub use flowlet_types::Setup;

/// What [`Aggregator::add`] returns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Added {
    pub accumulators: Accumulators,
    pub rejected: Vec<flowlet_types::Rejection>,
}

/// One instance of a window aggregate (the `aggregator` world).
pub trait Aggregator: Send {
    fn create_accumulator(&mut self) -> Result<Vec<u8>, OperatorError>;
    /// Fold `input` into `accumulators`: event `i` into `accumulators[slots[i]]`.
    fn add(
        &mut self,
        accumulators: Accumulators,
        input: &Batch,
        slots: &[u32],
    ) -> Result<Added, OperatorError>;
    fn merge(&mut self, a: &[u8], b: &[u8]) -> Result<Vec<u8>, OperatorError>;
    fn finish(&mut self, fired: FiredWindows) -> Result<Batch, OperatorError>;
}

/// Which flowlet world a plugin implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginKind {
    /// `processor`: stateless, batch in, batch out.
    Processor,
    /// `stateful-processor`: keyed state and timers.
    StatefulProcessor,
    /// `aggregator`: window aggregates.
    Aggregator,
}

impl std::fmt::Display for PluginKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Processor => "processor",
            Self::StatefulProcessor => "stateful-processor",
            Self::Aggregator => "aggregator",
        })
    }
}

/// A new instance of one of the kinds.
pub enum Instance {
    Processor(Box<dyn Operator>),
    Aggregator(Box<dyn Aggregator>),
}

/// What an instance is given by the executor: its place in the topology, and the keyed state
/// of its key groups (stateful processors).
#[derive(Clone, Default)]
pub struct InstanceContext {
    pub setup: Arc<Setup>,
    pub state: Option<SharedState>,
}

/// Makes instances of one operator: at start, and again to replace a trapped one.
pub trait OperatorFactory: Send + Sync {
    /// A new, initialised instance.
    fn instantiate(&self, ctx: &InstanceContext) -> Result<Instance, OperatorError>;
    /// What runs: `sha256:…` of a component, or `builtin:NAME`.
    fn plugin_id(&self) -> String;
    fn kind(&self) -> PluginKind;
    /// The contract version the plugin was built for (`0.1.0` plugins cannot route to named
    /// outputs; built-ins speak the current one).
    fn contract(&self) -> &'static str {
        CONTRACT_VERSION
    }
    /// Whether its instances can route events to named outputs (contract 0.2 on).
    fn can_route(&self) -> bool {
        self.contract() != "0.1.0"
    }
}

/// The contract version flowlet's SDKs and built-ins implement (the WIT package's).
pub const CONTRACT_VERSION: &str = "0.2.0";

/// A factory shared by the tasks of one operator.
pub type SharedFactory = Arc<dyn OperatorFactory>;
