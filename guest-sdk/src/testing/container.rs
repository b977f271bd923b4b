//! A fake container: its layers and plan are the host's own (`cairn_plan::Layers`), so a
//! layer the host refuses is refused here with the same message; services start and stop
//! in the host's lanes (`requires` pulls in dependencies) without running anything.

use std::collections::BTreeMap;

use cairn_plan::Layers;

use super::exec::Execs;
use super::fs::FakeFs;
use crate::container::{NoticeFilter, ServiceInfo, ServiceStartup, ServiceStatus};
use crate::error::{ApiError, Error, Result};
use crate::event::{CheckInfo, CheckLevel, CheckStatus, Notice};
use crate::layer::{Layer, Plan};

/// A fake container: it keeps layers and the plan they combine into as the host does, and
/// tracks which services run and how checks stand (without running anything).
#[derive(Clone, Debug)]
pub struct TestContainer {
    can_connect: bool,
    layers: Layers,
    services: BTreeMap<String, ServiceState>,
    signals: Vec<(String, String)>,
    checks: BTreeMap<String, CheckState>,
    notices: Vec<Notice>,
    pub(super) execs: Execs,
    pub(super) fs: FakeFs,
}

/// What the container knows of a service it started (or a test set the status of).
#[derive(Clone, Debug)]
struct ServiceState {
    current: ServiceStatus,
    /// The definition it was last started with; `None` if it never started.
    config: Option<std::sync::Arc<cairn_plan::Service>>,
    starts: u32,
}

/// A check's status and failure count, once a test or a check event set them.
#[derive(Clone, Copy, Debug)]
struct CheckState {
    status: CheckStatus,
    failures: u32,
}

impl Default for TestContainer {
    fn default() -> Self {
        TestContainer {
            can_connect: true,
            layers: Layers::default(),
            services: BTreeMap::new(),
            signals: Vec::new(),
            checks: BTreeMap::new(),
            notices: Vec::new(),
            execs: Execs::default(),
            fs: FakeFs::default(),
        }
    }
}

/// An API error as the host's bindings give it (`Bad Request` unless 404).
pub(super) fn api(code: u16, message: String) -> Error {
    let status = match code {
        404 => "Not Found",
        _ => "Bad Request",
    };
    Error::Api(ApiError {
        code,
        status: status.into(),
        kind: String::new(),
        message,
    })
}

/// Pebble text (a plan's rendering, a layer's) read into the SDK's types.
fn sdk_form<T>(what: &str, parsed: Result<T>) -> T {
    parsed.unwrap_or_else(|e| panic!("cairn-sdk: the host's {what} does not read back: {e:#}"))
}

impl TestContainer {
    /// Whether the charm can connect to it.
    pub fn can_connect(&self) -> bool {
        self.can_connect
    }

    /// Sets whether the charm can connect to it.
    pub fn set_can_connect(&mut self, yes: bool) {
        self.can_connect = yes;
    }

    /// The layers added so far, with their labels, in order (as the host persists them).
    pub fn layers(&self) -> Vec<(String, Layer)> {
        self.layers
            .layers()
            .iter()
            .map(|l| {
                let layer = sdk_form("layer", Layer::from_yaml(&l.to_yaml()));
                (l.label.clone(), layer)
            })
            .collect()
    }

    /// The layer labelled `label`.
    pub fn layer(&self, label: &str) -> Option<Layer> {
        self.layers
            .layers()
            .iter()
            .find(|l| l.label == label)
            .map(|l| sdk_form("layer", Layer::from_yaml(&l.to_yaml())))
    }

    /// The combined plan of all layers, as the charm's `get_plan` sees it.
    pub fn plan(&self) -> Plan {
        sdk_form("plan", Plan::from_yaml(&self.plan_yaml()))
    }

    /// The combined plan as the host renders it (`get_plan_yaml`, `pebble plan`).
    pub fn plan_yaml(&self) -> String {
        self.layers.plan().to_yaml()
    }

