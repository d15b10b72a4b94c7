//! flowlet's topology manifest: YAML → a validated [`Manifest`], reporting every problem at
//! once with its line, column and a hint. Loads no Wasm.
//!
//! The manifest knows sources, operators and sinks as nodes of a graph; what a connector or a
//! window kind is configured with, it leaves to that kind's module, registered in the
//! [`Catalog`] given in [`Options`] (config.rs).

mod config;
mod diag;
pub mod fields;
mod load;
mod model;
mod options;
mod parse;
mod schema;
mod validate;

pub use config::{
    Catalog, Config, Kind, Resource, Spec, describe_json, parse_as, schema_of, split_hint,
};
pub use diag::{Diagnostic, Diagnostics, Pos, did_you_mean};
pub use fields::valid_name;
pub use load::{ManifestError, load, parse_str};
pub use model::*;
pub use options::Options;
pub use parse::join::MERGE as JOIN_MERGE;
pub use schema::json_schema;
