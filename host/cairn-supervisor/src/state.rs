//! The supervisor's state under its one lock, and its persistence in the container's
//! `.pebble.state`: atomic writes by one serialised writer ([`Saver`]), coalesced by a
//! background saver, which operations the client is told succeeded (adding a layer, a custom
//! notice) wait for. An unreadable file is moved aside rather than stopping the container.

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use cairn_plan::{Layer, Layers, Plan};
use serde::{Deserialize, Serialize};

use crate::changes::ChangeBook;
use crate::notices::NoticeBook;
use crate::{CHANGES_FILE, Inner, NOTICES_FILE, STATE_FILE, SupervisorError, persist};

/// How long the background saver waits after a change before writing, so that the
/// transitions of one operation become one write.
const SAVE_DELAY: Duration = Duration::from_millis(10);
/// The least time between two background saves of one container: a tenant whose execs or
/// services churn changes all the time writes (and fsyncs) its state a few times a
/// second, not fifty, so that the disk stays the neighbours' too. What waits for a
/// background save is never acknowledged to anyone (durable operations write at once).
const SAVE_PACE: Duration = Duration::from_millis(250);

/// Everything the supervisor's operations read and write together: layers, the plan they
/// make, changes and tasks, notices. One lock guards it (see `Inner`).
pub(crate) struct State {
    pub(crate) layers: Layers,
    pub(crate) plan: Arc<Plan>,
    pub(crate) book: ChangeBook,
    pub(crate) notices: NoticeBook,
    /// Shared, so that every API request can take them without copying.
    pub(crate) identities: Arc<crate::identities::Identities>,
}

impl State {
    /// Replaces the layers and the plan they make.
    pub(crate) fn set_layers(&mut self, layers: Layers) {
        self.plan = Arc::new(layers.plan().clone());
        self.layers = layers;
    }

    /// Copies of the layers to persist, taken under the lock; rendering them to YAML (slow
    /// for a big plan) is left to [`render_layers`], after the lock is released.
    fn layers_to_persist(&self) -> Vec<Layer> {
        self.layers
            .layers()
            .iter()
            .filter(|l| !l.label.starts_with("pebble-"))
            .cloned()
            .collect()
    }
}

/// Bytes of YAML the API-added layers of `layers` take in the state file.
pub(crate) fn persisted_bytes(layers: &Layers) -> u64 {
    layers
        .layers()
        .iter()
        .enumerate()
        .filter(|(_, l)| !l.label.starts_with("pebble-"))
        .map(|(i, _)| layers.rendered_len(i) as u64)
        .sum()
}

/// The state file's form of `layers`.
fn render_layers(layers: Vec<Layer>) -> Vec<PersistedLayer> {
    layers
        .into_iter()
        .map(|l| PersistedLayer {
            yaml: l.to_yaml(),
            order: l.order,
            label: l.label,
        })
        .collect()
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
    /// The change history: in [`CHANGES_FILE`] since it is written apart; read here from a
    /// state file an earlier version wrote.
    #[serde(default, skip_serializing)]
    pub(crate) changes: ChangeBook,
    /// The notices: in [`NOTICES_FILE`] since they are written apart; read here from a
    /// state file an earlier version wrote.
    #[serde(default, skip_serializing)]
    pub(crate) notices: NoticeBook,
    /// Pebble keeps identities in its state too.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub(crate) identities: crate::identities::Identities,
}

impl PersistedState {
    /// Reads the state file of the container at `dir` (empty when there is none). A file
    /// that cannot be read or parsed (empty, truncated, garbage) does not stop the
    /// container: it is logged, moved aside as `.pebble.state.corrupt-<unix time>` for
    /// inspection, and the container starts without it.
    pub(crate) fn read(dir: &Path) -> Self {
        let mut state: PersistedState = read_part(&dir.join(STATE_FILE)).unwrap_or_default();
        if let Some(book) = read_part(&dir.join(CHANGES_FILE)) {
            state.changes = book;
        }
        if let Some(book) = read_part(&dir.join(NOTICES_FILE)) {
            state.notices = book;
        }
        state
    }
}

