//! `flowlet:operator/state`: value and map state per key, kept by the executor (in memory,
//! written to the state database at commit points). Stateful processors only.

use flowlet_operator::PluginKind;
use wasmtime::component::HasSelf;

use super::Capability;
use crate::store::{Ctx, InstanceState};

pub(super) const CAPABILITY: Capability = Capability {
    name: "state",
    worlds: &[PluginKind::StatefulProcessor],
    link: |l| {
        use crate::bindings::{v1, v2};
        v1::stateful::flowlet::operator::state::add_to_linker::<_, HasSelf<Ctx>>(
            l,
            InstanceState::caps,
        )?;
        v2::stateful::flowlet::operator::state::add_to_linker::<_, HasSelf<Ctx>>(
            l,
            InstanceState::caps,
        )
    },
};

/// The interface is the same in every contract version.
macro_rules! state_host {
    ($v:ident) => {
        impl crate::bindings::$v::stateful::flowlet::operator::state::Host for Ctx {
            fn value_get(&mut self, key: Vec<u8>, name: String) -> Option<Vec<u8>> {
                self.with_state(|s| s.value_get(&key, &name))
            }
            fn value_put(&mut self, key: Vec<u8>, name: String, value: Vec<u8>, ttl: Option<u64>) {
                self.with_state(|s| s.value_put(&key, &name, &value, ttl));
            }
            fn value_delete(&mut self, key: Vec<u8>, name: String) {
                self.with_state(|s| s.value_delete(&key, &name));
            }
            fn map_get(&mut self, key: Vec<u8>, name: String, map_key: Vec<u8>) -> Option<Vec<u8>> {
                self.with_state(|s| s.map_get(&key, &name, &map_key))
            }
            fn map_put(
                &mut self,
                key: Vec<u8>,
                name: String,
                map_key: Vec<u8>,
                value: Vec<u8>,
                ttl: Option<u64>,
            ) {
                self.with_state(|s| s.map_put(&key, &name, &map_key, &value, ttl));
            }
            fn map_delete(&mut self, key: Vec<u8>, name: String, map_key: Vec<u8>) {
                self.with_state(|s| s.map_delete(&key, &name, &map_key));
            }
            fn map_range(
                &mut self,
                key: Vec<u8>,
                name: String,
                start: Vec<u8>,
                end: Vec<u8>,
                limit: u32,
            ) -> Vec<(Vec<u8>, Vec<u8>)> {
                self.with_state(|s| s.map_range(&key, &name, &start, &end, limit))
            }
        }
    };
}

state_host!(v1);
state_host!(v2);
