//! The wasm side of Cairn: engine, component cache, WIT bindings, sandbox, unit actors.
//!
//! The only crate that knows wasmtime. [`engine::Runtime`] owns the engine (pooling
//! allocator where available, epoch deadline per event, memory limit per store) and turns
//! charm components into ready-to-instantiate [`engine::Charm`]s, cached on disk by content
//! hash and engine compatibility. [`bindings`] implements the `cairn:charm` world's imports
//! against a unit's own context and containers. [`host::Host`] is the model: apps, units,
//! one actor per unit delivering events one at a time (design §4).

pub mod actions;
pub mod bindings;
pub mod charm;
pub mod engine;
pub mod host;
pub mod types;
pub mod unit;

pub use actions::ActionRecord;
pub use bindings::UnitContext;
pub use engine::{Charm, Dispatched, Runtime, RuntimeConfig};
pub use host::{ContainerMode, IN_ROOT_SOCKET};
pub use host::{Host, HostConfig, StatusReport};
pub use types::{ConfigValue, Event, Outcome, Status};

/// Errors at the runtime's boundary.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The engine could not be built.
    #[error("cannot start wasm engine: {0}")]
    Engine(String),
    /// A component failed to compile or link.
    #[error("cannot load charm: {0}")]
    Compile(String),
    /// The compiled-component cache failed.
    #[error("cannot use component cache: {0}")]
    Cache(String),
    /// Charm metadata or files are wrong.
    #[error("{0}")]
    Charm(String),
    /// A config setting or name is wrong.
    #[error("{0}")]
    Config(String),
    /// An app or unit does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The state directory could not be read or written.
    #[error("{0}")]
    State(String),
}

/// Now, RFC 3339 UTC.
pub(crate) fn now() -> String {
    cairn_supervisor::timefmt::rfc3339(time::OffsetDateTime::now_utc())
}