/// The content of the part of the state kept at `path`: None when there is no such file,
/// or (logged, the file moved aside) when it cannot be read.
fn read_part<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    match std::fs::read(path) {
        Ok(data) => match serde_json::from_slice(&data) {
            Ok(part) => Some(part),
            Err(e) => {
                set_aside(path, &e.to_string());
                None
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            set_aside(path, &e.to_string());
            None
        }
    }
}

/// Which of a container's state files a write carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Files(u8);

impl Files {
    /// [`STATE_FILE`]: layers and identities.
    pub(crate) const STATE: Files = Files(1);
    /// [`NOTICES_FILE`].
    pub(crate) const NOTICES: Files = Files(2);
    /// [`CHANGES_FILE`].
    pub(crate) const CHANGES: Files = Files(4);
    /// All of them.
    pub(crate) const ALL: Files = Files(7);

    fn has(self, f: Files) -> bool {
        self.0 & f.0 != 0
    }
}

/// Logs that the file at `path` could not be read (`e`) and moves it aside.
fn set_aside(path: &Path, e: &str) {
    let aside = move_aside(path);
    tracing::error!(
        "Cannot read state file {}: {e}; starting without it (kept as {})",
        path.display(),
        aside
            .as_deref()
            .map_or("nothing".into(), |p| p.display().to_string())
    );
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

/// Takes back a change whose snapshot could not be written.
pub(crate) type Undo = Box<dyn FnOnce(&mut State) + Send>;

/// How a batch's write ended: None on success, else the error's OS code and text.
type Outcome = Arc<OnceLock<Option<(Option<i32>, String)>>>;

/// The changes applied since the last write began, written together (group commit).
struct Batch {
    /// Undone in reverse order if the write fails.
    undos: Vec<Undo>,
    /// The files the batch's changes are in.
    files: Files,
    /// Set by the write that carried the batch.
    outcome: Outcome,
}

impl Default for Batch {
    fn default() -> Self {
        Batch {
            undos: Vec::new(),
            files: Files::default(),
            outcome: Arc::new(OnceLock::new()),
        }
    }
}

/// The one writer of the state file, with group commit: changes are applied to the state
/// and joined to the current batch; whoever then holds the writer's lock takes the batch,
/// snapshots the state and writes it, so an older snapshot never lands after a newer one
/// and callers waiting together share one write. When the write fails, every change of the
/// batch is undone before the lock is released (before any other snapshot could carry it
/// to disk) and each caller gets the error.
#[derive(Default)]
pub(crate) struct Saver {
    /// Held while a batch is taken and its snapshot made, and while joining a batch.
    batch: Mutex<Batch>,
    /// The writer's lock.
    writer: Mutex<()>,
}

impl Inner {
    /// Copies of the layers the state file keeps, taken under the lock: the API-added ones
    /// (reserved `pebble-*` layers are derived state), none when layers are not kept.
    fn layers_kept(&self, state: &State) -> Vec<Layer> {
        match self.keep_layers {
            true => state.layers_to_persist(),
            false => Vec::new(),
        }
    }

    /// The layers the state file keeps, in its form.
    pub(crate) fn persisted_layers(&self) -> Vec<PersistedLayer> {
        let layers = self.layers_kept(&self.state.lock().unwrap());
        render_layers(layers)
    }

    /// Writes every state file now (when persisting), unless a write that began after this
    /// call already carried the current state; the first write error otherwise.
    pub(crate) fn save(&self) -> Result<(), SupervisorError> {
        self.apply_durably(Files::ALL, |_| Ok(((), None)))
    }

    /// Applies `apply` to the state and returns once a snapshot containing it is on disk, in
    /// `files` (where what it changes is kept). `apply` returns its result and how to take
    /// the change back: if a write fails, the change is undone (with the rest of its batch)
    /// and the error returned, so that the client is told and memory stays what the disk
    /// holds.
    pub(crate) fn apply_durably<R>(
        &self,
        files: Files,
        apply: impl FnOnce(&mut State) -> Result<(R, Option<Undo>), SupervisorError>,
    ) -> Result<R, SupervisorError> {
        if !self.persist {
            return apply(&mut self.state.lock().unwrap()).map(|(r, _)| r);
        }
        let saver = &self.saver;
        let (result, outcome) = {
            let mut batch = saver.batch.lock().unwrap_or_else(|e| e.into_inner());
            let (result, undo) = apply(&mut self.state.lock().unwrap())?;
            batch.undos.extend(undo);
            batch.files.0 |= files.0;
            (result, batch.outcome.clone())
        };
        let writer = saver.writer.lock().unwrap_or_else(|e| e.into_inner());
        if outcome.get().is_none() {
            // Ours is the current batch: take it and write it.
            let (taken, state, notices, book) = {
                let mut batch = saver.batch.lock().unwrap_or_else(|e| e.into_inner());
                let files = batch.files;
                let state = self.state.lock().unwrap();
                let snapshot = files.has(Files::STATE).then(|| {
                    (
                        render_layers(self.layers_kept(&state)),
                        (*state.identities).clone(),
                    )
                });
                let notices = files.has(Files::NOTICES).then(|| state.notices.clone());
                let book = files.has(Files::CHANGES).then(|| state.book.clone());
                (std::mem::take(&mut *batch), snapshot, notices, book)
            };
            // The disk is the host's too: the tenant pays for its writes.
            let share = self.container.share.as_deref();
            let write = |file: &str, encode: &dyn Fn() -> serde_json::Result<Vec<u8>>| {
                crate::share::charged(share, crate::share::WRITE_TOLL, || {
                    encode()
                        .map_err(std::io::Error::other)
                        .and_then(|data| persist::atomic_write(&self.dir.join(file), &data))
                })
            };
            let mut written = Ok(());
            if let Some((layers, identities)) = state {
                let state = PersistedState {
                    layers,
                    identities,
                    ..PersistedState::default()
                };
                written = write(STATE_FILE, &|| serde_json::to_vec(&state));
            }
            if let Some(notices) = notices
                && written.is_ok()
            {
                written = write(NOTICES_FILE, &|| serde_json::to_vec(&notices));
            }
            if let Some(book) = book
                && let Err(e) = write(CHANGES_FILE, &|| serde_json::to_vec(&book))
            {
                // No change is acknowledged durably: the next save carries it.
                tracing::warn!("Cannot write the change history: {e}");
            }
            let failure = written.err().map(|e| {
                let mut state = self.state.lock().unwrap();
                for undo in taken.undos.into_iter().rev() {
                    undo(&mut state);
                }
                (e.raw_os_error(), e.to_string())
            });
            let _ = taken.outcome.set(failure);
        }
        drop(writer);
        match outcome.get() {
            Some(None) => Ok(result),
            Some(Some((code, text))) => Err(SupervisorError::Io {
                action: "persist state".into(),
                source: match code {
                    Some(c) => std::io::Error::from_raw_os_error(*c),
                    None => std::io::Error::other(text.clone()),
                },
            }),
            None => Err(SupervisorError::Internal(
                "cannot persist state: the write was lost".into(),
            )),
        }
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
            let started = tokio::time::Instant::now();
            match inner.upgrade() {
                Some(inner) => {
                    let _ = tokio::task::spawn_blocking(move || inner.save_logged()).await;
                }
                None => return,
            }
            // Changes made meanwhile are kept by the notify's permit.
            tokio::time::sleep_until(started + SAVE_PACE).await;
        }
    });
}
