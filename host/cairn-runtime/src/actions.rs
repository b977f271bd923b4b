//! Actions: what an operator asks a unit's charm to do now (`cairn run-action web/0
//! backup k=v`).
//!
//! `charmcraft.yaml` `actions:` declares each action with a JSON-schema `params` object;
//! parameters given as `key=value` are typed by that schema (`string`, `integer`,
//! `number`, `boolean`, or JSON for `array`/`object`), checked (`required`,
//! `additionalProperties: false`, enums) and completed with defaults before the charm
//! runs (the rules live in `cairn-charm`, shared with the SDK's testing harness). Every run is a record persisted under `<state>/actions/<id>.json`: pending,
//! running, then completed or failed, with the results, log messages and failure
//! message the charm reported.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::watch;

use crate::RuntimeError;
use crate::charm::CharmMeta;

/// One action run, as `cairn show-action` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ActionRecord {
    /// Increasing integer, as a string.
    pub id: String,
    /// The unit, such as `db/0`.
    pub unit: String,
    /// The action's name.
    pub action: String,
    /// Parameters after validation and defaults.
    pub params: Value,
    /// Where the run is.
    pub status: ActionStatus,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Results the charm set.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub results: BTreeMap<String, String>,
    /// Progress messages the charm logged: (time, message).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log: Vec<(String, String)>,
    /// When it was queued (RFC 3339).
    pub enqueued: String,
    /// When the charm started on it (RFC 3339; empty while pending).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub started: String,
    /// When it finished (RFC 3339; empty until then).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub completed: String,
}

impl ActionRecord {
    /// Whether it has finished.
    pub fn done(&self) -> bool {
        matches!(self.status, ActionStatus::Completed | ActionStatus::Failed)
    }
}

/// Where an action run is; records store it as `pending`, `running`, `completed` or
/// `failed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionStatus {
    /// Queued on the unit, not started.
    Pending,
    /// The charm is handling it.
    Running,
    /// The charm handled it without failing it.
    Completed,
    /// The charm failed it (`action-fail`), or its event failed.
    Failed,
}

impl ActionStatus {
    /// The status as records and `cairn show-action` spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionStatus::Pending => "pending",
            ActionStatus::Running => "running",
            ActionStatus::Completed => "completed",
            ActionStatus::Failed => "failed",
        }
    }
}

impl std::fmt::Display for ActionStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod status_tests {
    use super::*;

    #[test]
    fn records_keep_their_lowercase_status() {
        for (status, text) in [
            (ActionStatus::Pending, "pending"),
            (ActionStatus::Running, "running"),
            (ActionStatus::Completed, "completed"),
            (ActionStatus::Failed, "failed"),
        ] {
            let record = format!(
                r#"{{"id":"7","unit":"db/0","action":"backup","params":{{}},"status":"{text}","enqueued":"2026-01-01T00:00:00Z"}}"#
            );
            let parsed: ActionRecord = serde_json::from_str(&record).unwrap();
            assert_eq!(parsed.status, status);
            assert_eq!(parsed.status.to_string(), text);
            assert_eq!(serde_json::to_string(&parsed).unwrap(), record);
        }
        let misspelt = r#"{"id":"7","unit":"db/0","action":"b","params":{},"status":"complete","enqueued":""}"#;
        assert!(serde_json::from_str::<ActionRecord>(misspelt).is_err());
    }
}

/// The host's action records.
pub(crate) struct ActionStore {
    dir: PathBuf,
    next: Mutex<u64>,
    changed: watch::Sender<u64>,
}

