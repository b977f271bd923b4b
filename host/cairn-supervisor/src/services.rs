//! The service manager: one state machine per service, exactly Pebble's.
//!
//! States: initial, starting, running, terminating, killing, stopped, backoff, exited.
//! A start waits [`OKAY_DELAY`] for the process to stay up; an early exit fails the start
//! task ("exited quickly") and still runs the exit action. Stop sends SIGTERM to the
//! process group, SIGKILL after `kill-delay`, and fails [`FAIL_DELAY`] later. Exits run
//! `on-success`/`on-failure` (restart with backoff by default). Timers are tokio tasks
//! that carry the state epoch they were armed in, so a stale timer does nothing.

use crate::spawn::{Command, Stdio};
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use cairn_plan::{Service, ServiceAction, ServiceStartup};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use time::OffsetDateTime;
use tokio::sync::{oneshot, watch};

use crate::groups::Groups;
use crate::logs::{LineSplitter, LogBuffer};
use crate::{reaper, users};

/// How long a started service must stay up to count as started.
pub const OKAY_DELAY: Duration = Duration::from_secs(1);
/// Pebble's default `kill-delay`.
pub const KILL_DELAY_DEFAULT: Duration = Duration::from_secs(5);
/// How long after SIGKILL a stop gives up.
pub const FAIL_DELAY: Duration = Duration::from_secs(5);
/// Lines of output appended to a failed start task.
const LAST_LOG_LINES: usize = 20;

/// The internal state of a service's state machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Initial,
    Starting,
    Running,
    Terminating,
    Killing,
    Stopped,
    Backoff,
    Exited,
}

impl State {
    fn status(self) -> ServiceStatus {
        match self {
            State::Starting | State::Running => ServiceStatus::Active,
            State::Terminating | State::Killing | State::Stopped => ServiceStatus::Inactive,
            State::Backoff => ServiceStatus::Backoff,
            State::Initial | State::Exited => ServiceStatus::Error,
        }
    }

    fn name(self) -> &'static str {
        match self {
            State::Initial => "initial",
            State::Starting => "starting",
            State::Running => "running",
            State::Terminating => "terminating",
            State::Killing => "killing",
            State::Stopped => "stopped",
            State::Backoff => "backoff",
            State::Exited => "exited",
        }
    }
}

/// A service's status as the API reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceStatus {
    /// Starting or running.
    Active,
    /// Stopped or never started.
    Inactive,
    /// Waiting to be restarted.
    Backoff,
    /// Exited and not restarted.
    Error,
}

impl ServiceStatus {
    /// The API's name for the status.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceStatus::Active => "active",
            ServiceStatus::Inactive => "inactive",
            ServiceStatus::Backoff => "backoff",
            ServiceStatus::Error => "error",
        }
    }
}

/// One service as the supervisor reports it (`GET /v1/services` renders it).
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceInfo {
    /// The service's name.
    pub name: String,
    /// `Enabled` or `Disabled` (an unset startup is reported as disabled, as Pebble does).
    pub startup: ServiceStartup,
    /// Current status.
    pub current: ServiceStatus,
    /// When `current` last changed; `None` for never-started services.
    pub current_since: Option<OffsetDateTime>,
}

/// Why a service asked the whole supervisor to go down (exit actions `shutdown` and friends).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShutdownRequest {
    /// Exit as a success (Pebble exits 0).
    Success,
    /// Exit as a failure (Pebble exits 10).
    Failure,
    /// A check failed with `on-check-failure: shutdown` (Pebble exits 11).
    CheckFailure,
}

struct ServiceData {
    config: Arc<Service>,
    state: State,
    logs: Arc<LogBuffer>,
    started: Option<oneshot::Sender<Result<(), String>>>,
    stopped: Option<oneshot::Sender<Result<(), String>>>,
    pid: Option<i32>,
    backoff_num: u32,
    backoff_time: Duration,
    restarting: bool,
    current_since: OffsetDateTime,
    /// Bumped on every transition; timers armed in one epoch are ignored in another.
    epoch: u64,
    /// Bumped on every process start; exits of older processes are ignored.
    generation: u64,
    /// Times the service was started (`pebble_service_start_count`).
    start_count: u64,
}

