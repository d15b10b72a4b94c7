//! Why a topology stopped with an error.

use crate::{CheckpointId, OperatorError, PluginKind, state};

/// Why a topology stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DataflowError {
    #[error("operator `{operator}` (plugin {plugin}) could not start: {error}")]
    Init {
        operator: String,
        plugin: String,
        error: OperatorError,
    },
    #[error(
        "operator `{operator}` (plugin {plugin}) {error}, on event {event}; the topology stops because its on-error policy is `fail` (choose `skip` or `dead-letter` to go on)"
    )]
    Operator {
        operator: String,
        plugin: String,
        error: OperatorError,
        event: String,
    },
    #[error("source `{source_name}`: {message}")]
    Source {
        source_name: String,
        message: String,
    },
    #[error("sink `{sink}`: {message}")]
    Sink { sink: String, message: String },
    #[error("no factory for operator `{0}`")]
    NoFactory(String),
    #[error(transparent)]
    State(#[from] state::StateError),
    #[error(
        "operator `{operator}`: plugin {plugin} implements the `{kind}` world, which {problem}"
    )]
    WrongKind {
        operator: String,
        plugin: String,
        kind: PluginKind,
        problem: String,
    },
    #[error(
        "checkpoint {checkpoint} failed: {message}; the next run resumes from the checkpoint before it"
    )]
    Checkpoint {
        checkpoint: CheckpointId,
        message: String,
    },
    #[error(
        "no connectors to open the sources and sinks with: set `RunOptions::connectors` (flowlet_connectors::connectors())"
    )]
    NoConnectors,
    #[error("a task of the topology panicked: {0}")]
    Panic(String),
    #[error("operator `{operator}`: {message}")]
    Join { operator: String, message: String },
}
