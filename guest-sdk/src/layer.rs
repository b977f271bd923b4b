//! Typed Pebble layers and plans, with builders and serde.
//!
//! Field names are exactly Pebble's layer YAML (`override`, `on-check-failure`,
//! `backoff-delay`, ...); unset fields are skipped when a layer is written. Durations are
//! Go duration strings (`"500ms"`, `"5s"`, `"1m30s"`), as Pebble requires.
//!
//! ```
//! use cairn_sdk::layer::{Check, Layer, Service};
//!
//! let layer = Layer::new()
//!     .summary("web layer")
//!     .service(
//!         "http",
//!         Service::new()
//!             .command("python3 -m http.server 8080")
//!             .enabled()
//!             .env("PORT", "8080"),
//!     )
//!     .check("up", Check::tcp(8080).period("5s"));
//! let yaml = layer.to_yaml();
//! assert!(yaml.contains("startup: \"enabled\""));
//! assert_eq!(Layer::from_yaml(&yaml).unwrap(), layer);
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
pub use crate::event::CheckLevel;
use crate::yaml::to_yaml;

/// How a layer's entry combines with the same-named entry of earlier layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Override {
    /// Merge field by field (lists append, maps merge, scalars overwrite).
    Merge,
    /// Replace the whole entry.
    Replace,
}

/// Whether a service (or check) starts by itself on `replan`/`autostart`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Startup {
    /// Started by `replan` and `autostart`.
    Enabled,
    /// Started only on request.
    Disabled,
}

/// What Pebble does when a service exits or one of its checks fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceAction {
    /// Restart the service (with backoff).
    Restart,
    /// Shut Pebble down.
    Shutdown,
    /// Shut Pebble down reporting failure (`on-success` only).
    FailureShutdown,
    /// Shut Pebble down reporting success (`on-failure`, `on-check-failure`).
    SuccessShutdown,
    /// Leave the service stopped.
    Ignore,
}

/// Where a log target sends logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogTargetType {
    /// Grafana Loki (push API URL).
    Loki,
    /// OpenTelemetry (OTLP/HTTP base URL).
    Opentelemetry,
    /// Syslog over `tcp://` or `udp://`.
    Syslog,
}

/// A Pebble layer: services, checks and log targets, with optional summary and description.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Layer {
    /// One-line summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Longer description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Services by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub services: BTreeMap<String, Service>,
    /// Health checks by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub checks: BTreeMap<String, Check>,
    /// Log forwarding targets by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub log_targets: BTreeMap<String, LogTarget>,
}

impl Layer {
    /// An empty layer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the summary.
    pub fn summary(mut self, summary: impl Into<String>) -> Self {
        self.summary = Some(summary.into());
        self
    }

    /// Sets the description.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Adds (or replaces) the service `name`.
    pub fn service(mut self, name: impl Into<String>, service: Service) -> Self {
        self.services.insert(name.into(), service);
        self
    }

    /// Adds (or replaces) the check `name`.
    pub fn check(mut self, name: impl Into<String>, check: Check) -> Self {
        self.checks.insert(name.into(), check);
        self
    }

    /// Adds (or replaces) the log target `name`.
    pub fn log_target(mut self, name: impl Into<String>, target: LogTarget) -> Self {
        self.log_targets.insert(name.into(), target);
        self
    }

    /// The layer as Pebble layer YAML (block style, every string quoted).
    pub fn to_yaml(&self) -> String {
        to_yaml(self)
    }

    /// Parses Pebble layer YAML (unknown fields are ignored).
    pub fn from_yaml(yaml: &str) -> Result<Self> {
        parse_yaml(yaml, "layer")
    }
}

