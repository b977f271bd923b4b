//! Charm metadata (`charmcraft.yaml`) and locating a charm's built component.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::RuntimeError;
use crate::types::ConfigValue;

/// The parts of `charmcraft.yaml` the host uses (real charmcraft keys).
#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq)]
pub struct CharmMeta {
    /// The charm's name (the default app name).
    pub name: String,
    /// One-line summary.
    #[serde(default)]
    pub summary: String,
    /// Workload containers, by name.
    #[serde(default)]
    pub containers: BTreeMap<String, serde_yaml::Value>,
    /// Config options.
    #[serde(default)]
    pub config: ConfigSection,
    /// Actions, by name (parameters are validated by a later host version).
    #[serde(default)]
    pub actions: BTreeMap<String, serde_yaml::Value>,
}

/// `config:` of charmcraft.yaml.
#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq, Default)]
pub struct ConfigSection {
    /// Options by name.
    #[serde(default)]
    pub options: BTreeMap<String, ConfigOption>,
}

/// One config option: its type, default and description.
#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq)]
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

impl CharmMeta {
    /// Parses `charmcraft.yaml` text.
    pub fn parse(text: &str) -> Result<Self, RuntimeError> {
        let meta: CharmMeta = serde_yaml::from_str(text)
            .map_err(|e| RuntimeError::Charm(format!("cannot parse charmcraft.yaml: {e}")))?;
        for (name, opt) in &meta.config.options {
            if !matches!(
                opt.kind.as_str(),
                "string" | "int" | "float" | "boolean" | "secret"
            ) {
                return Err(RuntimeError::Charm(format!(
                    "config option {name:?} has unknown type {:?}",
                    opt.kind
                )));
            }
            if let Some(d) = &opt.default {
                opt.value_of(d).map_err(|e| {
                    RuntimeError::Charm(format!("config option {name:?} default: {e}"))
                })?;
            }
        }
        Ok(meta)
    }

    /// Defaults merged with the user's settings: the config a charm sees.
    pub fn effective_config(
        &self,
        settings: &BTreeMap<String, ConfigValue>,
    ) -> BTreeMap<String, ConfigValue> {
        let mut out = BTreeMap::new();
        for (name, opt) in &self.config.options {
            if let Some(v) = settings.get(name) {
                out.insert(name.clone(), v.clone());
            } else if let Some(d) = opt.default.as_ref().and_then(|d| opt.value_of(d).ok()) {
                out.insert(name.clone(), d);
            }
        }
        out
    }

    /// Parses an operator's `key=value` for option `key` by its declared type.
    pub fn parse_setting(&self, key: &str, value: &str) -> Result<ConfigValue, RuntimeError> {
        let opt = self
            .config
            .options
            .get(key)
            .ok_or_else(|| RuntimeError::Config(format!("unknown option {key:?}")))?;
        let bad = || {
            RuntimeError::Config(format!(
                "option {key:?} expected {}, got {value:?}",
                opt.kind
            ))
        };
        Ok(match opt.kind.as_str() {
            "int" => ConfigValue::Int(value.trim().parse().map_err(|_| bad())?),
            "float" => ConfigValue::Float(value.trim().parse().map_err(|_| bad())?),
            "boolean" => ConfigValue::Bool(match value.trim() {
                "true" => true,
                "false" => false,
                _ => return Err(bad()),
            }),
            _ => ConfigValue::String(value.to_string()),
        })
    }
}

impl ConfigOption {
    fn value_of(&self, v: &serde_yaml::Value) -> Result<ConfigValue, String> {
        use serde_yaml::Value;
        match (self.kind.as_str(), v) {
            ("int", Value::Number(n)) if n.is_i64() => Ok(ConfigValue::Int(n.as_i64().unwrap())),
            ("float", Value::Number(n)) => Ok(ConfigValue::Float(n.as_f64().unwrap_or(0.0))),
            ("boolean", Value::Bool(b)) => Ok(ConfigValue::Bool(*b)),
            ("string" | "secret", Value::String(s)) => Ok(ConfigValue::String(s.clone())),
            (kind, other) => Err(format!("expected {kind}, got {other:?}")),
        }
    }
}

