//! What a plugin may import from flowlet: one module per WIT interface of `wit/host.wit`,
//! each implementing its interface on the store's [`Ctx`] and linking it, registered in [`CAPABILITIES`]
//! with the worlds that may import it. The linker, the load-time import check and its error
//! texts are all made from that list.
//!
//! To add a capability: declare its interface in `wit/host.wit` (and import it in the worlds
//! that get it, `wit/worlds.wit`), write `capability/NAME.rs` with `impl Host for Ctx` and a
//! `CAPABILITY`, and add it to [`CAPABILITIES`]. Per-instance data it needs goes in
//! [`Ctx`] (store.rs).

mod log;
mod metrics;
mod state;
mod timers;

pub(crate) use timers::{wit_domain_v1, wit_domain_v2};

use flowlet_operator::PluginKind;
use wasmtime::component::Linker;

use crate::store::{Ctx, InstanceState};

/// Every capability flowlet provides, in the order error texts list them.
pub(crate) const CAPABILITIES: &[Capability] = &[
    log::CAPABILITY,
    metrics::CAPABILITY,
    state::CAPABILITY,
    timers::CAPABILITY,
];

/// One host interface a plugin may import.
pub(crate) struct Capability {
    /// The interface's name in package `flowlet:operator` (`log` for `flowlet:operator/log`).
    pub name: &'static str,
    /// The worlds whose plugins may import it.
    pub worlds: &'static [PluginKind],
    /// Add the interface's functions to the linker.
    pub link: fn(&mut Linker<InstanceState>) -> wasmtime::Result<()>,
}

/// Every world.
const ALL: &[PluginKind] = &[
    PluginKind::Processor,
    PluginKind::StatefulProcessor,
    PluginKind::Aggregator,
];

impl crate::bindings::v1::types::Host for Ctx {}
impl crate::bindings::v2::types::Host for Ctx {}

/// Link every capability (and the `types` interface they share), of every contract version,
/// into `linker`.
pub(crate) fn link_all(linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
    use wasmtime::component::HasSelf;
    crate::bindings::v1::types::add_to_linker::<_, HasSelf<Ctx>>(linker, InstanceState::caps)?;
    crate::bindings::v2::types::add_to_linker::<_, HasSelf<Ctx>>(linker, InstanceState::caps)?;
    for c in CAPABILITIES {
        (c.link)(linker)?;
    }
    Ok(())
}

/// What a plugin of `kind` may import, e.g. `flowlet:operator/{log,metrics} and WASI 0.2`.
pub(crate) fn allowed(kind: PluginKind) -> String {
    let names: Vec<&str> = CAPABILITIES
        .iter()
        .filter(|c| c.worlds.contains(&kind))
        .map(|c| c.name)
        .collect();
    format!(
        "a {kind} may import only flowlet:operator/{{{}}} and WASI 0.2",
        names.join(",")
    )
}

/// Refuse a `flowlet:operator/…` import that is no capability, or one its world may not use
/// (a `processor` importing `state`); the message says what the world may import.
pub(crate) fn check_imports(kind: PluginKind, imports: &[String]) -> Result<(), String> {
    for import in imports {
        let Some(name) = import.strip_prefix("flowlet:operator/") else {
            continue;
        };
        let name = name.split('@').next().unwrap_or(name);
        if name == "types" {
            continue;
        }
        let Some(c) = CAPABILITIES.iter().find(|c| c.name == name) else {
            return Err(format!(
                "imports {import}, which flowlet does not provide; {}",
                allowed(kind)
            ));
        };
        if !c.worlds.contains(&kind) {
            let worlds: Vec<String> = c.worlds.iter().map(|w| format!("a {w}")).collect();
            return Err(format!(
                "imports {import}, which only {} may import; {} (export flowlet:operator/stateful-handler to get keyed state and timers)",
                worlds.join(" or "),
                allowed(kind)
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allowed_imports_follow_the_list() {
        assert_eq!(
            allowed(PluginKind::Processor),
            "a processor may import only flowlet:operator/{log,metrics} and WASI 0.2"
        );
        assert_eq!(
            allowed(PluginKind::StatefulProcessor),
            "a stateful-processor may import only flowlet:operator/{log,metrics,state,timers} and WASI 0.2"
        );
    }

    #[test]
    fn imports_are_checked_against_the_world() {
        let imports = |i: &[&str]| i.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let ok = imports(&[
            "flowlet:operator/types@0.1.0",
            "flowlet:operator/log@0.1.0",
            "wasi:cli/stderr@0.2.6",
        ]);
        assert_eq!(check_imports(PluginKind::Processor, &ok), Ok(()));
        let state = imports(&["flowlet:operator/state@0.1.0"]);
        assert_eq!(check_imports(PluginKind::StatefulProcessor, &state), Ok(()));
        let err = check_imports(PluginKind::Aggregator, &state).unwrap_err();
        assert!(
            err.contains("which only a stateful-processor may import"),
            "{err}"
        );
        let err = check_imports(
            PluginKind::Processor,
            &imports(&["flowlet:operator/net@0.1.0"]),
        )
        .unwrap_err();
        assert!(err.contains("which flowlet does not provide"), "{err}");
    }
}
