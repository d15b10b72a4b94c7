//! `flowlet:operator/timers`: event-time and processing-time timers per key, and the
//! operator's clocks (the watermark, processing time). Stateful processors only; fired timers
//! come back through the `on-timer` export.

use flowlet_operator::{PluginKind, TimeDomain};
use flowlet_types::Timestamp;
use wasmtime::component::HasSelf;

use super::Capability;
use crate::store::{Ctx, InstanceState};

pub(super) const CAPABILITY: Capability = Capability {
    name: "timers",
    worlds: &[PluginKind::StatefulProcessor],
    link: |l| {
        use crate::bindings::{v1, v2};
        v1::stateful::flowlet::operator::timers::add_to_linker::<_, HasSelf<Ctx>>(
            l,
            InstanceState::caps,
        )?;
        v2::stateful::flowlet::operator::timers::add_to_linker::<_, HasSelf<Ctx>>(
            l,
            InstanceState::caps,
        )
    },
};

impl Ctx {
    fn watermark(&mut self) -> Timestamp {
        match &self.state {
            Some(s) => s.lock().expect("state lock").watermark(),
            None => Timestamp::MIN,
        }
    }

    fn processing_time(&mut self) -> Timestamp {
        match &self.state {
            Some(s) => s.lock().expect("state lock").now(),
            None => flowlet_operator::now_ms(),
        }
    }
}

/// The interface is the same in every contract version; `wit_domain_vN` converts a fired
/// timer's domain for the `on-timer` export.
macro_rules! timers_host {
    ($v:ident, $wit_domain:ident) => {
        mod $v {
            use super::*;
            use crate::bindings::$v::stateful::flowlet::operator::timers;

            fn domain(d: timers::TimeDomain) -> TimeDomain {
                match d {
                    timers::TimeDomain::EventTime => TimeDomain::EventTime,
                    timers::TimeDomain::ProcessingTime => TimeDomain::ProcessingTime,
                }
            }

            /// The WIT time domain of a fired timer (for the `on-timer` export).
            pub(crate) fn $wit_domain(d: TimeDomain) -> timers::TimeDomain {
                match d {
                    TimeDomain::EventTime => timers::TimeDomain::EventTime,
                    TimeDomain::ProcessingTime => timers::TimeDomain::ProcessingTime,
                }
            }

            impl timers::Host for Ctx {
                fn current_watermark(&mut self) -> Timestamp {
                    self.watermark()
                }
                fn current_processing_time(&mut self) -> Timestamp {
                    self.processing_time()
                }
                fn register(&mut self, key: Vec<u8>, d: timers::TimeDomain, at: Timestamp) {
                    self.with_state(|s| s.register_timer(&key, domain(d), at));
                }
                fn cancel(&mut self, key: Vec<u8>, d: timers::TimeDomain, at: Timestamp) {
                    self.with_state(|s| s.cancel_timer(&key, domain(d), at));
                }
            }
        }
        pub(crate) use $v::$wit_domain;
    };
}

timers_host!(v1, wit_domain_v1);
timers_host!(v2, wit_domain_v2);
