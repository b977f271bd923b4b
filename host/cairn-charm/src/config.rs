//! Config options (`config.options` of charmcraft.yaml) and typed config values.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::CharmError;

/// A typed config value, as declared in `charmcraft.yaml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ConfigValue {
    /// `type: boolean`.
    Bool(bool),
    /// `type: int`.
    Int(i64),
    /// `type: float`.
    Float(f64),
    /// `type: string` (and `secret`).
    String(String),
}

impl From<bool> for ConfigValue {
    fn from(v: bool) -> Self {
        ConfigValue::Bool(v)
    }
}

impl From<i64> for ConfigValue {
    fn from(v: i64) -> Self {
        ConfigValue::Int(v)
    }
}

impl From<i32> for ConfigValue {
    fn from(v: i32) -> Self {
        ConfigValue::Int(v.into())
    }
}

impl From<f64> for ConfigValue {
    fn from(v: f64) -> Self {
        ConfigValue::Float(v)
    }
}

impl From<&str> for ConfigValue {
    fn from(v: &str) -> Self {
        ConfigValue::String(v.to_string())
    }
}

impl From<String> for ConfigValue {
    fn from(v: String) -> Self {
        ConfigValue::String(v)
    }
}

impl std::fmt::Display for ConfigValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigValue::Bool(b) => write!(f, "{b}"),
            ConfigValue::Int(i) => write!(f, "{i}"),
            ConfigValue::Float(x) => write!(f, "{x}"),
            ConfigValue::String(s) => write!(f, "{s}"),
        }
    }
}

/// `config:` of charmcraft.yaml.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Default)]
pub struct ConfigSection {
    /// Options by name.
    #[serde(default)]
    pub options: BTreeMap<String, ConfigOption>,
}

/// One config option: its type, default and description.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct ConfigOption {
    /// `string`, `int`, `float`, `boolean` or `secret`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The default, if any.
    #[serde(default)]
    pub default: Option<serde_yaml::Value>,
    /// Shown to operators.
    #[serde(default)]
    pub description: String,
}

impl ConfigOption {
    /// Checks the declared type and that the default (if any) has it.
    pub(crate) fn check(&self, name: &str) -> Result<(), CharmError> {
        if !matches!(
            self.kind.as_str(),
            "string" | "int" | "float" | "boolean" | "secret"
        ) {
            return Err(CharmError::UnknownType {
                option: name.to_string(),
                kind: self.kind.clone(),
            });
        }
        if let Some(d) = &self.default {
            self.value_of(d).map_err(|reason| CharmError::BadDefault {
                option: name.to_string(),
                reason,
            })?;
        }
        Ok(())
    }

    /// The default as a typed value (`None` without one, or with one of another type).
    pub fn default_value(&self) -> Option<ConfigValue> {
        self.default.as_ref().and_then(|d| self.value_of(d).ok())
    }

    /// Types an operator's text for this option (`name` is the option's, for the message).
    pub(crate) fn parse_setting(&self, name: &str, value: &str) -> Result<ConfigValue, CharmError> {
        let bad = || CharmError::BadSetting {
            option: name.to_string(),
            kind: self.kind.clone(),
            value: value.to_string(),
        };
        Ok(match self.kind.as_str() {
            "int" => ConfigValue::Int(value.trim().parse().map_err(|_| bad())?),
            // NaN and the infinities have no JSON form: stored, they would come back as
            // `null` and the record would no longer load.
            "float" => ConfigValue::Float(
                value
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite())
                    .ok_or_else(bad)?,
            ),
            "boolean" => ConfigValue::Bool(match value.trim() {
                "true" => true,
                "false" => false,
                _ => return Err(bad()),
            }),
            _ => ConfigValue::String(value.to_string()),
        })
    }

    fn value_of(&self, v: &serde_yaml::Value) -> Result<ConfigValue, String> {
        use serde_yaml::Value;
        match (self.kind.as_str(), v) {
            ("int", Value::Number(n)) if n.is_i64() => Ok(ConfigValue::Int(n.as_i64().unwrap())),
            ("float", Value::Number(n)) => match n.as_f64() {
                Some(x) if x.is_finite() => Ok(ConfigValue::Float(x)),
                _ => Err(format!("expected a finite float, got {n}")),
            },
            ("boolean", Value::Bool(b)) => Ok(ConfigValue::Bool(*b)),
            ("string" | "secret", Value::String(s)) => Ok(ConfigValue::String(s.clone())),
            (kind, other) => Err(format!("expected {kind}, got {other:?}")),
        }
    }
}
