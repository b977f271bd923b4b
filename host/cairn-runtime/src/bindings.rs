//! The charm world's host side: the generated bindings and the imports a guest may call.
//!
//! Everything a guest can reach goes through [`StoreState`]: its own unit's identity,
//! config, status and stored state (changes stay in the store until the handler returns,
//! and the caller commits them only on success), and only its own containers.

use std::collections::BTreeMap;

use cairn_supervisor::{Supervisor, SupervisorError};
use wasmtime::StoreLimits;
use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::types::{self, ConfigValue, Event, LogLevel, LogLine, Outcome, Status};

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
pub use generated::CharmPre;
use generated::cairn::charm::{pebble, types as wit, unit};

/// A container handle held by a guest: just the name, checked against the unit's containers.
pub struct ContainerRes {
    name: String,
}

/// A command started by a guest: its I/O channels and change.
pub struct ProcessRes {
    sup: Supervisor,
    change: String,
    stdin: Option<tokio::sync::mpsc::Sender<cairn_supervisor::exec::Stdin>>,
    stdout: OutputStream,
    stderr: OutputStream,
    control: Option<tokio::sync::mpsc::Sender<cairn_supervisor::exec::Control>>,
}

impl Drop for ProcessRes {
    /// A command the guest did not wait for dies with its event, as Pebble kills one whose
    /// client went away (its control websocket closed abnormally when the hook ended).
    fn drop(&mut self) {
        if let Some(c) = &self.control {
            let _ = c.try_send(cairn_supervisor::exec::Control::Kill);
        }
    }
}

/// One output stream of a command as the guest reads it: the channel from the supervisor
/// and what was received but not yet handed over.
#[derive(Default)]
struct OutputStream {
    rx: Option<tokio::sync::mpsc::Receiver<bytes::Bytes>>,
    pending: bytes::Bytes,
}

impl OutputStream {
    /// Up to `max` bytes, waiting for some; `None` at the end of the stream.
    async fn read(&mut self, max: usize) -> Option<bytes::Bytes> {
        while self.pending.is_empty() {
            self.pending = self.rx.as_mut()?.recv().await?;
        }
        let n = self.pending.len().min(max.max(1));
        Some(self.pending.split_to(n))
    }

    /// Everything left, to the end of the stream, keeping at most `limit` bytes (the rest
    /// is read and dropped, so the command is never blocked on a full pipe); `None` when
    /// the output went past the limit.
    async fn read_to_end(&mut self, limit: usize) -> Option<Vec<u8>> {
        let mut buf = std::mem::take(&mut self.pending).to_vec();
        let mut over = buf.len() > limit;
        if let Some(rx) = self.rx.as_mut() {
            while let Some(b) = rx.recv().await {
                if !over && buf.len() + b.len() <= limit {
                    buf.extend_from_slice(&b);
                } else if !over {
                    over = true;
                    buf = Vec::new();
                }
            }
        }
        (!over).then_some(buf)
    }
}

/// The most one `read-stdout`/`read-stderr` hands over, whatever the guest asks for.
const MAX_READ: usize = 1 << 20;

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
    pub unit_status: Status,
    /// Application status.
    pub app_status: Status,
    /// Leadership.
    pub leader: bool,
    /// Stored state.
    pub stored: BTreeMap<String, Vec<u8>>,
    /// Runtime used to wait on supervisor changes from host calls.
    pub handle: Option<tokio::runtime::Handle>,
    /// What the running action reported, when the event is an action.
    pub action: Option<ActionReport>,
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
    pub(crate) limits: StoreLimits,
    pub(crate) ctx: UnitContext,
    pub(crate) logs: Vec<LogLine>,
    /// When the event's deadline passes: host calls that wait (changes, exec output) give up
    /// then, so a guest blocked in the host cannot outlive its deadline.
    pub(crate) deadline: std::time::Instant,
    /// The most output `wait-output` collects for the guest (its memory limit: more could
    /// never reach it, and the host would hold it for nothing).
    pub(crate) output_limit: usize,
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

pub(crate) fn to_wit_event(e: &Event) -> wit::Event {
    match e {
        Event::Install => wit::Event::Install,
        Event::Start => wit::Event::Start,
        Event::Stop => wit::Event::Stop,
        Event::Remove => wit::Event::Remove,
        Event::ConfigChanged => wit::Event::ConfigChanged,
        Event::UpgradeCharm => wit::Event::UpgradeCharm,
        Event::UpdateStatus => wit::Event::UpdateStatus,
        Event::LeaderElected => wit::Event::LeaderElected,
        Event::PebbleReady { container } => wit::Event::PebbleReady(container.clone()),
        Event::PebbleCheckFailed { container, info } => {
            wit::Event::PebbleCheckFailed(wit::CheckEvent {
                container: container.clone(),
                info: check_info(info),
            })
        }
        Event::PebbleCheckRecovered { container, info } => {
            wit::Event::PebbleCheckRecovered(wit::CheckEvent {
                container: container.clone(),
                info: check_info(info),
            })
        }
        Event::PebbleCustomNotice { container, notice } => {
            wit::Event::PebbleCustomNotice(wit::NoticeEvent {
                container: container.clone(),
                notice: wit_notice(notice),
            })
        }
        Event::Action {
            id,
            name,
            params_json,
        } => wit::Event::Action(wit::ActionEvent {
            id: id.clone(),
            name: name.clone(),
            params_json: params_json.clone(),
        }),
    }
}

