//! The supervisor's state under its one lock, and its persistence in the container's
//! `.pebble.state` (atomic writes, coalesced by a background saver).

use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::Duration;

use cairn_plan::{Layers, Plan};
use serde::{Deserialize, Serialize};

use crate::changes::ChangeBook;
use crate::notices::NoticeBook;
use crate::{Inner, STATE_FILE, SupervisorError, persist};

/// How long the background saver waits after a change before writing, so that the
/// transitions of one operation become one write.
const SAVE_DELAY: Duration = Duration::from_millis(10);

/// Everything the supervisor's operations read and write together: layers, the plan they
/// make, changes and tasks, notices. One lock guards it (see `Inner`).
pub(crate) struct State {
    pub(crate) layers: Layers,
    pub(crate) plan: Arc<Plan>,
    pub(crate) book: ChangeBook,
    pub(crate) notices: NoticeBook,
}

impl State {
    /// Replaces the layers and the plan they make.
    pub(crate) fn set_layers(&mut self, layers: Layers) {
        self.plan = Arc::new(layers.plan().clone());
        self.layers = layers;
    }

    /// The API-added layers as persisted (reserved `pebble-*` layers are derived state).
    pub(crate) fn persisted_layers(&self) -> Vec<PersistedLayer> {
        self.layers
            .layers()
            .iter()
            .filter(|l| !l.label.starts_with("pebble-"))
            .map(|l| PersistedLayer {
                order: l.order,
                label: l.label.clone(),
                yaml: l.to_yaml(),
            })
            .collect()
    }
}

/// One layer as the state file keeps it.
#[derive(Serialize, Deserialize, Default)]
pub(crate) struct PersistedLayer {
    order: u32,
    label: String,
    yaml: String,
}

/// The state file's content.
#[derive(Serialize, Deserialize, Default)]
pub(crate) struct PersistedState {
    #[serde(default)]
    pub(crate) layers: Vec<PersistedLayer>,
    #[serde(default)]
    pub(crate) changes: ChangeBook,
    #[serde(default)]
    pub(crate) notices: NoticeBook,
}

impl PersistedState {
    /// Reads the state file of the container at `dir` (empty when there is none).
    pub(crate) fn read(dir: &Path) -> Result<Self, SupervisorError> {
        let path = dir.join(STATE_FILE);
        if !path.exists() {
            return Ok(PersistedState::default());
        }
        let data = std::fs::read(&path).map_err(|source| SupervisorError::Io {
            action: "read state".into(),
            source,
        })?;
        serde_json::from_slice(&data).map_err(|e| SupervisorError::Io {
            action: "parse state".into(),
            source: std::io::Error::other(e),
        })
    }
}

/// The layers of a container: those of its `layers/` directory, then the given persisted
/// (API-added) ones whose labels the directory does not have. Reserved `pebble-*` layers are
/// derived state, re-applied by their owner.
pub(crate) fn assemble_layers(
    dir: &Path,
    persisted: &[PersistedLayer],
) -> Result<Layers, SupervisorError> {
    let layers_dir = dir.join("layers");
    let mut layers = if layers_dir.is_dir() {
        cairn_plan::read_layers_dir(&layers_dir)?
    } else {
        Vec::new()
    };
    for p in persisted {
        if p.label.starts_with("pebble-") || layers.iter().any(|l| l.label == p.label) {
            continue;
        }
        layers.push(cairn_plan::parse_layer(
            p.order,
            &p.label,
            p.yaml.as_bytes(),
        )?);
    }
    layers.sort_by_key(|l| l.order);
    Ok(Layers::new(layers)?)
}

impl Inner {
    /// Writes the state file now (when persisting). A snapshot is taken under the lock; the
    /// encoding, the slow part, runs after it is released.
    pub(crate) fn save(&self) {
        if !self.persist {
            return;
        }
        let state = {
            let state = self.state.lock().unwrap();
            PersistedState {
                layers: state.persisted_layers(),
                changes: state.book.clone(),
                notices: state.notices.clone(),
            }
        };
        match serde_json::to_vec(&state) {
            Ok(data) => {
                if let Err(e) = persist::atomic_write(&self.dir.join(STATE_FILE), &data) {
                    tracing::warn!("Cannot write state file: {e}");
                }
            }
            Err(e) => tracing::warn!("Cannot encode state: {e}"),
        }
    }
}

/// Starts the background saver of `inner`: bursts of updates become one write, made off
/// the async workers so that the fsyncs never stall request handling. It ends with the
/// supervisor.
pub(crate) fn spawn_saver(inner: Weak<Inner>, dirty: Arc<tokio::sync::Notify>) {
    tokio::spawn(async move {
        loop {
            dirty.notified().await;
            tokio::time::sleep(SAVE_DELAY).await;
            match inner.upgrade() {
                Some(inner) => {
                    let _ = tokio::task::spawn_blocking(move || inner.save()).await;
                }
                None => return,
            }
        }
    });
}
