//! The host's own, serialisable forms of what crosses the WIT boundary.
//!
//! They are independent of the generated bindings so that queues and history persist
//! across host versions and every released WIT world can be converted to and from them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use cairn_charm::ConfigValue;

/// A unit's or app's workload status, as the charm sets it (Juju's names; not to be
/// confused with the supervisor's change and service statuses).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "status", content = "message", rename_all = "lowercase")]
pub enum WorkloadStatus {
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

impl WorkloadStatus {
    /// The status name (`active`, `blocked`, …).
    pub fn name(&self) -> &'static str {
        match self {
            WorkloadStatus::Unknown => "unknown",
            WorkloadStatus::Active(_) => "active",
            WorkloadStatus::Blocked(_) => "blocked",
            WorkloadStatus::Maintenance(_) => "maintenance",
            WorkloadStatus::Waiting(_) => "waiting",
            WorkloadStatus::Error(_) => "error",
        }
    }

    /// How much the status needs attention (error highest), to summarise several.
    pub fn severity(&self) -> u8 {
        match self {
            WorkloadStatus::Unknown => 0,
            WorkloadStatus::Active(_) => 1,
            WorkloadStatus::Waiting(_) => 2,
            WorkloadStatus::Maintenance(_) => 3,
            WorkloadStatus::Blocked(_) => 4,
            WorkloadStatus::Error(_) => 5,
        }
    }

    /// The status message (empty for `unknown`).
    pub fn message(&self) -> &str {
        match self {
            WorkloadStatus::Unknown => "",
            WorkloadStatus::Active(m)
            | WorkloadStatus::Blocked(m)
            | WorkloadStatus::Maintenance(m)
            | WorkloadStatus::Waiting(m)
            | WorkloadStatus::Error(m) => m,
        }
    }
}

/// A check's state as check events carry it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckInfo {
    /// The check's name.
    pub name: String,
    /// `alive`, `ready` or unset (stored as Pebble's names, empty when unset).
    #[serde(with = "level_name")]
    pub level: cairn_plan::CheckLevel,
    /// Up, down or inactive (stored as Pebble's names).
    #[serde(with = "check_status_name")]
    pub status: cairn_supervisor::CheckStatus,
    /// Successes counted so far.
    pub successes: u32,
    /// Consecutive failures.
    pub failures: u32,
    /// Failures that make the check down.
    pub threshold: u32,
    /// The check's current change.
    pub change_id: Option<String>,
}

/// Check levels in records, by Pebble's names.
mod level_name {
    use cairn_plan::CheckLevel;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(l: &CheckLevel, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match l {
            CheckLevel::Unset => "",
            CheckLevel::Alive => "alive",
            CheckLevel::Ready => "ready",
        })
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<CheckLevel, D::Error> {
        Ok(match String::deserialize(d)?.as_str() {
            "alive" => CheckLevel::Alive,
            "ready" => CheckLevel::Ready,
            _ => CheckLevel::Unset,
        })
    }
}

/// Check statuses in records, by Pebble's names.
mod check_status_name {
    use cairn_supervisor::CheckStatus;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(super) fn serialize<S: Serializer>(c: &CheckStatus, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(c.as_str())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<CheckStatus, D::Error> {
        match String::deserialize(d)?.as_str() {
            "up" => Ok(CheckStatus::Up),
            "down" => Ok(CheckStatus::Down),
            "inactive" => Ok(CheckStatus::Inactive),
            other => Err(D::Error::custom(format!("unknown check status {other:?}"))),
        }
    }
}

/// A Pebble notice as notice events carry it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    /// The notice's ID.
    pub id: String,
    /// The user it belongs to (`None`: public).
    pub user_id: Option<u32>,
    /// `custom`, `change-update`, …
    pub r#type: String,
    /// The key, such as `example.com/thing`.
    pub key: String,
    /// First occurrence (RFC 3339).
    pub first_occurred: String,
    /// Latest occurrence (RFC 3339).
    pub last_occurred: String,
    /// Latest occurrence that counted as a repeat (RFC 3339).
    pub last_repeated: String,
    /// How many times it occurred.
    pub occurrences: u32,
    /// The data of the latest occurrence.
    pub last_data: BTreeMap<String, String>,
    /// Occurrences closer than this are not repeats.
    pub repeat_after_ms: Option<u64>,
    /// When an unrepeated notice is dropped.
    pub expire_after_ms: Option<u64>,
}

/// Something a unit's charm must react to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Event {
    /// The unit was deployed.
    Install,
    /// After install and config-changed.
    Start,
    /// The unit is going away.
    Stop,
    /// Last event of a unit.
    Remove,
    /// The app's config changed (and once after install).
    ConfigChanged,
    /// The charm was upgraded.
    UpgradeCharm,
    /// Periodic.
    UpdateStatus,
    /// The unit became its app's leader.
    LeaderElected,
    /// A container's Pebble is up.
    PebbleReady {
        /// The container.
        container: String,
    },
    /// A check reached its failure threshold.
    PebbleCheckFailed {
        /// The container.
        container: String,
        /// The check.
        info: CheckInfo,
    },
    /// A failed check passed again.
    PebbleCheckRecovered {
        /// The container.
        container: String,
        /// The check.
        info: CheckInfo,
    },
    /// A custom notice occurred (or repeated).
    PebbleCustomNotice {
        /// The container.
        container: String,
        /// The notice.
        notice: Notice,
    },
    /// An operator ran an action.
    Action {
        /// The run's ID (its record in `<state>/actions`).
        id: String,
        /// The action's name.
        name: String,
        /// Its validated parameters, as a JSON object.
        params_json: String,
    },
    /// A relation was made (before any remote unit joined).
    RelationCreated(RelationEvent),
    /// A remote unit joined a relation.
    RelationJoined(RelationEvent),
    /// A remote unit's or the remote app's databag changed (and once after joined).
    RelationChanged(RelationEvent),
    /// A unit left a relation.
    RelationDeparted(RelationEvent),
    /// A relation is gone.
    RelationBroken(RelationEvent),
}