fn wit_notice(notice: &types::Notice) -> wit::Notice {
    wit::Notice {
        id: notice.id.clone(),
        user_id: notice.user_id,
        type_: notice.r#type.clone(),
        key: notice.key.clone(),
        first_occurred: notice.first_occurred.clone(),
        last_occurred: notice.last_occurred.clone(),
        last_repeated: notice.last_repeated.clone(),
        occurrences: notice.occurrences,
        last_data: notice.last_data.clone().into_iter().collect(),
        repeat_after_ms: notice.repeat_after_ms,
        expire_after_ms: notice.expire_after_ms,
    }
}

fn check_info(i: &types::CheckInfo) -> wit::CheckInfo {
    wit::CheckInfo {
        name: i.name.clone(),
        level: match i.level.as_str() {
            "alive" => wit::CheckLevel::Alive,
            "ready" => wit::CheckLevel::Ready,
            _ => wit::CheckLevel::Unset,
        },
        status: match i.status.as_str() {
            "up" => wit::CheckStatus::Up,
            "down" => wit::CheckStatus::Down,
            _ => wit::CheckStatus::Inactive,
        },
        successes: i.successes,
        failures: i.failures,
        threshold: i.threshold,
        change_id: i.change_id.clone(),
    }
}

pub(crate) fn from_wit_outcome(o: wit::Outcome) -> Outcome {
    match o {
        wit::Outcome::Handled => Outcome::Handled,
        wit::Outcome::Deferred => Outcome::Deferred,
    }
}

fn to_wit_status(s: &Status) -> wit::Status {
    match s {
        Status::Unknown => wit::Status::Unknown,
        Status::Active(m) => wit::Status::Active(m.clone()),
        Status::Blocked(m) => wit::Status::Blocked(m.clone()),
        Status::Maintenance(m) => wit::Status::Maintenance(m.clone()),
        Status::Waiting(m) => wit::Status::Waiting(m.clone()),
        Status::Error(m) => wit::Status::Blocked(m.clone()),
    }
}

fn from_wit_status(s: wit::Status) -> Status {
    match s {
        wit::Status::Unknown => Status::Unknown,
        wit::Status::Active(m) => Status::Active(m),
        wit::Status::Blocked(m) => Status::Blocked(m),
        wit::Status::Maintenance(m) => Status::Maintenance(m),
        wit::Status::Waiting(m) => Status::Waiting(m),
    }
}

fn to_wit_config(v: &ConfigValue) -> wit::ConfigValue {
    match v {
        ConfigValue::Bool(b) => wit::ConfigValue::Boolean(*b),
        ConfigValue::Int(i) => wit::ConfigValue::Int(*i),
        ConfigValue::Float(f) => wit::ConfigValue::Float(*f),
        ConfigValue::String(s) => wit::ConfigValue::String(s.clone()),
    }
}

impl wit::Host for StoreState {}

impl unit::Host for StoreState {
    fn unit_name(&mut self) -> String {
        self.ctx.unit_name.clone()
    }

    fn app_name(&mut self) -> String {
        self.ctx.app_name.clone()
    }

    fn model_name(&mut self) -> String {
        self.ctx.model_name.clone()
    }

    fn containers(&mut self) -> Vec<String> {
        self.ctx.containers.keys().cloned().collect()
    }

    fn config(&mut self) -> Vec<(String, wit::ConfigValue)> {
        self.ctx
            .config
            .iter()
            .map(|(k, v)| (k.clone(), to_wit_config(v)))
            .collect()
    }

    fn config_get(&mut self, key: String) -> Option<wit::ConfigValue> {
        self.ctx.config.get(&key).map(to_wit_config)
    }

    fn unit_status(&mut self) -> wit::Status {
        to_wit_status(&self.ctx.unit_status)
    }

    fn set_unit_status(&mut self, status: wit::Status) {
        self.ctx.unit_status = from_wit_status(status);
    }

    fn app_status(&mut self) -> wit::Status {
        to_wit_status(&self.ctx.app_status)
    }

