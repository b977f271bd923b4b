//! The supervisor's state under its one lock, and its persistence in the container's
//! `.pebble.state`: atomic writes by one serialised writer ([`Saver`]), coalesced by a
//! background saver, which operations the client is told succeeded (adding a layer, a custom
//! notice) wait for. An unreadable file is moved aside rather than stopping the container.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
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
    /// Reads the state file of the container at `dir` (empty when there is none). A file
    /// that cannot be read or parsed (empty, truncated, garbage) does not stop the
    /// container: it is logged, moved aside as `.pebble.state.corrupt-<unix time>` for
    /// inspection, and the container starts without it.
    pub(crate) fn read(dir: &Path) -> Self {
        let path = dir.join(STATE_FILE);
        let parsed = match std::fs::read(&path) {
            Ok(data) => serde_json::from_slice(&data).map_err(|e| e.to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return PersistedState::default(),
            Err(e) => Err(e.to_string()),
        };
        match parsed {
            Ok(state) => state,
            Err(e) => {
                let aside = move_aside(&path);
                tracing::error!(
                    "Cannot read state file {}: {e}; starting without it (kept as {})",
                    path.display(),
                    aside
                        .as_deref()
                        .map_or("nothing".into(), |p| p.display().to_string())
                );
                PersistedState::default()
            }
        }
    }
}

/// Renames an unreadable record to `<name>.corrupt-<unix time>` in its directory; the new
/// name, or None if it could not be moved.
pub(crate) fn move_aside(path: &Path) -> Option<std::path::PathBuf> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let name = path.file_name()?.to_string_lossy().into_owned();
    let aside = path.with_file_name(format!(
        "{name}.corrupt-{}.{:09}",
        now.as_secs(),
        now.subsec_nanos()
    ));
    match std::fs::rename(path, &aside) {
        Ok(()) => Some(aside),
        Err(e) => {
            tracing::error!("Cannot move {} aside: {e}", path.display());
            None
        }
    }
}

/// The layers of a container: those of its `layers/` directory, then the given persisted
/// (API-added) ones whose labels the directory does not have. Reserved `pebble-*` layers are
/// derived state, re-applied by their owner. A persisted layer that no longer parses or
/// combines is logged and left out rather than stopping the container; the directory's
/// layers are the operator's and their errors are returned.
pub(crate) fn assemble_layers(
    dir: &Path,
    persisted: &[PersistedLayer],
) -> Result<Layers, SupervisorError> {
    let layers_dir = dir.join("layers");
    let from_dir = if layers_dir.is_dir() {
        cairn_plan::read_layers_dir(&layers_dir)?
    } else {
        Vec::new()
    };
    let mut layers = from_dir.clone();
    for p in persisted {
        if p.label.starts_with("pebble-") || layers.iter().any(|l| l.label == p.label) {
            continue;
        }
        match cairn_plan::parse_layer(p.order, &p.label, p.yaml.as_bytes()) {
            Ok(l) => layers.push(l),
            Err(e) => tracing::error!(
                "Cannot restore layer {:?} from the state file: {e}",
                p.label
            ),
        }
    }
    layers.sort_by_key(|l| l.order);
    let count = layers.len();
    match Layers::new(layers) {
        Ok(l) => Ok(l),
        Err(e) if count > from_dir.len() => {
            tracing::error!(
                "Cannot combine the layers restored from the state file: {e}; starting with the layers directory only"
            );
            Ok(Layers::new(from_dir)?)
        }
        Err(e) => Err(e.into()),
    }
}

/// The one writer of the state file: writes are serialised, so an older snapshot never
/// lands after a newer one, and a request for durability is served by any write whose
/// snapshot was taken after it (callers that wait together share one write).
#[derive(Default)]
pub(crate) struct Saver {
    /// Numbers requests: a snapshot taken after request `n` was numbered includes it.
    requested: AtomicU64,
    /// Held while a snapshot is taken and written; holds the highest request number known
    /// to be on disk.
    written: Mutex<u64>,
}

impl Inner {
    /// Writes the state file now (when persisting), unless a write that started after this
    /// call already made the current state durable; the write's error otherwise.
    pub(crate) fn save(&self) -> Result<(), SupervisorError> {
        if !self.persist {
            return Ok(());
        }
        let saver = &self.saver;
        let mine = saver.requested.fetch_add(1, Ordering::SeqCst) + 1;
        let mut written = saver.written.lock().unwrap_or_else(|e| e.into_inner());
        if *written >= mine {
            return Ok(());
        }
        self.write_locked(&mut written)
    }

    /// Applies `apply` to the state and returns once a snapshot containing it is on disk.
    /// The writer's lock is held from before the change until the write ended, so when the
    /// write fails `undo` takes the change back before any other snapshot could carry it to
    /// disk: the client is told of the failure and memory stays what the disk holds.
    pub(crate) fn apply_durably<T>(
        &self,
        apply: impl FnOnce(&mut State) -> Result<T, SupervisorError>,
        undo: impl FnOnce(&mut State, T),
    ) -> Result<T, SupervisorError> {
        if !self.persist {
            return apply(&mut self.state.lock().unwrap());
        }
        let mut written = self.saver.written.lock().unwrap_or_else(|e| e.into_inner());
        let done = apply(&mut self.state.lock().unwrap())?;
        // Numbered after the change: the snapshot taken next covers it.
        self.saver.requested.fetch_add(1, Ordering::SeqCst);
        match self.write_locked(&mut written) {
            Ok(()) => Ok(done),
            Err(e) => {
                undo(&mut self.state.lock().unwrap(), done);
                Err(e)
            }
        }
    }

    /// Takes a snapshot and writes it; `written` is the writer's lock, held by the caller.
    /// The snapshot is taken under the state lock; the encoding and the write run after it
    /// is released.
    fn write_locked(&self, written: &mut u64) -> Result<(), SupervisorError> {
        // Every request numbered up to here was made after its change was applied: the
        // snapshot taken next includes them all.
        let covers = self.saver.requested.load(Ordering::SeqCst);
        let state = {
            let state = self.state.lock().unwrap();
            PersistedState {
                layers: state.persisted_layers(),
                changes: state.book.clone(),
                notices: state.notices.clone(),
            }
        };
        let fail = |source| SupervisorError::Io {
            action: "persist state".into(),
            source,
        };
        let data = serde_json::to_vec(&state).map_err(|e| fail(std::io::Error::other(e)))?;
        persist::atomic_write(&self.dir.join(STATE_FILE), &data).map_err(fail)?;
        *written = covers;
        Ok(())
    }

    /// Writes the state file in the background (the caller acknowledges nothing that
    /// depends on it); a failure is logged.
    pub(crate) fn save_logged(&self) {
        if let Err(e) = self.save() {
            tracing::warn!("Cannot write state file: {e}");
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
                    let _ = tokio::task::spawn_blocking(move || inner.save_logged()).await;
                }
                None => return,
            }
        }
    });
}
