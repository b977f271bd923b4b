//! Pebble's checks manager (`checkstate`): every running check is a change with one task,
//! `perform-check` while the check is up and `recover-check` once it is down.
//!
//! A perform-check runs the check every `period` (the first run one period after it
//! starts), each run bounded by `timeout`. A failure is counted and logged on the task;
//! at `threshold` failures the services' `on-check-failure` actions run and the task fails,
//! which ends the change in `Error` and starts a recover-check change keeping the counts.
//! A recover-check keeps counting failures and, at the first success, ends `Done` and
//! starts a new perform-check. Stopping a check aborts its change, which ends `Done` (as
//! Pebble's: the handler returns cleanly when its tomb dies). A plan change restarts only
//! the checks whose merged configuration changed (the old change ends `Done` too).
//!
//! The [`CheckManager`] owns the checks' state; the tasks are handlers of the supervisor's
//! runner (`run.rs`), and the check kinds themselves live in `checkers.rs`.

mod checkers;
mod run;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use cairn_plan::{Check, CheckLevel, CheckStartup, Plan};
use tokio::sync::{mpsc, oneshot};

use crate::{Inner, SupervisorError};
pub use checkers::CheckFailure;
pub(crate) use checkers::merged;
use checkers::run_check;
use run::TaskKind;

/// Whether a check is passing, as `GET /v1/checks` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckStatus {
    /// Running and below its failure threshold.
    Up,
    /// Running and at or past its failure threshold.
    Down,
    /// Not running.
    Inactive,
}

impl CheckStatus {
    /// Pebble's name for the status.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Up => "up",
            CheckStatus::Down => "down",
            CheckStatus::Inactive => "inactive",
        }
    }

    /// The status Pebble names `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        [CheckStatus::Up, CheckStatus::Down, CheckStatus::Inactive]
            .into_iter()
            .find(|s| s.as_str() == name)
    }
}

/// A check as the supervisor reports it (`GET /v1/checks` renders it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckInfo {
    /// The check's name.
    pub name: String,
    /// `alive`, `ready` or unset.
    pub level: CheckLevel,
    /// Whether it starts with the plan.
    pub startup: CheckStartup,
    /// Up, down or inactive.
    pub status: CheckStatus,
    /// Successful runs in the current change (a recover-check's success counts 1).
    pub successes: u32,
    /// Consecutive failures.
    pub failures: u32,
    /// Failures that make the check down.
    pub threshold: u32,
    /// The running change, if any (empty when none).
    pub change_id: String,
    /// The change before it (perform-check before a recover-check and vice versa).
    pub prev_change_id: String,
}

