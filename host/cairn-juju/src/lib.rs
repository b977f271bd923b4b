//! Cairn under Juju: one compiled charm component, dispatched by a Juju unit agent.
//!
//! Juju runs a charm's `./dispatch` once per event, with the event in its environment
//! (`JUJU_DISPATCH_PATH`, `JUJU_UNIT_NAME`, …), hook tools on `PATH` and each workload
//! container's Pebble socket under `/charm/containers/<name>/pebble.socket`. This crate
//! is what that `dispatch` runs ([`dispatch::run`], behind the lean `cairn-dispatch`
//! binary) and how a charm directory becomes a `.charm` ([`pack::pack`]):
//! - [`env`]: Juju's environment mapped to the WIT event exactly as `ops` maps it;
//! - [`tools`]: the `unit` interface served by Juju's hook tools, lazily (a tool runs only
//!   when the charm asks, changes are written back once, at the end);
//! - [`state`]: stored state and deferred events in the charm directory, written
//!   atomically and only when the handlers succeed;
//! - [`dispatch`]: one dispatch, from the environment to the exit code;
//! - [`pack`]: the `.charm` zip;
//! - [`elf`]: whether the packed dispatcher binary starts on the charm's bases.

pub mod dispatch;
pub mod elf;
pub mod env;
pub mod pack;
pub mod state;
pub mod tools;

/// Errors at this crate's boundary.
#[derive(Debug, thiserror::Error)]
pub enum JujuError {
    /// Juju's environment lacks a variable or has a wrong one.
    #[error("cannot dispatch: {0}")]
    Env(String),
    /// A hook tool failed or answered something unreadable.
    #[error("{0}")]
    Tool(String),
    /// The charm's files (metadata, component, state) could not be read or written.
    #[error("{0}")]
    Charm(String),
    /// The runtime refused the charm.
    #[error(transparent)]
    Runtime(#[from] cairn_runtime::RuntimeError),
    /// Packing failed.
    #[error("cannot pack charm: {0}")]
    Pack(String),
}
