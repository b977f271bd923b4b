//! Pebble's checks manager (`checkstate`): every running check is a change with one task,
//! `perform-check` while the check is up and `recover-check` once it is down.
//!
//! A perform-check runs the check every `period` (the first run one period after it
//! starts), each run bounded by `timeout`. A failure is counted and logged on the task;
//! at `threshold` failures the services' `on-check-failure` actions run and the task fails,
//! which ends the change in `Error` and starts a recover-check change keeping the counts.
//! A recover-check keeps counting failures and, at the first success, ends `Done` and
//! starts a new perform-check. Stopping a check aborts its change (`Undone`). A plan
//! change restarts only the checks whose merged configuration changed.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::sync::{Arc, Weak};
use std::time::Duration;

use cairn_plan::{Check, CheckLevel, CheckStartup, ContextOptions, Plan};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::changes::Status;
use crate::{Inner, SupervisorError, reaper, users};

/// At most this much of an HTTP body or exec output is kept as error details.
const MAX_ERROR_BYTES: usize = 512;
/// At most this many lines of it.
const MAX_ERROR_LINES: usize = 5;

/// A check as `GET /v1/checks` reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct CheckInfo {
    /// The check's name.
    pub name: String,
    /// `alive`, `ready` or empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub level: String,
    /// `enabled` or `disabled`.
    pub startup: String,
    /// `up`, `down` or `inactive`.
    pub status: String,
    /// Successful runs in the current change (a recover-check's success counts 1).
    pub successes: u32,
    /// Consecutive failures.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failures: u32,
    /// Failures that make the check down.
    pub threshold: u32,
    /// The running change, if any.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub change_id: String,
    /// The change before it (perform-check before a recover-check and vice versa).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prev_change_id: String,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Why a check run failed: the message, and details (body or output lines) if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckFailure {
    /// Such as `non-2xx status code 500` or `exit status 1`.
    pub message: String,
    /// First lines of the HTTP body or last lines of the command's output.
    pub details: String,
}

impl std::fmt::Display for CheckFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.details.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}; {}", self.message, self.details)
        }
    }
}

fn fail(message: impl Into<String>) -> CheckFailure {
    CheckFailure {
        message: message.into(),
        details: String::new(),
    }
}

/// The check's type word in change summaries: `HTTP`, `TCP` or `exec`.
fn check_type(c: &Check) -> &'static str {
    if c.http.is_some() {
        "HTTP"
    } else if c.tcp.is_some() {
        "TCP"
    } else if c.exec.is_some() {
        "exec"
    } else {
        "<unknown>"
    }
}

/// The check with an exec check's `service-context` merged in, as Pebble runs it.
pub(crate) fn merged(plan: &Plan, check: &Check) -> Check {
    let mut c = check.clone();
    if let Some(exec) = &mut c.exec
        && !exec.service_context.is_empty()
    {
        let overrides = ContextOptions {
            environment: exec.environment.clone(),
            user_id: exec.user_id,
            user: exec.user.clone(),
            group_id: exec.group_id,
            group: exec.group.clone(),
            working_dir: exec.working_dir.clone(),
        };
        if let Ok(m) = plan.merge_service_context(&exec.service_context, overrides) {
            exec.environment = m.environment;
            exec.user_id = m.user_id;
            exec.user = m.user;
            exec.group_id = m.group_id;
            exec.group = m.group;
            exec.working_dir = m.working_dir;
        }
    }
    c
}

fn first_lines(text: &str) -> String {
    let mut lines: Vec<&str> = text.trim().split('\n').collect();
    if lines.len() > MAX_ERROR_LINES {
        lines.truncate(MAX_ERROR_LINES);
        lines.push("(...)");
    }
    lines.join("\n")
}

fn last_lines(text: &str) -> String {
    let lines: Vec<&str> = text.trim_end_matches('\n').split('\n').collect();
    let skip = lines.len().saturating_sub(MAX_ERROR_LINES);
    lines[skip..].join("\n")
}

