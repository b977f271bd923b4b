//! The host model: applications, their units, and the containers of each unit.
//!
//! [`host::Host`] owns apps and units and wires each unit's containers (a supervisor and
//! its Pebble API per container). [`unit`] is the per-unit actor: it takes events off the
//! unit's persisted queue one at a time and hands each to the wasm side through
//! `Runtime::dispatch`, then commits or records the outcome. `watch` turns container
//! notices and shutdowns into events; `report` is what `cairn status` shows; `metrics` counts
//! what each tenant did (`cairn metrics`); `relations` keeps relations, their databags and
//! who has seen whom join.

pub mod host;
pub mod metrics;
pub(crate) mod relations;
pub mod report;
pub mod unit;
mod watch;