impl ServiceData {
    fn transition(&mut self, state: State) {
        self.transition_restarting(state, false);
    }

    fn transition_restarting(&mut self, state: State, restarting: bool) {
        if self.state.status() != state.status() {
            self.current_since = OffsetDateTime::now_utc();
        }
        tracing::debug!(service = %self.config.name, from = self.state.name(), to = state.name(), "service transition");
        self.state = state;
        self.restarting = restarting;
        self.epoch += 1;
    }

    fn kill_delay(&self) -> Duration {
        self.config.kill_delay.unwrap_or(KILL_DELAY_DEFAULT)
    }

    fn send_started(&mut self, r: Result<(), String>) {
        if let Some(tx) = self.started.take() {
            let _ = tx.send(r);
        }
    }

    fn send_stopped(&mut self, r: Result<(), String>) {
        if let Some(tx) = self.stopped.take() {
            let _ = tx.send(r);
        }
    }
}

/// Runs and tracks the services of one container.
pub(crate) struct ServiceManager {
    me: Weak<ServiceManager>,
    services: Mutex<HashMap<String, ServiceData>>,
    /// Environment and root of the container.
    container: Arc<crate::container::ContainerEnv>,
    shutdown: watch::Sender<Option<ShutdownRequest>>,
    rng: Mutex<u64>,
    /// The process groups of this container's services, mirrored to disk.
    groups: Mutex<Groups>,
    /// Told of every start, so that the service's output reaches its log targets.
    forwarder: Arc<crate::forward::Forwarder>,
}

impl Drop for ServiceManager {
    /// A supervisor dropped without stopping its services takes their process groups with
    /// it (SIGKILL): services never outlive their supervisor.
    fn drop(&mut self) {
        if let Ok(g) = self.groups.get_mut() {
            g.kill_all();
        }
        self.container.kill_cgroup();
    }
}

fn action_for(config: &Service, success: bool) -> (ServiceAction, &'static str) {
    let (action, on) = if success {
        (config.on_success, "on-success")
    } else {
        (config.on_failure, "on-failure")
    };
    if action == ServiceAction::Unset {
        (ServiceAction::Restart, on)
    } else {
        (action, on)
    }
}

fn action_name(a: ServiceAction) -> &'static str {
    match a {
        ServiceAction::Unset => "",
        ServiceAction::Restart => "restart",
        ServiceAction::Shutdown => "shutdown",
        ServiceAction::FailureShutdown => "failure-shutdown",
        ServiceAction::SuccessShutdown => "success-shutdown",
        ServiceAction::Ignore => "ignore",
    }
}

fn backoff_delay(c: &Service) -> Duration {
    c.backoff_delay.unwrap_or(Duration::from_millis(500))
}

fn backoff_limit(c: &Service) -> Duration {
    c.backoff_limit.unwrap_or(Duration::from_secs(30))
}

fn next_backoff(config: &Service, current: Duration) -> Duration {
    if current.is_zero() {
        return backoff_delay(config);
    }
    let limit = backoff_limit(config);
    if current >= limit {
        return limit;
    }
    let factor = config.backoff_factor.unwrap_or(2.0);
    Duration::from_secs_f64(current.as_secs_f64() * factor).min(limit)
}

impl ServiceManager {
    /// A manager whose process groups are recorded in `groups_dir` (when given).
    pub(crate) fn new(
        container: Arc<crate::container::ContainerEnv>,
        groups_dir: Option<&std::path::Path>,
        forwarder: Arc<crate::forward::Forwarder>,
    ) -> Arc<Self> {
        let seed = OffsetDateTime::now_utc().unix_timestamp_nanos() as u64 | 1;
        Arc::new_cyclic(|me| ServiceManager {
            me: me.clone(),
            services: Mutex::new(HashMap::new()),
            container,
            shutdown: watch::channel(None).0,
            rng: Mutex::new(seed),
            groups: Mutex::new(Groups::new(groups_dir)),
            forwarder,
        })
    }

