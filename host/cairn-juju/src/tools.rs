//! The `unit` interface over Juju's hook tools, called with the flags `ops`' hook command
//! wrappers use (`ops/hookcmds`): `config-get --format=json`, `is-leader --format=json`,
//! `status-get --include-data --format=json --application=<bool>`,
//! `status-set --application=<bool> <status> -- <message>`, `action-get --format=json`,
//! `action-set k=v…`, `action-log -- <message>`, `action-fail -- <message>`,
//! `juju-log --log-level <LEVEL> -- <message>`, `application-version-set -- <version>`,
//! and for relations `relation-ids --format=json <endpoint>`,
//! `relation-list --format=json -r <id> [--app]`,
//! `relation-get --format=json -r <id> - <unit or app> [--app]` and
//! `relation-set -r <id> [--app] k=v…` (an empty value deletes a key).
//!
//! Every tool is a process spawn, so reads happen only when the charm asks
//! ([`cairn_runtime::UnitFacts`]) and writes once, after the handler returns; except
//! `action-log`, run as the charm calls it, as ops does, so Juju shows progress live.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};

use cairn_charm::{ConfigSection, ConfigValue};
use cairn_runtime::types::LogLevel;
use cairn_runtime::types::RelationSnapshot;
use cairn_runtime::{UnitFacts, WorkloadStatus};

use crate::JujuError;

/// Runs `tool args…` (found on `PATH`) and returns its stdout; a non-zero exit is an error
/// carrying its stderr, as ops' `ModelError`.
pub fn run(tool: &str, args: &[&str]) -> Result<String, JujuError> {
    let out = Command::new(tool)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| JujuError::Tool(format!("cannot run {tool}: {e}")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let err = err.trim();
        return Err(JujuError::Tool(if err.is_empty() {
            format!("cannot run {tool}: {}", out.status)
        } else {
            format!("cannot run {tool}: {err}")
        }));
    }
    String::from_utf8(out.stdout)
        .map_err(|_| JujuError::Tool(format!("cannot run {tool}: output is not UTF-8")))
}

/// The unit's facts as Juju's hook tools give them; config values are typed by the
/// charm's declared options.
pub struct HookTools {
    options: ConfigSection,
    /// The charm's endpoints and their interfaces.
    endpoints: Vec<(String, String)>,
}

impl HookTools {
    /// Tools for a charm with these config options.
    pub fn new(options: ConfigSection) -> Self {
        HookTools {
            options,
            endpoints: Vec::new(),
        }
    }

    /// The charm's relation endpoints (name, interface): the relations asked for are theirs.
    pub fn with_endpoints(mut self, endpoints: Vec<(String, String)>) -> Self {
        self.endpoints = endpoints;
        self
    }
}

/// A JSON array of strings, as `relation-ids` and `relation-list` print them.
fn strings(tool: &str, text: &str) -> Result<Vec<String>, String> {
    let v = json(tool, text)?;
    if v.is_null() {
        return Ok(Vec::new());
    }
    v.as_array()
        .ok_or_else(|| format!("cannot parse output of {tool}: not a list"))?
        .iter()
        .map(|s| {
            s.as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("cannot parse output of {tool}: not a string"))
        })
        .collect()
}

/// A JSON value of `config-get` as the option's declared type (by its JSON form when the
/// option is not declared).
fn typed(kind: Option<&str>, v: &serde_json::Value) -> Option<ConfigValue> {
    use serde_json::Value as J;
    Some(match (kind, v) {
        (_, J::Null) => return None,
        (Some("int"), J::Number(n)) => ConfigValue::Int(
            n.as_i64()
                .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))?,
        ),
        (Some("float"), J::Number(n)) => ConfigValue::Float(n.as_f64()?),
        (_, J::Bool(b)) => ConfigValue::Bool(*b),
        (_, J::String(s)) => ConfigValue::String(s.clone()),
        (_, J::Number(n)) => match n.as_i64() {
            Some(i) => ConfigValue::Int(i),
            None => ConfigValue::Float(n.as_f64()?),
        },
        (_, other) => ConfigValue::String(other.to_string()),
    })
}