/// A service in a layer (Pebble's `services.<name>`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Service {
    /// `merge` or `replace`; every service in a layer must set it.
    #[serde(
        default,
        rename = "override",
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub override_: Option<Override>,
    /// One-line summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Longer description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The command, split like a shell would (no shell runs it); may end with `[ default args ]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// `enabled` or `disabled` (the default).
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub startup: Option<Startup>,
    /// Services this one starts after.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
    /// Services this one starts before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub before: Vec<String>,
    /// Services that must run for this one to start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requires: Vec<String>,
    /// Environment variables added to the supervisor's own.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, String>,
    /// User name to run as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// User id to run as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<u32>,
    /// Group name to run as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Group id to run as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<u32>,
    /// Working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// What to do when the service exits with status 0 (default `restart`).
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub on_success: Option<ServiceAction>,
    /// What to do when the service exits with another status (default `restart`).
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub on_failure: Option<ServiceAction>,
    /// What to do when a check fails, by check name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub on_check_failure: BTreeMap<String, ServiceAction>,
    /// First restart delay (default `500ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_delay: Option<String>,
    /// Restart delay multiplier (default 2.0, at least 1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_factor: Option<f64>,
    /// Longest restart delay (default `30s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_limit: Option<String>,
    /// Time between SIGTERM and SIGKILL on stop (default `5s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_delay: Option<String>,
}

impl Service {
    /// A service with `override: replace` and nothing else set.
    pub fn new() -> Self {
        Service {
            override_: Some(Override::Replace),
            ..Self::default()
        }
    }

    /// Sets `override` (`merge` or `replace`).
    pub fn with_override(mut self, how: Override) -> Self {
        self.override_ = Some(how);
        self
    }

    /// Sets the summary.
    pub fn summary(mut self, summary: impl Into<String>) -> Self {
        self.summary = Some(summary.into());
        self
    }

    /// Sets the description.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Sets the command.
    pub fn command(mut self, command: impl Into<String>) -> Self {
        self.command = Some(command.into());
        self
    }

    /// Sets `startup`.
    pub fn startup(mut self, startup: Startup) -> Self {
        self.startup = Some(startup);
        self
    }

    /// Sets `startup: enabled`.
    pub fn enabled(self) -> Self {
        self.startup(Startup::Enabled)
    }

    /// Sets `startup: disabled`.
    pub fn disabled(self) -> Self {
        self.startup(Startup::Disabled)
    }

    /// Sets one environment variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.environment.insert(key.into(), value.into());
        self
    }

    /// Sets several environment variables.
    pub fn environment<K: Into<String>, V: Into<String>>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.environment
            .extend(vars.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// Starts after `service`.
    pub fn after(mut self, service: impl Into<String>) -> Self {
        self.after.push(service.into());
        self
    }

    /// Starts before `service`.
    pub fn before(mut self, service: impl Into<String>) -> Self {
        self.before.push(service.into());
        self
    }

    /// Requires `service`.
    pub fn requires(mut self, service: impl Into<String>) -> Self {
        self.requires.push(service.into());
        self
    }

    /// Runs as user `name`.
    pub fn user(mut self, name: impl Into<String>) -> Self {
        self.user = Some(name.into());
        self
    }

    /// Runs as user id `id`.
    pub fn user_id(mut self, id: u32) -> Self {
        self.user_id = Some(id);
        self
    }

    /// Runs as group `name`.
    pub fn group(mut self, name: impl Into<String>) -> Self {
        self.group = Some(name.into());
        self
    }

    /// Runs as group id `id`.
    pub fn group_id(mut self, id: u32) -> Self {
        self.group_id = Some(id);
        self
    }

    /// Runs in directory `dir`.
    pub fn working_dir(mut self, dir: impl Into<String>) -> Self {
        self.working_dir = Some(dir.into());
        self
    }

    /// Sets `on-success`.
    pub fn on_success(mut self, action: ServiceAction) -> Self {
        self.on_success = Some(action);
        self
    }

    /// Sets `on-failure`.
    pub fn on_failure(mut self, action: ServiceAction) -> Self {
        self.on_failure = Some(action);
        self
    }

    /// Sets what to do when check `check` fails.
    pub fn on_check_failure(mut self, check: impl Into<String>, action: ServiceAction) -> Self {
        self.on_check_failure.insert(check.into(), action);
        self
    }

    /// Sets `backoff-delay` (a Go duration such as `"500ms"`).
    pub fn backoff_delay(mut self, delay: impl Into<String>) -> Self {
        self.backoff_delay = Some(delay.into());
        self
    }

    /// Sets `backoff-factor`.
    pub fn backoff_factor(mut self, factor: f64) -> Self {
        self.backoff_factor = Some(factor);
        self
    }

    /// Sets `backoff-limit` (a Go duration such as `"30s"`).
    pub fn backoff_limit(mut self, limit: impl Into<String>) -> Self {
        self.backoff_limit = Some(limit.into());
        self
    }

    /// Sets `kill-delay` (a Go duration such as `"5s"`).
    pub fn kill_delay(mut self, delay: impl Into<String>) -> Self {
        self.kill_delay = Some(delay.into());
        self
    }
}

