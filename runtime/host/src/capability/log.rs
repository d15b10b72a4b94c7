//! `flowlet:operator/log`: a guest's log lines, through the host's `tracing` (target
//! `flowlet::guest`, with the operator's name).

use wasmtime::component::HasSelf;

use super::{ALL, Capability};
use crate::bindings::flowlet::operator::log::{self, Level};
use crate::store::{Ctx, InstanceState};

pub(super) const CAPABILITY: Capability = Capability {
    name: "log",
    worlds: ALL,
    link: |l| log::add_to_linker::<_, HasSelf<Ctx>>(l, InstanceState::caps),
};

impl log::Host for Ctx {
    fn log(&mut self, level: Level, message: String) {
        let op = &*self.operator;
        match level {
            Level::Trace => tracing::trace!(target: "flowlet::guest", operator = op, "{message}"),
            Level::Debug => tracing::debug!(target: "flowlet::guest", operator = op, "{message}"),
            Level::Info => tracing::info!(target: "flowlet::guest", operator = op, "{message}"),
            Level::Warn => tracing::warn!(target: "flowlet::guest", operator = op, "{message}"),
            Level::Error => tracing::error!(target: "flowlet::guest", operator = op, "{message}"),
        }
    }
}
