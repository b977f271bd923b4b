//! The host's own, serialisable forms of what crosses the WIT boundary.
//!
//! They are independent of the generated bindings so that queues and history persist
//! across host versions and every released WIT world can be converted to and from them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use cairn_charm::ConfigValue;

/// A unit's or app's workload status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "status", content = "message", rename_all = "lowercase")]
pub enum Status {
    /// Nothing set yet.
    #[default]
    Unknown,
    /// Working.
    Active(String),
    /// Needs a human.
    Blocked(String),
    /// Busy on its own.
    Maintenance(String),
    /// Waiting on something else.
    Waiting(String),
    /// A handler failed (set by the host, never by a charm).
    Error(String),
}

impl Status {
    /// The status name (`active`, `blocked`, …).
    pub fn name(&self) -> &'static str {
        match self {
            Status::Unknown => "unknown",
            Status::Active(_) => "active",
            Status::Blocked(_) => "blocked",
            Status::Maintenance(_) => "maintenance",
            Status::Waiting(_) => "waiting",
            Status::Error(_) => "error",
        }
    }

    /// How much the status needs attention (error highest), to summarise several.
    pub fn severity(&self) -> u8 {
        match self {
            Status::Unknown => 0,
            Status::Active(_) => 1,
            Status::Waiting(_) => 2,
            Status::Maintenance(_) => 3,
            Status::Blocked(_) => 4,
            Status::Error(_) => 5,
        }
    }

    /// The status message (empty for `unknown`).
    pub fn message(&self) -> &str {
        match self {
            Status::Unknown => "",
            Status::Active(m)
            | Status::Blocked(m)
            | Status::Maintenance(m)
            | Status::Waiting(m)
            | Status::Error(m) => m,
        }
    }
}

/// A check's state as check events carry it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckInfo {
    /// The check's name.
    pub name: String,
    /// `alive`, `ready` or empty.
    pub level: String,
    /// `up`, `down` or `inactive`.
    pub status: String,
    /// Successes counted so far.
    pub successes: u32,
    /// Consecutive failures.
    pub failures: u32,
    /// Failures that make the check down.
    pub threshold: u32,
    /// The check's current change.
    pub change_id: Option<String>,
}

/// A Pebble notice as notice events carry it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    pub id: String,
    pub user_id: Option<u32>,
    pub r#type: String,
    pub key: String,
    pub first_occurred: String,
    pub last_occurred: String,
    pub last_repeated: String,
    pub occurrences: u32,
    pub last_data: BTreeMap<String, String>,
    pub repeat_after_ms: Option<u64>,
    pub expire_after_ms: Option<u64>,
}

/// Something a unit's charm must react to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Event {
    Install,
    Start,
    Stop,
    Remove,
    ConfigChanged,
    UpgradeCharm,
    UpdateStatus,
    LeaderElected,
    PebbleReady {
        container: String,
    },
    PebbleCheckFailed {
        container: String,
        info: CheckInfo,
    },
    PebbleCheckRecovered {
        container: String,
        info: CheckInfo,
    },
    PebbleCustomNotice {
        container: String,
        notice: Notice,
    },
    Action {
        id: String,
        name: String,
        params_json: String,
    },
}

impl Event {
    /// The event's name as Juju shows hooks: `install`, `web-pebble-ready`, `backup-action`.
    pub fn name(&self) -> String {
        match self {
            Event::Install => "install".into(),
            Event::Start => "start".into(),
            Event::Stop => "stop".into(),
            Event::Remove => "remove".into(),
            Event::ConfigChanged => "config-changed".into(),
            Event::UpgradeCharm => "upgrade-charm".into(),
            Event::UpdateStatus => "update-status".into(),
            Event::LeaderElected => "leader-elected".into(),
            Event::PebbleReady { container } => format!("{container}-pebble-ready"),
            Event::PebbleCheckFailed { container, .. } => {
                format!("{container}-pebble-check-failed")
            }
            Event::PebbleCheckRecovered { container, .. } => {
                format!("{container}-pebble-check-recovered")
            }
            Event::PebbleCustomNotice { container, .. } => {
                format!("{container}-pebble-custom-notice")
            }
            Event::Action { name, .. } => format!("{name}-action"),
        }
    }
}

/// What a handler did with an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Acknowledged.
    Handled,
    /// Re-deliver before the next event.
    Deferred,
}

/// Severity of a charm's log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warning,
    Error,
}

/// One line of a unit's log: charm `log` calls and guest stdout/stderr.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    /// RFC 3339 time.
    pub time: String,
    /// Severity.
    pub level: LogLevel,
    /// The line, prefixed with the unit name for guest output.
    pub message: String,
}

impl From<cairn_supervisor::CheckInfo> for CheckInfo {
    fn from(c: cairn_supervisor::CheckInfo) -> Self {
        CheckInfo {
            name: c.name,
            level: c.level,
            status: c.status,
            successes: c.successes,
            failures: c.failures,
            threshold: c.threshold,
            change_id: Some(c.change_id).filter(|s| !s.is_empty()),
        }
    }
}

impl From<&cairn_supervisor::Notice> for Notice {
    fn from(n: &cairn_supervisor::Notice) -> Self {
        let rfc = cairn_supervisor::timefmt::rfc3339;
        let ms = |d: &str| {
            cairn_plan::parse_duration(d)
                .ok()
                .map(|d| d.as_millis() as u64)
        };
        Notice {
            id: n.id.clone(),
            user_id: n.user_id,
            r#type: n.type_.clone(),
            key: n.key.clone(),
            first_occurred: rfc(n.first_occurred),
            last_occurred: rfc(n.last_occurred),
            last_repeated: rfc(n.last_repeated),
            occurrences: n.occurrences as u32,
            last_data: n.last_data.clone(),
            repeat_after_ms: ms(&n.repeat_after),
            expire_after_ms: ms(&n.expire_after),
        }
    }
}
