//! The layer and plan data model, mirroring Pebble's `plan` package types.
//!
//! Optional values (`Option<_>`) are `None` when the layer did not set them: Pebble
//! distinguishes "unset" from "zero" so that merges only override what a layer sets
//! and so that defaults never show up in the rendered plan. Use the `effective_*`
//! accessors to read a value with Pebble's default applied.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Default first backoff delay of a service (`backoff-delay`).
pub const DEFAULT_BACKOFF_DELAY: Duration = Duration::from_millis(500);
/// Default backoff multiplier of a service (`backoff-factor`).
pub const DEFAULT_BACKOFF_FACTOR: f64 = 2.0;
/// Default maximum backoff delay of a service (`backoff-limit`).
pub const DEFAULT_BACKOFF_LIMIT: Duration = Duration::from_secs(30);
/// Default time between SIGTERM and SIGKILL when stopping a service (`kill-delay`).
pub const DEFAULT_KILL_DELAY: Duration = Duration::from_secs(5);
/// Default interval between two runs of a check (`period`).
pub const DEFAULT_CHECK_PERIOD: Duration = Duration::from_secs(10);
/// Default time limit of one check run (`timeout`), capped to the period.
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(3);
/// Default number of consecutive failures before a check is down (`threshold`).
pub const DEFAULT_CHECK_THRESHOLD: u32 = 3;

/// One configuration layer: a parsed layer file or API layer, with its order and label.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Layer {
    /// Position in the layer stack (e.g. 1000 for `001-x.yaml`, 2001 for `002-d.d/001-y.yaml`).
    pub order: u32,
    /// Unique name of the layer (`x`, or `d/y` for a layer in a sub-directory).
    pub label: String,
    /// Short description of the layer.
    pub summary: String,
    /// Long description of the layer.
    pub description: String,
    /// Services defined by this layer, keyed by name.
    pub services: BTreeMap<String, Arc<Service>>,
    /// Health checks defined by this layer, keyed by name.
    pub checks: BTreeMap<String, Arc<Check>>,
    /// Log forwarding targets defined by this layer, keyed by name.
    pub log_targets: BTreeMap<String, LogTarget>,
    /// Entries of the `workloads` extension section, keyed by name.
    pub workloads: BTreeMap<String, Workload>,
    /// The `pairing` extension section.
    pub pairing: Pairing,
}

/// A service definition (`services.<name>`), as written in a layer or combined in the plan.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Service {
    /// The service's name (the key it appears under).
    pub name: String,
    /// Short description.
    pub summary: String,
    /// Long description.
    pub description: String,
    /// Whether the service starts automatically (`startup`).
    pub startup: ServiceStartup,
    /// How this definition combines with earlier layers (`override`).
    pub override_: Override,
    /// The command line, optionally ending in a `[ default args ]` group.
    pub command: String,
    /// Services this one starts after (`after`).
    pub after: Vec<String>,
    /// Services this one starts before (`before`).
    pub before: Vec<String>,
    /// Services that must be started along with this one (`requires`).
    pub requires: Vec<String>,
    /// Name of an entry of the `workloads` section whose settings apply (`workload`).
    pub workload: String,
    /// Extra environment variables (`environment`).
    pub environment: BTreeMap<String, String>,
    /// Numeric user to run as (`user-id`).
    pub user_id: Option<u32>,
    /// User name to run as (`user`).
    pub user: String,
    /// Numeric group to run as (`group-id`).
    pub group_id: Option<u32>,
    /// Group name to run as (`group`).
    pub group: String,
    /// Working directory (`working-dir`).
    pub working_dir: String,
    /// What to do when the service exits with status 0 (`on-success`).
    pub on_success: ServiceAction,
    /// What to do when the service exits with a non-zero status (`on-failure`).
    pub on_failure: ServiceAction,
    /// What to do when a named check fails (`on-check-failure`).
    pub on_check_failure: BTreeMap<String, ServiceAction>,
    /// First restart delay (`backoff-delay`); `None` means Pebble's default.
    pub backoff_delay: Option<Duration>,
    /// Multiplier applied to the delay after each restart (`backoff-factor`).
    pub backoff_factor: Option<f64>,
    /// Maximum restart delay (`backoff-limit`).
    pub backoff_limit: Option<Duration>,
    /// Time between SIGTERM and SIGKILL on stop (`kill-delay`).
    pub kill_delay: Option<Duration>,
}

