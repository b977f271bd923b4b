//! Pebble's HTTP API for one container, and a typed client for it.
//!
//! The only crate that knows HTTP shapes. [`server`] serves a container's
//! [`cairn_supervisor::Supervisor`] on a unix socket (mode 0666, `SO_PEERCRED` decides
//! admin or read access, as Pebble does) and optionally on TCP for the open endpoints; its
//! route table binds each path and method to a handler, one module per area.
//! [`envelope`] is Pebble's response envelope with its status texts and error kinds;
//! [`client`] is the typed client the CLI uses; [`types`] are the JSON shapes both share,
//! rendered from the supervisor's domain types; [`error`] maps supervisor errors to
//! Pebble's codes and kinds, for the server and the wasm bindings alike. Clients written
//! for Pebble (the Python `ops.pebble.Client`, `pebble` itself, Kubernetes probes) work
//! unchanged.

#![forbid(unsafe_code)]

pub mod client;
pub mod envelope;
pub mod error;
pub mod server;
pub mod sockpath;
pub mod types;

pub use client::{Client, ClientError, ExecOptions, ExecOutput, ExecProcess, LogLine, SystemInfo};
pub use envelope::{Envelope, Reply};
pub use error::ApiError;
pub use server::{ApiServer, Limits, ServerHandle, serve, serve_with};

#[cfg(test)]
mod testutil;