/// A health check in a layer (Pebble's `checks.<name>`): exactly one of `http`, `tcp`, `exec`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Check {
    /// `merge` or `replace`; every check in a layer must set it.
    #[serde(
        default,
        rename = "override",
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub override_: Option<Override>,
    /// `alive` or `ready`.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub level: Option<CheckLevel>,
    /// `enabled` (the default) or `disabled`.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub startup: Option<Startup>,
    /// Time between runs (default `10s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<String>,
    /// Time a run may take (default `3s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Failures in a row that make the check `down` (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<u32>,
    /// An HTTP GET that must answer 2xx.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpCheck>,
    /// A TCP connect that must succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpCheck>,
    /// A command that must exit 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecCheck>,
}

/// The `http` part of a check.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct HttpCheck {
    /// The URL to GET.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
    /// Extra request headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

/// The `tcp` part of a check.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct TcpCheck {
    /// The port to connect to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The host (default `localhost`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// The `exec` part of a check.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ExecCheck {
    /// The command to run.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub command: String,
    /// A service whose environment, user, group and working directory the command inherits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_context: Option<String>,
    /// Environment variables (merged over the service context's).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, String>,
    /// User name to run as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// User id to run as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<u32>,
    /// Group name to run as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Group id to run as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<u32>,
    /// Working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
}

impl Check {
    /// An `override: replace` check that GETs `url`.
    pub fn http(url: impl Into<String>) -> Self {
        Check {
            override_: Some(Override::Replace),
            http: Some(HttpCheck {
                url: url.into(),
                headers: BTreeMap::new(),
            }),
            ..Self::default()
        }
    }

    /// An `override: replace` check that connects to `port` on `localhost`.
    pub fn tcp(port: u16) -> Self {
        Check {
            override_: Some(Override::Replace),
            tcp: Some(TcpCheck {
                port: Some(port),
                host: None,
            }),
            ..Self::default()
        }
    }

    /// An `override: replace` check that runs `command`.
    pub fn exec(command: impl Into<String>) -> Self {
        Check {
            override_: Some(Override::Replace),
            exec: Some(ExecCheck {
                command: command.into(),
                ..ExecCheck::default()
            }),
            ..Self::default()
        }
    }

    /// Sets `override` (`merge` or `replace`).
    pub fn with_override(mut self, how: Override) -> Self {
        self.override_ = Some(how);
        self
    }

    /// Sets `level`.
    pub fn level(mut self, level: CheckLevel) -> Self {
        self.level = Some(level);
        self
    }

    /// Sets `startup`.
    pub fn startup(mut self, startup: Startup) -> Self {
        self.startup = Some(startup);
        self
    }

    /// Sets `period` (a Go duration such as `"10s"`).
    pub fn period(mut self, period: impl Into<String>) -> Self {
        self.period = Some(period.into());
        self
    }

