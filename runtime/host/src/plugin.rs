//! A component checked against one of flowlet's worlds, and what `flowlet inspect` shows.

use std::path::PathBuf;

use crate::PluginKind;
use crate::versions::{v1, v2};

/// The WIT package version the SDKs build for (the newest this host implements).
pub const CONTRACT_VERSION: &str = flowlet_operator::CONTRACT_VERSION;
/// Every contract version this host runs, oldest first.
pub const CONTRACT_VERSIONS: [&str; 2] = ["0.1.0", "0.2.0"];
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
    /// The version this host runs it as (`None`: not an operator this flowlet runs).
    #[serde(skip)]
    pub contract: Option<&'static str>,
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
                "it was built for flowlet contract {v}, and this flowlet runs {}; rebuild it against this flowlet's wit/",
                CONTRACT_VERSIONS.join(" and ")
            ),
            None => format!(
                "it exports none of {} at version {} (it exports: {}); build it with flowlet-sdk or against a world of wit/",
                WORLDS.map(|(i, _)| i).join(", "),
                CONTRACT_VERSIONS.join(" or "),
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
    /// The contract version it was built for (one of [`CONTRACT_VERSIONS`]).
    pub contract: &'static str,
    pub(crate) pre: Pre,
}

/// A component checked against a world of its contract version.
#[derive(Clone)]
pub(crate) enum Pre {
    V1(v1::Pre),
    V2(v2::Pre),
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

/// The contract version this host runs that `version` is compatible with: same major and minor
/// (0.x: minor is breaking), any patch.
pub(crate) fn compatible(version: &str) -> Option<&'static str> {
    let theirs: Vec<&str> = version.split('.').collect();
    CONTRACT_VERSIONS.into_iter().find(|mine| {
        let mine: Vec<&str> = mine.split('.').collect();
        theirs.len() == 3 && theirs[..2] == mine[..2]
    })
}
