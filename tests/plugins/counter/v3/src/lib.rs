//! The hot-swap tests' counter, version 3: it traps in init.

const VERSION: &str = "v3";
const MODE: Mode = Mode::TrapInInit;

include!("../../counter.rs");
