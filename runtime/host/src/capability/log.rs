//! `flowlet:operator/log`: a guest's log lines, through the host's `tracing` (target
//! `flowlet::guest`, with the operator's name).

use wasmtime::component::HasSelf;

use super::{ALL, Capability};
use crate::store::{Ctx, InstanceState};

pub(super) const CAPABILITY: Capability = Capability {
    name: "log",
    worlds: ALL,
    link: |l| {
        use crate::bindings::{v1, v2};
        v1::processor::flowlet::operator::log::add_to_linker::<_, HasSelf<Ctx>>(
            l,
            InstanceState::caps,
        )?;
        v2::processor::flowlet::operator::log::add_to_linker::<_, HasSelf<Ctx>>(
            l,
            InstanceState::caps,
        )
    },
};

/// The interface is the same in every contract version.
macro_rules! log_host {
    ($v:ident) => {
        impl crate::bindings::$v::processor::flowlet::operator::log::Host for Ctx {
            fn log(
                &mut self,
                level: crate::bindings::$v::processor::flowlet::operator::log::Level,
                message: String,
            ) {
                use crate::bindings::$v::processor::flowlet::operator::log::Level;
                let op = &*self.operator;
                match level {
                    Level::Trace => {
                        tracing::trace!(target: "flowlet::guest", operator = op, "{message}")
                    }
                    Level::Debug => {
                        tracing::debug!(target: "flowlet::guest", operator = op, "{message}")
                    }
                    Level::Info => {
                        tracing::info!(target: "flowlet::guest", operator = op, "{message}")
                    }
                    Level::Warn => {
                        tracing::warn!(target: "flowlet::guest", operator = op, "{message}")
                    }
                    Level::Error => {
                        tracing::error!(target: "flowlet::guest", operator = op, "{message}")
                    }
                }
            }
        }
    };
}

log_host!(v1);
log_host!(v2);