    fn set_app_status(&mut self, status: wit::Status) -> Result<(), String> {
        if !self.ctx.leader {
            return Err("cannot set application status: unit is not the leader".into());
        }
        self.ctx.app_status = from_wit_status(status);
        Ok(())
    }

    fn is_leader(&mut self) -> bool {
        self.ctx.leader
    }

    fn state_get(&mut self, key: String) -> Option<Vec<u8>> {
        self.ctx.stored.get(&key).cloned()
    }

    fn state_set(&mut self, key: String, value: Vec<u8>) {
        self.ctx.stored.insert(key, value);
    }

    fn state_delete(&mut self, key: String) {
        self.ctx.stored.remove(&key);
    }

    fn state_keys(&mut self) -> Vec<String> {
        self.ctx.stored.keys().cloned().collect()
    }

    fn action_set_results(&mut self, results: Vec<(String, String)>) -> Result<(), String> {
        let a = self.ctx.action.as_mut().ok_or("not running an action")?;
        a.results.extend(results);
        Ok(())
    }

    fn action_log(&mut self, message: String) -> Result<(), String> {
        let a = self.ctx.action.as_mut().ok_or("not running an action")?;
        a.log.push((crate::now(), message));
        Ok(())
    }

    fn action_fail(&mut self, message: String) -> Result<(), String> {
        let a = self.ctx.action.as_mut().ok_or("not running an action")?;
        a.failed = Some(message);
        Ok(())
    }

    fn log(&mut self, level: wit::LogLevel, message: String) {
        let level = match level {
            wit::LogLevel::Trace => LogLevel::Trace,
            wit::LogLevel::Debug => LogLevel::Debug,
            wit::LogLevel::Info => LogLevel::Info,
            wit::LogLevel::Warning => LogLevel::Warning,
            wit::LogLevel::Error => LogLevel::Error,
        };
        self.logs.push(LogLine {
            time: crate::now(),
            level,
            message: format!("{}: {message}", self.ctx.unit_name),
        });
    }
}

fn path_error(e: cairn_supervisor::files::FileError) -> pebble::Error {
    pebble::Error::Path(pebble::PathError {
        kind: e.kind,
        message: e.message,
    })
}

fn ownership(o: &pebble::FileOptions) -> cairn_supervisor::files::Ownership {
    cairn_supervisor::files::Ownership {
        permissions: o
            .permissions
            .map(|p| format!("{p:03o}"))
            .unwrap_or_default(),
        user_id: o.user_id,
        user: o.user.clone().unwrap_or_default(),
        group_id: o.group_id,
        group: o.group.clone().unwrap_or_default(),
    }
}

fn api_error(e: SupervisorError) -> pebble::Error {
    let (code, status, kind) = match &e {
        SupervisorError::Timeout(m) => return pebble::Error::Timeout(m.clone()),
        SupervisorError::NotFound(_) => (404, "Not Found", ""),
        SupervisorError::NoDefaultServices => (400, "Bad Request", "no-default-services"),
        SupervisorError::Io { .. } | SupervisorError::Internal(_) => {
            (500, "Internal Server Error", "")
        }
        _ => (400, "Bad Request", ""),
    };
    pebble::Error::Api(pebble::ApiError {
        code,
        status: status.into(),
        kind: kind.into(),
        message: e.to_string(),
    })
}

fn pairs(m: &BTreeMap<String, String>) -> Vec<(String, String)> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

fn duration(d: Option<std::time::Duration>) -> Option<String> {
    d.map(cairn_plan::format_duration)
}

fn override_kind(o: cairn_plan::Override) -> pebble::OverrideKind {
    match o {
        cairn_plan::Override::Unknown => pebble::OverrideKind::Unset,
        cairn_plan::Override::Merge => pebble::OverrideKind::Merge,
        cairn_plan::Override::Replace => pebble::OverrideKind::Replace,
    }
}

fn startup(s: cairn_plan::ServiceStartup) -> Option<pebble::ServiceStartup> {
    match s {
        cairn_plan::ServiceStartup::Unknown => None,
        cairn_plan::ServiceStartup::Enabled => Some(pebble::ServiceStartup::Enabled),
        cairn_plan::ServiceStartup::Disabled => Some(pebble::ServiceStartup::Disabled),
    }
}

fn action(a: cairn_plan::ServiceAction) -> Option<pebble::ServiceAction> {
    use cairn_plan::ServiceAction as A;
    Some(match a {
        A::Unset => return None,
        A::Restart => pebble::ServiceAction::Restart,
        A::Shutdown => pebble::ServiceAction::Shutdown,
        A::FailureShutdown => pebble::ServiceAction::FailureShutdown,
        A::SuccessShutdown => pebble::ServiceAction::SuccessShutdown,
        A::Ignore => pebble::ServiceAction::Ignore,
    })
}

