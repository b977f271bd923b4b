//! `requires`, `provides` and `peers`: a charm's relation endpoints, in Juju's shorthand
//! (`db: postgresql`) or long form (`db: {interface: postgresql, limit: 1}`), checked by
//! Juju's rules with its texts.

use serde::{Deserialize, Serialize};

use crate::CharmError;
use crate::meta::CharmMeta;

/// Which side of a relation an endpoint is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RelationRole {
    /// Declared under `provides`.
    Provider,
    /// Declared under `requires`.
    Requirer,
    /// Declared under `peers`.
    Peer,
}

/// One endpoint as declared.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "SpecRepr")]
pub struct RelationSpec {
    /// The interface spoken over the endpoint.
    pub interface: String,
    /// The most relations the endpoint takes (`None`: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Whether the charm works without the relation.
    #[serde(default)]
    pub optional: bool,
    /// `global` (the default) or `container`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum SpecRepr {
    Short(String),
    Long {
        interface: String,
        #[serde(default)]
        limit: Option<u32>,
        #[serde(default)]
        optional: bool,
        #[serde(default)]
        scope: Option<String>,
    },
}

impl From<SpecRepr> for RelationSpec {
    fn from(r: SpecRepr) -> Self {
        match r {
            SpecRepr::Short(interface) => RelationSpec {
                interface,
                limit: None,
                optional: false,
                scope: None,
            },
            SpecRepr::Long {
                interface,
                limit,
                optional,
                scope,
            } => RelationSpec {
                interface,
                limit,
                optional,
                scope,
            },
        }
    }
}

/// Juju's reserved names: `juju` and `juju-*`.
fn reserved(name: &str) -> bool {
    name == "juju" || name.starts_with("juju-")
}

/// Juju's checks of a charm's endpoints (`charm.Meta.Check`): no reserved endpoint name, no
/// reserved interface but on `requires`, no name used twice.
pub(crate) fn check(meta: &CharmMeta) -> Result<(), CharmError> {
    let mut names = std::collections::BTreeSet::new();
    let charm = &meta.name;
    for (name, role, spec) in meta.endpoints() {
        if reserved(name) {
            return Err(CharmError::Relation(format!(
                "charm {charm:?} using a reserved relation name: {name:?}"
            )));
        }
        if role != RelationRole::Requirer && reserved(&spec.interface) {
            return Err(CharmError::Relation(format!(
                "charm {charm:?} relation {name:?} using a reserved interface: {:?}",
                spec.interface
            )));
        }
        if !names.insert(name) {
            return Err(CharmError::Relation(format!(
                "charm {charm:?} using a duplicated relation name: {name:?}"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &str) -> Result<CharmMeta, String> {
        CharmMeta::parse(&format!("name: a\n{extra}")).map_err(|e| e.to_string())
    }

    #[test]
    fn endpoints_read_in_shorthand_and_long_form() {
        let m = parse(
            "requires:\n  db: postgresql\nprovides:\n  website:\n    interface: http\n    limit: 1\n    optional: true\npeers:\n  cluster: a-peers\n",
        )
        .unwrap();
        assert_eq!(
            m.endpoint("db"),
            Some((
                RelationRole::Requirer,
                &RelationSpec {
                    interface: "postgresql".into(),
                    limit: None,
                    optional: false,
                    scope: None
                }
            ))
        );
        let (role, web) = m.endpoint("website").unwrap();
        assert_eq!(role, RelationRole::Provider);
        assert_eq!(
            (web.interface.as_str(), web.limit, web.optional),
            ("http", Some(1), true)
        );
        assert_eq!(m.endpoint("cluster").unwrap().0, RelationRole::Peer);
        assert_eq!(m.endpoint("nope"), None);
        let names: Vec<_> = m.endpoints().map(|(n, _, _)| n).collect();
        assert_eq!(names, ["website", "db", "cluster"]);
    }

    #[test]
    fn endpoints_juju_refuses_are_refused_with_its_texts() {
        for (yaml, want) in [
            (
                "provides:\n  juju: blob\n",
                r#"charm "a" using a reserved relation name: "juju""#,
            ),
            (
                "requires:\n  juju-crackle: blub\n",
                r#"charm "a" using a reserved relation name: "juju-crackle""#,
            ),
            (
                "peers:\n  juju-pop: blub\n",
                r#"charm "a" using a reserved relation name: "juju-pop""#,
            ),
            (
                "provides:\n  innocuous: juju\n",
                r#"charm "a" relation "innocuous" using a reserved interface: "juju""#,
            ),
            (
                "peers:\n  innocuous: juju-snap\n",
                r#"charm "a" relation "innocuous" using a reserved interface: "juju-snap""#,
            ),
            (
                "provides:\n  foo: x\nrequires:\n  foo: y\n",
                r#"charm "a" using a duplicated relation name: "foo""#,
            ),
        ] {
            assert_eq!(parse(yaml).unwrap_err(), want, "{yaml}");
        }
        // A requirer may consume a reserved interface (juju-info).
        assert!(parse("requires:\n  info: juju-info\n").is_ok());
    }
}