    /// Starts `cmd` (a process group leader) for `label` (a service, or `exec <task>`), its
    /// group recorded by the leader itself before it runs any of its command (see
    /// `groups`), so that a supervisor opened after a crash terminates it.
    pub(crate) fn spawn_recorded(
        &self,
        mut cmd: Command,
        label: &str,
        kill_delay: Duration,
    ) -> std::io::Result<(crate::spawn::Child, oneshot::Receiver<reaper::ExitCode>)> {
        // Off the runtime's worker: the lock below waits for other spawns of the container.
        reaper::off_worker(|| {
            // Held across the spawn: the journal the child appends to stays the current one.
            self.container.enter_cgroup(&mut cmd);
            let mut groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
            groups.record_in_child(&mut cmd, label, kill_delay);
            let (child, exit) = self.container.spawn(cmd)?;
            #[cfg(test)]
            crate::tests::procs::die_after_spawn_if_asked();
            groups.started(child.id() as i32, label, kill_delay);
            Ok((child, exit))
        })
    }

    /// The exec command leading group `pid` exited.
    pub(crate) fn exec_exited(&self, pid: i32) {
        self.groups.lock().unwrap().leader_exited(pid);
    }

    /// Watch for a service asking the supervisor to shut down.
    pub(crate) fn shutdown_requests(&self) -> watch::Receiver<Option<ShutdownRequest>> {
        self.shutdown.subscribe()
    }

    fn jitter(&self, d: Duration) -> Duration {
        let mut x = self.rng.lock().unwrap();
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        let unit = (*x >> 11) as f64 / (1u64 << 53) as f64;
        Duration::from_secs_f64(d.as_secs_f64() * 0.1 * unit)
    }