/// A status as `status-get --format=json` prints it (`{"status": …, "message": …}`).
fn status_of(v: &serde_json::Value) -> WorkloadStatus {
    let message = v["message"].as_str().unwrap_or_default().to_string();
    match v["status"].as_str().unwrap_or_default() {
        "active" => WorkloadStatus::Active(message),
        "blocked" => WorkloadStatus::Blocked(message),
        "maintenance" => WorkloadStatus::Maintenance(message),
        "waiting" => WorkloadStatus::Waiting(message),
        "error" => WorkloadStatus::Error(message),
        _ => WorkloadStatus::Unknown,
    }
}

fn json(tool: &str, text: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(text).map_err(|e| format!("cannot parse output of {tool}: {e}"))
}

impl UnitFacts for HookTools {
    fn config(&self) -> Result<BTreeMap<String, ConfigValue>, String> {
        let out = run("config-get", &["--format=json"]).map_err(|e| e.to_string())?;
        let v = json("config-get", &out)?;
        let obj = v
            .as_object()
            .ok_or("cannot parse output of config-get: not an object")?;
        Ok(obj
            .iter()
            .filter_map(|(k, v)| {
                let kind = self.options.options.get(k).map(|o| o.kind.as_str());
                Some((k.clone(), typed(kind, v)?))
            })
            .collect())
    }

    fn is_leader(&self) -> Result<bool, String> {
        let out = run("is-leader", &["--format=json"]).map_err(|e| e.to_string())?;
        json("is-leader", &out)?
            .as_bool()
            .ok_or_else(|| "cannot parse output of is-leader: not a boolean".into())
    }

    fn unit_status(&self) -> Result<WorkloadStatus, String> {
        let out = run(
            "status-get",
            &["--include-data", "--format=json", "--application=false"],
        )
        .map_err(|e| e.to_string())?;
        Ok(status_of(&json("status-get", &out)?))
    }

    fn app_status(&self) -> Result<WorkloadStatus, String> {
        let out = run(
            "status-get",
            &["--include-data", "--format=json", "--application=true"],
        )
        .map_err(|e| e.to_string())?;
        Ok(status_of(&json("status-get", &out)?["application-status"]))
    }

    fn relations(&self) -> Result<Vec<RelationSnapshot>, String> {
        let tool = |t: &str, args: &[&str]| run(t, args).map_err(|e| e.to_string());
        let mut out = Vec::new();
        for (endpoint, interface) in &self.endpoints {
            let ids = strings(
                "relation-ids",
                &tool("relation-ids", &["--format=json", endpoint])?,
            )?;
            for rid in ids {
                let id = rid
                    .rsplit(':')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| format!("cannot parse output of relation-ids: {rid:?}"))?;
                let n = id_arg(id);
                let mut remote_units = strings(
                    "relation-list",
                    &tool("relation-list", &["--format=json", "-r", &n])?,
                )?;
                remote_units.sort();
                let app = tool("relation-list", &["--format=json", "-r", &n, "--app"])?;
                let remote_app = json("relation-list", &app)?
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                out.push(RelationSnapshot {
                    id,
                    endpoint: endpoint.clone(),
                    interface: interface.clone(),
                    remote_app,
                    remote_units,
                    ..RelationSnapshot::default()
                });
            }
        }
        Ok(out)
    }

    fn relation_bag(
        &self,
        id: u32,
        owner: &str,
        app: bool,
    ) -> Result<BTreeMap<String, String>, String> {
        let n = id_arg(id);
        let mut args = vec!["--format=json", "-r", &n, "-", owner];
        if app {
            args.push("--app");
        }
        let out = run("relation-get", &args).map_err(|e| e.to_string())?;
        let v = json("relation-get", &out)?;
        if v.is_null() {
            return Ok(BTreeMap::new());
        }
        let obj = v
            .as_object()
            .ok_or("cannot parse output of relation-get: not an object")?;
        Ok(obj
            .iter()
            .map(|(k, v)| {
                let text = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                (k.clone(), text)
            })
            .collect())
    }

    fn action_log(&self, message: &str) -> Result<(), String> {
        action_log(message).map_err(|e| e.to_string())
    }
}

/// A relation id as the tools' `-r` takes it.
fn id_arg(id: u32) -> String {
    id.to_string()
}

