//! JSON documents written as YAML the way `yaml.v3` marshals the Go values they came from:
//! what Pebble's CLI prints for `--format yaml`, from the same values it prints as JSON.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::render::string_out;
use crate::yaml::emit::{Emitter, Out, ScalarStyle};

/// A JSON value with its object keys in document order.
enum Json {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Json, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Json;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E>(self) -> Result<Json, E> {
                Ok(Json::Null)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
                Ok(Json::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
                Ok(Json::Number(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
                Ok(Json::Number(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Json, E> {
                Ok(Json::Number(v.to_string()))
            }
            fn visit_str<E>(self, v: &str) -> Result<Json, E> {
                Ok(Json::String(v.to_string()))
            }
            fn visit_string<E>(self, v: String) -> Result<Json, E> {
                Ok(Json::String(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Json, A::Error> {
                let mut items = Vec::new();
                while let Some(v) = a.next_element()? {
                    items.push(v);
                }
                Ok(Json::Array(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Json, A::Error> {
                let mut entries = Vec::new();
                while let Some((k, v)) = a.next_entry::<String, Json>()? {
                    entries.push((k, v));
                }
                Ok(Json::Object(entries))
            }
        }
        d.deserialize_any(V)
    }
}

/// The YAML `yaml.v3` writes for the Go value that marshals to `json`: fields in the same
/// order, strings quoted where they would read back as something else, `null`, `{}` and
/// `[]` as such. The strings under `time_keys` were `time.Time` values in Go, which
/// `yaml.v3` writes unquoted.
pub fn json_to_yaml(json: &str, time_keys: &[&str]) -> Result<String, String> {
    let value: Json = serde_json::from_str(json).map_err(|e| e.to_string())?;
    Ok(Emitter::document(&out(&value, false, time_keys)))
}

fn out(v: &Json, is_time: bool, time_keys: &[&str]) -> Out {
    match v {
        Json::Null => Out::scalar("null", ScalarStyle::Plain),
        Json::Bool(b) => Out::scalar(b.to_string(), ScalarStyle::Plain),
        Json::Number(n) => Out::scalar(n.clone(), ScalarStyle::Plain),
        Json::String(s) if is_time => Out::scalar(s.clone(), ScalarStyle::Plain),
        Json::String(s) => string_out(s),
        Json::Array(items) => Out::seq(items.iter().map(|i| out(i, false, time_keys)).collect()),
        Json::Object(entries) => Out::map(
            entries
                .iter()
                .map(|(k, v)| {
                    (
                        string_out(k),
                        out(v, time_keys.contains(&k.as_str()), time_keys),
                    )
                })
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_are_written_as_yaml_v3_writes_them() {
        let json = r#"{"changes":[{"id":"1","kind":"replan","ready":true,"spawn-time":"2026-12-03T19:14:32.514758478Z","log":["a: b"],"size":63,"permissions":"644","last-modified":"2026-12-03T19:14:30Z","user-id":null,"data":{}}],"none":[]}"#;
        let want = "changes:
    - id: \"1\"
      kind: replan
      ready: true
      spawn-time: 2026-12-03T19:14:32.514758478Z
      log:
        - 'a: b'
      size: 63
      permissions: \"644\"
      last-modified: \"2026-12-03T19:14:30Z\"
      user-id: null
      data: {}
none: []
";
        assert_eq!(json_to_yaml(json, &["spawn-time"]).unwrap(), want);
    }
}