async fn http_check(url: &str, headers: &BTreeMap<String, String>) -> Result<(), CheckFailure> {
    use http_body_util::{BodyExt, Empty};
    let get_err = |e: &dyn std::fmt::Display| fail(format!("Get {url:?}: {e}"));
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| fail(format!("cannot build request: parse {url:?}: {e}")))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(get_err(
                &"https checks are not supported by this supervisor (use http, tcp or exec)",
            ));
        }
        other => {
            return Err(get_err(&format!(
                "unsupported protocol scheme {:?}",
                other.unwrap_or("")
            )));
        }
    }
    let host = uri.host().unwrap_or("localhost").to_string();
    let port = uri.port_u16().unwrap_or(80);
    let addr = format!("{host}:{port}");
    let stream = tokio::net::TcpStream::connect(&addr).await.map_err(|e| {
        get_err(&format!(
            "dial tcp {addr}: connect: {}",
            crate::errno_text(&e)
        ))
    })?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| get_err(&e))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let mut req = hyper::Request::builder()
        .method("GET")
        .uri(path)
        .header("Host", uri.authority().map(|a| a.as_str()).unwrap_or(&host))
        .header("User-Agent", "Go-http-client/1.1");
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let req = req
        .body(Empty::<bytes::Bytes>::new())
        .map_err(|e| fail(format!("cannot build request: {e}")))?;
    let resp = sender.send_request(req).await.map_err(|e| get_err(&e))?;
    let code = resp.status().as_u16();
    if (200..300).contains(&code) {
        return Ok(());
    }
    let mut body = resp.into_body();
    let mut data = Vec::new();
    while data.len() < MAX_ERROR_BYTES {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(chunk) = frame.into_data() {
                    data.extend_from_slice(&chunk);
                }
            }
            _ => break,
        }
    }
    data.truncate(MAX_ERROR_BYTES);
    Err(CheckFailure {
        message: format!("non-2xx status code {code}"),
        details: first_lines(&String::from_utf8_lossy(&data)),
    })
}

async fn tcp_check(host: &str, port: u32) -> Result<(), CheckFailure> {
    let host = if host.is_empty() { "localhost" } else { host };
    let addr = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    tokio::net::TcpStream::connect(&addr)
        .await
        .map(drop)
        .map_err(|e| {
            fail(format!(
                "dial tcp {addr}: connect: {}",
                crate::errno_text(&e)
            ))
        })
}

async fn exec_check(
    exec: &cairn_plan::ExecCheck,
    base_env: &[(String, String)],
    root: Option<&crate::sandbox::Root>,
) -> Result<(), CheckFailure> {
    let args = shlex::split(&exec.command)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| fail("cannot parse command: invalid command"))?;
    let mut cmd = std::process::Command::new(&args[0]);
    cmd.args(&args[1..])
        .stdin(std::process::Stdio::null())
        .process_group(0);
    let mut env: BTreeMap<String, String> = std::env::vars().collect();
    env.extend(base_env.iter().cloned());
    env.extend(exec.environment.clone());
    cmd.env_clear().envs(env);
    let creds =
        users::normalize(exec.user_id, exec.group_id, &exec.user, &exec.group).map_err(fail)?;
    crate::sandbox::place(&mut cmd, root, &exec.working_dir, creds)
        .map_err(|e| fail(e.to_string()))?;
    let (read, write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| fail(e.to_string()))?;
    let write2 = write.try_clone().map_err(|e| fail(e.to_string()))?;
    cmd.stdout(write).stderr(write2);
    let (child, exit) = reaper::spawn(&mut cmd)
        .map_err(|e| fail(format!("fork/exec {}: {}", args[0], crate::errno_text(&e))))?;
    drop(cmd);
    let pid = child.id() as i32;
    let output = tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let mut kept: Vec<u8> = Vec::new();
        let Ok(mut rx) = tokio::net::unix::pipe::Receiver::from_owned_fd(read) else {
            return kept;
        };
        let mut buf = [0u8; 4096];
        while let Ok(n) = rx.read(&mut buf).await {
            if n == 0 {
                break;
            }
            kept.extend_from_slice(&buf[..n]);
            if kept.len() > MAX_ERROR_BYTES {
                kept.drain(..kept.len() - MAX_ERROR_BYTES);
            }
        }
        kept
    });
    // Killed with the group when the run is cancelled (timeout or stop), as Go's
    // CommandContext kills the process.
    struct KillOnDrop(i32, bool);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            if !self.1 {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(self.0),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
    let mut guard = KillOnDrop(pid, false);
    let code = exit.await.unwrap_or(-1);
    guard.1 = true;
    drop(child);
    let out = tokio::time::timeout(Duration::from_secs(1), output)
        .await
        .ok()
        .and_then(|r| r.ok())
        .unwrap_or_default();
    if code == 0 {
        return Ok(());
    }
    let message = if code > 0 {
        format!("exit status {code}")
    } else {
        format!("signal: {}", signal_name(-code))
    };
    Err(CheckFailure {
        message,
        details: last_lines(&String::from_utf8_lossy(&out)),
    })
}