/// The combined plan as the WIT `plan` record.
fn typed_plan(plan: &cairn_plan::Plan) -> pebble::Plan {
    let services = plan
        .services
        .values()
        .map(|s| pebble::ServicePlan {
            name: s.name.clone(),
            summary: s.summary.clone(),
            description: s.description.clone(),
            startup: startup(s.startup),
            override_: override_kind(s.override_),
            command: s.command.clone(),
            after: s.after.clone(),
            before: s.before.clone(),
            requires: s.requires.clone(),
            environment: pairs(&s.environment),
            user: non_empty(&s.user),
            user_id: s.user_id,
            group: non_empty(&s.group),
            group_id: s.group_id,
            working_dir: non_empty(&s.working_dir),
            on_success: action(s.on_success),
            on_failure: action(s.on_failure),
            on_check_failure: s
                .on_check_failure
                .iter()
                .filter_map(|(k, a)| Some((k.clone(), action(*a)?)))
                .collect(),
            backoff_delay: duration(s.backoff_delay),
            backoff_factor: s.backoff_factor,
            backoff_limit: duration(s.backoff_limit),
            kill_delay: duration(s.kill_delay),
        })
        .collect();
    let checks = plan
        .checks
        .values()
        .map(|c| pebble::CheckPlan {
            name: c.name.clone(),
            override_: override_kind(c.override_),
            level: match c.level {
                cairn_plan::CheckLevel::Unset => wit::CheckLevel::Unset,
                cairn_plan::CheckLevel::Alive => wit::CheckLevel::Alive,
                cairn_plan::CheckLevel::Ready => wit::CheckLevel::Ready,
            },
            startup: match c.startup {
                cairn_plan::CheckStartup::Unknown => None,
                cairn_plan::CheckStartup::Enabled => Some(pebble::ServiceStartup::Enabled),
                cairn_plan::CheckStartup::Disabled => Some(pebble::ServiceStartup::Disabled),
            },
            period: duration(c.period),
            timeout: duration(c.timeout),
            threshold: c.threshold,
            http: c.http.as_ref().map(|h| pebble::HttpCheck {
                url: h.url.clone(),
                headers: pairs(&h.headers),
            }),
            tcp: c.tcp.as_ref().map(|t| pebble::TcpCheck {
                port: u16::try_from(t.port).ok().filter(|p| *p != 0),
                host: non_empty(&t.host),
            }),
            exec: c.exec.as_ref().map(|e| pebble::ExecCheck {
                command: e.command.clone(),
                service_context: non_empty(&e.service_context),
                environment: pairs(&e.environment),
                user: non_empty(&e.user),
                user_id: e.user_id,
                group: non_empty(&e.group),
                group_id: e.group_id,
                working_dir: non_empty(&e.working_dir),
            }),
        })
        .collect();
    let log_targets = plan
        .log_targets
        .values()
        .map(|t| pebble::LogTargetPlan {
            name: t.name.clone(),
            override_: override_kind(t.override_),
            type_: match t.type_ {
                cairn_plan::LogTargetType::Unset => None,
                cairn_plan::LogTargetType::Loki => Some(pebble::LogTargetType::Loki),
                cairn_plan::LogTargetType::OpenTelemetry => {
                    Some(pebble::LogTargetType::Opentelemetry)
                }
                cairn_plan::LogTargetType::Syslog => Some(pebble::LogTargetType::Syslog),
            },
            location: t.location.clone(),
            services: t.services.clone(),
            labels: pairs(&t.labels),
        })
        .collect();
    pebble::Plan {
        services,
        checks,
        log_targets,
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
        handle
            .block_on(async { tokio::time::timeout_at(deadline, fut).await })
            .unwrap_or_else(|_| {
                Err(pebble::Error::Timeout(format!(
                    "cannot {what}: the event's deadline passed"
                )))
            })
    }

    fn supervisor(&self, res: &Resource<ContainerRes>) -> Result<Supervisor, pebble::Error> {
        let name = &self
            .table
            .get(res)
            .map_err(|e| pebble::Error::Connection(e.to_string()))?
            .name;
        self.ctx.containers.get(name).cloned().ok_or_else(|| {
            pebble::Error::Connection(format!("cannot connect to container {name:?}"))
        })
    }

    /// Runs a services action and waits for its change, as ops' `*_services` calls do.
    fn run(
        &self,
        res: &Resource<ContainerRes>,
        action: &str,
        names: Vec<String>,
    ) -> Result<(), pebble::Error> {
        let sup = self.supervisor(res)?;
        let id = match sup.services_action(action, &names) {
            Ok(id) => id,
            // ops' autostart with nothing to start is not an error.
            Err(SupervisorError::NoDefaultServices) if action == "autostart" => return Ok(()),
            Err(e) => return Err(api_error(e)),
        };
        let info = self.block_on("wait for the change", async {
            sup.wait_change(&id, Some(std::time::Duration::from_secs(30)))
                .await
                .map_err(api_error)
        })?;
        match info.err {
            Some(err) => Err(pebble::Error::Change(pebble::ChangeError {
                change_id: id,
                err,
            })),
            None => Ok(()),
        }
    }
}

