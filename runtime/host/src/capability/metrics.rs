//! `flowlet:operator/metrics`: counters and gauges a guest reports, summed over the
//! operator's instances and exported next to the host's own metrics.

use wasmtime::component::HasSelf;

use super::{ALL, Capability};
use crate::store::{Ctx, InstanceState};

pub(super) const CAPABILITY: Capability = Capability {
    name: "metrics",
    worlds: ALL,
    link: |l| {
        use crate::bindings::{v1, v2};
        v1::processor::flowlet::operator::metrics::add_to_linker::<_, HasSelf<Ctx>>(
            l,
            InstanceState::caps,
        )?;
        v2::processor::flowlet::operator::metrics::add_to_linker::<_, HasSelf<Ctx>>(
            l,
            InstanceState::caps,
        )
    },
};

impl Ctx {
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

/// The interface is the same in every contract version.
macro_rules! metrics_host {
    ($v:ident) => {
        impl crate::bindings::$v::processor::flowlet::operator::metrics::Host for Ctx {
            fn counter_add(&mut self, name: String, delta: u64) {
                Ctx::counter_add(self, name, delta)
            }
            fn gauge_set(&mut self, name: String, value: f64) {
                Ctx::gauge_set(self, name, value)
            }
        }
    };
}

metrics_host!(v1);
metrics_host!(v2);