impl Service {
    /// `backoff-delay` with Pebble's default (500ms) applied.
    pub fn effective_backoff_delay(&self) -> Duration {
        self.backoff_delay.unwrap_or(DEFAULT_BACKOFF_DELAY)
    }

    /// `backoff-factor` with Pebble's default (2.0) applied.
    pub fn effective_backoff_factor(&self) -> f64 {
        self.backoff_factor.unwrap_or(DEFAULT_BACKOFF_FACTOR)
    }

    /// `backoff-limit` with Pebble's default (30s) applied.
    pub fn effective_backoff_limit(&self) -> Duration {
        self.backoff_limit.unwrap_or(DEFAULT_BACKOFF_LIMIT)
    }

    /// `kill-delay` with Pebble's default (5s) applied.
    pub fn effective_kill_delay(&self) -> Duration {
        self.kill_delay.unwrap_or(DEFAULT_KILL_DELAY)
    }

    /// Whether this service's logs go to `target`: the last matching entry of the
    /// target's `services` list wins (`all`, `-all`, `name`, `-name`).
    pub fn logs_to(&self, target: &LogTarget) -> bool {
        for entry in target.services.iter().rev() {
            if *entry == self.name || entry == "all" {
                return true;
            }
            if entry.strip_prefix('-') == Some(self.name.as_str()) || entry == "-all" {
                return false;
            }
        }
        false
    }

    /// Whether two definitions are identical, which is when replan leaves a running service alone.
    pub fn equal_config(&self, other: &Service) -> bool {
        self == other
    }
}

/// Service `startup` value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ServiceStartup {
    /// Not set (behaves as disabled).
    #[default]
    Unknown,
    /// `enabled`: started by autostart and replan.
    Enabled,
    /// `disabled`: only started on request.
    Disabled,
}

/// `override` value of a service, check, log target or workload.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Override {
    /// Not set (an error when layers are combined).
    #[default]
    Unknown,
    /// `merge`: fields set here override, lists append, maps merge.
    Merge,
    /// `replace`: this definition replaces any earlier one entirely.
    Replace,
}

/// Action taken on service exit or check failure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ServiceAction {
    /// Not set (restart for exits; nothing for check failures).
    #[default]
    Unset,
    /// `restart` with backoff.
    Restart,
    /// `shutdown`: stop the daemon, exit code depending on the cause.
    Shutdown,
    /// `failure-shutdown`: stop the daemon with a failure code (on-success only).
    FailureShutdown,
    /// `success-shutdown`: stop the daemon with code 0 (on-failure and on-check-failure only).
    SuccessShutdown,
    /// `ignore`: leave the service stopped.
    Ignore,
}

/// A health check definition (`checks.<name>`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// The check's name (the key it appears under).
    pub name: String,
    /// How this definition combines with earlier layers (`override`).
    pub override_: Override,
    /// `alive` or `ready`, or unset (`level`).
    pub level: CheckLevel,
    /// Whether the check runs automatically (`startup`).
    pub startup: CheckStartup,
    /// Interval between runs (`period`); `None` means the default 10s.
    pub period: Option<Duration>,
    /// Time limit of a run (`timeout`); `None` means the default 3s (capped to the period).
    pub timeout: Option<Duration>,
    /// Consecutive failures before the check is down (`threshold`); `None` means 3.
    pub threshold: Option<u32>,
    /// HTTP check settings (`http`).
    pub http: Option<HttpCheck>,
    /// TCP check settings (`tcp`).
    pub tcp: Option<TcpCheck>,
    /// Exec check settings (`exec`).
    pub exec: Option<ExecCheck>,
}