impl pebble::Host for StoreState {}

impl pebble::HostProcess for StoreState {
    fn write_stdin(
        &mut self,
        self_: Resource<ProcessRes>,
        data: Vec<u8>,
    ) -> Result<(), pebble::Error> {
        let tx = self.process(&self_)?.stdin.clone();
        let tx = tx.ok_or_else(|| pebble::Error::Connection("stdin is closed".into()))?;
        self.block_on("write to the command's stdin", async move {
            tx.send(cairn_supervisor::exec::Stdin::Data(data.into()))
                .await
                .map_err(|_| pebble::Error::Connection("the command's stdin is closed".into()))
        })
    }

    fn close_stdin(&mut self, self_: Resource<ProcessRes>) {
        if let Ok(p) = self.table.get_mut(&self_)
            && let Some(tx) = p.stdin.take()
        {
            let _ = self.block_on("close the command's stdin", async move {
                let _ = tx.send(cairn_supervisor::exec::Stdin::End).await;
                Ok(())
            });
        }
    }

    fn send_signal(
        &mut self,
        self_: Resource<ProcessRes>,
        signal: String,
    ) -> Result<(), pebble::Error> {
        let signal = if signal.starts_with("SIG") {
            signal
        } else {
            format!("SIG{signal}")
        };
        let tx = self.process(&self_)?.control.clone();
        let tx = tx.ok_or_else(|| pebble::Error::Connection("no control channel".into()))?;
        self.block_on("send a signal to the command", async move {
            tx.send(cairn_supervisor::exec::Control::Signal(signal))
                .await
                .map_err(|_| pebble::Error::Connection("the command has ended".into()))
        })
    }

    fn read_stdout(
        &mut self,
        self_: Resource<ProcessRes>,
        max: u32,
    ) -> Result<Option<Vec<u8>>, pebble::Error> {
        self.read_output(self_, max, false)
    }

    fn read_stderr(
        &mut self,
        self_: Resource<ProcessRes>,
        max: u32,
    ) -> Result<Option<Vec<u8>>, pebble::Error> {
        self.read_output(self_, max, true)
    }

    fn wait(&mut self, self_: Resource<ProcessRes>) -> Result<i32, pebble::Error> {
        self.finish(self_, false).map(|o| o.exit_code)
    }

    fn wait_output(
        &mut self,
        self_: Resource<ProcessRes>,
    ) -> Result<pebble::ExecOutput, pebble::Error> {
        self.finish(self_, true)
    }

    fn drop(&mut self, rep: Resource<ProcessRes>) -> wasmtime::Result<()> {
        // A process dropped without waiting is killed (`ProcessRes`'s Drop).
        self.table.delete(rep)?;
        Ok(())
    }
}

impl StoreState {
    fn process(&self, res: &Resource<ProcessRes>) -> Result<&ProcessRes, pebble::Error> {
        self.table
            .get(res)
            .map_err(|e| pebble::Error::Connection(e.to_string()))
    }

    /// One `read-stdout`/`read-stderr`: the stream is taken out of the table while the
    /// host waits on it, and put back afterwards.
    fn read_output(
        &mut self,
        res: Resource<ProcessRes>,
        max: u32,
        stderr: bool,
    ) -> Result<Option<Vec<u8>>, pebble::Error> {
        let p = self
            .table
            .get_mut(&res)
            .map_err(|e| pebble::Error::Connection(e.to_string()))?;
        let slot = if stderr { &mut p.stderr } else { &mut p.stdout };
        let mut stream = std::mem::take(slot);
        let max = (max as usize).min(MAX_READ);
        let what = if stderr { "read stderr" } else { "read stdout" };
        let got = self.block_on(what, async { Ok(stream.read(max).await) });
        if let Ok(p) = self.table.get_mut(&res) {
            *(if stderr { &mut p.stderr } else { &mut p.stdout }) = stream;
        }
        got.map(|b| b.map(|b| b.to_vec()))
    }

