//! Events a charm reacts to, and their payloads.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::container::Container;
use crate::error::{Error, Result};
pub use crate::relation::RelationEvent;

/// Everything a charm reacts to; one is delivered per call of the charm.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// The unit was deployed (`install`).
    Install,
    /// The unit is about to run its workload (`start`).
    Start,
    /// The unit is being removed; its services will stop next (`stop`).
    Stop,
    /// The unit is going away (`remove`).
    Remove,
    /// Config changed, or the unit was deployed or refreshed (`config-changed`).
    ConfigChanged,
    /// The charm was refreshed to a new component (`upgrade-charm`).
    UpgradeCharm,
    /// The periodic status timer fired (`update-status`).
    UpdateStatus,
    /// This unit became its application's leader (`leader-elected`).
    LeaderElected,
    /// The named container's supervisor is up (`<container>-pebble-ready`).
    PebbleReady(String),
    /// A check reached its failure threshold (`<container>-pebble-check-failed`).
    PebbleCheckFailed(CheckEvent),
    /// A failing check passed again (`<container>-pebble-check-recovered`).
    PebbleCheckRecovered(CheckEvent),
    /// A custom notice occurred (`<container>-pebble-custom-notice`).
    PebbleCustomNotice(NoticeEvent),
    /// An operator ran an action (`<action>-action`).
    Action(ActionEvent),
    /// A relation was made, before any remote unit joined (`<endpoint>-relation-created`).
    RelationCreated(RelationEvent),
    /// A remote unit joined a relation (`<endpoint>-relation-joined`).
    RelationJoined(RelationEvent),
    /// A remote unit's or the remote app's bag changed (`<endpoint>-relation-changed`).
    RelationChanged(RelationEvent),
    /// A unit left a relation (`<endpoint>-relation-departed`).
    RelationDeparted(RelationEvent),
    /// A relation is gone (`<endpoint>-relation-broken`).
    RelationBroken(RelationEvent),
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
            Event::PebbleReady(c) => format!("{c}-pebble-ready"),
            Event::PebbleCheckFailed(e) => format!("{}-pebble-check-failed", e.container),
            Event::PebbleCheckRecovered(e) => format!("{}-pebble-check-recovered", e.container),
            Event::PebbleCustomNotice(e) => format!("{}-pebble-custom-notice", e.container),
            Event::Action(a) => format!("{}-action", a.name),
            Event::RelationCreated(r) => format!("{}-relation-created", r.endpoint),
            Event::RelationJoined(r) => format!("{}-relation-joined", r.endpoint),
            Event::RelationChanged(r) => format!("{}-relation-changed", r.endpoint),
            Event::RelationDeparted(r) => format!("{}-relation-departed", r.endpoint),
            Event::RelationBroken(r) => format!("{}-relation-broken", r.endpoint),
        }
    }

    /// The container the event is about, for Pebble events.
    pub fn container_name(&self) -> Option<&str> {
        match self {
            Event::PebbleReady(c) => Some(c),
            Event::PebbleCheckFailed(e) | Event::PebbleCheckRecovered(e) => Some(&e.container),
            Event::PebbleCustomNotice(e) => Some(&e.container),
            _ => None,
        }
    }
}

/// What the handler did with an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Done; the event is acknowledged.
    Handled,
    /// Not now: the host re-delivers it before the next event (see [`Context::defer`](crate::Context::defer)).
    Deferred,
}

/// A check's level, as in Pebble's layer specification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckLevel {
    /// Failing means the workload is not alive (Kubernetes liveness).
    Alive,
    /// Failing means the workload is not ready (Kubernetes readiness).
    Ready,
}

/// A check's status, as in Pebble's `GET /v1/checks`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CheckStatus {
    /// Passing (or not yet failed `threshold` times).
    Up,
    /// Failed `threshold` times in a row.
    Down,
    /// Stopped.
    Inactive,
}

/// What the charm learns about a check in check events (`ops.pebble.CheckInfo`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckInfo {
    /// The check's name.
    pub name: String,
    /// The check's level, if it has one.
    pub level: Option<CheckLevel>,
    /// Up, down or inactive.
    pub status: CheckStatus,
    /// Successes in a row.
    pub successes: u32,
    /// Failures in a row.
    pub failures: u32,
    /// Failures in a row that make the check `down`.
    pub threshold: u32,
    /// The change running the check (`perform-check` or `recover-check`).
    pub change_id: Option<String>,
}

