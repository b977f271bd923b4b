//! The declarative state a run starts from and returns, and the events a test fires.

use std::collections::BTreeMap;

use cairn_runtime::types::{LogLine, RelationSnapshot, Relations};
use cairn_runtime::{ActionReport, ConfigValue, WorkloadStatus};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::container::Container;

/// Everything the charm can see of its unit, declared by a test; and, returned by a run,
/// what the charm left it as (and what the run logged and reported).
///
/// Build one with [`State::new`] and the `with_*` methods. Containers the charm's
/// metadata declares and the state does not are added empty and connectable.
#[derive(Clone, Debug, Default)]
pub struct State {
    /// The operator's config settings (the charm sees them over charmcraft.yaml's
    /// defaults); each is checked against the option's declared type as the host checks.
    pub config: BTreeMap<String, ConfigValue>,
    /// Whether the unit is its application's leader.
    pub leader: bool,
    /// The unit's workload status.
    pub unit_status: WorkloadStatus,
    /// The application's status.
    pub app_status: WorkloadStatus,
    /// Stored state, raw.
    pub stored: BTreeMap<String, Vec<u8>>,
    /// The unit's containers, by name.
    pub containers: BTreeMap<String, Container>,
    /// The unit's relations and their bags.
    pub relations: Relations,
    /// Events the charm deferred: delivered again, in order, before the next one.
    pub deferred: Vec<cairn_runtime::Event>,
    /// What the run that returned this state logged (charm log calls and guest output).
    pub logs: Vec<LogLine>,
    /// What the action the run delivered reported (results, log, failure).
    pub action: Option<ActionReport>,
}

impl State {
    /// A unit with no settings, not leader, status unknown, no stored state.
    pub fn new() -> Self {
        State::default()
    }

    /// Sets a config option.
    pub fn with_config(mut self, key: &str, value: impl Into<ConfigValue>) -> Self {
        self.config.insert(key.to_string(), value.into());
        self
    }

    /// Sets leadership.
    pub fn with_leader(mut self, leader: bool) -> Self {
        self.leader = leader;
        self
    }

    /// Sets the unit's status.
    pub fn with_unit_status(mut self, status: WorkloadStatus) -> Self {
        self.unit_status = status;
        self
    }

    /// Sets a stored-state value, raw.
    pub fn with_stored(mut self, key: &str, value: impl AsRef<[u8]>) -> Self {
        self.stored.insert(key.to_string(), value.as_ref().to_vec());
        self
    }

    /// Sets a stored-state value as JSON, as the SDK's `StoredState::save` writes it.
    pub fn with_saved<T: Serialize + ?Sized>(self, key: &str, value: &T) -> Self {
        let bytes = serde_json::to_vec(value).expect("value serializes to JSON");
        self.with_stored(key, bytes)
    }

    /// Adds (or replaces) a container.
    pub fn with_container(mut self, container: Container) -> Self {
        self.containers
            .insert(container.name().to_string(), container);
        self
    }

    /// Adds (or replaces) a relation, by its id.
    pub fn with_relation(mut self, relation: Relation) -> Self {
        let r = relation.0;
        self.relations.relations.insert(r.id, r);
        self
    }

    /// Relation `id` as the charm left it: its bags, the unit's own included (panics if
    /// the state has none).
    pub fn relation(&self, id: u32) -> &RelationSnapshot {
        self.relations
            .relations
            .get(&id)
            .unwrap_or_else(|| panic!("the state has no relation {id}"))
    }

    /// Adds an event the charm deferred earlier.
    pub fn with_deferred(mut self, event: cairn_runtime::Event) -> Self {
        self.deferred.push(event);
        self
    }

    /// Container `name` (panics if the state has none: a test asking for it is wrong).
    pub fn container(&self, name: &str) -> &Container {
        self.containers
            .get(name)
            .unwrap_or_else(|| panic!("the state has no container {name:?}"))
    }

    /// A stored-state value read as JSON, as the SDK's `StoredState::load` reads it.
    pub fn load<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        serde_json::from_slice(self.stored.get(key)?).ok()
    }

    /// Messages the run logged, in order.
    pub fn log_messages(&self) -> Vec<&str> {
        self.logs.iter().map(|l| l.message.as_str()).collect()
    }
}

/// A relation of the unit (ops Scenario's `Relation`): its id, this charm's endpoint, the
/// application at the other end, its units and every bag the unit may read. The interface
/// is the endpoint's in charmcraft.yaml.
#[derive(Clone, Debug)]
pub struct Relation(pub(crate) RelationSnapshot);

