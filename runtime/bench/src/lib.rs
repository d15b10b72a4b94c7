//! flowlet's benchmarks (docs/BENCHMARKS.md has the figures and the commands): the executor
//! chain, windows, Nexmark, Kafka, checkpoints, hot swap, languages. `flowlet bench` parses
//! [`Bench`] and calls [`run`] with a [`Runner`]: what the command knows that this crate must
//! not depend on (its built-in operators, how it loads plugins).

mod command;
mod join;
mod kafka;
pub mod nexmark;
mod route;
mod runner;
mod swap;

pub use command::{Bench, run};
pub use runner::Runner;
