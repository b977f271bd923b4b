//! Stored state and deferred events of a unit under Juju, kept where ops keeps its
//! `.unit-state.db` for a sidecar charm: in the charm directory, which survives the
//! charm container's restarts. One JSON file, `.cairn-unit-state.json`, written atomically
//! (temporary file, fsync, rename, fsync of the directory) and only after every handler of
//! the dispatch succeeded.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cairn_runtime::Event;
use serde::{Deserialize, Serialize};

use crate::JujuError;

/// The state file's name in the charm directory.
pub const STATE_FILE: &str = ".cairn-unit-state.json";

/// What survives between dispatches.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UnitState {
    /// The charm's stored state.
    #[serde(default)]
    pub stored: BTreeMap<String, Vec<u8>>,
    /// Events the charm deferred, oldest first; re-delivered before the next event.
    #[serde(default)]
    pub deferred: Vec<Event>,
}

/// The state file of a charm directory.
pub fn path(charm_dir: &Path) -> PathBuf {
    charm_dir.join(STATE_FILE)
}

impl UnitState {
    /// Reads the state file (empty state when there is none yet).
    pub fn load(charm_dir: &Path) -> Result<Self, JujuError> {
        let p = path(charm_dir);
        match std::fs::read(&p) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| JujuError::Charm(format!("cannot parse {}: {e}", p.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(UnitState::default()),
            Err(e) => Err(JujuError::Charm(format!(
                "cannot read {}: {e}",
                p.display()
            ))),
        }
    }

    /// Writes the state file atomically.
    pub fn save(&self, charm_dir: &Path) -> Result<(), JujuError> {
        let p = path(charm_dir);
        let bytes = serde_json::to_vec(self)
            .map_err(|e| JujuError::Charm(format!("cannot encode {}: {e}", p.display())))?;
        cairn_supervisor::persist::atomic_write(&p, &bytes)
            .map_err(|e| JujuError::Charm(format!("cannot write {}: {e}", p.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_testutil::TempDir;

    #[test]
    fn state_round_trips_and_starts_empty() {
        let dir = TempDir::new("juju-state");
        assert_eq!(UnitState::load(dir.path()).unwrap(), UnitState::default());
        let s = UnitState {
            stored: BTreeMap::from([("port".into(), b"8080".to_vec())]),
            deferred: vec![Event::ConfigChanged],
        };
        s.save(dir.path()).unwrap();
        assert_eq!(UnitState::load(dir.path()).unwrap(), s);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(leftovers, [STATE_FILE]);
    }

    #[test]
    fn a_corrupt_state_file_is_an_error_not_an_empty_state() {
        let dir = TempDir::new("juju-state-bad");
        std::fs::write(path(dir.path()), b"{nope").unwrap();
        let e = UnitState::load(dir.path()).unwrap_err().to_string();
        assert!(
            e.starts_with("cannot parse ") && e.contains(STATE_FILE),
            "{e}"
        );
    }
}