fn pairs(data: &[(&str, &str)]) -> BTreeMap<String, String> {
    data.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Relation {
    /// Relation `id` on `endpoint`, with `remote_app` at the other end, no units yet.
    pub fn new(id: u32, endpoint: &str, remote_app: &str) -> Self {
        Relation(RelationSnapshot {
            id,
            endpoint: endpoint.to_string(),
            interface: String::new(),
            remote_app: remote_app.to_string(),
            remote_units: Vec::new(),
            local_unit: BTreeMap::new(),
            local_app: BTreeMap::new(),
            remote_unit_data: BTreeMap::new(),
            remote_app_data: BTreeMap::new(),
        })
    }

    /// A remote unit in the relation, with its bag.
    pub fn remote_unit(mut self, unit: &str, data: &[(&str, &str)]) -> Self {
        if !self.0.remote_units.iter().any(|u| u == unit) {
            self.0.remote_units.push(unit.to_string());
        }
        self.0
            .remote_unit_data
            .insert(unit.to_string(), pairs(data));
        self
    }

    /// The remote application's bag.
    pub fn remote_app_data(mut self, data: &[(&str, &str)]) -> Self {
        self.0.remote_app_data = pairs(data);
        self
    }

    /// This unit's own bag.
    pub fn local_unit_data(mut self, data: &[(&str, &str)]) -> Self {
        self.0.local_unit = pairs(data);
        self
    }

    /// This application's bag (the leader's to read and write).
    pub fn local_app_data(mut self, data: &[(&str, &str)]) -> Self {
        self.0.local_app = pairs(data);
        self
    }
}

/// Which relation event, for [`Event::Relation`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelationKind {
    /// `<endpoint>-relation-created`.
    Created,
    /// `<endpoint>-relation-joined` (a remote unit).
    Joined,
    /// `<endpoint>-relation-changed` (a remote unit's bag, or the remote app's).
    Changed,
    /// `<endpoint>-relation-departed` (a remote unit).
    Departed,
    /// `<endpoint>-relation-broken`.
    Broken,
}

/// An event to fire at the charm (ops Scenario's `ctx.on.*`): the host's events, with
/// check, notice and action events named by what the state declares.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// `install`.
    Install,
    /// `start`.
    Start,
    /// `stop`.
    Stop,
    /// `remove`.
    Remove,
    /// `config-changed`.
    ConfigChanged,
    /// `upgrade-charm`.
    UpgradeCharm,
    /// `update-status`.
    UpdateStatus,
    /// `leader-elected`.
    LeaderElected,
    /// `<container>-pebble-ready`.
    PebbleReady(String),
    /// `<container>-pebble-check-failed` for a check of the container's plan: the check
    /// is down with its threshold of failures (or what the state declares) when the
    /// charm runs.
    CheckFailed {
        /// The container.
        container: String,
        /// The check.
        check: String,
    },
    /// `<container>-pebble-check-recovered`: the check is up again.
    CheckRecovered {
        /// The container.
        container: String,
        /// The check.
        check: String,
    },
    /// `<container>-pebble-custom-notice` for the container's notice of `key` (declared
    /// with [`Container::notice`]).
    CustomNotice {
        /// The container.
        container: String,
        /// The notice's key.
        key: String,
    },
    /// `<name>-action` with its parameters (a JSON object), checked and defaulted by
    /// the action's schema in charmcraft.yaml as the host does.
    Action {
        /// The action.
        name: String,
        /// Its parameters.
        params: serde_json::Value,
    },
    /// A relation event for relation `id` of the state (about `unit`, a remote unit, for
    /// joined, departed and a unit bag's change).
    Relation {
        /// Which event.
        kind: RelationKind,
        /// The relation.
        id: u32,
        /// The remote unit it is about.
        unit: Option<String>,
    },
    /// Any event of the host as it is.
    Host(cairn_runtime::Event),
}

impl Event {
    /// `<container>-pebble-ready`.
    pub fn pebble_ready(container: &str) -> Self {
        Event::PebbleReady(container.to_string())
    }

    /// `<container>-pebble-check-failed` for `check`.
    pub fn check_failed(container: &str, check: &str) -> Self {
        Event::CheckFailed {
            container: container.to_string(),
            check: check.to_string(),
        }
    }

    /// `<container>-pebble-check-recovered` for `check`.
    pub fn check_recovered(container: &str, check: &str) -> Self {
        Event::CheckRecovered {
            container: container.to_string(),
            check: check.to_string(),
        }
    }

    /// `<container>-pebble-custom-notice` for the notice of `key`.
    pub fn custom_notice(container: &str, key: &str) -> Self {
        Event::CustomNotice {
            container: container.to_string(),
            key: key.to_string(),
        }
    }

    /// A relation event for relation `id`, about remote `unit` when given.
    pub fn relation(kind: RelationKind, id: u32, unit: Option<&str>) -> Self {
        Event::Relation {
            kind,
            id,
            unit: unit.map(str::to_string),
        }
    }

    /// `<name>-action` with `params` (a JSON object, `json!({})` for none).
    pub fn action(name: &str, params: serde_json::Value) -> Self {
        Event::Action {
            name: name.to_string(),
            params,
        }
    }
}

/// The texts an operator would type for a JSON object of action parameters (`key=value`).
pub(crate) fn action_settings(params: &serde_json::Value) -> Result<Vec<(String, String)>, String> {
    let map = match params {
        serde_json::Value::Object(m) => m,
        serde_json::Value::Null => return Ok(Vec::new()),
        other => {
            return Err(format!(
                "action parameters must be a JSON object, got {other}"
            ));
        }
    };
    Ok(cairn_charm::param_settings(map))
}