    /// Closes stdin, drains the output (kept when `keep`), waits for the change and returns
    /// the exit code and output; a change error (such as a timeout) is the error.
    fn finish(
        &mut self,
        res: Resource<ProcessRes>,
        keep: bool,
    ) -> Result<pebble::ExecOutput, pebble::Error> {
        let p = self
            .table
            .get_mut(&res)
            .map_err(|e| pebble::Error::Connection(e.to_string()))?;
        let stdin = p.stdin.take();
        let mut out = std::mem::take(&mut p.stdout);
        let mut err = std::mem::take(&mut p.stderr);
        let (sup, change) = (p.sup.clone(), p.change.clone());
        // What is not kept is still drained, so the command can run to its end.
        let limit = if keep { self.output_limit } else { 0 };
        self.block_on("wait for the command", async move {
            if let Some(tx) = stdin {
                let _ = tx.send(cairn_supervisor::exec::Stdin::End).await;
            }
            let (stdout, stderr) = tokio::join!(out.read_to_end(limit), err.read_to_end(limit));
            let info = sup.wait_change(&change, None).await.map_err(api_error)?;
            let exit_code = info
                .tasks
                .first()
                .and_then(|t| t.data.get("exit-code"))
                .and_then(|v| v.as_i64())
                .unwrap_or(-1) as i32;
            if let Some(e) = info.err {
                return Err(pebble::Error::Change(pebble::ChangeError {
                    change_id: change,
                    err: e,
                }));
            }
            let (stdout, stderr) = match (keep, stdout, stderr) {
                (false, _, _) => (Vec::new(), Vec::new()),
                (true, Some(o), Some(e)) => (o, e),
                _ => {
                    return Err(pebble::Error::Api(pebble::ApiError {
                        code: 413,
                        status: "Request Entity Too Large".into(),
                        kind: String::new(),
                        message: format!(
                            "cannot wait for the command's output: it exceeds {} MiB, the unit's \
                             memory limit; read it with read-stdout",
                            limit >> 20
                        ),
                    }));
                }
            };
            Ok(pebble::ExecOutput {
                exit_code,
                stdout,
                stderr,
            })
        })
    }
}

impl pebble::HostContainer for StoreState {
    fn exec(
        &mut self,
        self_: Resource<ContainerRes>,
        command: Vec<String>,
        options: pebble::ExecOptions,
    ) -> Result<Resource<ProcessRes>, pebble::Error> {
        let sup = self.supervisor(&self_)?;
        let plan = sup.plan();
        let overrides = cairn_plan::ContextOptions {
            environment: options.environment.into_iter().collect(),
            user_id: options.user_id,
            user: options.user.unwrap_or_default(),
            group_id: options.group_id,
            group: options.group.unwrap_or_default(),
            working_dir: options.working_dir.unwrap_or_default(),
        };
        let merged = plan
            .merge_service_context(options.service_context.as_deref().unwrap_or(""), overrides)
            .map_err(|e| api_error(SupervisorError::BadRequest(e.to_string())))?;
        let ids = cairn_supervisor::users_normalize(
            merged.user_id,
            merged.group_id,
            &merged.user,
            &merged.group,
        )
        .map_err(|e| api_error(SupervisorError::BadRequest(e)))?;
        let started = sup
            .exec(cairn_supervisor::exec::ExecArgs {
                command,
                environment: merged.environment,
                working_dir: merged.working_dir,
                timeout: options.timeout_ms.map(std::time::Duration::from_millis),
                user_id: ids.map(|(u, _)| u),
                group_id: ids.map(|(_, g)| g),
                split_stderr: options.split_stderr,
                ..Default::default()
            })
            .map_err(api_error)?;
        let connect = |id: &str| sup.exec_connect(&started.task_id, id).map_err(api_error);
        let mut res = ProcessRes {
            sup: sup.clone(),
            change: started.change_id.clone(),
            stdin: None,
            stdout: OutputStream::default(),
            stderr: OutputStream::default(),
            control: None,
        };
        if let cairn_supervisor::exec::Endpoint::Control(c) = connect("control")? {
            res.control = Some(c);
        }
        if options.split_stderr
            && let cairn_supervisor::exec::Endpoint::Stderr(e) = connect("stderr")?
        {
            res.stderr.rx = Some(e);
        }
        if let cairn_supervisor::exec::Endpoint::Stdio { stdin, stdout } = connect("stdio")? {
            res.stdin = Some(stdin);
            res.stdout.rx = Some(stdout);
        }
        self.table
            .push(res)
            .map_err(|e| pebble::Error::Connection(e.to_string()))
    }

    fn open(&mut self, name: String) -> Result<Resource<ContainerRes>, pebble::Error> {
        if !self.ctx.containers.contains_key(&name) {
            return Err(pebble::Error::Connection(format!(
                "cannot connect to container {name:?}: not a container of {}",
                self.ctx.unit_name
            )));
        }
        self.table
            .push(ContainerRes { name })
            .map_err(|e| pebble::Error::Connection(e.to_string()))
    }

    fn name(&mut self, self_: Resource<ContainerRes>) -> String {
        self.table
            .get(&self_)
            .map(|c| c.name.clone())
            .unwrap_or_default()
    }