/// Writes what changed in one of the unit's own bags of relation `id` (this unit's, or
/// with `app` its application's): every key whose value differs from `before`, and an
/// empty value for every key gone. Nothing changed: no call.
pub fn relation_set(
    id: u32,
    app: bool,
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
) -> Result<(), JujuError> {
    let mut settings: Vec<String> = after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(*v))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    settings.extend(
        before
            .keys()
            .filter(|k| !after.contains_key(*k))
            .map(|k| format!("{k}=")),
    );
    if settings.is_empty() {
        return Ok(());
    }
    let n = id_arg(id);
    let mut args = vec!["-r", n.as_str()];
    if app {
        args.push("--app");
    }
    args.extend(settings.iter().map(String::as_str));
    run("relation-set", &args).map(|_| ())
}

/// Sets the unit's (or with `app`, the application's) status.
pub fn status_set(status: &WorkloadStatus, app: bool) -> Result<(), JujuError> {
    let flag = format!("--application={app}");
    run(
        "status-set",
        &[&flag, status.name(), "--", status.message()],
    )
    .map(drop)
}

/// `action-get --format=json`: the running action's parameters, as a JSON object.
pub fn action_get() -> Result<String, JujuError> {
    let out = run("action-get", &["--format=json"])?;
    let v = json("action-get", &out).map_err(JujuError::Tool)?;
    if v.is_object() {
        Ok(v.to_string())
    } else {
        Ok("{}".into())
    }
}

/// `action-set k=v…` in one call.
pub fn action_set(results: &BTreeMap<String, String>) -> Result<(), JujuError> {
    let args: Vec<String> = results.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run("action-set", &args).map(drop)
}

/// `action-log -- <message>`.
pub fn action_log(message: &str) -> Result<(), JujuError> {
    run("action-log", &["--", message]).map(drop)
}

/// `action-fail -- <message>`.
pub fn action_fail(message: &str) -> Result<(), JujuError> {
    run("action-fail", &["--", message]).map(drop)
}

/// Juju's name of a log level (Python's, as ops passes them).
pub fn level_name(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Trace | LogLevel::Debug => "DEBUG",
        LogLevel::Info => "INFO",
        LogLevel::Warning => "WARNING",
        LogLevel::Error => "ERROR",
    }
}

/// `juju-log` calls started together and waited on together: each line is one process,
/// and the lines do not wait on each other.
#[derive(Default)]
pub struct LogSink {
    children: Vec<Child>,
    failed: Option<String>,
}

impl LogSink {
    /// Starts `juju-log --log-level LEVEL -- message`.
    pub fn log(&mut self, level: &str, message: &str) {
        match Command::new("juju-log")
            .args(["--log-level", level, "--", message])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
        {
            Ok(c) => self.children.push(c),
            Err(e) => self.failed = Some(format!("cannot run juju-log: {e}")),
        }
    }

    /// Waits for every call; the first failure, if any.
    pub fn finish(mut self) -> Result<(), JujuError> {
        for mut c in self.children.drain(..) {
            match c.wait() {
                Ok(s) if s.success() => {}
                Ok(s) => {
                    self.failed
                        .get_or_insert_with(|| format!("cannot run juju-log: {s}"));
                }
                Err(e) => {
                    self.failed
                        .get_or_insert_with(|| format!("cannot run juju-log: {e}"));
                }
            }
        }
        match self.failed {
            Some(e) => Err(JujuError::Tool(e)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_values_take_the_declared_type() {
        use serde_json::json;
        assert_eq!(
            typed(Some("int"), &json!(8080)),
            Some(ConfigValue::Int(8080))
        );
        assert_eq!(typed(Some("int"), &json!(3.0)), Some(ConfigValue::Int(3)));
        assert_eq!(
            typed(Some("float"), &json!(3)),
            Some(ConfigValue::Float(3.0))
        );
        assert_eq!(typed(None, &json!(1.5)), Some(ConfigValue::Float(1.5)));
        assert_eq!(
            typed(Some("boolean"), &json!(true)),
            Some(ConfigValue::Bool(true))
        );
        assert_eq!(
            typed(Some("string"), &json!("x")),
            Some(ConfigValue::String("x".into()))
        );
        assert_eq!(typed(Some("string"), &json!(null)), None);
    }

    #[test]
    fn statuses_are_read_as_status_get_prints_them() {
        let v = serde_json::json!({"status": "blocked", "message": "bad port", "status-data": {}});
        assert_eq!(status_of(&v), WorkloadStatus::Blocked("bad port".into()));
        assert_eq!(status_of(&serde_json::json!({})), WorkloadStatus::Unknown);
    }
}
