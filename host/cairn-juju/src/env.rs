//! Juju's environment, read as `ops` reads it (`ops/jujucontext.py`), and the hook it names
//! (`ops/_main.py`'s `_Dispatcher`): `JUJU_DISPATCH_PATH` is `hooks/<name>` or
//! `actions/<name>`; workload events take their container from `JUJU_WORKLOAD_NAME`,
//! notice events their notice from `JUJU_NOTICE_ID`/`_TYPE`/`_KEY`, check events their
//! check from `JUJU_PEBBLE_CHECK_NAME`, relation events (`<endpoint>-relation-<kind>`) their
//! relation from `JUJU_RELATION`/`JUJU_RELATION_ID` and `JUJU_REMOTE_UNIT`,
//! `JUJU_REMOTE_APP` and `JUJU_DEPARTING_UNIT`.

use std::path::PathBuf;

use cairn_runtime::Event;
use cairn_runtime::types::RelationEvent;

use crate::JujuError;

/// The `JUJU_*` variables a dispatch uses.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JujuContext {
    /// `JUJU_DISPATCH_PATH`: `hooks/install`, `actions/backup`.
    pub dispatch_path: String,
    /// `JUJU_UNIT_NAME`: `web/0`.
    pub unit_name: String,
    /// `JUJU_MODEL_NAME`.
    pub model_name: String,
    /// `JUJU_CHARM_DIR` (the working directory when unset).
    pub charm_dir: Option<PathBuf>,
    /// `JUJU_ACTION_NAME`.
    pub action_name: Option<String>,
    /// `JUJU_ACTION_UUID`.
    pub action_uuid: Option<String>,
    /// `JUJU_WORKLOAD_NAME`: the container of a workload event.
    pub workload_name: Option<String>,
    /// `JUJU_NOTICE_ID`.
    pub notice_id: Option<String>,
    /// `JUJU_NOTICE_TYPE`.
    pub notice_type: Option<String>,
    /// `JUJU_NOTICE_KEY`.
    pub notice_key: Option<String>,
    /// `JUJU_PEBBLE_CHECK_NAME`.
    pub check_name: Option<String>,
    /// `JUJU_VERSION`.
    pub version: Option<String>,
    /// `JUJU_RELATION`: the endpoint of a relation event.
    pub relation: Option<String>,
    /// `JUJU_RELATION_ID`: `db:3`.
    pub relation_id: Option<String>,
    /// `JUJU_REMOTE_UNIT`.
    pub remote_unit: Option<String>,
    /// `JUJU_REMOTE_APP`.
    pub remote_app: Option<String>,
    /// `JUJU_DEPARTING_UNIT`.
    pub departing_unit: Option<String>,
}