    fn can_connect(&mut self, self_: Resource<ContainerRes>) -> bool {
        self.supervisor(&self_).is_ok()
    }

    fn add_layer(
        &mut self,
        self_: Resource<ContainerRes>,
        label: String,
        layer: String,
        combine: bool,
    ) -> Result<(), pebble::Error> {
        let sup = self.supervisor(&self_)?;
        sup.add_layer(&label, layer.as_bytes(), combine, false)
            .map_err(api_error)
    }

    fn get_plan(&mut self, self_: Resource<ContainerRes>) -> Result<pebble::Plan, pebble::Error> {
        Ok(typed_plan(&self.supervisor(&self_)?.plan()))
    }

    fn get_plan_yaml(&mut self, self_: Resource<ContainerRes>) -> Result<String, pebble::Error> {
        Ok(self.supervisor(&self_)?.plan().to_yaml())
    }

    fn send_signal(
        &mut self,
        self_: Resource<ContainerRes>,
        signal: String,
        names: Vec<String>,
    ) -> Result<(), pebble::Error> {
        let sup = self.supervisor(&self_)?;
        let signal = if signal.starts_with("SIG") {
            signal
        } else {
            format!("SIG{signal}")
        };
        sup.send_signal(&signal, &names).map_err(api_error)
    }

    fn replan(&mut self, self_: Resource<ContainerRes>) -> Result<(), pebble::Error> {
        self.run(&self_, "replan", vec![])
    }

    fn autostart(&mut self, self_: Resource<ContainerRes>) -> Result<(), pebble::Error> {
        self.run(&self_, "autostart", vec![])
    }

    fn start(
        &mut self,
        self_: Resource<ContainerRes>,
        names: Vec<String>,
    ) -> Result<(), pebble::Error> {
        self.run(&self_, "start", names)
    }

    fn stop(
        &mut self,
        self_: Resource<ContainerRes>,
        names: Vec<String>,
    ) -> Result<(), pebble::Error> {
        self.run(&self_, "stop", names)
    }

    fn restart(
        &mut self,
        self_: Resource<ContainerRes>,
        names: Vec<String>,
    ) -> Result<(), pebble::Error> {
        self.run(&self_, "restart", names)
    }

    fn get_services(
        &mut self,
        self_: Resource<ContainerRes>,
        names: Vec<String>,
    ) -> Result<Vec<pebble::ServiceInfo>, pebble::Error> {
        let sup = self.supervisor(&self_)?;
        Ok(sup
            .services(&names)
            .into_iter()
            .map(|s| pebble::ServiceInfo {
                name: s.name,
                startup: if s.startup == "enabled" {
                    pebble::ServiceStartup::Enabled
                } else {
                    pebble::ServiceStartup::Disabled
                },
                current: match s.current {
                    cairn_supervisor::ServiceStatus::Active => pebble::ServiceStatus::Active,
                    cairn_supervisor::ServiceStatus::Inactive => pebble::ServiceStatus::Inactive,
                    cairn_supervisor::ServiceStatus::Backoff => pebble::ServiceStatus::Backoff,
                    cairn_supervisor::ServiceStatus::Error => pebble::ServiceStatus::Error,
                },
                current_since: s.current_since,
            })
            .collect())
    }

    fn get_checks(
        &mut self,
        self_: Resource<ContainerRes>,
        level: wit::CheckLevel,
        names: Vec<String>,
    ) -> Result<Vec<wit::CheckInfo>, pebble::Error> {
        let level = match level {
            wit::CheckLevel::Unset => "",
            wit::CheckLevel::Alive => "alive",
            wit::CheckLevel::Ready => "ready",
        };
        Ok(self
            .supervisor(&self_)?
            .checks(level, &names)
            .into_iter()
            .map(|c| check_info(&c.into()))
            .collect())
    }

    fn start_checks(
        &mut self,
        self_: Resource<ContainerRes>,
        names: Vec<String>,
    ) -> Result<Vec<String>, pebble::Error> {
        self.supervisor(&self_)?
            .start_checks(&names)
            .map_err(api_error)
    }

    fn stop_checks(
        &mut self,
        self_: Resource<ContainerRes>,
        names: Vec<String>,
    ) -> Result<Vec<String>, pebble::Error> {
        self.supervisor(&self_)?
            .stop_checks(&names)
            .map_err(api_error)
    }

