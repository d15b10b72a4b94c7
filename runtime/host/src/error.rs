//! Why a plugin could not be loaded or inspected.

use std::path::PathBuf;

/// Why a plugin could not be loaded or inspected.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("cannot read plugin {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read plugin {path}: it is {what}; give the path of a .wasm component file")]
    NotAFile { path: PathBuf, what: &'static str },
    #[error("{path} is not a WebAssembly file (it does not start with `\\0asm`)")]
    NotWasm { path: PathBuf },
    #[error(
        "{path} is a core WebAssembly module, not a component; build it for `wasm32-wasip2` (Rust) or wrap it with `wasm-tools component new`"
    )]
    CoreModule { path: PathBuf },
    #[error("{path} (sha256:{digest}) is not a valid component: {message}")]
    Invalid {
        path: PathBuf,
        digest: String,
        message: String,
    },
    #[error("{path} (sha256:{digest}) does not implement flowlet's `processor` world: {message}")]
    WrongWorld {
        path: PathBuf,
        digest: String,
        message: String,
    },
    /// An import flowlet does not provide, or one the plugin's world may not use; `message`
    /// says what the world may import (made from the capability list).
    #[error("{path} (sha256:{digest}) {message}")]
    Import {
        path: PathBuf,
        digest: String,
        message: String,
    },
    #[error("cannot set up the Wasm engine: {0}")]
    Engine(String),
}