impl JujuContext {
    /// Reads the variables through `get` (the process environment in the binary).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Self, JujuError> {
        let opt = |k: &str| get(k).filter(|v| !v.is_empty());
        let unit_name = opt("JUJU_UNIT_NAME")
            .ok_or_else(|| JujuError::Env("JUJU_UNIT_NAME is not set".into()))?;
        if !unit_name.contains('/') {
            return Err(JujuError::Env(format!(
                "JUJU_UNIT_NAME {unit_name:?} is not a unit name"
            )));
        }
        let dispatch_path = opt("JUJU_DISPATCH_PATH")
            .ok_or_else(|| JujuError::Env("JUJU_DISPATCH_PATH is not set".into()))?;
        Ok(JujuContext {
            dispatch_path,
            unit_name,
            model_name: opt("JUJU_MODEL_NAME").unwrap_or_default(),
            charm_dir: opt("JUJU_CHARM_DIR").map(PathBuf::from),
            action_name: opt("JUJU_ACTION_NAME"),
            action_uuid: opt("JUJU_ACTION_UUID"),
            workload_name: opt("JUJU_WORKLOAD_NAME"),
            notice_id: opt("JUJU_NOTICE_ID"),
            notice_type: opt("JUJU_NOTICE_TYPE"),
            notice_key: opt("JUJU_NOTICE_KEY"),
            check_name: opt("JUJU_PEBBLE_CHECK_NAME"),
            version: opt("JUJU_VERSION"),
            relation: opt("JUJU_RELATION"),
            relation_id: opt("JUJU_RELATION_ID"),
            remote_unit: opt("JUJU_REMOTE_UNIT"),
            remote_app: opt("JUJU_REMOTE_APP"),
            departing_unit: opt("JUJU_DEPARTING_UNIT"),
        })
    }

    /// The application's name (the unit name before `/`).
    pub fn app_name(&self) -> &str {
        self.unit_name.split('/').next().unwrap_or_default()
    }

    /// The hook this dispatch is for.
    pub fn hook(&self) -> Result<Hook, JujuError> {
        let path = self.dispatch_path.trim_start_matches("./");
        let (kind, name) = path.rsplit_once('/').unwrap_or(("hooks", path));
        let kind = kind.rsplit('/').next().unwrap_or(kind);
        if kind == "actions" {
            return Ok(Hook::Action {
                name: name.to_string(),
                id: self.action_uuid.clone().unwrap_or_default(),
            });
        }
        let simple = match name {
            "install" => Some(Event::Install),
            "start" => Some(Event::Start),
            "stop" => Some(Event::Stop),
            "remove" => Some(Event::Remove),
            "config-changed" => Some(Event::ConfigChanged),
            "upgrade-charm" => Some(Event::UpgradeCharm),
            "update-status" => Some(Event::UpdateStatus),
            "leader-elected" => Some(Event::LeaderElected),
            _ => None,
        };
        if let Some(e) = simple {
            return Ok(Hook::Event(e));
        }
        // ops skips even deferred events in these (their hook tools are limited).
        if matches!(name, "collect-metrics" | "meter-status-changed") {
            return Ok(Hook::Restricted(name.to_string()));
        }
        let workload = |suffix: &str| -> Result<Option<String>, JujuError> {
            if !name.ends_with(suffix) {
                return Ok(None);
            }
            self.workload_name
                .clone()
                .map(Some)
                .ok_or_else(|| JujuError::Env(format!("JUJU_WORKLOAD_NAME is not set for {name}")))
        };
        if let Some(container) = workload("-pebble-ready")? {
            return Ok(Hook::Event(Event::PebbleReady { container }));
        }
        if let Some(container) = workload("-pebble-custom-notice")? {
            let need = |v: &Option<String>, k: &str| {
                v.clone()
                    .ok_or_else(|| JujuError::Env(format!("{k} is not set for {name}")))
            };
            return Ok(Hook::CustomNotice {
                container,
                id: need(&self.notice_id, "JUJU_NOTICE_ID")?,
                notice_type: self.notice_type.clone().unwrap_or_else(|| "custom".into()),
                key: need(&self.notice_key, "JUJU_NOTICE_KEY")?,
            });
        }
        for (suffix, failed) in [
            ("-pebble-check-failed", true),
            ("-pebble-check-recovered", false),
        ] {
            if let Some(container) = workload(suffix)? {
                let check = self.check_name.clone().ok_or_else(|| {
                    JujuError::Env(format!("JUJU_PEBBLE_CHECK_NAME is not set for {name}"))
                })?;
                return Ok(Hook::Check {
                    container,
                    check,
                    failed,
                });
            }
        }
        if let Some(event) = self.relation_event(name)? {
            return Ok(Hook::Event(event));
        }
        Ok(Hook::Unhandled(name.to_string()))
    }

    /// The relation event a `<endpoint>-relation-<kind>` hook names, as ops builds it:
    /// the relation from `JUJU_RELATION_ID` (`db:3`), the remote app from `JUJU_REMOTE_APP`
    /// (else the remote unit's app).
    fn relation_event(&self, name: &str) -> Result<Option<Event>, JujuError> {
        type Make = fn(RelationEvent) -> Event;
        let kinds: [(&str, Make); 5] = [
            ("-relation-created", Event::RelationCreated),
            ("-relation-joined", Event::RelationJoined),
            ("-relation-changed", Event::RelationChanged),
            ("-relation-departed", Event::RelationDeparted),
            ("-relation-broken", Event::RelationBroken),
        ];
        let Some((endpoint, make)) = kinds
            .iter()
            .find_map(|(suffix, make)| Some((name.strip_suffix(suffix)?, make)))
        else {
            return Ok(None);
        };
        let id_text = self
            .relation_id
            .as_deref()
            .ok_or_else(|| JujuError::Env(format!("JUJU_RELATION_ID is not set for {name}")))?;
        let relation_id = id_text
            .rsplit(':')
            .next()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| {
                JujuError::Env(format!("JUJU_RELATION_ID {id_text:?} is not a relation id"))
            })?;
        let remote_app = self
            .remote_app
            .clone()
            .or_else(|| {
                let unit = self.remote_unit.as_deref()?;
                Some(unit.split('/').next()?.to_string())
            })
            .unwrap_or_default();
        Ok(Some(make(RelationEvent {
            relation_id,
            endpoint: self
                .relation
                .clone()
                .unwrap_or_else(|| endpoint.to_string()),
            remote_app,
            remote_unit: self.remote_unit.clone(),
            departing_unit: self.departing_unit.clone(),
        })))
    }
}