    /// The status of service `name` (`inactive` if it never ran).
    pub fn service_status(&self, name: &str) -> ServiceStatus {
        self.services
            .get(name)
            .map_or(ServiceStatus::Inactive, |s| s.current)
    }

    /// Whether service `name` runs.
    pub fn is_running(&self, name: &str) -> bool {
        self.service_status(name) == ServiceStatus::Active
    }

    /// How many times service `name` was started (restarts included).
    pub fn start_count(&self, name: &str) -> u32 {
        self.services.get(name).map_or(0, |s| s.starts)
    }

    /// Sets a service's status, for example to simulate a crash (`ServiceStatus::Error`).
    pub fn set_service_status(&mut self, name: &str, status: ServiceStatus) {
        self.services
            .entry(name.to_string())
            .or_insert(ServiceState {
                current: status,
                config: None,
                starts: 0,
            })
            .current = status;
    }

    /// Sets a check's status (checks of the plan start `up`, or `inactive` when their
    /// startup is disabled); a `down` check has failed `threshold` times. To tell the charm,
    /// use the harness's [`check_failed`](super::Harness::check_failed) and
    /// [`check_recovered`](super::Harness::check_recovered), which set this too.
    pub fn set_check_status(&mut self, name: &str, status: CheckStatus) {
        let failures = match status {
            CheckStatus::Down => self
                .layers
                .plan()
                .checks
                .get(name)
                .map_or(cairn_plan::DEFAULT_CHECK_THRESHOLD, |c| {
                    c.effective_threshold()
                }),
            CheckStatus::Up | CheckStatus::Inactive => 0,
        };
        self.checks
            .insert(name.to_string(), CheckState { status, failures });
    }

    /// The status of check `name` of the plan (`None` if the plan has no such check).
    pub fn check_status(&self, name: &str) -> Option<CheckStatus> {
        self.check_infos(None, &[name.to_string()])
            .first()
            .map(|i| i.status)
    }

    /// Records a custom notice occurrence as a workload would (`pebble notify`); returns
    /// the notice, to deliver with a custom-notice event (the harness's
    /// [`custom_notice`](super::Harness::custom_notice) does both).
    pub fn add_notice(&mut self, key: &str, data: &[(&str, &str)]) -> Notice {
        let data: BTreeMap<String, String> = data
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let now = "2026-01-01T00:00:00Z".to_string();
        if let Some(n) = self.notices.iter_mut().find(|n| n.key == key) {
            n.occurrences += 1;
            n.last_data = data;
            return n.clone();
        }
        let n = Notice {
            id: (self.notices.len() + 1).to_string(),
            user_id: Some(0),
            kind: "custom".into(),
            key: key.to_string(),
            first_occurred: now.clone(),
            last_occurred: now.clone(),
            last_repeated: now,
            occurrences: 1,
            last_data: data,
            repeat_after: None,
            expire_after: Some(std::time::Duration::from_secs(7 * 24 * 3600)),
        };
        self.notices.push(n.clone());
        n
    }

    /// Signals sent so far, as (service, signal with its `SIG` prefix), in order.
    pub fn signals(&self) -> &[(String, String)] {
        &self.signals
    }

    pub(crate) fn check_infos(
        &self,
        level: Option<CheckLevel>,
        names: &[String],
    ) -> Vec<CheckInfo> {
        self.layers
            .plan()
            .checks
            .iter()
            .filter(|(n, _)| names.is_empty() || names.contains(n))
            .filter_map(|(n, c)| {
                let check_level = match c.level {
                    cairn_plan::CheckLevel::Unset => None,
                    cairn_plan::CheckLevel::Alive => Some(CheckLevel::Alive),
                    cairn_plan::CheckLevel::Ready => Some(CheckLevel::Ready),
                };
                if level.is_some() && check_level != level {
                    return None;
                }
                let state = self.checks.get(n).copied().unwrap_or(CheckState {
                    status: if c.starts_enabled() {
                        CheckStatus::Up
                    } else {
                        CheckStatus::Inactive
                    },
                    failures: 0,
                });
                Some(CheckInfo {
                    name: n.clone(),
                    level: check_level,
                    status: state.status,
                    successes: 0,
                    failures: state.failures,
                    threshold: c.effective_threshold(),
                    change_id: None,
                })
            })
            .collect()
    }

