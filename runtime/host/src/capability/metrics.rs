//! `flowlet:operator/metrics`: counters and gauges a guest reports, summed over the
//! operator's instances and exported next to the host's own metrics.

use wasmtime::component::HasSelf;

use super::{ALL, Capability};
use crate::bindings::flowlet::operator::metrics;
use crate::store::{Ctx, InstanceState};

pub(super) const CAPABILITY: Capability = Capability {
    name: "metrics",
    worlds: ALL,
    link: |l| metrics::add_to_linker::<_, HasSelf<Ctx>>(l, InstanceState::caps),
};

impl metrics::Host for Ctx {
    fn counter_add(&mut self, name: String, delta: u64) {
        *self
            .metrics
            .lock()
            .expect("metrics lock")
            .entry(name)
            .or_default() += delta as f64;
    }

    fn gauge_set(&mut self, name: String, value: f64) {
        self.metrics
            .lock()
            .expect("metrics lock")
            .insert(name, value);
    }
}
