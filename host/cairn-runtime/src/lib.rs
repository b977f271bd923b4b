//! The charm runtime: the wasm side (engine, component cache, WIT bindings, sandbox
//! limits) and the host model (apps, units, their actors and records).
//!
//! The only crate that knows wasmtime, and it knows it only in [`wasm`]: [`Runtime`] owns
//! the engine (pooling allocator where available, epoch deadline per event, memory limit
//! per store) and turns charm components into ready-to-instantiate [`Charm`]s, cached on
//! disk by content hash and engine compatibility; its bindings implement the
//! `cairn:charm` world's imports against a unit's own context and containers. [`model`]
//! is the rest: [`Host`] holds apps and units, one actor per unit delivering its events
//! one at a time, and reaches the wasm side only through [`Runtime::load`] and
//! [`Runtime::dispatch`].
//!
//! ## Embedding
//!
//! A program of its own runs charms with three types: [`Runtime::new`] builds the engine
//! (one per process), [`Runtime::load`] (or [`Runtime::load_file`]) compiles a component
//! into a [`Charm`], and [`Runtime::dispatch`] delivers one [`Event`] to a fresh instance
//! with a [`UnitContext`]: the unit's names, config, statuses, stored state, relations and
//! budget, and for each container a [`ContainerBackend`] of the embedder's choosing: an
//! embedded [`cairn_supervisor::Supervisor`], a Pebble API socket
//! ([`ContainerBackend::pebble_socket`]), or the embedder's own
//! [`wasm::ContainerApi`] ([`ContainerBackend::Custom`]). The [`Dispatched`] result holds
//! the outcome (or the [`Failure`]), the context as the handler left it and its log.
//! `cairn-testing` embeds it this way; so does `examples/dry_run.rs`, a plan previewer.

use std::path::PathBuf;

pub mod actions;
pub mod allocator;
pub mod budget;
pub mod charm;
pub mod model;
pub mod threads;
pub mod types;
pub mod wasm;

pub use actions::{ActionRecord, ActionStatus};
pub use budget::{Budget, WorkloadLimits};
pub use cairn_supervisor::LimitHits;
pub use cairn_supervisor::namespaces::{NetMode, Tenancy};
pub use model::host::{AppLimits, ContainerMode, DeployOptions, Host, HostConfig, IN_ROOT_SOCKET};
pub use model::report::{
    AppReport, ContainerReport, RelationReport, ServiceReport, StatusReport, UnitReport,
};
pub use model::unit::{HistoryEntry, Resolve, UnitRecord};
pub use types::{ConfigValue, Event, Outcome, WorkloadStatus};
pub use wasm::{
    ActionReport, Charm, ContainerBackend, Dispatched, Failure, Interrupt, LazyFacts, PebbleClient,
    Runtime, RuntimeConfig, UnitContext, UnitFacts,
};

/// An error from a layer below that is not a `std::error::Error` itself (wasmtime's).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors at the runtime's boundary.
///
/// A variant with a source does not repeat it in its message: print the chain (`{:#}`
/// through anyhow) to see the whole "cannot X: reason".
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The engine (or a blocking task of the runtime) could not be started.
    #[error("cannot start wasm engine")]
    Engine(#[source] BoxError),
    /// A component failed to compile or link.
    #[error("cannot load charm")]
    Compile(#[source] BoxError),
    /// The compiled-component cache could not be written.
    #[error("cannot use component cache: cannot {action} {}", path.display())]
    Cache {
        /// What was done: `create`, `write`.
        action: &'static str,
        /// The cache directory or entry.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// A file or directory of the state directory could not be read or written.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// What was done: `read`, `write`, `create`, `serve the API on`.
        action: &'static str,
        /// The file, directory or socket.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// A record of the state directory could not be parsed or encoded.
    #[error("cannot {action} {}", path.display())]
    Record {
        /// `parse` or `encode`.
        action: &'static str,
        /// The record's file.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: serde_json::Error,
    },
    /// A unit's container could not be opened or set up.
    #[error("cannot {what}")]
    Container {
        /// What was attempted, such as `open container "web" of web/0`.
        what: String,
        /// Why it failed.
        #[source]
        source: BoxError,
    },
    /// Charm metadata or files are wrong.
    #[error("{0}")]
    Charm(String),
    /// A config setting or name is wrong.
    #[error("{0}")]
    Config(String),
    /// An app or unit does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The state directory could not be read or written (the cause is in the message).
    #[error("{0}")]
    State(String),
}

impl RuntimeError {
    /// A state-directory I/O failure.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        RuntimeError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// A component-cache I/O failure.
    pub(crate) fn cache(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        RuntimeError::Cache {
            action,
            path: path.into(),
            source,
        }
    }
}

/// Now, RFC 3339 UTC.
pub(crate) fn now() -> String {
    cairn_supervisor::timefmt::rfc3339(time::OffsetDateTime::now_utc())
}