/// A charm on disk: its metadata and the path of its component.
#[derive(Clone, Debug)]
pub struct CharmSource {
    /// Parsed `charmcraft.yaml`.
    pub meta: CharmMeta,
    /// The component (`.wasm`).
    pub wasm: PathBuf,
}

impl CharmSource {
    /// Finds a charm from a directory (`charmcraft.yaml` plus `charm.wasm`, or the
    /// directory's crate built for wasm32-wasip2 under a `target/` above it) or from a
    /// `.wasm` file with `charmcraft.yaml` beside it.
    pub fn locate(path: &Path) -> Result<Self, RuntimeError> {
        let (dir, wasm) = if path.extension().is_some_and(|e| e == "wasm") {
            (
                path.parent().unwrap_or(Path::new(".")).to_path_buf(),
                Some(path.to_path_buf()),
            )
        } else {
            (path.to_path_buf(), None)
        };
        let meta_path = dir.join("charmcraft.yaml");
        let text = std::fs::read_to_string(&meta_path).map_err(|e| {
            RuntimeError::Charm(format!("cannot read {}: {e}", meta_path.display()))
        })?;
        let meta = CharmMeta::parse(&text)?;
        let wasm = match wasm {
            Some(w) => w,
            None => find_component(&dir)?,
        };
        if !wasm.is_file() {
            return Err(RuntimeError::Charm(format!(
                "cannot find component {}",
                wasm.display()
            )));
        }
        Ok(CharmSource { meta, wasm })
    }
}

fn find_component(dir: &Path) -> Result<PathBuf, RuntimeError> {
    let direct = dir.join("charm.wasm");
    if direct.is_file() {
        return Ok(direct);
    }
    let cargo = dir.join("Cargo.toml");
    let Ok(text) = std::fs::read_to_string(&cargo) else {
        return Err(RuntimeError::Charm(format!(
            "cannot find the charm's component: no charm.wasm in {} and no Cargo.toml to build one",
            dir.display()
        )));
    };
    let manifest: toml_lite::Manifest = toml_lite::parse(&text);
    let Some(package) = manifest.package_name else {
        return Err(RuntimeError::Charm(format!(
            "cannot read package name from {}",
            cargo.display()
        )));
    };
    let file = format!("{}.wasm", package.replace('-', "_"));
    let mut roots: Vec<PathBuf> = Vec::new();
    if let Ok(t) = std::env::var("CARGO_TARGET_DIR") {
        roots.push(PathBuf::from(t));
    }
    let abs = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    for anc in abs.ancestors() {
        roots.push(anc.join("target"));
    }
    for root in &roots {
        for profile in ["release", "guest", "debug"] {
            let p = root.join("wasm32-wasip2").join(profile).join(&file);
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    Err(RuntimeError::Charm(format!(
        "cannot find the charm's component {file}: build it with `cargo build --release --target wasm32-wasip2 -p {package}`"
    )))
}

/// The one fact read from a charm's Cargo.toml: its package name.
mod toml_lite {
    pub struct Manifest {
        pub package_name: Option<String>,
    }

    pub fn parse(text: &str) -> Manifest {
        let mut in_package = false;
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('[') {
                in_package = line == "[package]";
                continue;
            }
            if in_package
                && let Some(rest) = line.strip_prefix("name")
                && let Some(v) = rest.trim_start().strip_prefix('=')
            {
                return Manifest {
                    package_name: Some(v.trim().trim_matches('"').to_string()),
                };
            }
        }
        Manifest { package_name: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const META: &str = "name: web\ncontainers:\n  web:\n    resource: web-image\nconfig:\n  options:\n    port:\n      type: int\n      default: 8080\n    debug:\n      type: boolean\n    name:\n      type: string\n      default: x\n";

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
            m.parse_setting("nope", "1").unwrap_err().to_string(),
            "unknown option \"nope\""
        );
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
    }

    #[test]
    fn bad_default_type_is_refused() {
        let bad = "name: x\nconfig:\n  options:\n    port:\n      type: int\n      default: nope\n";
        assert!(CharmMeta::parse(bad).is_err());
    }

    #[test]
    fn package_name_is_read() {
        let m = toml_lite::parse("[package]\nname = \"web-charm\"\nversion = \"1\"\n");
        assert_eq!(m.package_name.as_deref(), Some("web-charm"));
    }
}
