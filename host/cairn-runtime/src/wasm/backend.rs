//! Where a unit's container is served: the seam between the WIT `container` and `process`
//! resources and what answers them.
//!
//! A container is either **embedded** (a [`Supervisor`] in this process: a unit of
//! `cairn run`) or reached as a **Pebble API client** over a unix socket (a workload
//! container of a Juju unit, whose real Pebble's socket Juju mounts at
//! `/charm/containers/<name>/pebble.socket`, or `cairn pebble run`). The choice is made per
//! container in the [`UnitContext`](super::UnitContext) lent to an event; the bindings
//! match on it at each call. It is an enum rather than a trait object: the embedded path
//! stays a direct call on the supervisor, with no allocation or dynamic dispatch added.
//! The third kind, [`ContainerBackend::Custom`], is the embedder's own code behind the
//! [`ContainerApi`] trait (a declared state in `cairn-testing`).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use cairn_supervisor::Supervisor;

use super::custom::ContainerApi;

/// What serves one container's WIT calls.
#[derive(Clone)]
pub enum ContainerBackend {
    /// The supervisor embedded in this process (`cairn run`'s units).
    Embedded(Supervisor),
    /// A Pebble API server on a unix socket (real Pebble, or `cairn pebble run`).
    Pebble(PebbleClient),
    /// The embedder's own implementation, answering in-process.
    Custom(Arc<dyn ContainerApi>),
}

impl ContainerBackend {
    /// A container reached through the Pebble API on `socket` (connects lazily, at the
    /// first call; one kept-alive connection, shared by the clones of this value).
    pub fn pebble_socket(socket: impl AsRef<Path>) -> Self {
        ContainerBackend::Pebble(PebbleClient::new(socket))
    }

    /// The embedded supervisor, when the container has one.
    pub fn supervisor(&self) -> Option<&Supervisor> {
        match self {
            ContainerBackend::Embedded(s) => Some(s),
            ContainerBackend::Pebble(_) | ContainerBackend::Custom(_) => None,
        }
    }
}

impl From<Supervisor> for ContainerBackend {
    fn from(s: Supervisor) -> Self {
        ContainerBackend::Embedded(s)
    }
}

impl std::fmt::Debug for ContainerBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ContainerBackend::Embedded(s) => write!(f, "Embedded({})", s.dir().display()),
            ContainerBackend::Pebble(c) => write!(f, "Pebble({})", c.socket().display()),
            ContainerBackend::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

/// A Pebble API client for one container, with the host's own count of the commands it
/// runs there (the budget of concurrent execs is the host's to keep when the server is
/// not Cairn's).
#[derive(Clone)]
pub struct PebbleClient {
    inner: Arc<Inner>,
}

struct Inner {
    client: cairn_api::Client,
    execs: AtomicUsize,
}

impl PebbleClient {
    /// A client of the API on `socket`.
    pub fn new(socket: impl AsRef<Path>) -> Self {
        PebbleClient {
            inner: Arc::new(Inner {
                client: cairn_api::Client::unix(socket),
                execs: AtomicUsize::new(0),
            }),
        }
    }

    /// The socket it talks to.
    pub fn socket(&self) -> &Path {
        self.inner.client.socket()
    }

    /// The API client.
    pub(crate) fn api(&self) -> &cairn_api::Client {
        &self.inner.client
    }

    /// Takes one of `budget` exec slots; `Err(running)` when they are all taken.
    pub(crate) fn take_exec_slot(&self, budget: u64) -> Result<ExecSlot, usize> {
        let budget = usize::try_from(budget).unwrap_or(usize::MAX);
        self.inner
            .execs
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < budget).then_some(n + 1)
            })
            .map(|_| ExecSlot {
                client: self.clone(),
            })
    }
}

/// One running command's place in the container's exec budget, given back on drop.
pub(crate) struct ExecSlot {
    client: PebbleClient,
}

impl Drop for ExecSlot {
    fn drop(&mut self) {
        self.client.inner.execs.fetch_sub(1, Ordering::AcqRel);
    }
}
