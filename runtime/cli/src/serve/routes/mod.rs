//! The API's routes, one module per resource; each declares its routes (`routes()`), merged
//! in [`super::router`]. To add a resource: a module here and one `.merge` line there.

pub(super) mod health;
pub(super) mod operators;
pub(super) mod pipelines;
pub(super) mod plugins;