/// What a dispatch delivers.
#[derive(Clone, Debug, PartialEq)]
pub enum Hook {
    /// An event whose payload is all in the environment.
    Event(Event),
    /// An action: its parameters come from `action-get`.
    Action {
        /// The action's name.
        name: String,
        /// `JUJU_ACTION_UUID`.
        id: String,
    },
    /// A custom notice: the rest of the notice is asked of the container's Pebble.
    CustomNotice {
        /// The container.
        container: String,
        /// `JUJU_NOTICE_ID`.
        id: String,
        /// `JUJU_NOTICE_TYPE`.
        notice_type: String,
        /// `JUJU_NOTICE_KEY`.
        key: String,
    },
    /// A check failed (or recovered): its state is asked of the container's Pebble.
    Check {
        /// The container.
        container: String,
        /// `JUJU_PEBBLE_CHECK_NAME`.
        check: String,
        /// Failed, else recovered.
        failed: bool,
    },
    /// A hook the WIT world has no event for (relations, secrets, storage, …): as `ops`
    /// does for an event the charm does not observe, deferred events are still re-emitted
    /// and nothing else happens.
    Unhandled(String),
    /// `collect-metrics`/`meter-status-changed`: ops runs nothing at all in them.
    Restricted(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn ctx(vars: &[(&str, &str)]) -> Result<JujuContext, JujuError> {
        let mut m: HashMap<String, String> = HashMap::from([
            ("JUJU_UNIT_NAME".into(), "web/0".into()),
            ("JUJU_MODEL_NAME".into(), "m".into()),
        ]);
        for (k, v) in vars {
            m.insert(k.to_string(), v.to_string());
        }
        JujuContext::from_vars(|k| m.get(k).cloned())
    }

    fn hook(vars: &[(&str, &str)]) -> Hook {
        ctx(vars).unwrap().hook().unwrap()
    }

    #[test]
    fn lifecycle_hooks_map_to_their_events() {
        for (path, event) in [
            ("hooks/install", Event::Install),
            ("hooks/config-changed", Event::ConfigChanged),
            ("hooks/upgrade-charm", Event::UpgradeCharm),
            ("hooks/update-status", Event::UpdateStatus),
            ("hooks/leader-elected", Event::LeaderElected),
            ("hooks/stop", Event::Stop),
            ("hooks/remove", Event::Remove),
            ("./hooks/start", Event::Start),
        ] {
            assert_eq!(hook(&[("JUJU_DISPATCH_PATH", path)]), Hook::Event(event));
        }
    }

    #[test]
    fn relation_hooks_take_their_relation_and_remote_side_from_the_environment() {
        let departed = hook(&[
            ("JUJU_DISPATCH_PATH", "hooks/db-relation-departed"),
            ("JUJU_RELATION", "db"),
            ("JUJU_RELATION_ID", "db:3"),
            ("JUJU_REMOTE_UNIT", "pg/1"),
            ("JUJU_REMOTE_APP", "pg"),
            ("JUJU_DEPARTING_UNIT", "pg/1"),
        ]);
        assert_eq!(
            departed,
            Hook::Event(Event::RelationDeparted(RelationEvent {
                relation_id: 3,
                endpoint: "db".into(),
                remote_app: "pg".into(),
                remote_unit: Some("pg/1".into()),
                departing_unit: Some("pg/1".into()),
            }))
        );
        // Without JUJU_REMOTE_APP the remote unit names the app; the hook names the endpoint.
        let joined = hook(&[
            ("JUJU_DISPATCH_PATH", "hooks/cache-relation-joined"),
            ("JUJU_RELATION_ID", "cache:12"),
            ("JUJU_REMOTE_UNIT", "redis/0"),
        ]);
        let Hook::Event(Event::RelationJoined(r)) = joined else {
            panic!("{joined:?}");
        };
        assert_eq!(
            (r.relation_id, r.endpoint.as_str(), r.remote_app.as_str()),
            (12, "cache", "redis")
        );
        let err = ctx(&[("JUJU_DISPATCH_PATH", "hooks/db-relation-broken")])
            .unwrap()
            .hook()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot dispatch: JUJU_RELATION_ID is not set for db-relation-broken"
        );
    }

