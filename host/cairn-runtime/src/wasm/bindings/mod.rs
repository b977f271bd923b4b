//! The charm world's host side: the generated bindings and the imports a guest may call.
//!
//! Everything a guest can reach goes through [`StoreState`]: its own unit's identity,
//! config, status and stored state (changes stay in the store until the handler returns,
//! and the caller commits them only on success), and only its own containers.
//!
//! Both released contracts are served from one implementation: `v01` is the
//! `cairn:charm@0.1.0` world (`wit/deps/charm-0.1`), `v02` the `0.2.0` world, whose `unit`
//! and `pebble` imports are 0.1's own interfaces (so its bindings reuse `v01`'s, `with`),
//! plus `relation` and its own event type. One linker serves both; a component is
//! prepared as whichever world's `handler` it exports.
//!
//! One module per WIT interface, as wasmtime-wasi lays out its hosts: `unit` (identity,
//! config, status, stored state, action results, log), `container` (the `container`
//! resource: layers, plan, services, checks, notices, files, exec) and `process` (the
//! `process` resource and its output streams); `convert` holds the conversions between
//! WIT records and the host's own types. The calls that wait (services changes, a
//! command's I/O) and those that do file I/O are async: they await on the event's own
//! task, bounded by the event's deadline (`until_deadline`); file I/O runs on a blocking
//! thread for the length of that one call (`blocking`). A container is served by its
//! [`ContainerBackend`]: the embedded supervisor, or the Pebble API client (`remote`
//! holds that side's conversions), every call matching on it. Dropping the event's future (its
//! deadline, or the unit's removal) ends them with the guest.

mod container;
mod convert;
mod process;
mod relation;
mod remote;
mod unit;

use std::collections::BTreeMap;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::backend::ContainerBackend;
use super::limits::GuestLimiter;
use crate::types::{ConfigValue, LogLine, WorkloadStatus};

pub use container::ContainerRes;
pub(crate) use convert::{from_wit_outcome, to_wit_event, to_wit_event_v02, to_wit_outcome};
pub use process::ProcessRes;
pub use unit::{LazyFacts, UnitFacts};

/// The `cairn:charm@0.1.0` world (frozen, `wit/deps/charm-0.1`).
pub(crate) mod v01 {
    wasmtime::component::bindgen!({
        path: "../../wit/deps/charm-0.1",
        world: "cairn:charm/charm@0.1.0",
        // Only what waits is async (a container call may wait on the Pebble API client):
        // the rest stays plain calls on the guest's fiber.
        imports: {
            "cairn:charm/pebble.[method]container.can-connect": async,
            "cairn:charm/pebble.[method]container.get-plan": async,
            "cairn:charm/pebble.[method]container.get-plan-yaml": async,
            "cairn:charm/pebble.[method]container.send-signal": async,
            "cairn:charm/pebble.[method]container.get-services": async,
            "cairn:charm/pebble.[method]container.get-checks": async,
            "cairn:charm/pebble.[method]container.start-checks": async,
            "cairn:charm/pebble.[method]container.stop-checks": async,
            "cairn:charm/pebble.[method]container.get-notices": async,
            "cairn:charm/pebble.[method]container.get-notice": async,
            "cairn:charm/pebble.[method]container.exec": async,
            "cairn:charm/pebble.[method]container.add-layer": async,
            "cairn:charm/pebble.[method]container.replan": async,
            "cairn:charm/pebble.[method]container.autostart": async,
            "cairn:charm/pebble.[method]container.start": async,
            "cairn:charm/pebble.[method]container.stop": async,
            "cairn:charm/pebble.[method]container.restart": async,
            "cairn:charm/pebble.[method]container.push": async,
            "cairn:charm/pebble.[method]container.pull": async,
            "cairn:charm/pebble.[method]container.list-files": async,
            "cairn:charm/pebble.[method]container.make-dir": async,
            "cairn:charm/pebble.[method]container.remove-path": async,
            "cairn:charm/pebble.[method]container.exists": async,
            "cairn:charm/pebble.[method]container.is-dir": async,
            "cairn:charm/pebble.[method]process.write-stdin": async,
            "cairn:charm/pebble.[method]process.close-stdin": async,
            "cairn:charm/pebble.[method]process.send-signal": async,
            "cairn:charm/pebble.[method]process.read-stdout": async,
            "cairn:charm/pebble.[method]process.read-stderr": async,
            "cairn:charm/pebble.[method]process.wait": async,
            "cairn:charm/pebble.[method]process.wait-output": async,
            // What a `UnitFacts` source answers (Juju's hook tools) can fail: the event
            // fails then, as an ops charm's uncaught `ModelError` does.
            "cairn:charm/unit.config": trappable,
            "cairn:charm/unit.config-get": trappable,
            "cairn:charm/unit.unit-status": trappable,
            "cairn:charm/unit.app-status": trappable,
            "cairn:charm/unit.set-app-status": trappable,
            "cairn:charm/unit.is-leader": trappable,
        },
        exports: { default: async },
        with: {
            "cairn:charm/pebble.container": super::ContainerRes,
            "cairn:charm/pebble.process": super::ProcessRes,
        },
    });
}