impl ActionStore {
    /// Opens `<state>/actions`, continuing its numbering.
    pub(crate) fn open(dir: PathBuf) -> Result<Self, RuntimeError> {
        std::fs::create_dir_all(&dir)
            .map_err(|e| RuntimeError::State(format!("cannot create {}: {e}", dir.display())))?;
        let last = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| {
                        e.file_name()
                            .to_str()?
                            .strip_suffix(".json")?
                            .parse::<u64>()
                            .ok()
                    })
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0);
        Ok(ActionStore {
            dir,
            next: Mutex::new(last + 1),
            changed: watch::channel(0).0,
        })
    }

    /// Records a new pending run.
    pub(crate) fn create(
        &self,
        unit: &str,
        action: &str,
        params: Value,
    ) -> Result<ActionRecord, RuntimeError> {
        let id = {
            let mut n = self.next.lock().unwrap();
            let id = *n;
            *n += 1;
            id
        };
        let rec = ActionRecord {
            id: id.to_string(),
            unit: unit.to_string(),
            action: action.to_string(),
            params,
            status: ActionStatus::Pending,
            message: String::new(),
            results: BTreeMap::new(),
            log: Vec::new(),
            enqueued: crate::now(),
            started: String::new(),
            completed: String::new(),
        };
        self.save(&rec)?;
        Ok(rec)
    }

    /// Replaces a record (atomically) and wakes waiters.
    pub(crate) fn save(&self, rec: &ActionRecord) -> Result<(), RuntimeError> {
        let path = self.dir.join(format!("{}.json", rec.id));
        let data =
            serde_json::to_vec_pretty(rec).map_err(|e| RuntimeError::State(e.to_string()))?;
        cairn_supervisor::persist::atomic_write(&path, &data)
            .map_err(|e| RuntimeError::State(format!("cannot write {}: {e}", path.display())))?;
        self.changed.send_modify(|v| *v += 1);
        Ok(())
    }

    /// The record of run `id`.
    pub(crate) fn get(&self, id: &str) -> Result<ActionRecord, RuntimeError> {
        let not_found = || RuntimeError::NotFound(format!("action {id:?} not found"));
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(not_found());
        }
        let path = self.dir.join(format!("{id}.json"));
        let data = std::fs::read(&path).map_err(|_| not_found())?;
        serde_json::from_slice(&data).map_err(|source| RuntimeError::Record {
            action: "parse",
            path,
            source,
        })
    }

    /// Runs left pending or running that will never finish: their unit does not queue
    /// them (the host stopped between recording a run and queueing it, or the unit is
    /// gone). `queued(unit, id)` says whether a live unit still has the run queued. Each
    /// is marked failed with the reason; a record that cannot be read is left alone.
    pub(crate) fn fail_orphans(&self, queued: impl Fn(&str, &str) -> Option<bool>) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            let Ok(mut rec) = self.get(id) else {
                continue;
            };
            if rec.done() {
                continue;
            }
            let message = match queued(&rec.unit, &rec.id) {
                Some(true) => continue,
                Some(false) => "the host stopped before the action was queued",
                None => "its unit is gone",
            };
            tracing::warn!("action {} on {} failed: {message}", rec.id, rec.unit);
            rec.status = ActionStatus::Failed;
            rec.message = message.to_string();
            rec.completed = crate::now();
            if let Err(e) = self.save(&rec) {
                tracing::error!("cannot record action {}: {e}", rec.id);
            }
        }
    }

    /// Waits until run `id` has finished (or `timeout` passes); returns its record.
    pub(crate) async fn wait(
        &self,
        id: &str,
        timeout: Duration,
    ) -> Result<ActionRecord, RuntimeError> {
        let mut rx = self.changed.subscribe();
        let wait = async {
            loop {
                let rec = self.get(id)?;
                if rec.done() {
                    return Ok(rec);
                }
                if rx.changed().await.is_err() {
                    return Ok(rec);
                }
            }
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(r) => r,
            Err(_) => self.get(id),
        }
    }
}

/// Types `key=value` settings by the action's params schema, checks them and applies
/// defaults; returns the parameters as a JSON object (`cairn_charm`'s rules and messages).
pub fn validate_params(
    meta: &CharmMeta,
    action: &str,
    settings: &[(String, String)],
) -> Result<Value, RuntimeError> {
    Ok(meta.validate_params(action, settings)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> CharmMeta {
        CharmMeta::parse(
            "name: db\nactions:\n  backup:\n    description: x\n    params:\n      target:\n        type: string\n      level:\n        type: integer\n        default: 3\n      fast:\n        type: boolean\n      mode:\n        type: string\n        enum: [full, incr]\n    required: [target]\n    additionalProperties: false\n",
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
    fn bad_params_are_config_errors_with_the_schema_messages() {
        // The schema rules and their texts are cairn-charm's (tested there); the host
        // reports a refusal as a configuration error, message unchanged.
        let settings = kv(&[("target", "/x"), ("level", "high")]);
        let e = validate_params(&meta(), "backup", &settings).unwrap_err();
        assert!(matches!(e, RuntimeError::Config(_)), "{e:?}");
        assert_eq!(
            e.to_string(),
            "invalid parameters for action \"backup\": level: expected integer, got \"high\""
        );
    }
}
