//! Relations between applications, and peer relations among one application's units: the
//! records and databags the host keeps in `<dir>/relations.json`, what each unit has seen
//! join, and the `relation-changed` events a committed write sends to the other side.
//!
//! The host ([`super::host`]) decides which events a change of the model gives each unit
//! (integrate, remove-relation, units and apps coming and going) and queues them; this
//! store lends each event its unit's view of its relations ([`RelationStore::snapshot`])
//! and, once the handler succeeded, commits what it wrote and what it saw
//! ([`RelationStore::commit`]). A handler that fails commits nothing: its writes are
//! dropped and its event is retried.
//!
//! Juju's rules: a unit sees a remote unit from its `-relation-joined` until its
//! `-relation-departed` (the joined unit is listed during joined, the departing one no
//! longer during departed, though its bag can still be read); a relation removed is
//! `dying` until every unit that was in it ran `-relation-broken`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use cairn_charm::RelationRole;
use serde::{Deserialize, Serialize};

use super::report::RelationReport;
use super::unit::UnitShared;
use crate::RuntimeError;
use crate::types::{Event, OwnBag, RelationEvent, RelationSnapshot, Relations};

/// A databag: keys to values.
pub(crate) type Bag = BTreeMap<String, String>;

/// The file of the relations in the state directory.
pub(crate) const RELATIONS_FILE: &str = "relations.json";

/// One end of a relation: an application's endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RelationEnd {
    /// The application.
    pub app: String,
    /// Its endpoint's name.
    pub endpoint: String,
    /// The endpoint's role.
    pub role: RelationRole,
}

impl std::fmt::Display for RelationEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.app, self.endpoint)
    }
}

/// A relation as persisted.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct RelationRecord {
    /// The relation's id (model-wide, never reused).
    pub id: u32,
    /// The interface both ends speak.
    pub interface: String,
    /// Its ends: two (requirer first, as Juju orders a relation's key), or one for a peer
    /// relation.
    pub ends: Vec<RelationEnd>,
    /// Application bags, by application.
    pub app_data: BTreeMap<String, Bag>,
    /// Unit bags, by unit (a departed unit's kept until no unit still sees it).
    pub unit_data: BTreeMap<String, Bag>,
    /// What each unit has seen join (and not depart): unit → remote units.
    pub joined: BTreeMap<String, BTreeSet<String>>,
    /// The units that ran `-relation-created` (and not yet `-relation-broken`): those an
    /// application bag's change is sent to.
    pub members: BTreeSet<String>,
    /// Set when the relation is being removed.
    pub dying: bool,
    /// Of a dying relation: the units still to run `-relation-broken`.
    pub pending_broken: BTreeSet<String>,
}

impl RelationRecord {
    /// Juju's key: `requirer:endpoint provider:endpoint`, or the peer endpoint.
    pub(crate) fn key(&self) -> String {
        self.ends
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The relation as status shows it.
    pub(crate) fn report(&self) -> RelationReport {
        let side = |role: RelationRole| {
            self.ends
                .iter()
                .find(|e| e.role == role || self.is_peer())
                .map(ToString::to_string)
                .unwrap_or_default()
        };
        RelationReport {
            id: self.id,
            provider: side(RelationRole::Provider),
            requirer: side(RelationRole::Requirer),
            interface: self.interface.clone(),
            kind: if self.is_peer() { "peer" } else { "regular" }.into(),
            state: if self.dying { "dying" } else { "joined" }.into(),
        }
    }

    /// Whether it is a peer relation.
    pub(crate) fn is_peer(&self) -> bool {
        self.ends.len() == 1
    }

    /// `app`'s end, if `app` is in the relation.
    pub(crate) fn end_of(&self, app: &str) -> Option<&RelationEnd> {
        self.ends.iter().find(|e| e.app == app)
    }

    /// The application at the other end from `app` (`app` itself for a peer relation).
    pub(crate) fn remote_app(&self, app: &str) -> Option<&str> {
        if self.is_peer() {
            return self.end_of(app).map(|e| e.app.as_str());
        }
        self.end_of(app)?;
        self.ends
            .iter()
            .find(|e| e.app != app)
            .map(|e| e.app.as_str())
    }

    /// The payload of an event of this relation for a unit of `app`.
    pub(crate) fn event(
        &self,
        app: &str,
        remote_unit: Option<&str>,
        departing: Option<&str>,
    ) -> RelationEvent {
        RelationEvent {
            relation_id: self.id,
            endpoint: self
                .end_of(app)
                .map(|e| e.endpoint.clone())
                .unwrap_or_default(),
            remote_app: self.remote_app(app).unwrap_or_default().to_string(),
            remote_unit: remote_unit.map(str::to_string),
            departing_unit: departing.map(str::to_string),
        }
    }

    /// Whether `unit` of `app` still takes part: the relation is alive, or it is dying and
    /// the unit has yet to run `-relation-broken`.
    fn visible_to(&self, app: &str, unit: &str) -> bool {
        self.end_of(app).is_some() && (!self.dying || self.pending_broken.contains(unit))
    }

    /// Drops the bag of `unit` once it is not live and no unit sees it any more.
    fn prune(&mut self, unit: &str, live: bool) {
        if !live && !self.joined.values().any(|s| s.contains(unit)) {
            self.unit_data.remove(unit);
        }
    }
}

/// Everything persisted about relations.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct RelationsFile {
    /// The id the next relation gets.
    next_id: u32,
    /// The relations, by id.
    relations: BTreeMap<u32, RelationRecord>,
}

