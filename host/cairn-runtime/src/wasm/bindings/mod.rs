//! The charm world's host side: the generated bindings and the imports a guest may call.
//!
//! Everything a guest can reach goes through [`StoreState`]: its own unit's identity,
//! config, status and stored state (changes stay in the store until the handler returns,
//! and the caller commits them only on success), and only its own containers.
//!
//! One module per WIT interface, as wasmtime-wasi lays out its hosts: `unit` (identity,
//! config, status, stored state, action results, log), `container` (the `container`
//! resource: layers, plan, services, checks, notices, files, exec) and `process` (the
//! `process` resource and its output streams); `convert` holds the conversions between
//! WIT records and the host's own types. Every host call that waits goes through
//! `StoreState::block_on`, which the event's deadline bounds.

mod container;
mod convert;
mod process;
mod unit;

use std::collections::BTreeMap;

use cairn_supervisor::Supervisor;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::limits::GuestLimiter;
use crate::types::{ConfigValue, LogLine, WorkloadStatus};

pub use container::ContainerRes;
pub(crate) use convert::{from_wit_outcome, to_wit_event};
pub use process::ProcessRes;

mod generated {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "cairn:charm/charm",
        with: {
            "cairn:charm/pebble.container": super::ContainerRes,
            "cairn:charm/pebble.process": super::ProcessRes,
        },
    });
}

pub(crate) use generated::Charm as Charm_;
pub(crate) use generated::CharmPre;
use generated::cairn::charm::{pebble, types as wit};

/// What the host lends one event: the unit's view of itself and its containers.
#[derive(Clone)]
pub struct UnitContext {
    /// `app/N`.
    pub unit_name: String,
    /// The application.
    pub app_name: String,
    /// The model.
    pub model_name: String,
    /// The unit's containers by name (declared in charmcraft.yaml).
    pub containers: BTreeMap<String, Supervisor>,
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
    /// Runtime used to wait on supervisor changes from host calls.
    pub handle: Option<tokio::runtime::Handle>,
    /// What the running action reported, when the event is an action.
    pub action: Option<ActionReport>,
    /// The app's budget the event runs under.
    pub budget: crate::Budget,
    /// Where the app's limit hits are counted.
    pub hits: std::sync::Arc<cairn_supervisor::LimitHits>,
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
    /// then, so a guest blocked in the host cannot outlive its deadline.
    pub(crate) deadline: std::time::Instant,
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

impl StoreState {
    /// Runs `fut` on the host's runtime until it ends or the event's deadline passes.
    fn block_on<T>(
        &self,
        what: &str,
        fut: impl std::future::Future<Output = Result<T, pebble::Error>>,
    ) -> Result<T, pebble::Error> {
        let handle = self
            .ctx
            .handle
            .clone()
            .ok_or_else(|| pebble::Error::Connection(format!("cannot {what}: no runtime")))?;
        let deadline = tokio::time::Instant::from_std(self.deadline);
        // The deadline's timer is a task of the runtime rather than a timer polled here: a
        // timer polled after the runtime began shutting down panics, while a task is then
        // cancelled, which ends the call with an error.
        let timer = handle.spawn(tokio::time::sleep_until(deadline));
        let stop_timer = timer.abort_handle();
        let out = handle.block_on(async {
            tokio::select! {
                r = fut => r,
                t = timer => Err(match t {
                    Ok(()) => pebble::Error::Timeout(format!(
                        "cannot {what}: the event's deadline passed"
                    )),
                    Err(_) => pebble::Error::Connection(format!(
                        "cannot {what}: the host is shutting down"
                    )),
                }),
            }
        });
        stop_timer.abort();
        out
    }
}