fn signal_name(sig: i32) -> String {
    nix::sys::signal::Signal::try_from(sig)
        .map(|s| match s {
            nix::sys::signal::Signal::SIGKILL => "killed".to_string(),
            nix::sys::signal::Signal::SIGTERM => "terminated".to_string(),
            other => other.as_str().to_lowercase(),
        })
        .unwrap_or_else(|_| sig.to_string())
}

/// Runs a check once, bounded by its timeout.
pub async fn run_check(
    check: &Check,
    base_env: &[(String, String)],
    root: Option<&crate::sandbox::Root>,
) -> Result<(), CheckFailure> {
    let timeout = check.effective_timeout();
    let run = async {
        if let Some(h) = &check.http {
            http_check(&h.url, &h.headers).await
        } else if let Some(t) = &check.tcp {
            tcp_check(&t.host, t.port).await
        } else if let Some(e) = &check.exec {
            exec_check(e, base_env, root).await
        } else {
            Err(fail("invalid check config"))
        }
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(r) => r,
        Err(_) => Err(fail(format!(
            "check timed out after {}",
            cairn_plan::format_duration(timeout)
        ))),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TaskKind {
    Perform,
    Recover,
}

impl TaskKind {
    fn name(self) -> &'static str {
        match self {
            TaskKind::Perform => "perform-check",
            TaskKind::Recover => "recover-check",
        }
    }
}

/// A refresh request: run now, answer with the outcome.
type Refresh = oneshot::Sender<Result<(), CheckFailure>>;

/// The manager's record of one check.
struct CheckData {
    info: CheckInfo,
    /// The merged configuration the running change uses.
    config: Option<Check>,
    /// Stops the running change's task.
    stop: Option<oneshot::Sender<()>>,
    refresh: Option<mpsc::Sender<Refresh>>,
    success_metric: u64,
    failure_metric: u64,
}

/// All checks of a container.
#[derive(Default)]
pub(crate) struct CheckManager {
    checks: std::sync::Mutex<BTreeMap<String, CheckData>>,
}

fn level_name(l: CheckLevel) -> String {
    match l {
        CheckLevel::Unset => String::new(),
        CheckLevel::Alive => "alive".into(),
        CheckLevel::Ready => "ready".into(),
    }
}

impl CheckManager {
    /// Checks sorted by name.
    pub(crate) fn infos(&self) -> Vec<CheckInfo> {
        self.checks
            .lock()
            .unwrap()
            .values()
            .map(|d| d.info.clone())
            .collect()
    }

    /// OpenMetrics lines for the checks (Pebble's metric names).
    pub(crate) fn write_metrics(&self, out: &mut String) {
        use crate::metrics::{Kind, write};
        let checks = self.checks.lock().unwrap();
        for (name, d) in checks.iter() {
            let label = ("check", name.as_str());
            if d.info.status != "inactive" {
                write(
                    out,
                    "pebble_check_up",
                    Kind::Gauge,
                    "Whether the health check is up (1) or not (0)",
                    label,
                    u64::from(d.info.status == "up"),
                );
            }
            write(
                out,
                "pebble_check_success_count",
                Kind::Counter,
                "Number of times the check has succeeded",
                label,
                d.success_metric,
            );
            write(
                out,
                "pebble_check_failure_count",
                Kind::Counter,
                "Number of times the check has failed",
                label,
                d.failure_metric,
            );
        }
    }

    /// Whether check `name` has a running change.
    fn is_running(&self, name: &str) -> bool {
        self.checks
            .lock()
            .unwrap()
            .get(name)
            .is_some_and(|d| !d.info.change_id.is_empty())
    }

    /// Stops every running check (the supervisor is going away or restarting).
    pub(crate) fn stop_all(&self) {
        for d in self.checks.lock().unwrap().values_mut() {
            if let Some(stop) = d.stop.take() {
                let _ = stop.send(());
            }
            d.refresh = None;
        }
    }

    fn update(
        &self,
        config: &Check,
        change_id: &str,
        prev_change_id: &str,
        successes: u32,
        failures: u32,
    ) {
        let mut checks = self.checks.lock().unwrap();
        let d = checks
            .entry(config.name.clone())
            .or_insert_with(|| CheckData {
                info: CheckInfo {
                    name: config.name.clone(),
                    level: String::new(),
                    startup: String::new(),
                    status: String::new(),
                    successes: 0,
                    failures: 0,
                    threshold: 0,
                    change_id: String::new(),
                    prev_change_id: String::new(),
                },
                config: None,
                stop: None,
                refresh: None,
                success_metric: 0,
                failure_metric: 0,
            });
        let threshold = config.effective_threshold();
        d.info.status = if change_id.is_empty() {
            "inactive"
        } else if failures >= threshold {
            "down"
        } else {
            "up"
        }
        .into();
        d.info.level = level_name(config.level);
        d.info.startup = if config.startup == CheckStartup::Disabled {
            "disabled"
        } else {
            "enabled"
        }
        .into();
        d.info.successes = successes;
        d.info.failures = failures;
        d.info.threshold = threshold;
        d.info.change_id = change_id.into();
        d.info.prev_change_id = prev_change_id.into();
    }

    fn count(&self, name: &str, ok: bool) {
        if let Some(d) = self.checks.lock().unwrap().get_mut(name) {
            if ok {
                d.success_metric += 1;
            } else {
                d.failure_metric += 1;
            }
        }
    }
}

/// What the task runner of one check change needs.
struct Run {
    inner: Weak<Inner>,
    kind: TaskKind,
    change: u64,
    task: u64,
    config: Check,
    prev_change_id: String,
    successes: u32,
    failures: u32,
}

impl Inner {
    /// Creates a perform-check or recover-check change for `config` and starts its task.
    fn start_check_change(
        self: &Arc<Self>,
        kind: TaskKind,
        config: Check,
        prev_change_id: &str,
        successes: u32,
        failures: u32,
    ) -> String {
        let verb = match kind {
            TaskKind::Perform => "Perform",
            TaskKind::Recover => "Recover",
        };
        let summary = format!("{verb} {} check {:?}", check_type(&config), config.name);
        let (change, task) = {
            let mut book = self.book.lock().unwrap();
            let (id, tids) = book.new_change(
                kind.name(),
                &summary,
                &[(kind.name().to_string(), summary.clone())],
            );
            book.set_change_data(id, "check-name", serde_json::json!(config.name));
            book.set_task_status(tids[0], Status::Doing);
            (id, tids[0])
        };
        let change_id = change.to_string();
        self.checks
            .update(&config, &change_id, prev_change_id, successes, failures);
        let (stop_tx, stop_rx) = oneshot::channel();
        let (refresh_tx, refresh_rx) = mpsc::channel(1);
        if let Some(d) = self.checks.checks.lock().unwrap().get_mut(&config.name) {
            d.config = Some(config.clone());
            d.stop = Some(stop_tx);
            d.refresh = Some(refresh_tx);
        }
        self.changed();
        let run = Run {
            inner: Arc::downgrade(self),
            kind,
            change,
            task,
            config,
            prev_change_id: prev_change_id.to_string(),
            successes,
            failures,
        };
        tokio::spawn(run.run(stop_rx, refresh_rx));
        change_id
    }

    /// Pebble's `PlanChanged` for checks: keeps checks whose merged config is unchanged,
    /// aborts and restarts changed ones, starts new enabled ones, forgets removed ones.
    pub(crate) fn checks_plan_changed(self: &Arc<Self>, plan: &Plan) {
        let mut restart: Vec<Check> = Vec::new();
        let mut existing: Vec<String> = Vec::new();
        {
            let mut checks = self.checks.checks.lock().unwrap();
            let names: Vec<String> = checks.keys().cloned().collect();
            for name in names {
                let d = checks.get_mut(&name).unwrap();
                let Some(old) = d.config.clone() else {
                    // Not running: refreshed below from the plan.
                    continue;
                };
                if d.stop.is_none() {
                    continue;
                }
                existing.push(name.clone());
                if let Some(new) = plan.checks.get(&name) {
                    let new_merged = merged(plan, new);
                    if new_merged == old {
                        continue;
                    }
                    // Pebble keeps a running check running when only its startup turned to
                    // disabled.
                    if new.startup == CheckStartup::Disabled
                        && old.startup != CheckStartup::Disabled
                    {
                        continue;
                    }
                    restart.push(new_merged);
                }
                if let Some(stop) = d.stop.take() {
                    let _ = stop.send(());
                }
                checks.remove(&name);
            }
            checks.retain(|name, _| plan.checks.contains_key(name));
        }
        for (name, c) in &plan.checks {
            if existing.contains(name) {
                continue;
            }
            if c.starts_enabled() {
                restart.push(merged(plan, c));
            } else if !restart.iter().any(|r| &r.name == name) {
                self.checks.update(c, "", "", 0, 0);
            }
        }
        restart.sort_by(|a, b| a.name.cmp(&b.name));
        restart.dedup_by(|a, b| a.name == b.name);
        for c in restart {
            self.start_check_change(TaskKind::Perform, c, "", 0, 0);
        }
    }

    /// Starts the named checks that are not running; returns the names started.
    pub(crate) fn start_checks(
        self: &Arc<Self>,
        names: &[String],
    ) -> Result<Vec<String>, SupervisorError> {
        let plan = self.plan.lock().unwrap().clone();
        missing_checks(&plan, names, "start")?;
        let mut started = Vec::new();
        for name in names {
            let running = self.checks.is_running(name);
            if running || started.contains(name) {
                continue;
            }
            self.start_check_change(
                TaskKind::Perform,
                merged(&plan, &plan.checks[name]),
                "",
                0,
                0,
            );
            started.push(name.clone());
        }
        started.sort();
        Ok(started)
    }

    /// Stops the named running checks; returns the names stopped.
    pub(crate) fn stop_checks(
        self: &Arc<Self>,
        names: &[String],
    ) -> Result<Vec<String>, SupervisorError> {
        let plan = self.plan.lock().unwrap().clone();
        missing_checks(&plan, names, "stop")?;
        let mut stopped = Vec::new();
        for name in names {
            let (stop, prev, successes, failures) = {
                let mut checks = self.checks.checks.lock().unwrap();
                let Some(d) = checks.get_mut(name) else {
                    continue;
                };
                if d.info.change_id.is_empty() {
                    continue;
                }
                d.refresh = None;
                (
                    d.stop.take(),
                    d.info.prev_change_id.clone(),
                    d.info.successes,
                    d.info.failures,
                )
            };
            if let Some(stop) = stop {
                let _ = stop.send(());
            }
            self.checks
                .update(&plan.checks[name], "", &prev, successes, failures);
            stopped.push(name.clone());
        }
        stopped.sort();
        stopped.dedup();
        Ok(stopped)
    }

    /// Starts enabled checks that are not running (part of a replan).
    pub(crate) fn replan_checks(self: &Arc<Self>) {
        let plan = self.plan.lock().unwrap().clone();
        for (name, c) in &plan.checks {
            if !c.starts_enabled() {
                continue;
            }
            let running = self.checks.is_running(name);
            if !running {
                self.start_check_change(TaskKind::Perform, merged(&plan, c), "", 0, 0);
            }
        }
    }

    /// Runs a check now: through its running change if it has one (which counts it), else
    /// once on its own. Returns the check's info and the run's error, if any.
    pub(crate) async fn refresh_check(
        self: &Arc<Self>,
        name: &str,
    ) -> Result<(CheckInfo, Option<String>), SupervisorError> {
        let plan = self.plan.lock().unwrap().clone();
        let Some(check) = plan.checks.get(name) else {
            return Err(SupervisorError::NotFound(format!(
                "cannot find check with name {name:?}"
            )));
        };
        let refresh = self
            .checks
            .checks
            .lock()
            .unwrap()
            .get(name)
            .and_then(|d| d.refresh.clone());
        let result = match refresh {
            Some(tx) => {
                let (rtx, rrx) = oneshot::channel();
                if tx.send(rtx).await.is_err() {
                    run_check(
                        &merged(&plan, check),
                        &self.services.env,
                        self.services.root.as_ref(),
                    )
                    .await
                } else {
                    rrx.await.unwrap_or(Ok(()))
                }
            }
            None => {
                run_check(
                    &merged(&plan, check),
                    &self.services.env,
                    self.services.root.as_ref(),
                )
                .await
            }
        };
        let info = self
            .checks
            .checks
            .lock()
            .unwrap()
            .get(name)
            .map(|d| d.info.clone())
            .unwrap_or_else(|| CheckInfo {
                name: name.to_string(),
                level: level_name(check.level),
                startup: if check.starts_enabled() {
                    "enabled"
                } else {
                    "disabled"
                }
                .into(),
                status: "inactive".into(),
                successes: 0,
                failures: 0,
                threshold: check.effective_threshold(),
                change_id: String::new(),
                prev_change_id: String::new(),
            });
        Ok((info, result.err().map(|e| e.to_string())))
    }
}

fn missing_checks(plan: &Plan, names: &[String], action: &str) -> Result<(), SupervisorError> {
    if names.is_empty() {
        return Err(SupervisorError::BadRequest(format!(
            "must specify checks for {action} action"
        )));
    }
    let mut missing: Vec<&String> = names
        .iter()
        .filter(|n| !plan.checks.contains_key(*n))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    missing.sort();
    Err(SupervisorError::BadRequest(format!(
        "cannot {action} checks: cannot find checks in plan: {}",
        missing
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

fn pluralise(n: u32, one: &str, many: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {many}")
    }
}

impl Run {
    async fn run(mut self, mut stop: oneshot::Receiver<()>, mut refresh: mpsc::Receiver<Refresh>) {
        let period = self.config.effective_period();
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let reply = tokio::select! {
                _ = &mut stop => return self.stopped(),
                _ = ticker.tick() => None,
                r = refresh.recv() => match r {
                    Some(reply) => {
                        ticker.reset();
                        Some(reply)
                    }
                    None => continue,
                },
            };
            let Some(inner) = self.inner.upgrade() else {
                return;
            };
            let env = inner.services.env.clone();
            let root = inner.services.root.clone();
            drop(inner);
            let result = tokio::select! {
                _ = &mut stop => return self.stopped(),
                r = run_check(&self.config, &env, root.as_ref()) => r,
            };
            let done = self.record(&result);
            if let Some(reply) = reply {
                let _ = reply.send(result);
            }
            if done {
                return;
            }
        }
    }

    /// The change was aborted: its task ends `Undone`, as Pebble's aborted check tasks do.
    fn stopped(&self) {
        if let Some(inner) = self.inner.upgrade() {
            inner
                .book
                .lock()
                .unwrap()
                .set_task_status(self.task, Status::Undone);
            inner.changed();
        }
    }

    /// Counts one run; returns true when the task is finished.
    fn record(&mut self, result: &Result<(), CheckFailure>) -> bool {
        let Some(inner) = self.inner.upgrade() else {
            return true;
        };
        let name = self.config.name.clone();
        let threshold = self.config.effective_threshold();
        inner.checks.count(&name, result.is_ok());
        let change_id = self.change.to_string();
        match (self.kind, result) {
            (TaskKind::Perform, Err(e)) => {
                self.failures += 1;
                tracing::info!(
                    "Check {name:?} failure {}/{threshold}: {}",
                    self.failures,
                    e.message
                );
                if self.failures >= threshold {
                    tracing::info!(
                        "Check {name:?} threshold {threshold} hit, triggering action and recovering"
                    );
                    inner.services.check_failed(&name);
                    // Count this failure in the check's info before the change fails: the
                    // change's Error is what check-failed events are made from.
                    inner.checks.update(
                        &self.config,
                        &change_id,
                        &self.prev_change_id,
                        self.successes,
                        self.failures,
                    );
                    {
                        let mut book = inner.book.lock().unwrap();
                        book.task_error(self.task, &e.to_string());
                        book.set_task_status(self.task, Status::Error);
                    }
                    inner.changed();
                    inner.start_check_change(
                        TaskKind::Recover,
                        self.config.clone(),
                        &change_id,
                        self.successes,
                        self.failures,
                    );
                    return true;
                }
                inner
                    .book
                    .lock()
                    .unwrap()
                    .task_error(self.task, &e.to_string());
                inner.checks.update(
                    &self.config,
                    &change_id,
                    &self.prev_change_id,
                    self.successes,
                    self.failures,
                );
                inner.changed();
                false
            }
            (TaskKind::Perform, Ok(())) => {
                self.successes += 1;
                if self.failures > 0 {
                    let old = self.failures;
                    self.failures = 0;
                    inner.book.lock().unwrap().task_log(
                        self.task,
                        &format!("succeeded after {}", pluralise(old, "failure", "failures")),
                    );
                    inner.changed();
                }
                inner.checks.update(
                    &self.config,
                    &change_id,
                    &self.prev_change_id,
                    self.successes,
                    self.failures,
                );
                false
            }
            (TaskKind::Recover, Err(e)) => {
                self.failures += 1;
                tracing::info!(
                    "Check {name:?} failure {}/{threshold}: {}",
                    self.failures,
                    e.message
                );
                inner.checks.update(
                    &self.config,
                    &change_id,
                    &self.prev_change_id,
                    self.successes,
                    self.failures,
                );
                inner
                    .book
                    .lock()
                    .unwrap()
                    .task_error(self.task, &e.to_string());
                inner.changed();
                false
            }
            (TaskKind::Recover, Ok(())) => {
                inner
                    .book
                    .lock()
                    .unwrap()
                    .set_task_status(self.task, Status::Done);
                inner.changed();
                inner.start_check_change(TaskKind::Perform, self.config.clone(), &change_id, 1, 0);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_details_are_cut_like_pebble() {
        let body = "a\nb\nc\nd\ne\nf\ng\n";
        assert_eq!(first_lines(body), "a\nb\nc\nd\ne\n(...)");
        assert_eq!(last_lines(body), "c\nd\ne\nf\ng");
        let f = CheckFailure {
            message: "exit status 1".into(),
            details: "boom".into(),
        };
        assert_eq!(f.to_string(), "exit status 1; boom");
    }
}
