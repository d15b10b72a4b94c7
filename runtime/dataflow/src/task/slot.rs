//! The plugin an operator or window task runs, with what replaces it: a fresh instance after a
//! trap, the new version of a hot swap, the previous one after a failed probation. One type for
//! every world.

use std::sync::Arc;

use crate::policy::Policy;
use crate::swap::{Incoming, InstanceSwaps};
use crate::{
    Aggregator, CheckpointId, DataflowError, Instance, InstanceContext, Operator, OperatorError,
    OperatorFactory,
};

/// An instance of one world, as a factory makes it.
pub(crate) trait World: Sized {
    fn from_instance(instance: Instance) -> Option<Self>;
}

impl World for Box<dyn Operator> {
    fn from_instance(instance: Instance) -> Option<Self> {
        match instance {
            Instance::Processor(p) => Some(p),
            Instance::Aggregator(_) => None,
        }
    }
}

impl World for Box<dyn Aggregator> {
    fn from_instance(instance: Instance) -> Option<Self> {
        match instance {
            Instance::Aggregator(a) => Some(a),
            Instance::Processor(_) => None,
        }
    }
}

/// One instance's plugin, its factory and context, its swaps and its error policy.
pub(crate) struct PluginSlot<T> {
    pub instance: T,
    pub factory: Arc<dyn OperatorFactory>,
    /// What instances are made with (keyed state of stateful processors).
    pub ctx: InstanceContext,
    pub swaps: InstanceSwaps,
    pub policy: Policy,
}

impl<T: World> PluginSlot<T> {
    /// A fresh instance of the current plugin.
    fn make(factory: &dyn OperatorFactory, ctx: &InstanceContext) -> Result<T, OperatorError> {
        T::from_instance(factory.instantiate(ctx)?).ok_or_else(|| {
            OperatorError::Malformed(format!(
                "the plugin implements the `{}` world, not the one this operator runs",
                factory.kind()
            ))
        })
    }

    fn init_error(&self, error: OperatorError) -> DataflowError {
        DataflowError::Init {
            operator: self.policy.name.clone(),
            plugin: self.policy.plugin.clone(),
            error,
        }
    }

    /// The instance trapped: replace it with a fresh one (counted and logged).
    pub fn restart(&mut self, why: &OperatorError) -> Result<(), DataflowError> {
        let (factory, ctx) = (self.factory.clone(), self.ctx.clone());
        self.instance = self.policy.replace(why, || Self::make(&*factory, &ctx))?;
        Ok(())
    }

    /// A swap armed for `barrier` (`None`: no checkpoints) takes effect.
    pub fn swap_due(&mut self, barrier: Option<CheckpointId>) {
        if let Some(incoming) = self.swaps.due(barrier, &self.factory) {
            self.swap_in(incoming);
        }
    }

    fn swap_in(&mut self, incoming: Incoming) {
        if let Some(instance) = T::from_instance(incoming.instance) {
            self.instance = instance;
            self.factory = incoming.factory;
            self.policy.plugin = self.factory.plugin_id();
        }
    }

    /// The plugin on probation failed (here or in another instance): bring the previous
    /// version back, on a fresh instance. `Ok(false)` when there is nothing to roll back to.
    pub fn roll_back(&mut self, why: &OperatorError) -> Result<bool, DataflowError> {
        let Some(previous) = self.swaps.roll_back(&self.factory, &why.to_string()) else {
            return Ok(false);
        };
        self.factory = previous;
        self.policy.plugin = self.factory.plugin_id();
        self.instance = Self::make(&*self.factory, &self.ctx).map_err(|e| self.init_error(e))?;
        Ok(true)
    }
}