    /// Services of the plan (filtered by `names` when not empty), sorted by name.
    pub(crate) fn infos(&self, plan: &cairn_plan::Plan, names: &[String]) -> Vec<ServiceInfo> {
        let services = self.services.lock().unwrap();
        let mut out: Vec<ServiceInfo> = plan
            .services
            .iter()
            .filter(|(name, _)| names.is_empty() || names.contains(name))
            .map(|(name, config)| {
                let mut info = ServiceInfo {
                    name: name.clone(),
                    startup: if config.startup == ServiceStartup::Enabled {
                        ServiceStartup::Enabled
                    } else {
                        ServiceStartup::Disabled
                    },
                    current: ServiceStatus::Inactive,
                    current_since: None,
                };
                if let Some(s) = services.get(name) {
                    info.current = s.state.status();
                    info.current_since = Some(s.current_since);
                }
                info
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// The main pid of a running service.
    pub(crate) fn pid(&self, name: &str) -> Option<i32> {
        let services = self.services.lock().unwrap();
        let s = services.get(name)?;
        matches!(s.state, State::Starting | State::Running)
            .then_some(s.pid)
            .flatten()
    }

    /// The service's log ring, if it was ever started.
    pub(crate) fn log_buffer(&self, name: &str) -> Option<Arc<LogBuffer>> {
        self.services
            .lock()
            .unwrap()
            .get(name)
            .map(|s| s.logs.clone())
    }

    /// Names of services with a record whose config differs from the plan (they need a
    /// restart), updating their recorded config; the rest are left alone.
    pub(crate) fn replan_changed(&self, plan: &cairn_plan::Plan) -> Vec<String> {
        let mut services = self.services.lock().unwrap();
        let mut out = Vec::new();
        for (name, s) in services.iter_mut() {
            if let Some(config) = plan.services.get(name) {
                if config.equal_config(&s.config) {
                    continue;
                }
                s.config = config.clone();
            }
            out.push(name.clone());
        }
        out.sort();
        out
    }

    /// Service metrics (`pebble_service_active`, `pebble_service_start_count`) of the
    /// services the manager knows, by name.
    pub(crate) fn write_metrics(&self, out: &mut String) {
        use crate::metrics::{Kind, write};
        let services = self.services.lock().unwrap();
        let mut names: Vec<&String> = services.keys().collect();
        names.sort();
        for name in names {
            let s = &services[name];
            let label = ("service", name.as_str());
            write(
                out,
                "pebble_service_active",
                Kind::Gauge,
                "Whether the service is currently active (1) or not (0)",
                label,
                u64::from(s.state.status() == ServiceStatus::Active),
            );
            write(
                out,
                "pebble_service_start_count",
                Kind::Counter,
                "Number of times the service has started",
                label,
                s.start_count,
            );
        }
    }

    /// Pebble's `CheckFailed`: runs the `on-check-failure` action of every service that
    /// names check `check`.
    pub(crate) fn check_failed(&self, check: &str) {
        let mut services = self.services.lock().unwrap();
        let names: Vec<String> = services.keys().cloned().collect();
        for name in names {
            let s = services.get_mut(&name).unwrap();
            let Some(action) = s.config.on_check_failure.get(check).copied() else {
                continue;
            };
            if !matches!(s.state, State::Running | State::Backoff | State::Exited) {
                tracing::debug!(
                    "Service {name:?}: ignoring on-check-failure action in state {}",
                    s.state.name()
                );
                continue;
            }
            let on = "on-check-failure";
            match action {
                ServiceAction::Ignore | ServiceAction::Unset => {}
                ServiceAction::Shutdown | ServiceAction::FailureShutdown => {
                    tracing::info!(
                        "Service {name:?} {on} action is \"shutdown\", triggering failure shutdown"
                    );
                    self.shutdown
                        .send_replace(Some(ShutdownRequest::CheckFailure));
                }
                ServiceAction::SuccessShutdown => {
                    tracing::info!(
                        "Service {name:?} {on} action is \"success-shutdown\", triggering success shutdown"
                    );
                    self.shutdown.send_replace(Some(ShutdownRequest::Success));
                }
                ServiceAction::Restart => match s.state {
                    State::Running => {
                        tracing::info!(
                            "Service {name:?} {on} action is \"restart\", terminating process before restarting"
                        );
                        if let Some(pid) = s.pid
                            && let Err(e) = killpg(Pid::from_raw(pid), Signal::SIGTERM)
                        {
                            tracing::info!("Cannot send SIGTERM to process: {e}");
                        }
                        s.transition_restarting(State::Terminating, true);
                        self.arm(&name, s.epoch, s.kill_delay(), Timer::Terminate);
                    }
                    State::Backoff => {
                        tracing::info!(
                            "Service {name:?} {on} action is \"restart\", waiting for current backoff"
                        );
                    }
                    _ => self.do_backoff(&name, s, ServiceAction::Restart, on),
                },
            }
        }
    }

    /// Forgets every service (after they were stopped) and any shutdown request, as a new
    /// supervisor process would start; groups that survived the stop are killed.
    pub(crate) fn reset(&self) {
        self.services.lock().unwrap().clear();
        self.groups.lock().unwrap().kill_all();
        self.container.kill_cgroup();
        self.shutdown.send_replace(None);
    }

    /// Services starting, running or backing off (what a shutdown must stop).
    pub(crate) fn active_names(&self) -> Vec<String> {
        let services = self.services.lock().unwrap();
        let mut v: Vec<String> = services
            .iter()
            .filter(|(_, s)| matches!(s.state, State::Starting | State::Running | State::Backoff))
            .map(|(n, _)| n.clone())
            .collect();
        v.sort();
        v
    }

    /// The longest a shutdown may take: max kill-delay + fail delay + a little.
    pub(crate) fn stop_timeout(&self) -> Duration {
        let services = self.services.lock().unwrap();
        let max = services
            .values()
            .filter(|s| {
                matches!(
                    s.state,
                    State::Starting | State::Running | State::Terminating
                )
            })
            .map(|s| s.kill_delay())
            .max()
            .unwrap_or(KILL_DELAY_DEFAULT)
            .max(KILL_DELAY_DEFAULT);
        max + FAIL_DELAY + Duration::from_millis(100)
    }

    /// Runs a `start` task for `config`; `log` appends to the task's log.
    pub(crate) async fn do_start(
        &self,
        config: &Arc<Service>,
        log: &(dyn Fn(&str) + Sync),
    ) -> Result<(), String> {
        let (rx, logs) = {
            let mut services = self.services.lock().unwrap();
            let name = config.name.clone();
            let s = match services.get_mut(&name) {
                None => {
                    services.insert(
                        name.clone(),
                        ServiceData {
                            config: config.clone(),
                            state: State::Initial,
                            logs: Arc::new(LogBuffer::new(&name)),
                            started: None,
                            stopped: None,
                            pid: None,
                            backoff_num: 0,
                            backoff_time: Duration::ZERO,
                            restarting: false,
                            current_since: OffsetDateTime::now_utc(),
                            epoch: 0,
                            generation: 0,
                            start_count: 0,
                        },
                    );
                    services.get_mut(&name).unwrap()
                }
                Some(s) => {
                    s.config = config.clone();
                    match s.state {
                        State::Initial | State::Starting | State::Running => {
                            log(&format!("Service {name:?} already started."));
                            return Ok(());
                        }
                        State::Backoff | State::Stopped | State::Exited => {
                            s.backoff_num = 0;
                            s.backoff_time = Duration::ZERO;
                            s.transition(State::Initial);
                        }
                        State::Terminating | State::Killing => {}
                    }
                    s
                }
            };
            if s.state != State::Initial {
                return Err(format!("cannot start service while {}", s.state.name()));
            }
            let (tx, rx) = oneshot::channel();
            s.started = Some(tx);
            if let Err(e) = self.start_process(s) {
                s.started = None;
                s.transition(State::Stopped);
                return Err(e);
            }
            s.transition(State::Starting);
            self.arm(&name, s.epoch, OKAY_DELAY, Timer::OkayWait);
            (rx, s.logs.clone())
        };
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                let last = logs.last_lines(LAST_LOG_LINES, "    ");
                if !last.is_empty() {
                    log(&format!("Most recent service output:\n{last}"));
                }
                Err(format!("service start attempt: {e}"))
            }
            Err(_) => Err("service start attempt: internal error: start abandoned".into()),
        }
    }

    /// Runs a `stop` task for the named service.
    pub(crate) async fn do_stop(
        &self,
        name: &str,
        log: &(dyn Fn(&str) + Sync),
    ) -> Result<(), String> {
        let rx = {
            let mut services = self.services.lock().unwrap();
            let Some(s) = services.get_mut(name) else {
                log(&format!("Service {name:?} has never been started."));
                return Ok(());
            };
            match s.state {
                State::Terminating | State::Killing => {
                    log(&format!("Service {name:?} already stopping."));
                    return Ok(());
                }
                State::Stopped => {
                    log(&format!("Service {name:?} already stopped."));
                    return Ok(());
                }
                State::Exited => {
                    s.transition(State::Stopped);
                    log(&format!("Service {name:?} had already exited."));
                    return Ok(());
                }
                _ => {}
            }
            let (tx, rx) = oneshot::channel();
            s.stopped = Some(tx);
            self.stop_locked(name, s)?;
            rx
        };
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("cannot stop service: {e}")),
            Err(_) => Err("cannot stop service: internal error: stop abandoned".into()),
        }
    }

    fn stop_locked(&self, name: &str, s: &mut ServiceData) -> Result<(), String> {
        match s.state {
            State::Starting | State::Running => {
                if s.state == State::Starting {
                    s.send_started(Err(format!(
                        "stopped before the {}s okay delay",
                        OKAY_DELAY.as_secs()
                    )));
                }
                if let Some(pid) = s.pid
                    && let Err(e) = killpg(Pid::from_raw(pid), Signal::SIGTERM)
                {
                    tracing::info!("Cannot send SIGTERM to process: {e}");
                }
                s.transition(State::Terminating);
                self.arm(name, s.epoch, s.kill_delay(), Timer::Terminate);
                Ok(())
            }
            State::Backoff => {
                tracing::info!("Service {name:?} stopped while waiting for backoff");
                s.send_stopped(Ok(()));
                s.transition(State::Stopped);
                Ok(())
            }
            other => Err(format!("cannot stop service while {}", other.name())),
        }
    }

    /// Sends a signal to the main process of running services, with Pebble's errors.
    pub(crate) fn send_signal(&self, signal: &str, names: &[String]) -> Result<(), String> {
        let services = self.services.lock().unwrap();
        let mut errors = Vec::new();
        for name in names {
            let Some(s) = services.get(name) else {
                errors.push(format!(
                    "cannot send signal to {name:?}: service is not running"
                ));
                continue;
            };
            match s.state {
                State::Starting | State::Running => {
                    let Ok(sig) = signal.parse::<Signal>() else {
                        errors.push(format!(
                            "cannot send signal to {name:?}: invalid signal name {signal:?}"
                        ));
                        continue;
                    };
                    tracing::info!("Sending {signal} to service {name:?}");
                    if let Some(pid) = s.pid
                        && let Err(e) = nix::sys::signal::kill(Pid::from_raw(pid), sig)
                    {
                        errors.push(format!("cannot send signal to {name:?}: {e}"));
                    }
                }
                State::Initial => errors.push(format!(
                    "cannot send signal to {name:?}: invalid in state \"initial\""
                )),
                _ => errors.push(format!(
                    "cannot send signal to {name:?}: service is not running"
                )),
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    fn start_process(&self, s: &mut ServiceData) -> Result<(), String> {
        let (base, extra) = s.config.parse_command(None).map_err(|e| e.to_string())?;
        let args: Vec<String> = base.into_iter().chain(extra).collect();
        let Some((program, rest)) = args.split_first() else {
            return Err("cannot start service: empty command".into());
        };
        // As Pebble (Go's exec.Command): a name without a `/` is looked up on the
        // supervisor's own PATH, not the service's, and the path found is what runs.
        let program = if program.contains('/') {
            program.clone()
        } else {
            let own_path = std::env::var("PATH").unwrap_or_default();
            crate::exec::look_path(program, &own_path, self.container.root.as_ref()).ok_or_else(
                || format!("cannot start service: exec: {program:?}: executable file not found in $PATH"),
            )?
        };
        let mut cmd = Command::new(&program);
        // argv[0] stays the name the layer gave (Go's cmd.Args[0]).
        cmd.arg0(&args[0]);
        cmd.args(rest).process_group(0).stdin(Stdio::null());
        let mut env: HashMap<String, String> = self.container.base_env().into_iter().collect();
        let mut svc_env = s.config.environment.clone();
        let creds = users::normalize(
            s.config.user_id,
            s.config.group_id,
            &s.config.user,
            &s.config.group,
        )?;
        if let Some((uid, _)) = creds
            && (!svc_env.contains_key("HOME") || !svc_env.contains_key("USER"))
            && let Some((home, user)) = users::home_and_name(uid)
        {
            svc_env.entry("HOME".into()).or_insert(home);
            svc_env.entry("USER".into()).or_insert(user);
        }
        env.extend(svc_env);
        cmd.env_clear().envs(env);
        crate::sandbox::place(
            &mut cmd,
            self.container.root.as_ref(),
            &s.config.working_dir,
            creds,
        )
        .map_err(|e| format!("cannot start service: {e}"))?;
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| format!("cannot start service: {e}"))?;
        let write2 = write
            .try_clone()
            .map_err(|e| format!("cannot start service: {e}"))?;
        cmd.stdout(Stdio::from(write)).stderr(Stdio::from(write2));
        tracing::info!("Service {:?} starting: {}", s.config.name, s.config.command);
        let switching = creds.filter(|(uid, gid)| !users::is_current(*uid, *gid));
        let spawned = self.spawn_recorded(cmd, &s.config.name, s.kill_delay());
        let (child, exit) = spawned.map_err(|e| match switching {
            Some((uid, gid)) if e.raw_os_error() == Some(nix::libc::EPERM) => format!(
                "cannot start service: cannot run as user ID {uid} and group ID {gid}: the supervisor runs as user ID {} without the right to switch users",
                nix::unistd::geteuid()
            ),
            // What Go's os.StartProcess says of any failure in the child before exec
            // (a missing program or working directory, a program that cannot run).
            _ if e.raw_os_error().is_some() => format!(
                "cannot start service: fork/exec {program}: {}",
                crate::errno_text(&e)
            ),
            _ => format!("cannot start service: {e}"),
        })?;
        let pid = child.id() as i32;
        s.pid = Some(pid);
        s.generation += 1;
        s.start_count += 1;
        self.forwarder.service_started(&s.config, &s.logs);
        let reader = spawn_log_reader(read, s.logs.clone());
        // As Go's cmd.Wait with WaitDelay (Pebble sets 0.9 × kill-delay): the exit is
        // handled once the output is read to its end, or after that delay if a
        // grandchild keeps the pipe open.
        let wait_delay = s.kill_delay().mul_f64(0.9);
        let me = self.me.clone();
        let (name, generation) = (s.config.name.clone(), s.generation);
        tokio::spawn(async move {
            let code = exit.await.unwrap_or(-1);
            let _ = tokio::time::timeout(wait_delay, reader).await;
            if let Some(m) = me.upgrade() {
                m.groups.lock().unwrap().leader_exited(pid);
                m.exited(&name, generation, code);
            }
        });
        self.arm_generation(
            &s.config.name,
            s.generation,
            backoff_limit(&s.config),
            Timer::BackoffReset,
        );
        Ok(())
    }

    fn arm(&self, name: &str, epoch: u64, after: Duration, timer: Timer) {
        self.spawn_timer(name, after, move |s| s.epoch == epoch, timer);
    }

    fn arm_generation(&self, name: &str, generation: u64, after: Duration, timer: Timer) {
        self.spawn_timer(name, after, move |s| s.generation == generation, timer);
    }

    fn spawn_timer(
        &self,
        name: &str,
        after: Duration,
        current: impl Fn(&ServiceData) -> bool + Send + 'static,
        timer: Timer,
    ) {
        let me = self.me.clone();
        let name = name.to_string();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let Some(m) = me.upgrade() else { return };
            let mut services = m.services.lock().unwrap();
            if let Some(s) = services.get_mut(&name)
                && current(s)
            {
                m.fire(&name, s, timer);
            }
        });
    }

    fn fire(&self, name: &str, s: &mut ServiceData, timer: Timer) {
        match (timer, s.state) {
            (Timer::OkayWait, State::Starting) => {
                s.send_started(Ok(()));
                s.transition(State::Running);
            }
            (Timer::BackoffElapsed, State::Backoff) => match self.start_process(s) {
                Ok(()) => s.transition(State::Running),
                Err(e) => tracing::info!("Cannot restart service {name:?}: {e}"),
            },
            (Timer::Terminate, State::Terminating) => {
                if let Some(pid) = s.pid
                    && let Err(e) = killpg(Pid::from_raw(pid), Signal::SIGKILL)
                {
                    tracing::info!("Cannot send SIGKILL to process: {e}");
                }
                let restarting = s.restarting;
                s.transition_restarting(State::Killing, restarting);
                self.arm(name, s.epoch, FAIL_DELAY, Timer::Kill);
            }
            (Timer::Kill, State::Killing) => {
                tracing::info!("Service {name:?} still running after SIGTERM and SIGKILL");
                if !s.restarting {
                    s.send_stopped(Err("process still running after SIGTERM and SIGKILL".into()));
                }
                s.transition(State::Stopped);
            }
            (Timer::BackoffReset, State::Running) => {
                s.backoff_num = 0;
                s.backoff_time = Duration::ZERO;
            }
            _ => {}
        }
    }

    fn exited(&self, name: &str, generation: u64, code: i32) {
        let mut services = self.services.lock().unwrap();
        let Some(s) = services.get_mut(name) else {
            return;
        };
        if s.generation != generation {
            return;
        }
        s.pid = None;
        match s.state {
            State::Starting | State::Running => {
                let (action, on) = action_for(&s.config, code == 0);
                if s.state == State::Starting {
                    s.send_started(Err(format!(
                        "exited quickly with code {code}, will {}",
                        action_name(action)
                    )));
                }
                tracing::info!("Service {name:?} stopped unexpectedly with code {code}");
                match action {
                    ServiceAction::Ignore => {
                        tracing::info!(
                            "Service {name:?} {on} action is \"ignore\", not doing anything further"
                        );
                        s.transition(if code == 0 {
                            State::Stopped
                        } else {
                            State::Exited
                        });
                    }
                    ServiceAction::Shutdown => {
                        let req = if code == 0 {
                            ShutdownRequest::Success
                        } else {
                            ShutdownRequest::Failure
                        };
                        self.shutdown.send_replace(Some(req));
                        s.transition(State::Exited);
                    }
                    ServiceAction::SuccessShutdown => {
                        self.shutdown.send_replace(Some(ShutdownRequest::Success));
                        s.transition(State::Exited);
                    }
                    ServiceAction::FailureShutdown => {
                        self.shutdown.send_replace(Some(ShutdownRequest::Failure));
                        s.transition(State::Exited);
                    }
                    ServiceAction::Restart | ServiceAction::Unset => {
                        self.do_backoff(name, s, action, on)
                    }
                }
            }
            State::Terminating | State::Killing => {
                if s.restarting {
                    self.do_backoff(name, s, ServiceAction::Restart, "on-check-failure");
                } else {
                    tracing::info!("Service {name:?} stopped");
                    s.send_stopped(Ok(()));
                    s.transition(State::Stopped);
                }
            }
            _ => {}
        }
    }

    fn do_backoff(&self, name: &str, s: &mut ServiceData, action: ServiceAction, on: &str) {
        s.backoff_num += 1;
        s.backoff_time = next_backoff(&s.config, s.backoff_time);
        tracing::info!(
            "Service {name:?} {on} action is {:?}, waiting ~{:?} before restart (backoff {})",
            action_name(action),
            s.backoff_time,
            s.backoff_num
        );
        s.transition(State::Backoff);
        let d = s.backoff_time + self.jitter(s.backoff_time);
        self.arm(name, s.epoch, d, Timer::BackoffElapsed);
    }
}