/// The payload of relation events, as Juju's hook environment gives it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelationEvent {
    /// The relation's id.
    pub relation_id: u32,
    /// This charm's endpoint of the relation.
    pub endpoint: String,
    /// The application at the other end (this app for a peer relation).
    pub remote_app: String,
    /// The remote unit the event is about (joined, departed, a unit bag's changed).
    pub remote_unit: Option<String>,
    /// The unit leaving (departed).
    pub departing_unit: Option<String>,
}

/// Which of its own bags a unit wrote in a relation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OwnBag {
    /// The unit's own bag.
    Unit,
    /// Its application's bag (leader only).
    App,
}

/// One relation of a unit as an event sees it: who is at the other end and every bag the
/// unit may read. The model fills it; the handler's writes land in `local_unit` and
/// `local_app`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelationSnapshot {
    /// The relation's id.
    pub id: u32,
    /// This charm's endpoint.
    pub endpoint: String,
    /// The interface both endpoints speak.
    pub interface: String,
    /// The application at the other end (this app for a peer relation).
    pub remote_app: String,
    /// The remote units in the relation now (for a peer relation, this app's other units).
    pub remote_units: Vec<String>,
    /// This unit's bag.
    pub local_unit: BTreeMap<String, String>,
    /// This application's bag (readable by the leader only).
    pub local_app: BTreeMap<String, String>,
    /// The remote units' bags, by unit name (a departing unit's included).
    pub remote_unit_data: BTreeMap<String, BTreeMap<String, String>>,
    /// The remote application's bag.
    pub remote_app_data: BTreeMap<String, String>,
}

/// A unit's relations lent to one event, and which of its bags the handler wrote (the
/// model commits those, and tells the remote side, only if the handler succeeded).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Relations {
    /// The relations by id.
    pub relations: BTreeMap<u32, RelationSnapshot>,
    /// The bags written during the event: relation id and which bag.
    pub written: std::collections::BTreeSet<(u32, OwnBag)>,
}

impl Event {
    /// The payload of a relation event (`None` for every other event).
    pub fn relation(&self) -> Option<&RelationEvent> {
        match self {
            Event::RelationCreated(r)
            | Event::RelationJoined(r)
            | Event::RelationChanged(r)
            | Event::RelationDeparted(r)
            | Event::RelationBroken(r) => Some(r),
            _ => None,
        }
    }
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
            Event::RelationCreated(r) => format!("{}-relation-created", r.endpoint),
            Event::RelationJoined(r) => format!("{}-relation-joined", r.endpoint),
            Event::RelationChanged(r) => format!("{}-relation-changed", r.endpoint),
            Event::RelationDeparted(r) => format!("{}-relation-departed", r.endpoint),
            Event::RelationBroken(r) => format!("{}-relation-broken", r.endpoint),
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
    /// Finest.
    Trace,
    /// For debugging.
    Debug,
    /// Normal (guest stdout).
    Info,
    /// Something to look at (guest stderr).
    Warning,
    /// A failure.
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

/// A duration as Pebble writes it (`"1h"`), in milliseconds; `None` when empty or unreadable.
fn duration_ms(d: &str) -> Option<u64> {
    cairn_plan::parse_duration(d)
        .ok()
        .map(|d| d.as_millis() as u64)
}

/// Builds a [`Notice`] from the fields the supervisor's and the API's notices share.
macro_rules! notice_from {
    ($n:expr, $type:expr) => {{
        let n = $n;
        let rfc = cairn_supervisor::timefmt::rfc3339;
        Notice {
            id: n.id.clone(),
            user_id: n.user_id,
            r#type: $type,
            key: n.key.clone(),
            first_occurred: rfc(n.first_occurred),
            last_occurred: rfc(n.last_occurred),
            last_repeated: rfc(n.last_repeated),
            occurrences: n.occurrences as u32,
            last_data: n.last_data.clone(),
            repeat_after_ms: duration_ms(&n.repeat_after),
            expire_after_ms: duration_ms(&n.expire_after),
        }
    }};
}

impl From<&cairn_supervisor::Notice> for Notice {
    fn from(n: &cairn_supervisor::Notice) -> Self {
        notice_from!(n, n.type_.as_str().to_string())
    }
}

impl From<&cairn_api::types::Notice> for Notice {
    /// A notice as a Pebble server's API gives it (the client backend, Juju dispatch).
    fn from(n: &cairn_api::types::Notice) -> Self {
        notice_from!(n, n.type_.clone())
    }
}