/// Payload of `pebble-check-failed` and `pebble-check-recovered`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckEvent {
    /// The container whose check it is.
    pub container: String,
    /// The check.
    pub info: CheckInfo,
}

impl CheckEvent {
    /// The container the check runs in (`event.workload` in ops).
    pub fn workload(&self) -> Result<Container> {
        Container::get(&self.container)
    }
}

/// A Pebble notice (`ops.pebble.Notice`); times are RFC 3339 text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// The notice's id.
    pub id: String,
    /// The user the notice belongs to; `None` for public notices.
    pub user_id: Option<u32>,
    /// The notice type, such as `custom`.
    pub kind: String,
    /// The key, such as `example.com/db-ready`.
    pub key: String,
    /// When it first occurred.
    pub first_occurred: String,
    /// When it last occurred.
    pub last_occurred: String,
    /// When it last counted as a repeat.
    pub last_repeated: String,
    /// How many times it occurred.
    pub occurrences: u32,
    /// The data given with the last occurrence.
    pub last_data: BTreeMap<String, String>,
    /// How long after an occurrence a new one counts as a repeat.
    pub repeat_after: Option<Duration>,
    /// How long after the last repeat the notice expires.
    pub expire_after: Option<Duration>,
}

/// Payload of `pebble-custom-notice`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoticeEvent {
    /// The container that recorded the notice.
    pub container: String,
    /// The notice.
    pub notice: Notice,
}

impl NoticeEvent {
    /// The container that recorded the notice (`event.workload` in ops).
    pub fn workload(&self) -> Result<Container> {
        Container::get(&self.container)
    }
}

/// Payload of an action: its id, name and JSON parameters (validated, defaults applied).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionEvent {
    /// The action run's id.
    pub id: String,
    /// The action's name, as declared in `charmcraft.yaml` `actions:`.
    pub name: String,
    /// The parameters as a JSON object.
    pub params_json: String,
}

impl ActionEvent {
    /// The parameters decoded into `T` (typically a `#[derive(Deserialize)]` struct).
    pub fn params<T: DeserializeOwned>(&self) -> Result<T> {
        let text = if self.params_json.trim().is_empty() {
            "{}"
        } else {
            &self.params_json
        };
        serde_json::from_str(text).map_err(|e| {
            Error::msg(format!(
                "cannot decode parameters of action {:?}: {e}",
                self.name
            ))
        })
    }

    /// Sets results of this run (merged with earlier ones), as `event.set_results` in ops.
    pub fn set_results<K: AsRef<str>, V: ToString>(&self, results: &[(K, V)]) -> Result<()> {
        let pairs: Vec<(String, String)> = results
            .iter()
            .map(|(k, v)| (k.as_ref().to_string(), v.to_string()))
            .collect();
        crate::host::action_set_results(&pairs).map_err(Error::Model)
    }

    /// Records a progress message of this run, as `event.log` in ops.
    pub fn log(&self, message: impl AsRef<str>) -> Result<()> {
        crate::host::action_log(message.as_ref()).map_err(Error::Model)
    }

    /// Marks this run failed with `message`, as `event.fail` in ops; the handler may still
    /// return `Ok` (status and stored state are then kept).
    pub fn fail(&self, message: impl AsRef<str>) -> Result<()> {
        crate::host::action_fail(message.as_ref()).map_err(Error::Model)
    }

    /// One parameter decoded into `T`; `Ok(None)` if it is absent.
    pub fn param<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let mut all: BTreeMap<String, serde_json::Value> = self.params()?;
        match all.remove(key) {
            None => Ok(None),
            Some(v) => serde_json::from_value(v)
                .map(Some)
                .map_err(|e| Error::msg(format!("action {:?} parameter {key:?}: {e}", self.name))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_juju() {
        assert_eq!(Event::PebbleReady("web".into()).name(), "web-pebble-ready");
        let a = ActionEvent {
            id: "1".into(),
            name: "backup".into(),
            params_json: r#"{"to": "/tmp", "n": 3}"#.into(),
        };
        assert_eq!(Event::Action(a.clone()).name(), "backup-action");
        assert_eq!(a.param::<u32>("n").unwrap(), Some(3));
        assert_eq!(a.param::<String>("nope").unwrap(), None);
        assert!(a.param::<String>("n").is_err());
    }
}