/// The host's relations and the live units their events go to.
pub(crate) struct RelationStore {
    path: PathBuf,
    /// Held while a change is applied and written, so that the file is written in order.
    state: Mutex<RelationsFile>,
    /// Live units by name, for the events a committed write sends.
    units: Mutex<BTreeMap<String, Weak<UnitShared>>>,
}

impl RelationStore {
    /// Opens the relations of the state directory `dir`. A file that cannot be parsed is
    /// moved aside (`relations.json.corrupt-<seconds>`) and the host starts without
    /// relations: one bad file does not stop every tenant.
    pub(crate) fn open(dir: &Path) -> Self {
        let path = dir.join(RELATIONS_FILE);
        cairn_supervisor::persist::remove_stale_temps(dir, RELATIONS_FILE);
        let file = match std::fs::read(&path) {
            Ok(data) => match serde_json::from_slice(&data) {
                Ok(f) => f,
                Err(e) => {
                    let secs = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_secs())
                        .unwrap_or_default();
                    let aside = dir.join(format!("{RELATIONS_FILE}.corrupt-{secs}"));
                    tracing::error!(
                        "cannot parse {}: {e}; moved to {} and starting without relations",
                        path.display(),
                        aside.display()
                    );
                    let _ = std::fs::rename(&path, &aside);
                    RelationsFile::default()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => RelationsFile::default(),
            Err(e) => {
                tracing::error!("cannot read {}: {e}", path.display());
                RelationsFile::default()
            }
        };
        RelationStore {
            path,
            state: Mutex::new(file),
            units: Mutex::new(BTreeMap::new()),
        }
    }

    /// Applies `f` and persists the result; on a failed write the change is undone.
    fn update<T>(&self, f: impl FnOnce(&mut RelationsFile) -> T) -> Result<T, RuntimeError> {
        let mut state = self.state.lock().unwrap();
        let before = state.clone();
        let out = f(&mut state);
        let data = serde_json::to_vec(&*state).map_err(|e| RuntimeError::Record {
            action: "encode",
            path: self.path.clone(),
            source: e,
        })?;
        if let Err(e) = cairn_supervisor::persist::atomic_write(&self.path, &data) {
            *state = before;
            return Err(RuntimeError::io("write", &self.path, e));
        }
        Ok(out)
    }

    /// Makes `unit`'s queue reachable by the events other units' writes send.
    pub(crate) fn register(&self, name: String, unit: &Arc<UnitShared>) {
        self.units
            .lock()
            .unwrap()
            .insert(name, Arc::downgrade(unit));
    }

    /// A unit is gone: it leaves every dying relation's wait, nobody sends it events, and
    /// its bags go once nobody sees it.
    pub(crate) fn forget_unit(&self, unit: &str) {
        self.units.lock().unwrap().remove(unit);
        let touched = {
            let state = self.state.lock().unwrap();
            state.relations.values().any(|r| {
                r.joined.contains_key(unit)
                    || r.members.contains(unit)
                    || r.pending_broken.contains(unit)
                    || r.unit_data.contains_key(unit)
            })
        };
        if !touched {
            return;
        }
        if let Err(e) = self.update(|s| {
            for r in s.relations.values_mut() {
                r.joined.remove(unit);
                r.members.remove(unit);
                r.pending_broken.remove(unit);
                r.prune(unit, false);
            }
            s.relations
                .retain(|_, r| !(r.dying && r.pending_broken.is_empty()));
        }) {
            tracing::warn!("{e}");
        }
    }

    /// Adds a relation; returns its record.
    pub(crate) fn add(
        &self,
        interface: &str,
        ends: Vec<RelationEnd>,
    ) -> Result<RelationRecord, RuntimeError> {
        self.update(|s| {
            let id = s.next_id;
            s.next_id += 1;
            let record = RelationRecord {
                id,
                interface: interface.to_string(),
                ends,
                ..Default::default()
            };
            s.relations.insert(id, record.clone());
            record
        })
    }

    /// Deletes relations outright (a deploy undone, or apps gone before their units could
    /// be told).
    pub(crate) fn delete(&self, ids: &[u32]) -> Result<(), RuntimeError> {
        self.update(|s| {
            for id in ids {
                s.relations.remove(id);
            }
        })
    }

    /// Marks a relation dying: `pending` are the units that will run `-relation-broken`
    /// (with none it is deleted at once).
    pub(crate) fn mark_dying(
        &self,
        id: u32,
        pending: BTreeSet<String>,
    ) -> Result<(), RuntimeError> {
        self.update(|s| {
            if let Some(r) = s.relations.get_mut(&id) {
                r.dying = true;
                r.pending_broken = pending;
                if r.pending_broken.is_empty() {
                    s.relations.remove(&id);
                }
            }
        })
    }

    /// The live relations (not dying) `app` is in.
    pub(crate) fn live_of(&self, app: &str) -> Vec<RelationRecord> {
        let state = self.state.lock().unwrap();
        state
            .relations
            .values()
            .filter(|r| !r.dying && r.end_of(app).is_some())
            .cloned()
            .collect()
    }

    /// Every relation `app` is in, dying ones included.
    pub(crate) fn all_of(&self, app: &str) -> Vec<RelationRecord> {
        let state = self.state.lock().unwrap();
        state
            .relations
            .values()
            .filter(|r| r.end_of(app).is_some())
            .cloned()
            .collect()
    }

    /// Every relation, dying ones included.
    pub(crate) fn all(&self) -> Vec<RelationRecord> {
        self.state
            .lock()
            .unwrap()
            .relations
            .values()
            .cloned()
            .collect()
    }

    /// The relations as status shows them.
    pub(crate) fn report(&self) -> Vec<RelationReport> {
        self.all().iter().map(RelationRecord::report).collect()
    }

    /// What `unit` of `app` sees of its relations during `event`.
    pub(crate) fn snapshot(&self, unit: &str, app: &str, event: &Event) -> Relations {
        let state = self.state.lock().unwrap();
        let this = event.relation();
        let mut relations = BTreeMap::new();
        for r in state.relations.values() {
            if !r.visible_to(app, unit) {
                continue;
            }
            let Some(end) = r.end_of(app) else { continue };
            let remote_app = r.remote_app(app).unwrap_or_default().to_string();
            let mut units = r.joined.get(unit).cloned().unwrap_or_default();
            let mut readable = units.clone();
            if let Some(ev) = this.filter(|e| e.relation_id == r.id) {
                match event {
                    Event::RelationJoined(_) => {
                        if let Some(u) = &ev.remote_unit {
                            units.insert(u.clone());
                            readable.insert(u.clone());
                        }
                    }
                    Event::RelationDeparted(_) => {
                        if let Some(u) = &ev.remote_unit {
                            units.remove(u);
                            readable.insert(u.clone());
                        }
                    }
                    Event::RelationBroken(_) => units.clear(),
                    _ => {}
                }
            }
            let remote_unit_data = readable
                .iter()
                .map(|u| (u.clone(), r.unit_data.get(u).cloned().unwrap_or_default()))
                .collect();
            relations.insert(
                r.id,
                RelationSnapshot {
                    id: r.id,
                    endpoint: end.endpoint.clone(),
                    interface: r.interface.clone(),
                    remote_units: units.into_iter().collect(),
                    local_unit: r.unit_data.get(unit).cloned().unwrap_or_default(),
                    local_app: r.app_data.get(app).cloned().unwrap_or_default(),
                    remote_unit_data,
                    remote_app_data: r.app_data.get(&remote_app).cloned().unwrap_or_default(),
                    remote_app,
                },
            );
        }
        Relations {
            relations,
            written: BTreeSet::new(),
        }
    }

    /// Whether an event of relation `id` should still be delivered to `unit` of `app`
    /// (the relation may have gone while it waited).
    pub(crate) fn deliverable(&self, id: u32, unit: &str, app: &str) -> bool {
        let state = self.state.lock().unwrap();
        state
            .relations
            .get(&id)
            .is_some_and(|r| r.visible_to(app, unit))
    }

    /// Commits what a successful handler of `event` did on `unit` of `app`: who it saw
    /// join or depart, its `-relation-broken`, and the bags it wrote (listed in
    /// `seen.written`). Returns the `relation-changed` events the writes send, by unit,
    /// for [`RelationStore::send`].
    pub(crate) fn commit(
        &self,
        unit: &str,
        app: &str,
        event: &Event,
        seen: &Relations,
    ) -> Result<Vec<(String, Event)>, RuntimeError> {
        let this = event.relation();
        if this.is_none() && seen.written.is_empty() {
            return Ok(Vec::new());
        }
        let live: BTreeSet<String> = {
            let units = self.units.lock().unwrap();
            units
                .iter()
                .filter(|(_, w)| w.strong_count() > 0)
                .map(|(n, _)| n.clone())
                .collect()
        };
        self.update(|s| {
            let mut out = Vec::new();
            if let Some(ev) = this
                && let Some(r) = s.relations.get_mut(&ev.relation_id)
            {
                match event {
                    Event::RelationCreated(_) => {
                        r.members.insert(unit.to_string());
                    }
                    Event::RelationJoined(_) => {
                        if let Some(u) = &ev.remote_unit {
                            r.joined
                                .entry(unit.to_string())
                                .or_default()
                                .insert(u.clone());
                        }
                    }
                    Event::RelationDeparted(_) => {
                        if let Some(u) = &ev.remote_unit {
                            if let Some(set) = r.joined.get_mut(unit) {
                                set.remove(u);
                            }
                            r.prune(u, live.contains(u));
                        }
                    }
                    Event::RelationBroken(_) => {
                        r.joined.remove(unit);
                        r.members.remove(unit);
                        r.pending_broken.remove(unit);
                        if r.dying && r.pending_broken.is_empty() {
                            s.relations.remove(&ev.relation_id);
                        }
                    }
                    _ => {}
                }
            }
            for (id, which) in &seen.written {
                let (Some(r), Some(snap)) = (s.relations.get_mut(id), seen.relations.get(id))
                else {
                    continue;
                };
                if r.dying {
                    // Nobody is told of writes to a relation on its way out.
                    continue;
                }
                let (slot, new) = match which {
                    OwnBag::Unit => (
                        r.unit_data.entry(unit.to_string()).or_default(),
                        &snap.local_unit,
                    ),
                    OwnBag::App => (
                        r.app_data.entry(app.to_string()).or_default(),
                        &snap.local_app,
                    ),
                };
                if slot == new {
                    continue;
                }
                *slot = new.clone();
                let remote_app = r.remote_app(app).unwrap_or_default().to_string();
                let targets: Vec<String> = match which {
                    // Those who see this unit.
                    OwnBag::Unit => r
                        .joined
                        .iter()
                        .filter(|(v, seen)| v.as_str() != unit && seen.contains(unit))
                        .map(|(v, _)| v.clone())
                        .collect(),
                    // Every unit at the other end (the other peers) that knows of the
                    // relation; one that does not yet reads the bag when it joins.
                    OwnBag::App => r
                        .members
                        .iter()
                        .filter(|v| {
                            v.as_str() != unit
                                && live.contains(*v)
                                && v.rsplit_once('/').is_some_and(|(a, _)| a == remote_app)
                        })
                        .cloned()
                        .collect(),
                };
                for v in targets {
                    let v_app = v.rsplit_once('/').map(|(a, _)| a).unwrap_or_default();
                    let remote_unit = (*which == OwnBag::Unit).then_some(unit);
                    out.push((
                        v.clone(),
                        Event::RelationChanged(r.event(v_app, remote_unit, None)),
                    ));
                }
            }
            out
        })
    }

    /// Queues `events` on their units, each unit's together and in order (nothing
    /// another unit sends lands between them); units gone are skipped.
    pub(crate) fn send(&self, events: Vec<(String, Event)>) {
        let mut by_unit: Vec<(String, Vec<Event>)> = Vec::new();
        for (unit, event) in events {
            match by_unit.iter_mut().find(|(u, _)| *u == unit) {
                Some((_, evs)) => evs.push(event),
                None => by_unit.push((unit, vec![event])),
            }
        }
        for (unit, events) in by_unit {
            let target = self
                .units
                .lock()
                .unwrap()
                .get(&unit)
                .and_then(Weak::upgrade);
            match target {
                Some(u) => {
                    if let Err(e) = u.try_enqueue_all(events) {
                        tracing::warn!("{e}");
                    }
                }
                None => tracing::debug!("{unit} is gone: {} events not queued", events.len()),
            }
        }
    }
}