    pub(crate) fn checks_action(&mut self, start: bool, names: &[String]) -> Result<Vec<String>> {
        let action = if start { "start" } else { "stop" };
        if names.is_empty() {
            return Err(api(400, format!("must specify checks for {action} action")));
        }
        let plan = self.layers.plan();
        let mut missing: Vec<&str> = names
            .iter()
            .filter(|n| !plan.checks.contains_key(*n))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            missing.sort();
            return Err(api(
                400,
                format!(
                    "cannot {action} checks: cannot find checks in plan: {}",
                    missing.join(", ")
                ),
            ));
        }
        let mut changed = Vec::new();
        for info in self.check_infos(None, names) {
            let running = info.status != CheckStatus::Inactive;
            if running != start {
                let status = if start {
                    CheckStatus::Up
                } else {
                    CheckStatus::Inactive
                };
                self.checks.insert(
                    info.name.clone(),
                    CheckState {
                        status,
                        failures: 0,
                    },
                );
                changed.push(info.name);
            }
        }
        changed.sort();
        Ok(changed)
    }

    pub(crate) fn find_notices(&self, filter: &NoticeFilter) -> Vec<Notice> {
        self.notices
            .iter()
            .filter(|n| filter.types.is_empty() || filter.types.contains(&n.kind))
            .filter(|n| filter.keys.is_empty() || filter.keys.contains(&n.key))
            .cloned()
            .collect()
    }

    pub(crate) fn notice(&self, id: &str) -> Result<Notice> {
        self.notices
            .iter()
            .find(|n| n.id == id)
            .cloned()
            .ok_or_else(|| api(404, format!("cannot find notice with ID {id:?}")))
    }

    pub(crate) fn send_signal(&mut self, signal: &str, names: &[String]) -> Result<()> {
        if names.is_empty() {
            return Err(api(400, "must specify one or more services".into()));
        }
        let signal = if signal.starts_with("SIG") {
            signal.to_string()
        } else {
            format!("SIG{signal}")
        };
        let errors: Vec<String> = names
            .iter()
            .filter(|n| !self.is_running(n))
            .map(|n| format!("cannot send signal to {n:?}: service is not running"))
            .collect();
        // A signal that cannot be sent is the server's error (500), as Pebble answers.
        if !errors.is_empty() {
            return Err(api(500, errors.join("; ")));
        }
        for n in names {
            self.signals.push((n.clone(), signal.clone()));
        }
        Ok(())
    }

    /// Adds a layer given as YAML, as the host's `add-layer` does (its parsing, combining
    /// and validation, its messages); a refused layer changes nothing.
    pub(crate) fn add_layer(&mut self, label: &str, yaml: &str, combine: bool) -> Result<()> {
        self.layers
            .add_yaml(label, yaml.as_bytes(), combine, false)
            .map_err(|e| api(400, e.to_string()))
    }

    /// Restarts services whose definition changed since they started and starts the
    /// `startup: enabled` ones, with their requirements, as the host's replan does.
    pub(crate) fn replan(&mut self) -> Result<()> {
        let plan = self.layers.plan().clone();
        let mut changed: Vec<String> = self
            .services
            .iter()
            .filter(|(name, s)| {
                s.config
                    .as_ref()
                    .is_some_and(|started| plan.services.get(*name) != Some(started))
            })
            .map(|(name, _)| name.clone())
            .collect();
        changed.sort();
        let lanes = plan
            .replan_lanes(&changed)
            .map_err(|e| api(400, format!("cannot replan services: {e}")))?;
        self.stop_all(lanes.stop.iter().flatten());
        self.start_all(&plan, lanes.start.iter().flatten());
        Ok(())
    }

    /// Starts the `startup: enabled` services with their requirements; an error if there
    /// are none, as in the host.
    pub(crate) fn autostart(&mut self) -> Result<()> {
        let plan = self.layers.plan().clone();
        let lanes = plan
            .start_lanes(&plan.default_services())
            .map_err(|e| api(400, format!("cannot autostart services: {e}")))?;
        if lanes.iter().all(Vec::is_empty) {
            return Err(Error::Api(ApiError {
                code: 400,
                status: "Bad Request".into(),
                kind: "no-default-services".into(),
                message: "no default services".into(),
            }));
        }
        self.start_all(&plan, lanes.iter().flatten());
        Ok(())
    }

    /// The lanes of a start, stop or restart of `names`, with the host's messages.
    fn lanes(&self, action: &str, names: &[String], stop: bool) -> Result<Vec<Vec<String>>> {
        if names.is_empty() {
            return Err(api(
                400,
                format!("must specify services for {action} action"),
            ));
        }
        let plan = self.layers.plan();
        if stop {
            plan.stop_lanes(names)
        } else {
            plan.start_lanes(names)
        }
        .map_err(|e| api(400, format!("cannot {action} services: {e}")))
    }

    /// Starts the named services and those they require.
    pub(crate) fn start(&mut self, names: &[String]) -> Result<()> {
        let lanes = self.lanes("start", names, false)?;
        let plan = self.layers.plan().clone();
        self.start_all(&plan, lanes.iter().flatten());
        Ok(())
    }

    /// Stops the named services and those that require them.
    pub(crate) fn stop(&mut self, names: &[String]) -> Result<()> {
        let lanes = self.lanes("stop", names, true)?;
        self.stop_all(lanes.iter().flatten());
        Ok(())
    }

    /// Stops the named services, then starts them with what they require.
    pub(crate) fn restart(&mut self, names: &[String]) -> Result<()> {
        let stop = self.lanes("restart", names, true)?;
        let start = self.lanes("restart", names, false)?;
        self.stop_all(stop.iter().flatten().filter(|n| names.contains(n)));
        let plan = self.layers.plan().clone();
        self.start_all(&plan, start.iter().flatten());
        Ok(())
    }

    pub(crate) fn services(&self, names: &[String]) -> Vec<ServiceInfo> {
        self.layers
            .plan()
            .services
            .iter()
            .filter(|(n, _)| names.is_empty() || names.contains(n))
            .map(|(name, svc)| ServiceInfo {
                current: self.service_status(name),
                startup: if svc.startup == cairn_plan::ServiceStartup::Enabled {
                    ServiceStartup::Enabled
                } else {
                    ServiceStartup::Disabled
                },
                current_since: None,
                name: name.clone(),
            })
            .collect()
    }

    /// Starts each named service of `plan` that is not running.
    fn start_all<'a>(
        &mut self,
        plan: &cairn_plan::Plan,
        names: impl IntoIterator<Item = &'a String>,
    ) {
        for name in names {
            if self.is_running(name) {
                continue;
            }
            let Some(config) = plan.services.get(name) else {
                continue;
            };
            let state = self.services.entry(name.clone()).or_insert(ServiceState {
                current: ServiceStatus::Inactive,
                config: None,
                starts: 0,
            });
            state.current = ServiceStatus::Active;
            state.config = Some(config.clone());
            state.starts += 1;
        }
    }

    /// Stops each named service.
    fn stop_all<'a>(&mut self, names: impl IntoIterator<Item = &'a String>) {
        for name in names {
            if let Some(s) = self.services.get_mut(name) {
                s.current = ServiceStatus::Inactive;
            }
        }
    }
}