impl Check {
    /// `period` with Pebble's default (10s) applied.
    pub fn effective_period(&self) -> Duration {
        self.period.unwrap_or(DEFAULT_CHECK_PERIOD)
    }

    /// `timeout` with Pebble's default (3s) applied, never longer than the period.
    pub fn effective_timeout(&self) -> Duration {
        self.timeout
            .unwrap_or(DEFAULT_CHECK_TIMEOUT)
            .min(self.effective_period())
    }

    /// `threshold` with Pebble's default (3) applied.
    pub fn effective_threshold(&self) -> u32 {
        self.threshold.unwrap_or(DEFAULT_CHECK_THRESHOLD)
    }

    /// Whether the check starts automatically (`startup` is not `disabled`).
    pub fn starts_enabled(&self) -> bool {
        self.startup != CheckStartup::Disabled
    }
}

/// Check `level` value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CheckLevel {
    /// Not set.
    #[default]
    Unset,
    /// `alive`.
    Alive,
    /// `ready` (also implies alive for health queries).
    Ready,
}

/// Check `startup` value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CheckStartup {
    /// Not set (behaves as enabled).
    #[default]
    Unknown,
    /// `enabled`.
    Enabled,
    /// `disabled`.
    Disabled,
}

/// HTTP check settings: GET `url`, success on a 2xx status.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpCheck {
    /// URL to fetch.
    pub url: String,
    /// Extra request headers.
    pub headers: BTreeMap<String, String>,
}

/// TCP check settings: success when a connection to `host:port` opens.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpCheck {
    /// Port to connect to (0 = unset).
    pub port: u32,
    /// Host to connect to (empty = `localhost`).
    pub host: String,
}

/// Exec check settings: success when the command exits with status 0.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecCheck {
    /// Command line, split with shell-like rules (no shell).
    pub command: String,
    /// Service whose environment, user, group and working directory are inherited.
    pub service_context: String,
    /// Extra environment variables (merged on top of the service context's).
    pub environment: BTreeMap<String, String>,
    /// Numeric user to run as.
    pub user_id: Option<u32>,
    /// User name to run as.
    pub user: String,
    /// Numeric group to run as.
    pub group_id: Option<u32>,
    /// Group name to run as.
    pub group: String,
    /// Working directory.
    pub working_dir: String,
}

/// A log forwarding target (`log-targets.<name>`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogTarget {
    /// The target's name (the key it appears under).
    pub name: String,
    /// Protocol (`type`).
    pub type_: LogTargetType,
    /// Server address (`location`).
    pub location: String,
    /// Which services' logs are sent (`services`: names, `all`, `-name`, `-all`; last match wins).
    pub services: Vec<String>,
    /// How this definition combines with earlier layers (`override`).
    pub override_: Override,
    /// Extra labels attached to every log line (`labels`).
    pub labels: BTreeMap<String, String>,
}

/// Log target `type` value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LogTargetType {
    /// Not set (an error in the combined plan).
    #[default]
    Unset,
    /// `loki`.
    Loki,
    /// `opentelemetry`.
    OpenTelemetry,
    /// `syslog`.
    Syslog,
}

/// An entry of the `workloads` extension section: settings shared by services naming it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workload {
    /// The workload's name (the key it appears under).
    pub name: String,
    /// How this definition combines with earlier layers (`override`).
    pub override_: Override,
    /// Environment variables for services of this workload.
    pub environment: BTreeMap<String, String>,
    /// Numeric user to run as.
    pub user_id: Option<u32>,
    /// User name to run as.
    pub user: String,
    /// Numeric group to run as.
    pub group_id: Option<u32>,
    /// Group name to run as.
    pub group: String,
}

/// The `pairing` extension section.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pairing {
    /// Pairing policy (`mode`).
    pub mode: PairingMode,
}