impl CheckInfo {
    /// The info of a check that is not running.
    fn inactive(config: &Check) -> Self {
        CheckInfo {
            name: config.name.clone(),
            level: config.level,
            startup: if config.starts_enabled() {
                CheckStartup::Enabled
            } else {
                CheckStartup::Disabled
            },
            status: CheckStatus::Inactive,
            successes: 0,
            failures: 0,
            threshold: config.effective_threshold(),
            change_id: String::new(),
            prev_change_id: String::new(),
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
    /// The running change, to abort when the check stops.
    change: Option<u64>,
    refresh: Option<mpsc::Sender<Refresh>>,
    success_metric: u64,
    failure_metric: u64,
}

/// All checks of a container. Its lock is a leaf: nothing else is locked while it is held.
#[derive(Default)]
pub(crate) struct CheckManager {
    checks: Mutex<BTreeMap<String, CheckData>>,
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

    /// The info of check `name`, if the manager knows it.
    fn info(&self, name: &str) -> Option<CheckInfo> {
        self.checks
            .lock()
            .unwrap()
            .get(name)
            .map(|d| d.info.clone())
    }

    /// OpenMetrics lines for the checks (Pebble's metric names).
    pub(crate) fn write_metrics(&self, out: &mut String) {
        use crate::metrics::{Kind, write};
        let checks = self.checks.lock().unwrap();
        for (name, d) in checks.iter() {
            let label = ("check", name.as_str());
            if d.info.status != CheckStatus::Inactive {
                write(
                    out,
                    "pebble_check_up",
                    Kind::Gauge,
                    "Whether the health check is up (1) or not (0)",
                    label,
                    u64::from(d.info.status == CheckStatus::Up),
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

    /// Forgets every running check's change and returns them, for the caller to abort
    /// (the supervisor is going away or restarting).
    fn take_all(&self) -> Vec<u64> {
        self.checks
            .lock()
            .unwrap()
            .values_mut()
            .filter_map(|d| {
                d.refresh = None;
                d.change.take()
            })
            .collect()
    }

    /// Records the state of check `config.name`: its change (empty when not running) and
    /// counts; the status follows from them.
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
                info: CheckInfo::inactive(config),
                config: None,
                change: None,
                refresh: None,
                success_metric: 0,
                failure_metric: 0,
            });
        let threshold = config.effective_threshold();
        d.info = CheckInfo {
            status: if change_id.is_empty() {
                CheckStatus::Inactive
            } else if failures >= threshold {
                CheckStatus::Down
            } else {
                CheckStatus::Up
            },
            successes,
            failures,
            change_id: change_id.into(),
            prev_change_id: prev_change_id.into(),
            ..CheckInfo::inactive(config)
        };
    }

    /// Counts a run in the metrics.
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

impl Inner {
    /// Stops every running check (the supervisor is restarting): their changes are aborted.
    pub(crate) fn stop_all_checks(&self) {
        for change in self.checks.take_all() {
            self.abort(change);
        }
    }

    /// Ends every running check as Pebble's check manager does when the daemon stops: the
    /// checks are cancelled, not aborted, so their changes end `Done`. Returns the changes.
    pub(crate) fn end_all_checks(&self) -> Vec<u64> {
        let changes = self.checks.take_all();
        let tasks: Vec<u64> = {
            let state = self.state.lock().unwrap();
            changes
                .iter()
                .flat_map(|c| state.book.change_tasks(*c))
                .collect()
        };
        for task in tasks {
            self.runner.cancel(task);
        }
        changes
    }

    /// Pebble's `PlanChanged` for checks: keeps checks whose merged config is unchanged,
    /// aborts and restarts changed ones, starts new enabled ones, forgets removed ones.
    pub(crate) fn checks_plan_changed(self: &Arc<Self>, plan: &Plan) {
        let mut restart: Vec<Check> = Vec::new();
        let mut existing: Vec<String> = Vec::new();
        let mut abort: Vec<u64> = Vec::new();
        {
            let mut checks = self.checks.checks.lock().unwrap();
            let names: Vec<String> = checks.keys().cloned().collect();
            for name in names {
                let d = checks.get_mut(&name).unwrap();
                let Some(old) = d.config.clone() else {
                    // Not running: refreshed below from the plan.
                    continue;
                };
                if d.change.is_none() {
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
                abort.extend(d.change.take());
                checks.remove(&name);
            }
            checks.retain(|name, _| plan.checks.contains_key(name));
        }
        for change in abort {
            self.abort(change);
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
        let plan = self.plan();
        missing_checks(&plan, names, "start")?;
        let mut started = Vec::new();
        for name in names {
            if self.checks.is_running(name) || started.contains(name) {
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
        let plan = self.plan();
        missing_checks(&plan, names, "stop")?;
        let mut stopped = Vec::new();
        for name in names {
            let (change, prev, successes, failures) = {
                let mut checks = self.checks.checks.lock().unwrap();
                let Some(d) = checks.get_mut(name) else {
                    continue;
                };
                if d.info.change_id.is_empty() {
                    continue;
                }
                d.refresh = None;
                (
                    d.change.take(),
                    d.info.prev_change_id.clone(),
                    d.info.successes,
                    d.info.failures,
                )
            };
            if let Some(change) = change {
                self.abort(change);
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
        let plan = self.plan();
        for (name, c) in &plan.checks {
            if c.starts_enabled() && !self.checks.is_running(name) {
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
        let plan = self.plan();
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
        let mut result = None;
        if let Some(tx) = refresh {
            let (rtx, rrx) = oneshot::channel();
            if tx.send(rtx).await.is_ok() {
                result = Some(rrx.await.unwrap_or(Ok(())));
            }
        }
        let result = match result {
            Some(r) => r,
            None => run_check(&merged(&plan, check), &self.container).await,
        };
        let info = self
            .checks
            .info(name)
            .unwrap_or_else(|| CheckInfo::inactive(check));
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
