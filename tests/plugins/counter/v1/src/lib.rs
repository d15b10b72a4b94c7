//! The hot-swap tests' counter, version 1: it counts and tags its output v1.

const VERSION: &str = "v1";
const MODE: Mode = Mode::Count;

include!("../../counter.rs");