#[derive(Clone, Copy, Debug)]
enum Timer {
    OkayWait,
    BackoffElapsed,
    Terminate,
    Kill,
    BackoffReset,
}

/// Reads a service's output into its ring; the handle finishes at end of output.
fn spawn_log_reader(read: OwnedFd, logs: Arc<LogBuffer>) -> tokio::task::JoinHandle<()> {
    // Non-blocking so tokio can poll it.
    let flags = nix::fcntl::fcntl(&read, nix::fcntl::FcntlArg::F_GETFL).unwrap_or(0);
    let _ = nix::fcntl::fcntl(
        &read,
        nix::fcntl::FcntlArg::F_SETFL(
            nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK,
        ),
    );
    tokio::spawn(async move {
        let Ok(rx) = tokio::net::unix::pipe::Receiver::from_owned_fd(read) else {
            return;
        };
        let mut splitter = LineSplitter::default();
        loop {
            if rx.readable().await.is_err() {
                break;
            }
            // On the stack, not held across the wait: an idle service's reader keeps no
            // buffer (thousands of idle services would keep 4 KiB each).
            let mut buf = [0u8; 4 * 1024];
            match rx.try_read(&mut buf) {
                Ok(0) => break,
                Ok(n) => splitter.feed(&buf[..n], &logs),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        splitter.flush(&logs);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(delay: Option<u64>, factor: Option<f64>, limit: Option<u64>) -> Service {
        Service {
            backoff_delay: delay.map(Duration::from_millis),
            backoff_factor: factor,
            backoff_limit: limit.map(Duration::from_millis),
            ..Default::default()
        }
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let c = svc(None, None, None);
        let mut d = Duration::ZERO;
        let mut seen = Vec::new();
        for _ in 0..9 {
            d = next_backoff(&c, d);
            seen.push(d.as_millis());
        }
        assert_eq!(
            seen,
            [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
        let c = svc(Some(100), Some(3.0), Some(1000));
        assert_eq!(next_backoff(&c, Duration::ZERO).as_millis(), 100);
        assert_eq!(
            next_backoff(&c, Duration::from_millis(100)).as_millis(),
            300
        );
        assert_eq!(
            next_backoff(&c, Duration::from_millis(900)).as_millis(),
            1000
        );
    }

    #[test]
    fn jitter_is_within_ten_percent() {
        let m = ServiceManager::new(Default::default(), None, Default::default());
        for _ in 0..1000 {
            let j = m.jitter(Duration::from_secs(10));
            assert!(j <= Duration::from_secs(1));
        }
    }

    #[test]
    fn exit_actions_default_to_restart() {
        let c = Service::default();
        assert_eq!(action_for(&c, true), (ServiceAction::Restart, "on-success"));
        assert_eq!(
            action_for(&c, false),
            (ServiceAction::Restart, "on-failure")
        );
    }
}
