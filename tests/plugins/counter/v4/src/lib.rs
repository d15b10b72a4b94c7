//! The hot-swap tests' counter, version 4: it fails every batch.

const VERSION: &str = "v4";
const MODE: Mode = Mode::FailEveryBatch;

include!("../../counter.rs");