/// The `cairn:charm@0.2.0` world (`wit/charm.wit`): 0.1's `unit` and `pebble` as they are,
/// plus `relation` and relation events.
pub(crate) mod v02 {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "cairn:charm/charm@0.2.0",
        imports: {
            // Relations may come from a facts source (leadership, for the app bag) that can
            // fail: the event fails then.
            "cairn:charm/relation.relations": trappable,
            "cairn:charm/relation.get": trappable,
            "cairn:charm/relation.set": trappable,
        },
        exports: { default: async },
        with: {
            "cairn:charm/types@0.1.0": super::v01::cairn::charm::types,
            "cairn:charm/unit@0.1.0": super::v01::cairn::charm::unit,
            "cairn:charm/pebble@0.1.0": super::v01::cairn::charm::pebble,
        },
    });
}

use v01::cairn::charm::{pebble, types as wit};

/// What the host lends one event: the unit's view of itself and its containers.
#[derive(Clone)]
pub struct UnitContext {
    /// `app/N`.
    pub unit_name: String,
    /// The application.
    pub app_name: String,
    /// The model.
    pub model_name: String,
    /// The unit's containers by name (declared in charmcraft.yaml), each with what serves
    /// it: the embedded supervisor or a Pebble API socket.
    pub containers: BTreeMap<String, ContainerBackend>,
    /// Effective config (defaults plus settings).
    pub config: BTreeMap<String, ConfigValue>,
    /// Workload status.
    pub unit_status: WorkloadStatus,
    /// Application status.
    pub app_status: WorkloadStatus,
    /// Leadership.
    pub leader: bool,
    /// Stored state.
    pub stored: BTreeMap<String, Vec<u8>>,
    /// The unit's relations and their bags (the model fills them; the handler's writes
    /// land here and are listed in `relations.written`).
    pub relations: crate::types::Relations,
    /// What the running action reported, when the event is an action.
    pub action: Option<ActionReport>,
    /// The app's budget the event runs under.
    pub budget: crate::Budget,
    /// Where the app's limit hits are counted.
    pub hits: std::sync::Arc<cairn_supervisor::LimitHits>,
    /// Where config, leadership and statuses come from when the host does not hold them
    /// (Juju's hook tools): `None` means the fields above are authoritative.
    pub facts: Option<LazyFacts>,
}

impl UnitContext {
    /// A unit that knows only its names: no containers, config, status, leadership,
    /// stored state or relations, under the default budget (what a check, a test or an
    /// embedder starts from, overriding what it needs).
    pub fn new(unit_name: &str, app_name: &str, model_name: &str) -> Self {
        UnitContext {
            unit_name: unit_name.into(),
            app_name: app_name.into(),
            model_name: model_name.into(),
            containers: BTreeMap::new(),
            config: BTreeMap::new(),
            unit_status: WorkloadStatus::Unknown,
            app_status: WorkloadStatus::Unknown,
            leader: false,
            stored: BTreeMap::new(),
            relations: Default::default(),
            action: None,
            budget: Default::default(),
            hits: Default::default(),
            facts: None,
        }
    }
}

/// What a charm reports about the action it handles.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ActionReport {
    /// Results set with `action-set-results`.
    pub results: BTreeMap<String, String>,
    /// Messages of `action-log`, with their times.
    pub log: Vec<(String, String)>,
    /// The message of `action-fail`.
    pub failed: Option<String>,
}

/// Per-event store data.
pub struct StoreState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    /// What the store may allocate, and whether the guest hit the memory limit.
    pub(crate) limiter: GuestLimiter,
    pub(crate) ctx: UnitContext,
    pub(crate) logs: Vec<LogLine>,
    /// When the event's deadline passes: host calls that wait (changes, exec output) give up
    /// then with a `timeout` error naming the call (the event's future ends then too).
    pub(crate) deadline: tokio::time::Instant,
    /// The most output `wait-output` collects for the guest (its memory limit: more could
    /// never reach it, and the host would hold it for nothing).
    pub(crate) output_limit: usize,
    /// What the event has spent of its budget (log, status, stored state).
    pub(crate) spend: crate::budget::EventSpend,
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Awaits `fut` until it ends or the event's `deadline` passes (then a `timeout` error
/// naming the call).
async fn until_deadline<T>(
    deadline: tokio::time::Instant,
    what: &str,
    fut: impl std::future::Future<Output = Result<T, pebble::Error>>,
) -> Result<T, pebble::Error> {
    match tokio::time::timeout_at(deadline, fut).await {
        Ok(r) => r,
        Err(_) => Err(pebble::Error::Timeout(format!(
            "cannot {what}: the event's deadline passed"
        ))),
    }
}

/// Runs blocking work (file I/O, a durable state write) on a blocking thread, awaited until
/// the event's `deadline`: the guest's worker thread is not held meanwhile. The tenant pays
/// for it from its CPU `share` (its container's): it waits while the share is in debt, and
/// the thread's CPU is charged.
async fn blocking<T: Send + 'static>(
    share: Option<std::sync::Arc<cairn_supervisor::CpuShare>>,
    deadline: tokio::time::Instant,
    what: &str,
    work: impl FnOnce() -> Result<T, pebble::Error> + Send + 'static,
) -> Result<T, pebble::Error> {
    until_deadline(deadline, what, async move {
        if let Some(share) = &share {
            share.wait().await;
        }
        cairn_supervisor::share::spawn_blocking_charged(share, work)
            .await
            .map_err(|e| pebble::Error::Connection(format!("cannot {what}: {e}")))?
    })
    .await
}
