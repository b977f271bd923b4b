//! `charmcraft.yaml` as a whole: name, containers, config and actions.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::CharmError;
use crate::actions::ActionSpec;
use crate::config::{ConfigSection, ConfigValue};
use crate::relations::{RelationRole, RelationSpec};

/// The parts of `charmcraft.yaml` Cairn uses (real charmcraft keys).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct CharmMeta {
    /// The charm's name (the default app name).
    pub name: String,
    /// One-line summary.
    #[serde(default)]
    pub summary: String,
    /// Workload containers, by name (their settings, such as `resource`, are kept as given).
    #[serde(default)]
    pub containers: BTreeMap<String, serde_yaml::Value>,
    /// Config options.
    #[serde(default)]
    pub config: ConfigSection,
    /// Actions, by name.
    #[serde(default, deserialize_with = "crate::actions::actions_or_null")]
    pub actions: BTreeMap<String, ActionSpec>,
    /// Endpoints this charm consumes, by name (`requires`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub requires: BTreeMap<String, RelationSpec>,
    /// Endpoints this charm offers, by name (`provides`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub provides: BTreeMap<String, RelationSpec>,
    /// Endpoints among this application's own units, by name (`peers`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub peers: BTreeMap<String, RelationSpec>,
}

impl CharmMeta {
    /// Parses `charmcraft.yaml` text and checks its config options (known types, and
    /// defaults of the declared type) and its container and action names (Juju's rules).
    pub fn parse(text: &str) -> Result<Self, CharmError> {
        let meta: CharmMeta = serde_yaml::from_str(text).map_err(CharmError::Parse)?;
        for (name, option) in &meta.config.options {
            option.check(name)?;
        }
        for name in meta.containers.keys() {
            if !valid_container_name(name) {
                return Err(CharmError::InvalidName {
                    kind: "container",
                    name: name.clone(),
                    rule: CONTAINER_RULE,
                });
            }
        }
        for name in meta.actions.keys() {
            if !valid_action_name(name) {
                return Err(CharmError::InvalidName {
                    kind: "action",
                    name: name.clone(),
                    rule: ACTION_RULE,
                });
            }
        }
        crate::relations::check(&meta)?;
        Ok(meta)
    }

    /// The endpoint `name` of any role, with its role.
    pub fn endpoint(&self, name: &str) -> Option<(RelationRole, &RelationSpec)> {
        self.endpoints()
            .find(|(n, _, _)| *n == name)
            .map(|(_, r, s)| (r, s))
    }

    /// Every endpoint: `provides`, then `requires`, then `peers`, each sorted by name.
    pub fn endpoints(&self) -> impl Iterator<Item = (&str, RelationRole, &RelationSpec)> {
        fn role(
            m: &BTreeMap<String, RelationSpec>,
            r: RelationRole,
        ) -> impl Iterator<Item = (&str, RelationRole, &RelationSpec)> {
            m.iter().map(move |(n, s)| (n.as_str(), r, s))
        }
        role(&self.provides, RelationRole::Provider)
            .chain(role(&self.requires, RelationRole::Requirer))
            .chain(role(&self.peers, RelationRole::Peer))
    }

    /// Defaults merged with the operator's settings: the config a charm sees.
    pub fn effective_config(
        &self,
        settings: &BTreeMap<String, ConfigValue>,
    ) -> BTreeMap<String, ConfigValue> {
        let mut out = BTreeMap::new();
        for (name, option) in &self.config.options {
            if let Some(v) = settings.get(name) {
                out.insert(name.clone(), v.clone());
            } else if let Some(d) = option.default_value() {
                out.insert(name.clone(), d);
            }
        }
        out
    }

    /// Types an operator's `key=value` setting by the option's declared type.
    pub fn parse_setting(&self, key: &str, value: &str) -> Result<ConfigValue, CharmError> {
        self.config
            .options
            .get(key)
            .ok_or_else(|| CharmError::UnknownOption(key.to_string()))?
            .parse_setting(key, value)
    }