    /// Sets `timeout` (a Go duration such as `"3s"`).
    pub fn timeout(mut self, timeout: impl Into<String>) -> Self {
        self.timeout = Some(timeout.into());
        self
    }

    /// Sets `threshold`.
    pub fn threshold(mut self, threshold: u32) -> Self {
        self.threshold = Some(threshold);
        self
    }

    /// Adds an HTTP header (for `http` checks).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.http
            .get_or_insert_with(HttpCheck::default)
            .headers
            .insert(name.into(), value.into());
        self
    }

    /// Sets the host to connect to (for `tcp` checks).
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.tcp.get_or_insert_with(TcpCheck::default).host = Some(host.into());
        self
    }

    /// Runs the command in `service`'s context (for `exec` checks).
    pub fn service_context(mut self, service: impl Into<String>) -> Self {
        self.exec
            .get_or_insert_with(ExecCheck::default)
            .service_context = Some(service.into());
        self
    }

    /// Sets an environment variable of the command (for `exec` checks).
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.exec
            .get_or_insert_with(ExecCheck::default)
            .environment
            .insert(key.into(), value.into());
        self
    }
}

/// A log forwarding target in a layer (Pebble's `log-targets.<name>`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct LogTarget {
    /// `merge` or `replace`.
    #[serde(
        default,
        rename = "override",
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub override_: Option<Override>,
    /// `loki`, `opentelemetry` or `syslog`.
    #[serde(
        default,
        rename = "type",
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub type_: Option<LogTargetType>,
    /// Where to send logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Services whose logs go there (`all`, `-svc`, `-all`; last match wins).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
    /// Labels attached to every line.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl LogTarget {
    /// An `override: replace` target of `kind` at `location`, forwarding every service.
    pub fn new(kind: LogTargetType, location: impl Into<String>) -> Self {
        LogTarget {
            override_: Some(Override::Replace),
            type_: Some(kind),
            location: Some(location.into()),
            services: vec!["all".into()],
            labels: BTreeMap::new(),
        }
    }
}

/// A container's combined plan: every layer merged in order (`ops.pebble.Plan`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Plan {
    /// Services by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub services: BTreeMap<String, Service>,
    /// Checks by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub checks: BTreeMap<String, Check>,
    /// Log targets by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub log_targets: BTreeMap<String, LogTarget>,
}

impl Plan {
    /// Parses a plan as `get-plan` returns it.
    pub fn from_yaml(yaml: &str) -> Result<Self> {
        parse_yaml(yaml, "plan")
    }

    /// The plan as YAML.
    pub fn to_yaml(&self) -> String {
        to_yaml(self)
    }

    /// The service `name`, if the plan has it.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.get(name)
    }
}

/// What [`Container::add_layer`](crate::Container::add_layer) accepts: a typed [`Layer`] or YAML text.
pub trait LayerSource {
    /// The layer as YAML text.
    fn layer_yaml(&self) -> String;
}

impl LayerSource for Layer {
    fn layer_yaml(&self) -> String {
        self.to_yaml()
    }
}

impl LayerSource for str {
    fn layer_yaml(&self) -> String {
        self.to_string()
    }
}

impl LayerSource for String {
    fn layer_yaml(&self) -> String {
        self.clone()
    }
}

impl<T: LayerSource + ?Sized> LayerSource for &T {
    fn layer_yaml(&self) -> String {
        (**self).layer_yaml()
    }
}

/// Reads an optional enum, taking an empty string (Go's zero value) as unset.
fn lenient<'de, D, T>(d: D) -> core::result::Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    use serde::de::IntoDeserializer;
    match Option::<String>::deserialize(d)?.as_deref() {
        None | Some("") => Ok(None),
        Some(s) => T::deserialize(s.into_deserializer()).map(Some),
    }
}

