//! A component checked against one of flowlet's worlds, and what `flowlet inspect` shows.

use std::path::PathBuf;

use crate::{PluginKind, bindings, store};

/// The WIT package version this host implements.
pub const CONTRACT_VERSION: &str = "0.1.0";
/// The export that makes a component a flowlet `processor`.
pub const HANDLER_INTERFACE: &str = "flowlet:operator/handler";

/// What `flowlet inspect` shows about a component.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Inspection {
    pub digest: String,
    /// The flowlet world the component implements, if any.
    pub world: Option<String>,
    #[serde(skip)]
    pub kind: Option<PluginKind>,
    /// The contract version of the flowlet interfaces it uses.
    pub contract_version: Option<String>,
    pub exports: Vec<String>,
    pub imports: Vec<String>,
}

impl Inspection {
    /// Why the component is not an operator this flowlet runs (`None` when it is one).
    pub fn not_an_operator(&self) -> Option<String> {
        if self.kind.is_some() {
            return None;
        }
        Some(match &self.contract_version {
            Some(v) => format!(
                "it was built for flowlet contract {v}, and this flowlet implements {CONTRACT_VERSION}; rebuild it against this flowlet's wit/"
            ),
            None => format!(
                "it exports none of {} at version {CONTRACT_VERSION} (it exports: {}); build it with flowlet-sdk or against a world of wit/",
                WORLDS.map(|(i, _)| i).join(", "),
                if self.exports.is_empty() {
                    "nothing".to_owned()
                } else {
                    self.exports.join(", ")
                }
            ),
        })
    }
}

/// A component loaded and checked against one of flowlet's worlds.
#[derive(Clone)]
pub struct Plugin {
    pub path: PathBuf,
    /// `sha256:<hex>` of the component file.
    pub digest: String,
    pub kind: PluginKind,
    pub(crate) pre: Pre,
}

#[derive(Clone)]
pub(crate) enum Pre {
    Processor(bindings::ProcessorPre<store::InstanceState>),
    Stateful(bindings::stateful::StatefulProcessorPre<store::InstanceState>),
    Aggregator(bindings::aggregator::AggregatorPre<store::InstanceState>),
}

/// The exported interface that makes a component implement each world.
pub(crate) const WORLDS: [(&str, PluginKind); 3] = [
    ("flowlet:operator/handler", PluginKind::Processor),
    (
        "flowlet:operator/stateful-handler",
        PluginKind::StatefulProcessor,
    ),
    ("flowlet:operator/aggregate", PluginKind::Aggregator),
];

/// Whether a contract version is one this host speaks: same major and minor (0.x: minor is
/// breaking), any patch.
pub(crate) fn compatible(version: &str) -> bool {
    let mine: Vec<&str> = CONTRACT_VERSION.split('.').collect();
    let theirs: Vec<&str> = version.split('.').collect();
    theirs.len() == 3 && theirs[..2] == mine[..2]
}
