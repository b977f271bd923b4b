//! The wasm side: the engine, the component cache, per-event dispatch under limits, and
//! the host side of the `cairn:charm` world.
//!
//! The model (`crate::model`) reaches it through one seam: [`Runtime::load`] turns a
//! component into a [`Charm`], and [`Runtime::dispatch`] delivers one event to a fresh
//! instance with a [`UnitContext`] the model lends it, returning what the handler did
//! ([`Dispatched`]). Nothing here knows apps, queues or records.

mod backend;
mod bindings;
pub mod custom;
mod engine;
mod limits;
#[cfg(test)]
mod tests;

pub use backend::{ContainerBackend, PebbleClient};
pub use bindings::{ActionReport, LazyFacts, UnitContext, UnitFacts};
pub use custom::{Command, ContainerApi, ContainerError, ExecOutput, NoticeQuery};
pub use engine::{Charm, Dispatched, Failure, Interrupt, Runtime, RuntimeConfig};