    #[test]
    fn workload_events_take_their_container_from_juju_workload_name() {
        assert_eq!(
            hook(&[
                ("JUJU_DISPATCH_PATH", "hooks/web-pebble-ready"),
                ("JUJU_WORKLOAD_NAME", "web")
            ]),
            Hook::Event(Event::PebbleReady {
                container: "web".into()
            })
        );
        assert_eq!(
            hook(&[
                ("JUJU_DISPATCH_PATH", "hooks/db-pebble-custom-notice"),
                ("JUJU_WORKLOAD_NAME", "db"),
                ("JUJU_NOTICE_ID", "12"),
                ("JUJU_NOTICE_TYPE", "custom"),
                ("JUJU_NOTICE_KEY", "example.com/dump"),
            ]),
            Hook::CustomNotice {
                container: "db".into(),
                id: "12".into(),
                notice_type: "custom".into(),
                key: "example.com/dump".into()
            }
        );
        assert_eq!(
            hook(&[
                ("JUJU_DISPATCH_PATH", "hooks/web-pebble-check-recovered"),
                ("JUJU_WORKLOAD_NAME", "web"),
                ("JUJU_PEBBLE_CHECK_NAME", "up"),
            ]),
            Hook::Check {
                container: "web".into(),
                check: "up".into(),
                failed: false
            }
        );
        let err = ctx(&[("JUJU_DISPATCH_PATH", "hooks/web-pebble-ready")])
            .unwrap()
            .hook()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot dispatch: JUJU_WORKLOAD_NAME is not set for web-pebble-ready"
        );
    }

    #[test]
    fn actions_are_named_by_their_path_and_identified_by_their_uuid() {
        assert_eq!(
            hook(&[
                ("JUJU_DISPATCH_PATH", "actions/backup"),
                ("JUJU_ACTION_NAME", "backup"),
                ("JUJU_ACTION_UUID", "7"),
            ]),
            Hook::Action {
                name: "backup".into(),
                id: "7".into()
            }
        );
    }

    #[test]
    fn events_without_a_wit_variant_are_unhandled_and_metrics_restricted() {
        assert_eq!(
            hook(&[("JUJU_DISPATCH_PATH", "hooks/secret-changed")]),
            Hook::Unhandled("secret-changed".into())
        );
        assert_eq!(
            hook(&[("JUJU_DISPATCH_PATH", "hooks/collect-metrics")]),
            Hook::Restricted("collect-metrics".into())
        );
    }

    #[test]
    fn a_missing_unit_name_or_dispatch_path_is_refused() {
        let none = JujuContext::from_vars(|_| None).unwrap_err();
        assert_eq!(
            none.to_string(),
            "cannot dispatch: JUJU_UNIT_NAME is not set"
        );
        let e = ctx(&[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot dispatch: JUJU_DISPATCH_PATH is not set"
        );
        assert_eq!(
            ctx(&[("JUJU_DISPATCH_PATH", "hooks/install")])
                .unwrap()
                .app_name(),
            "web"
        );
    }
}