    /// Checks that `key` is a declared option, as resetting it to its default requires.
    pub fn check_option(&self, key: &str) -> Result<(), CharmError> {
        if self.config.options.contains_key(key) {
            Ok(())
        } else {
            Err(CharmError::UnknownOption(key.to_string()))
        }
    }

    /// Types an action's `key=value` parameters by its schema, checks them and applies
    /// defaults; returns the parameters as a JSON object.
    pub fn validate_params(
        &self,
        action: &str,
        settings: &[(String, String)],
    ) -> Result<serde_json::Value, CharmError> {
        let spec = self
            .actions
            .get(action)
            .ok_or_else(|| CharmError::UnknownAction {
                action: action.to_string(),
                charm: self.name.clone(),
                known: self.actions.keys().cloned().collect(),
            })?;
        spec.validate(settings)
            .map_err(|reason| CharmError::BadParams {
                action: action.to_string(),
                reason,
            })
    }
}

const CONTAINER_RULE: &str = "lowercase letters, digits and hyphens, starting with a letter, each part after a hyphen with a letter";
const ACTION_RULE: &str = "lowercase letters and hyphens, starting and ending with a letter";

/// Juju's container (and storage) name rule, `[a-z][a-z0-9]*(-[a-z0-9]*[a-z][a-z0-9]*)*`:
/// a container's name becomes a directory of the host's state directory, so nothing else
/// (no `/`, no `..`) may get through.
pub fn valid_container_name(name: &str) -> bool {
    let mut parts = name.split('-');
    let first = parts.next().unwrap_or_default();
    let lower_digit = |p: &str| {
        p.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    first.as_bytes().first().is_some_and(u8::is_ascii_lowercase)
        && lower_digit(first)
        && parts.all(|p| lower_digit(p) && p.bytes().any(|b| b.is_ascii_lowercase()))
}

/// Juju's action name rule, `^[a-z](?:[a-z-]*[a-z])?$`.
pub fn valid_action_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_lowercase()
        && b[b.len() - 1].is_ascii_lowercase()
        && b.iter().all(|c| c.is_ascii_lowercase() || *c == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    const META: &str = "name: web\nsummary: a web server\ncontainers:\n  web:\n    resource: web-image\nconfig:\n  options:\n    port:\n      type: int\n      default: 8080\n    debug:\n      type: boolean\n    name:\n      type: string\n      default: x\n";

    #[test]
    fn settings_are_parsed_by_declared_type() {
        let m = CharmMeta::parse(META).unwrap();
        assert_eq!(
            m.parse_setting("port", "9090").unwrap(),
            ConfigValue::Int(9090)
        );
        assert_eq!(
            m.parse_setting("debug", "true").unwrap(),
            ConfigValue::Bool(true)
        );
        assert_eq!(
            m.parse_setting("port", "abc").unwrap_err().to_string(),
            "option \"port\" expected int, got \"abc\""
        );
        assert_eq!(
            m.parse_setting("debug", "yes").unwrap_err().to_string(),
            "option \"debug\" expected boolean, got \"yes\""
        );
        assert_eq!(
            m.parse_setting("nope", "1").unwrap_err().to_string(),
            "unknown option \"nope\""
        );
        assert_eq!(
            m.check_option("nope").unwrap_err().to_string(),
            "unknown option \"nope\""
        );
        assert!(m.check_option("port").is_ok());
    }

    #[test]
    fn defaults_fill_unset_options() {
        let m = CharmMeta::parse(META).unwrap();
        let mut s = BTreeMap::new();
        s.insert("name".to_string(), ConfigValue::String("y".into()));
        let c = m.effective_config(&s);
        assert_eq!(c["port"], ConfigValue::Int(8080));
        assert_eq!(c["name"], ConfigValue::String("y".into()));
        assert!(!c.contains_key("debug"));
        assert_eq!(m.summary, "a web server");
        assert!(m.containers.contains_key("web"));
    }

    #[test]
    fn bad_metadata_is_refused_with_the_option_named() {
        let bad = "name: x\nconfig:\n  options:\n    port:\n      type: int\n      default: nope\n";
        let e = CharmMeta::parse(bad).unwrap_err();
        assert_eq!(
            e.to_string(),
            "config option \"port\" default: expected int, got String(\"nope\")"
        );
        assert!(e.is_metadata_error());
        let bad = "name: x\nconfig:\n  options:\n    port:\n      type: integer\n";
        assert_eq!(
            CharmMeta::parse(bad).unwrap_err().to_string(),
            "config option \"port\" has unknown type \"integer\""
        );
        let e = CharmMeta::parse("name: [").unwrap_err();
        assert!(
            e.to_string().starts_with("cannot parse charmcraft.yaml: "),
            "{e}"
        );
        assert!(std::error::Error::source(&e).is_some());
    }

    #[test]
    fn container_names_that_would_leave_the_state_directory_are_refused() {
        for bad in [
            "../x",
            "/tmp/evil",
            "a/b",
            "..",
            "",
            "Web",
            "1web",
            "web-",
            "web-2",
            "a--b",
            "we_b",
        ] {
            let text = format!("name: x\ncontainers:\n  {bad:?}:\n    resource: r\n");
            let e = CharmMeta::parse(&text).unwrap_err();
            assert!(e.is_metadata_error(), "{bad}: {e}");
            assert!(
                e.to_string()
                    .starts_with(&format!("invalid container name {bad:?}")),
                "{e}"
            );
        }
        for ok in ["web", "db2", "my-app", "web-2b", "a1-b"] {
            let text = format!("name: x\ncontainers:\n  {ok}:\n    resource: r\n");
            assert!(CharmMeta::parse(&text).is_ok(), "{ok}");
        }
    }

    #[test]
    fn action_names_follow_juju_rule() {
        for bad in [
            "Backup", "back_up", "backup-", "-backup", "backup2", "../x", "a b",
        ] {
            let text = format!("name: x\nactions:\n  {bad:?}:\n    description: d\n");
            let e = CharmMeta::parse(&text).unwrap_err();
            assert!(
                e.to_string().starts_with("invalid action name"),
                "{bad}: {e}"
            );
        }
        for ok in ["backup", "get-status", "a"] {
            let text = format!("name: x\nactions:\n  {ok}:\n    description: d\n");
            assert!(CharmMeta::parse(&text).is_ok(), "{ok}");
        }
    }

    #[test]
    fn float_settings_that_json_cannot_hold_are_refused() {
        let m =
            CharmMeta::parse("name: x\nconfig:\n  options:\n    f:\n      type: float\n").unwrap();
        for bad in ["nan", "NaN", "inf", "-inf", "infinity", "1e999"] {
            assert_eq!(
                m.parse_setting("f", bad).unwrap_err().to_string(),
                format!("option \"f\" expected float, got {bad:?}")
            );
        }
        assert_eq!(
            m.parse_setting("f", "1.5").unwrap(),
            ConfigValue::Float(1.5)
        );
        let e = CharmMeta::parse(
            "name: x\nconfig:\n  options:\n    f:\n      type: float\n      default: .nan\n",
        )
        .unwrap_err();
        assert!(e.is_metadata_error(), "{e}");
    }

    #[test]
    fn metadata_round_trips_through_json() {
        // The host persists the metadata inside its app records as JSON.
        let m = CharmMeta::parse(&format!(
            "{META}actions:\n  backup:\n    description: b\n    params:\n      to:\n        type: string\n    required: [to]\n    additionalProperties: false\n    execution-group: g\n  restart:\n"
        ))
        .unwrap();
        let json = serde_json::to_string(&m).unwrap();
        let back: CharmMeta = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m);
        assert_eq!(m.actions["backup"].required, ["to"]);
        assert_eq!(m.actions["backup"].additional_properties, Some(false));
        assert_eq!(m.actions["restart"], ActionSpec::default());
    }
}