    fn get_notices(
        &mut self,
        self_: Resource<ContainerRes>,
        filter: pebble::NoticeFilter,
    ) -> Result<Vec<wit::Notice>, pebble::Error> {
        let after = match filter.after.as_deref() {
            None | Some("") => None,
            Some(t) => Some(
                time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                    .map_err(|e| {
                        api_error(SupervisorError::BadRequest(format!(
                            "invalid \"after\" timestamp: {e}"
                        )))
                    })?,
            ),
        };
        let filter = cairn_supervisor::NoticeFilter {
            // As the host's own user: public notices and the host user's.
            user_id: Some(nix::unistd::getuid().as_raw()),
            types: filter.types,
            keys: filter.keys,
            after,
        };
        Ok(self
            .supervisor(&self_)?
            .notices(&filter)
            .iter()
            .map(|n| wit_notice(&n.into()))
            .collect())
    }

    fn get_notice(
        &mut self,
        self_: Resource<ContainerRes>,
        id: String,
    ) -> Result<wit::Notice, pebble::Error> {
        self.supervisor(&self_)?
            .notice(&id)
            .map(|n| wit_notice(&(&n).into()))
            .ok_or_else(|| {
                api_error(SupervisorError::NotFound(format!(
                    "cannot find notice with ID {id:?}"
                )))
            })
    }

    fn push(
        &mut self,
        self_: Resource<ContainerRes>,
        path: String,
        data: Vec<u8>,
        options: pebble::FileOptions,
    ) -> Result<(), pebble::Error> {
        let sup = self.supervisor(&self_)?;
        let item = cairn_supervisor::files::WriteItem {
            path,
            make_dirs: options.make_parents,
            ownership: ownership(&options),
        };
        cairn_supervisor::files::write(sup.root(), &item, &mut data.as_slice()).map_err(path_error)
    }

    fn pull(
        &mut self,
        self_: Resource<ContainerRes>,
        path: String,
    ) -> Result<Vec<u8>, pebble::Error> {
        let sup = self.supervisor(&self_)?;
        let mut f = cairn_supervisor::files::open_read(sup.root(), &path).map_err(path_error)?;
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut f, &mut out).map_err(|e| {
            path_error(cairn_supervisor::files::FileError {
                kind: "generic-file-error".into(),
                message: format!("read {path}: {e}"),
            })
        })?;
        Ok(out)
    }

    fn list_files(
        &mut self,
        self_: Resource<ContainerRes>,
        path: String,
        pattern: Option<String>,
        itself: bool,
    ) -> Result<Vec<pebble::FileInfo>, pebble::Error> {
        let sup = self.supervisor(&self_)?;
        let list = cairn_supervisor::files::list(
            sup.root(),
            &path,
            pattern.as_deref().unwrap_or(""),
            itself,
        )
        .map_err(path_error)?;
        Ok(list
            .into_iter()
            .map(|f| pebble::FileInfo {
                path: f.path,
                name: f.name,
                type_: f.type_,
                size: f.size,
                permissions: u32::from_str_radix(&f.permissions, 8).unwrap_or(0),
                last_modified: f.last_modified,
                user_id: f.user_id,
                user: Some(f.user).filter(|u| !u.is_empty()),
                group_id: f.group_id,
                group: Some(f.group).filter(|g| !g.is_empty()),
            })
            .collect())
    }

    fn make_dir(
        &mut self,
        self_: Resource<ContainerRes>,
        path: String,
        options: pebble::FileOptions,
    ) -> Result<(), pebble::Error> {
        let sup = self.supervisor(&self_)?;
        cairn_supervisor::files::make_dir(
            sup.root(),
            &path,
            options.make_parents,
            &ownership(&options),
        )
        .map_err(path_error)
    }

    fn remove_path(
        &mut self,
        self_: Resource<ContainerRes>,
        path: String,
        recursive: bool,
    ) -> Result<(), pebble::Error> {
        let sup = self.supervisor(&self_)?;
        cairn_supervisor::files::remove(sup.root(), &path, recursive).map_err(path_error)
    }

    fn exists(
        &mut self,
        self_: Resource<ContainerRes>,
        path: String,
    ) -> Result<bool, pebble::Error> {
        let sup = self.supervisor(&self_)?;
        match cairn_supervisor::files::list(sup.root(), &path, "", true) {
            Ok(_) => Ok(true),
            Err(e) if e.kind == "not-found" => Ok(false),
            Err(e) => Err(path_error(e)),
        }
    }

    fn is_dir(
        &mut self,
        self_: Resource<ContainerRes>,
        path: String,
    ) -> Result<bool, pebble::Error> {
        let sup = self.supervisor(&self_)?;
        match cairn_supervisor::files::list(sup.root(), &path, "", true) {
            Ok(l) => Ok(l.first().is_some_and(|f| f.type_ == "directory")),
            Err(e) if e.kind == "not-found" => Ok(false),
            Err(e) => Err(path_error(e)),
        }
    }

    fn drop(&mut self, rep: Resource<ContainerRes>) -> wasmtime::Result<()> {
        self.table.delete(rep)?;
        Ok(())
    }
}