/// Pairing `mode` value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PairingMode {
    /// Not set (same as disabled, but not rendered).
    #[default]
    Unset,
    /// `disabled`.
    Disabled,
    /// `single`: one client may pair.
    Single,
    /// `multiple`: any number of clients may pair.
    Multiple,
}

/// The combined, validated configuration that the supervisor runs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Combined services, keyed by name.
    pub services: BTreeMap<String, Arc<Service>>,
    /// Combined checks, keyed by name.
    pub checks: BTreeMap<String, Arc<Check>>,
    /// Combined log targets, keyed by name.
    pub log_targets: BTreeMap<String, LogTarget>,
    /// Combined `workloads` section.
    pub workloads: BTreeMap<String, Workload>,
    /// Combined `pairing` section.
    pub pairing: Pairing,
}

macro_rules! string_enum {
    ($ty:ty { $($variant:ident => $text:literal),* $(,)? }) => {
        impl $ty {
            /// The YAML spelling of this value (empty when unset).
            pub fn as_str(self) -> &'static str {
                match self { $(<$ty>::$variant => $text),* }
            }

            /// Parses the YAML spelling; `None` for anything else.
            pub fn from_name(text: &str) -> Option<Self> {
                match text { $($text => Some(<$ty>::$variant),)* _ => None }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(ServiceStartup { Unknown => "", Enabled => "enabled", Disabled => "disabled" });
string_enum!(Override { Unknown => "", Merge => "merge", Replace => "replace" });
string_enum!(ServiceAction {
    Unset => "",
    Restart => "restart",
    Shutdown => "shutdown",
    FailureShutdown => "failure-shutdown",
    SuccessShutdown => "success-shutdown",
    Ignore => "ignore",
});
string_enum!(CheckLevel { Unset => "", Alive => "alive", Ready => "ready" });
string_enum!(CheckStartup { Unknown => "", Enabled => "enabled", Disabled => "disabled" });
string_enum!(LogTargetType {
    Unset => "",
    Loki => "loki",
    OpenTelemetry => "opentelemetry",
    Syslog => "syslog",
});
string_enum!(PairingMode { Unset => "", Disabled => "disabled", Single => "single", Multiple => "multiple" });

/// Execution settings that can come from a service (`service-context`) with overrides,
/// as used by exec checks and the exec API.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextOptions {
    /// Environment variables.
    pub environment: BTreeMap<String, String>,
    /// Numeric user.
    pub user_id: Option<u32>,
    /// User name.
    pub user: String,
    /// Numeric group.
    pub group_id: Option<u32>,
    /// Group name.
    pub group: String,
    /// Working directory.
    pub working_dir: String,
}

impl Plan {
    /// Starts from the settings of service `service_name` and applies `overrides` on top
    /// (environment merged key-wise, other fields when set), as Pebble's `MergeServiceContext`.
    /// An empty service name returns `overrides` unchanged.
    pub fn merge_service_context(
        &self,
        service_name: &str,
        overrides: ContextOptions,
    ) -> Result<ContextOptions, crate::PlanError> {
        if service_name.is_empty() {
            return Ok(overrides);
        }
        let service = self
            .services
            .get(service_name)
            .ok_or_else(|| crate::PlanError::ContextServiceNotFound(service_name.to_string()))?;
        let mut merged = ContextOptions {
            environment: service.environment.clone(),
            user_id: service.user_id,
            user: service.user.clone(),
            group_id: service.group_id,
            group: service.group.clone(),
            working_dir: service.working_dir.clone(),
        };
        merged.environment.extend(overrides.environment);
        if overrides.user_id.is_some() {
            merged.user_id = overrides.user_id;
        }
        if !overrides.user.is_empty() {
            merged.user = overrides.user;
        }
        if overrides.group_id.is_some() {
            merged.group_id = overrides.group_id;
        }
        if !overrides.group.is_empty() {
            merged.group = overrides.group;
        }
        if !overrides.working_dir.is_empty() {
            merged.working_dir = overrides.working_dir;
        }
        Ok(merged)
    }
}
