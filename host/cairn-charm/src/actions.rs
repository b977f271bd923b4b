//! Actions (`actions:` of charmcraft.yaml): each declares its parameters as a JSON schema
//! object; parameters given as `key=value` are typed by it (`string`, `integer`, `number`,
//! `boolean`, or JSON text for `array`/`object`), checked (`required`,
//! `additionalProperties: false`, `enum`) and completed with defaults.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// One action's declaration.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
pub struct ActionSpec {
    /// Shown to operators.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Parameters by name, each a JSON schema (`type`, `default`, `enum`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, Value>,
    /// Parameters that must be given (or have a default).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required: Vec<String>,
    /// `false` refuses parameters the schema does not name; otherwise they pass as strings.
    #[serde(
        default,
        rename = "additionalProperties",
        skip_serializing_if = "Option::is_none"
    )]
    pub additional_properties: Option<bool>,
    /// Other keys of the declaration (such as `execution-group`), kept as given.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// Reads `actions:`, where an action may be declared with nothing under it.
pub(crate) fn actions_or_null<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, ActionSpec>, D::Error> {
    let actions: Option<BTreeMap<String, Option<ActionSpec>>> = Option::deserialize(d)?;
    Ok(actions
        .unwrap_or_default()
        .into_iter()
        .map(|(name, spec)| (name, spec.unwrap_or_default()))
        .collect())
}

impl ActionSpec {
    /// Types, checks and completes `key=value` parameters; `Err` says what is wrong.
    pub(crate) fn validate(&self, settings: &[(String, String)]) -> Result<Value, String> {
        let mut out = serde_json::Map::new();
        for (key, raw) in settings {
            let Some(schema) = self.params.get(key) else {
                if self.additional_properties == Some(false) {
                    return Err(format!("unknown parameter {key:?}"));
                }
                out.insert(key.clone(), Value::String(raw.clone()));
                continue;
            };
            let value = typed(key, raw, schema)?;
            if let Some(allowed) = schema["enum"].as_array()
                && !allowed.contains(&value)
            {
                return Err(format!(
                    "{key}: {value} is not one of {}",
                    Value::Array(allowed.clone())
                ));
            }
            out.insert(key.clone(), value);
        }
        for (key, schema) in &self.params {
            if !out.contains_key(key)
                && let Some(d) = schema.get("default")
            {
                out.insert(key.clone(), d.clone());
            }
        }
        if let Some(missing) = self.required.iter().find(|r| !out.contains_key(*r)) {
            return Err(format!("missing required parameter {missing:?}"));
        }
        Ok(Value::Object(out))
    }
}

/// Reads `raw` as the schema's `type` (a string when it names none).
fn typed(key: &str, raw: &str, schema: &Value) -> Result<Value, String> {
    let kind = schema["type"].as_str().unwrap_or("string");
    Ok(match kind {
        "string" => Value::String(raw.to_string()),
        "integer" => raw
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| format!("{key}: expected integer, got {raw:?}"))?,
        "number" => raw
            .parse::<f64>()
            .ok()
            .and_then(|f| serde_json::Number::from_f64(f).map(Value::Number))
            .ok_or_else(|| format!("{key}: expected number, got {raw:?}"))?,
        "boolean" => match raw {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err(format!("{key}: expected boolean, got {raw:?}")),
        },
        "array" | "object" => {
            let v: Value = serde_json::from_str(raw)
                .map_err(|_| format!("{key}: expected {kind} as JSON, got {raw:?}"))?;
            let fits = if kind == "array" {
                v.is_array()
            } else {
                v.is_object()
            };
            if !fits {
                return Err(format!("{key}: expected {kind}, got {raw:?}"));
            }
            v
        }
        other => return Err(format!("{key}: unsupported type {other:?} in the schema")),
    })
}

/// A JSON object of action parameters as the `key=value` texts an operator would type
/// (strings as they are, other values in JSON): what [`CharmMeta::validate_params`]
/// takes, for the testing harnesses that are given JSON.
///
/// [`CharmMeta::validate_params`]: crate::CharmMeta::validate_params
pub fn param_settings(params: &serde_json::Map<String, Value>) -> Vec<(String, String)> {
    params
        .iter()
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), text)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::CharmMeta;

    fn meta() -> CharmMeta {
        CharmMeta::parse(
            "name: db\nactions:\n  backup:\n    description: x\n    params:\n      target:\n        type: string\n      level:\n        type: integer\n        default: 3\n      fast:\n        type: boolean\n      mode:\n        type: string\n        enum: [full, incr]\n      tags:\n        type: array\n    required: [target]\n    additionalProperties: false\n  ping:\n    params:\n      n:\n        type: number\n",
        )
        .unwrap()
    }

    fn kv(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn params_are_typed_checked_and_defaulted() {
        let m = meta();
        let p = m
            .validate_params(
                "backup",
                &kv(&[("target", "/x"), ("fast", "true"), ("tags", "[1]")]),
            )
            .unwrap();
        assert_eq!(
            p,
            serde_json::json!({"target": "/x", "fast": true, "level": 3, "tags": [1]})
        );
        let e = |items: &[(&str, &str)]| {
            m.validate_params("backup", &kv(items))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            e(&[("target", "/x"), ("level", "high")]),
            "invalid parameters for action \"backup\": level: expected integer, got \"high\""
        );
        assert_eq!(
            e(&[]),
            "invalid parameters for action \"backup\": missing required parameter \"target\""
        );
        assert_eq!(
            e(&[("target", "/x"), ("extra", "1")]),
            "invalid parameters for action \"backup\": unknown parameter \"extra\""
        );
        assert_eq!(
            e(&[("target", "/x"), ("mode", "half")]),
            "invalid parameters for action \"backup\": mode: \"half\" is not one of [\"full\",\"incr\"]"
        );
        assert_eq!(
            e(&[("target", "/x"), ("tags", "{}")]),
            "invalid parameters for action \"backup\": tags: expected array, got \"{}\""
        );
        assert_eq!(
            m.validate_params("restore", &[]).unwrap_err().to_string(),
            "action \"restore\" not defined by charm \"db\" (it has: backup, ping)"
        );
    }

    #[test]
    fn undeclared_params_pass_as_strings_unless_refused() {
        let m = meta();
        assert_eq!(
            m.validate_params("ping", &kv(&[("n", "1.5"), ("x", "7")]))
                .unwrap(),
            serde_json::json!({"n": 1.5, "x": "7"})
        );
        let none = CharmMeta::parse("name: x\n").unwrap();
        assert_eq!(
            none.validate_params("ping", &[]).unwrap_err().to_string(),
            "action \"ping\" not defined by charm \"x\" (it has: none)"
        );
    }
}
