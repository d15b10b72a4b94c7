//! The hot-swap tests' counter, version 2: it counts and tags its output v2.

const VERSION: &str = "v2";
const MODE: Mode = Mode::Count;

include!("../../counter.rs");