fn parse_yaml<T: serde::de::DeserializeOwned + Default>(yaml: &str, what: &str) -> Result<T> {
    if yaml.trim().is_empty() {
        return Ok(T::default());
    }
    serde_yaml::from_str(yaml).map_err(|e| Error::msg(format!("cannot parse {what}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_yaml_uses_pebble_field_names_and_skips_unset() {
        let layer = Layer::new().service(
            "svc",
            Service::new()
                .command("/bin/sh -c 'echo \"$X\"'")
                .enabled()
                .env("X", "yes")
                .env("on", "1")
                .on_check_failure("up", ServiceAction::Restart)
                .backoff_factor(1.5)
                .user_id(0)
                .working_dir("/srv"),
        );
        let yaml = layer.to_yaml();
        assert_eq!(
            yaml,
            "services:\n  svc:\n    override: \"replace\"\n    command: \"/bin/sh -c 'echo \\\"$X\\\"'\"\n    \
             startup: \"enabled\"\n    environment:\n      X: \"yes\"\n      \"on\": \"1\"\n    \
             user-id: 0\n    working-dir: \"/srv\"\n    on-check-failure:\n      up: \"restart\"\n    \
             backoff-factor: 1.5\n"
        );
        assert_eq!(Layer::from_yaml(&yaml).unwrap(), layer);
    }

    #[test]
    fn checks_round_trip() {
        let layer = Layer::new()
            .check(
                "web",
                Check::http("http://localhost:8080/")
                    .header("X-A", "b")
                    .level(CheckLevel::Ready),
            )
            .check(
                "exec",
                Check::exec("true").service_context("svc").threshold(5),
            )
            .check(
                "port",
                Check::tcp(22)
                    .host("127.0.0.1")
                    .period("1s")
                    .timeout("500ms"),
            );
        let yaml = layer.to_yaml();
        assert!(yaml.contains("service-context: \"svc\""), "{yaml}");
        assert_eq!(Layer::from_yaml(&yaml).unwrap(), layer);
    }

    #[test]
    fn plan_parses_pebble_yaml() {
        let plan = Plan::from_yaml(
            "services:\n    pause:\n        summary: p\n        startup: enabled\n        override: replace\n        \
             command: sleep 10\n        environment:\n            A: \"1\"\n        backoff-delay: 1s\n        \
             unknown-field: 3\nchecks:\n    up:\n        override: replace\n        level: alive\n        \
             tcp:\n            port: 80\n",
        )
        .unwrap();
        let svc = plan.service("pause").unwrap();
        assert_eq!(svc.command.as_deref(), Some("sleep 10"));
        assert_eq!(svc.startup, Some(Startup::Enabled));
        assert_eq!(svc.backoff_delay.as_deref(), Some("1s"));
        assert_eq!(plan.checks["up"].tcp.as_ref().unwrap().port, Some(80));
        assert_eq!(Plan::from_yaml("{}\n").unwrap(), Plan::default());
        assert_eq!(Plan::from_yaml("").unwrap(), Plan::default());
        assert!(Plan::from_yaml("services: [").is_err());
    }

    #[test]
    fn odd_strings_survive_yaml() {
        let odd = "a: b # c\n\t'\"\\ \u{7f}\u{85}\u{9f}\u{1}\u{2028}\u{feff}é☃ - [x] {y} &z *w !v %u @t `s | >";
        let layer = Layer::new().summary(odd).service(
            odd,
            Service::new().command(odd).env(odd, odd).env("123", "true"),
        );
        assert_eq!(Layer::from_yaml(&layer.to_yaml()).unwrap(), layer);
    }

    #[test]
    fn empty_enum_values_read_as_unset() {
        let plan = Plan::from_yaml(
            "services:\n  a:\n    override: \"\"\n    startup: \"\"\n    command: x\n    on-success: \"\"\n",
        )
        .unwrap();
        assert_eq!(plan.services["a"].override_, None);
        assert_eq!(plan.services["a"].startup, None);
    }

    #[test]
    fn empty_layer_is_an_empty_map() {
        assert_eq!(Layer::new().to_yaml(), "{}\n");
    }
}
