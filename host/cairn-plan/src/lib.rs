//! Pebble's layers and plan, re-implemented for Cairn.
//!
//! A *layer* is a YAML document with `summary`, `description`, `services`, `checks`,
//! `log-targets` and the `workloads`/`pairing` extension sections. Layers come from a
//! layers directory ([`read_layers_dir`]) or from the API ([`Layers::add`]); they are
//! combined in order ([`combine_layers`]) into the *plan* ([`Plan::from_layers`]), which
//! the supervisor runs: start/stop ordering and lanes ([`Plan::start_lanes`]), command
//! splitting with `[ default args ]` ([`Service::parse_command`]), and rendering exactly
//! as `pebble plan` prints it ([`Plan::to_yaml`]). Layers added through the API go through
//! [`Layers::add_yaml`], which gives Pebble's API messages. [`glob_match`] is Go's
//! `path.Match`, which the files API filters listings with.
//!
//! Behaviour and error texts follow Pebble (`internals/plan`, `internals/overlord/planstate`).
//! YAML is parsed with libyaml (the parser Go's `yaml.v3` is a port of) and decoded with
//! `yaml.v3`'s rules, so values and messages match; rendering reproduces `yaml.v3`'s emitter.
//!
//! The crate is pure: no I/O except reading a layers directory, no async, no processes, so
//! the SDK's native testing harness runs the same code as the host.
//!
//! # Where Cairn cannot match Pebble exactly
//! - User and group names are not resolved here (Pebble's `NormalizeUidGid`, also used to
//!   validate exec checks and workloads, needs the user database); the supervisor does it.
//! - Enumerated fields are Rust enums, so values Pebble keeps and rejects later are rejected
//!   while parsing: an invalid `override` gets Pebble's combine-time message (`layer "x" has
//!   invalid "override" value for service "y"`), and a service `startup` other than
//!   `enabled`/`disabled` (which Pebble silently treats as disabled) gets
//!   `plan service "x" startup must be "enabled" or "disabled"`.
//! - Ids, ports and thresholds are `u32` (Go `int`): a negative or huge value is a decoding
//!   error (`cannot unmarshal !!int `-1` into int`); negative durations are `invalid duration`.
//! - Decoding errors carry the line numbers Pebble reports (counted in the section as
//!   re-rendered on its own), except that comments inside a section, which Pebble re-emits,
//!   are not counted.
//! - Where Pebble iterates a Go map (random order) and several errors apply, Cairn reports
//!   the first by sorted name (services, checks, targets) or document order (sections).
//! - [`Layer::to_yaml`] is Cairn's persistence format (Pebble never prints layers): it leaves
//!   out empty extension sections and keeps a leading line break of a multi-line string.

#![warn(missing_docs)]

mod combine;
mod command;
mod dir;
mod duration;
mod error;
mod glob;
mod json_yaml;
mod layer;
mod layers;
mod order;
mod quote;
mod render;
mod types;
mod validate;
mod yaml;
pub use json_yaml::json_to_yaml;

pub use combine::combine_layers;
pub use command::{command_string, quote_word, split_command};
pub use dir::{load_layers_dir, read_layers_dir};
pub use duration::{DurationError, format_duration, parse_duration};
pub use error::PlanError;
pub use glob::{BadPattern, glob_match};
pub use layer::{parse_added_layer, parse_layer};
pub use layers::{Layers, SERVICE_ARGS_LABEL};
pub use order::ReplanLanes;
pub use quote::quote;
pub use types::*;

#[cfg(test)]
mod tests;
