//! Relations as the operator drives them (`cairn integrate`, `cairn remove-relation`,
//! `cairn status --relations`) and the events each change of the model gives each unit,
//! in Juju's order:
//!
//! - a relation made: `-relation-created` on every unit of both apps, then on each unit
//!   `-relation-joined` and `-relation-changed` for every unit at the other end;
//! - a peer relation: made at deploy for each `peers` endpoint, its units joining each
//!   other as they come;
//! - a unit added: `-relation-created` after its `install`, then joined and changed for
//!   each unit at the other end after its `start`; those units get joined and changed
//!   for it;
//! - a unit removed: it gets `-relation-departed` for every unit it saw join (with itself
//!   as the departing unit) and `-relation-broken` before its `stop`; the other end gets
//!   departed for it;
//! - a relation removed (or an app at one end): departed for every remote unit, then
//!   broken, on every unit of both ends.
//!
//! The relation record is written before any unit is told; a crash in between loses those
//! events (the operator can remove the relation and integrate again).

use std::collections::{BTreeMap, BTreeSet};

use cairn_charm::RelationRole;

use super::{AppEntry, Host};
use crate::RuntimeError;
use crate::model::relations::{RelationEnd, RelationRecord};
use crate::model::report::RelationReport;
use crate::types::Event;

/// The events a new unit gets for its relations, around its own first events.
#[derive(Default)]
pub(super) struct FirstRelationEvents {
    /// After `install`: `-relation-created` for each relation of its app.
    pub(super) after_install: Vec<Event>,
    /// After `start` (and `pebble-ready`): joined and changed for each remote unit.
    pub(super) after_start: Vec<Event>,
}

/// What units joining their app's relations give: their own first events, and the joined
/// and changed events of the units already there.
#[derive(Default)]
pub(super) struct Joining {
    /// By the new unit's number.
    pub(super) first: BTreeMap<u32, FirstRelationEvents>,
    /// For units already there, by name.
    pub(super) others: Vec<(String, Event)>,
}

/// `app:endpoint` or `app`, as the operator names an end.
fn parse_end(spec: &str) -> (&str, Option<&str>) {
    match spec.split_once(':') {
        Some((a, e)) => (a, Some(e)),
        None => (spec, None),
    }
}

/// Whether roles `a` and `b` can be related (a provider to a requirer).
fn counterparts(a: RelationRole, b: RelationRole) -> bool {
    matches!(
        (a, b),
        (RelationRole::Provider, RelationRole::Requirer)
            | (RelationRole::Requirer, RelationRole::Provider)
    )
}

/// The names of `app`'s live units.
fn unit_names(apps: &BTreeMap<String, AppEntry>, app: &str) -> Vec<String> {
    apps.get(app)
        .map(|e| e.units.keys().map(|i| format!("{app}/{i}")).collect())
        .unwrap_or_default()
}

/// Joined, then changed, for `remote` (on a unit of `app`).
fn join_events(r: &RelationRecord, app: &str, remote: &str) -> [Event; 2] {
    [
        Event::RelationJoined(r.event(app, Some(remote), None)),
        Event::RelationChanged(r.event(app, Some(remote), None)),
    ]
}

impl Host {
    /// Finds the one pair of endpoints `a` and `b` name (each `app` or `app:endpoint`), by
    /// Juju's rules: a provider and a requirer of the same interface, peers excluded.
    fn infer_endpoints(
        apps: &BTreeMap<String, AppEntry>,
        a: &str,
        b: &str,
    ) -> Result<(RelationEnd, RelationEnd, String), RuntimeError> {
        let (app_a, ep_a) = parse_end(a);
        let (app_b, ep_b) = parse_end(b);
        let entry = |app: &str| {
            apps.get(app)
                .filter(|e| !e.record.removing)
                .ok_or_else(|| RuntimeError::NotFound(format!("application {app:?} not found")))
        };
        let (ea, eb) = (entry(app_a)?, entry(app_b)?);
        for (app, ep, e) in [(app_a, ep_a, ea), (app_b, ep_b, eb)] {
            if let Some(ep) = ep
                && e.record.meta.endpoint(ep).is_none()
            {
                return Err(RuntimeError::NotFound(format!(
                    "application {app:?} has no {ep:?} relation"
                )));
            }
        }
        if app_a == app_b {
            return Err(RuntimeError::Config(format!(
                "cannot relate application {app_a:?} to itself"
            )));
        }
        let mut found = Vec::new();
        for (na, ra, sa) in ea.record.meta.endpoints() {
            if ep_a.is_some_and(|e| e != na) {
                continue;
            }
            for (nb, rb, sb) in eb.record.meta.endpoints() {
                if ep_b.is_some_and(|e| e != nb) {
                    continue;
                }
                if counterparts(ra, rb) && sa.interface == sb.interface {
                    found.push((
                        RelationEnd {
                            app: app_a.to_string(),
                            endpoint: na.to_string(),
                            role: ra,
                        },
                        RelationEnd {
                            app: app_b.to_string(),
                            endpoint: nb.to_string(),
                            role: rb,
                        },
                        sa.interface.clone(),
                    ));
                }
            }
        }
        match found.len() {
            0 => Err(RuntimeError::Config("no relations found".into())),
            1 => Ok(found.remove(0)),
            _ => Err(RuntimeError::Config(format!(
                "ambiguous relation: \"{a} {b}\" could refer to {}",
                found
                    .iter()
                    .map(|(x, y, _)| format!("\"{x} {y}\""))
                    .collect::<Vec<_>>()
                    .join("; ")
            ))),
        }
    }

    /// `cairn integrate A[:ep] B[:ep]`: relates two applications; every unit of both gets
    /// `-relation-created`, then joined and changed for each unit at the other end.
    pub async fn integrate(&self, a: &str, b: &str) -> Result<RelationReport, RuntimeError> {
        let apps = self.inner.apps.lock().await;
        let (x, y, interface) = Self::infer_endpoints(&apps, a, b)?;
        // Juju's key order: the requirer first.
        let ends = if x.role == RelationRole::Requirer {
            vec![x, y]
        } else {
            vec![y, x]
        };
        let key = format!("{} {}", ends[0], ends[1]);
        let existing = self.inner.relations.all();
        if existing.iter().any(|r| r.key() == key) {
            return Err(RuntimeError::Config(format!(
                "cannot add relation {key:?}: relation {key} already exists"
            )));
        }
        for end in &ends {
            let spec = apps[&end.app]
                .record
                .meta
                .endpoint(&end.endpoint)
                .map(|(_, s)| s.clone());
            if let Some(limit) = spec.and_then(|s| s.limit) {
                let used = existing
                    .iter()
                    .filter(|r| !r.dying && r.ends.contains(end))
                    .count();
                if used >= limit as usize {
                    return Err(RuntimeError::Config(format!(
                        "cannot add relation {key:?}: establishing a new relation for {end} would exceed its maximum relation limit of {limit}"
                    )));
                }
            }
        }
        let record = self.inner.relations.add(&interface, ends.clone())?;
        let mut events = Vec::new();
        for end in &ends {
            for u in unit_names(&apps, &end.app) {
                events.push((
                    u,
                    Event::RelationCreated(record.event(&end.app, None, None)),
                ));
            }
        }
        for end in &ends {
            let remote = record.remote_app(&end.app).unwrap_or_default();
            for u in unit_names(&apps, &end.app) {
                for v in unit_names(&apps, remote) {
                    for ev in join_events(&record, &end.app, &v) {
                        events.push((u.clone(), ev));
                    }
                }
            }
        }
        drop(apps);
        self.inner.relations.send(events);
        tracing::info!("related {key} (relation {})", record.id);
        Ok(record.report())
    }

    /// `cairn remove-relation`: the relation `a` and `b` name (two ends as for integrate,
    /// or `a` alone a relation id) goes: every unit of both ends gets departed for each
    /// remote unit, then broken.
    pub async fn remove_relation(&self, a: &str, b: Option<&str>) -> Result<(), RuntimeError> {
        let apps = self.inner.apps.lock().await;
        let live: Vec<RelationRecord> = self
            .inner
            .relations
            .all()
            .into_iter()
            .filter(|r| !r.dying)
            .collect();
        let record = match b {
            None => {
                let id: u32 = a.parse().map_err(|_| {
                    RuntimeError::Config(format!(
                        "invalid relation id {a:?}: give a relation id or two applications"
                    ))
                })?;
                live.into_iter()
                    .find(|r| r.id == id)
                    .ok_or_else(|| RuntimeError::NotFound(format!("relation {id} not found")))?
            }
            Some(b) => {
                let (app_a, ep_a) = parse_end(a);
                let (app_b, ep_b) = parse_end(b);
                let matches = |r: &&RelationRecord, app: &str, ep: Option<&str>| {
                    r.ends
                        .iter()
                        .any(|e| e.app == app && ep.is_none_or(|ep| ep == e.endpoint))
                };
                let found: Vec<&RelationRecord> = live
                    .iter()
                    .filter(|r| !r.is_peer())
                    .filter(|r| matches(r, app_a, ep_a) && matches(r, app_b, ep_b))
                    .collect();
                match found.as_slice() {
                    [] => {
                        return Err(RuntimeError::NotFound(format!(
                            "relation \"{a} {b}\" not found"
                        )));
                    }
                    [one] => (*one).clone(),
                    many => {
                        return Err(RuntimeError::Config(format!(
                            "ambiguous relation: \"{a} {b}\" could refer to {}",
                            many.iter()
                                .map(|r| format!("{:?}", r.key()))
                                .collect::<Vec<_>>()
                                .join("; ")
                        )));
                    }
                }
            }
        };
        if record.is_peer() {
            return Err(RuntimeError::Config(format!(
                "cannot remove relation {:?}: it is a peer relation",
                record.key()
            )));
        }
        let mut pending = BTreeSet::new();
        let mut events = Vec::new();
        for end in &record.ends {
            let remote = record.remote_app(&end.app).unwrap_or_default();
            let remote_units = unit_names(&apps, remote);
            for u in unit_names(&apps, &end.app) {
                events.extend(
                    Self::goodbyes(&record, &end.app, &u, &remote_units, false)
                        .into_iter()
                        .map(|e| (u.clone(), e)),
                );
                pending.insert(u);
            }
        }
        self.inner.relations.mark_dying(record.id, pending)?;
        drop(apps);
        self.inner.relations.send(events);
        tracing::info!("removing relation {} ({})", record.key(), record.id);
        Ok(())
    }

    /// What unit `u` of `app` hears when it leaves relation `r` or the relation goes:
    /// departed for every remote unit it saw join (and, unless `own_removal` — its queue
    /// is replaced then — every live one, whose joined may still be waiting), then broken.
    /// When the unit itself is removed it is the departing unit; otherwise each remote
    /// unit is.
    fn goodbyes(
        r: &RelationRecord,
        app: &str,
        u: &str,
        remote_units: &[String],
        own_removal: bool,
    ) -> Vec<Event> {
        let mut seen: BTreeSet<String> = r.joined.get(u).cloned().unwrap_or_default();
        if !own_removal {
            seen.extend(remote_units.iter().filter(|v| v.as_str() != u).cloned());
        }
        let mut out: Vec<Event> = seen
            .iter()
            .map(|v| {
                let departing = if own_removal { u } else { v.as_str() };
                Event::RelationDeparted(r.event(app, Some(v), Some(departing)))
            })
            .collect();
        out.push(Event::RelationBroken(r.event(app, None, None)));
        out
    }

    /// The relation events of units `new` joining `app` (whose units already there are
    /// `existing`): theirs and those of the units at the other ends.
    pub(super) fn joining(
        &self,
        apps: &BTreeMap<String, AppEntry>,
        app: &str,
        existing: &[u32],
        new: &[u32],
    ) -> Joining {
        let mut out = Joining::default();
        let name = |i: &u32| format!("{app}/{i}");
        for r in self.inner.relations.live_of(app) {
            let remote_app = r.remote_app(app).unwrap_or_default().to_string();
            let remote_existing: Vec<String> = if r.is_peer() {
                existing.iter().map(name).collect()
            } else {
                unit_names(apps, &remote_app)
            };
            for idx in new {
                let me = name(idx);
                let first = out.first.entry(*idx).or_default();
                first
                    .after_install
                    .push(Event::RelationCreated(r.event(app, None, None)));
                let mut remotes = remote_existing.clone();
                if r.is_peer() {
                    remotes.extend(new.iter().filter(|i| *i != idx).map(name));
                }
                for v in &remotes {
                    first.after_start.extend(join_events(&r, app, v));
                }
                for v in &remote_existing {
                    let v_app = if r.is_peer() {
                        app
                    } else {
                        remote_app.as_str()
                    };
                    for ev in join_events(&r, v_app, &me) {
                        out.others.push((v.clone(), ev));
                    }
                }
            }
        }
        out
    }

    /// Adds the peer relations of a new app (one per `peers` endpoint); returns their ids.
    pub(super) fn add_peer_relations(&self, app: &AppEntry) -> Result<Vec<u32>, RuntimeError> {
        let mut ids = Vec::new();
        for (name, spec) in &app.record.meta.peers {
            let end = RelationEnd {
                app: app.record.name.clone(),
                endpoint: name.clone(),
                role: RelationRole::Peer,
            };
            match self.inner.relations.add(&spec.interface, vec![end]) {
                Ok(record) => ids.push(record.id),
                Err(e) => {
                    let _ = self.inner.relations.delete(&ids);
                    return Err(e);
                }
            }
        }
        Ok(ids)
    }

    /// Unit `idx` of `app` leaves: the events it runs before its `stop` (departed and
    /// broken for each of its relations), and the departed events of the units at the
    /// other ends.
    pub(super) fn unit_leaving(
        &self,
        apps: &BTreeMap<String, AppEntry>,
        app: &str,
        idx: u32,
    ) -> (Vec<Event>, Vec<(String, Event)>) {
        let me = format!("{app}/{idx}");
        let mut own = Vec::new();
        let mut others = Vec::new();
        for r in self.inner.relations.all_of(app) {
            if r.dying && !r.pending_broken.contains(&me) {
                continue;
            }
            own.extend(Self::goodbyes(&r, app, &me, &[], true));
            if r.dying {
                continue;
            }
            let remote_app = r.remote_app(app).unwrap_or_default();
            let v_app = if r.is_peer() { app } else { remote_app };
            for v in unit_names(apps, remote_app) {
                if v != me {
                    others.push((
                        v,
                        Event::RelationDeparted(r.event(v_app, Some(&me), Some(&me))),
                    ));
                }
            }
        }
        (own, others)
    }

    /// `app` is being removed: its relations are marked dying, each unit at the other
    /// ends gets departed for its units and broken. Returns each of its own units'
    /// leaving events, by number.
    pub(super) fn app_leaving(
        &self,
        apps: &BTreeMap<String, AppEntry>,
        app: &str,
    ) -> BTreeMap<u32, Vec<Event>> {
        let Some(entry) = apps.get(app) else {
            return BTreeMap::new();
        };
        let own: BTreeMap<u32, Vec<Event>> = entry
            .units
            .keys()
            .map(|i| (*i, self.unit_leaving(apps, app, *i).0))
            .collect();
        let mine = unit_names(apps, app);
        let mut events = Vec::new();
        for r in self.inner.relations.live_of(app) {
            let mut pending: BTreeSet<String> = mine.iter().cloned().collect();
            if !r.is_peer() {
                let remote_app = r.remote_app(app).unwrap_or_default().to_string();
                for v in unit_names(apps, &remote_app) {
                    events.extend(
                        Self::goodbyes(&r, &remote_app, &v, &mine, false)
                            .into_iter()
                            .map(|e| (v.clone(), e)),
                    );
                    pending.insert(v);
                }
            }
            if let Err(e) = self.inner.relations.mark_dying(r.id, pending) {
                tracing::warn!("cannot mark relation {} dying: {e}", r.id);
            }
        }
        self.inner.relations.send(events);
        own
    }

    /// After open: relations an app no longer there is in are deleted (a crash cut their
    /// removal), and dying relations stop waiting for units gone.
    pub(super) fn tidy_relations(&self, apps: &BTreeMap<String, AppEntry>) {
        let known = |app: &str| {
            apps.contains_key(app) || self.inner.broken.lock().unwrap().contains_key(app)
        };
        let gone: Vec<u32> = self
            .inner
            .relations
            .all()
            .iter()
            .filter(|r| r.ends.iter().any(|e| !known(&e.app)))
            .map(|r| r.id)
            .collect();
        if !gone.is_empty() {
            tracing::info!("relations {gone:?} name apps that are gone: deleted");
            if let Err(e) = self.inner.relations.delete(&gone) {
                tracing::warn!("{e}");
            }
        }
        for r in self.inner.relations.all() {
            for u in &r.pending_broken {
                let live = super::parse_unit_name(u)
                    .and_then(|(a, i)| apps.get(a).map(|e| e.units.contains_key(&i)))
                    .unwrap_or(false);
                if !live {
                    self.inner.relations.forget_unit(u);
                }
            }
        }
    }

    /// The relations, as `cairn status --relations` shows them.
    pub async fn relations(&self) -> Vec<RelationReport> {
        self.inner.relations.report()
    }

    /// Checks that a refresh to a charm with `meta` keeps every endpoint `app`'s relations
    /// use (Juju refuses an upgrade that would break a relation).
    pub(super) fn check_endpoints_kept(
        &self,
        app: &str,
        meta: &crate::charm::CharmMeta,
    ) -> Result<(), RuntimeError> {
        for r in self.inner.relations.all_of(app) {
            let Some(end) = r.end_of(app) else { continue };
            let kept = meta
                .endpoint(&end.endpoint)
                .is_some_and(|(role, spec)| role == end.role && spec.interface == r.interface);
            if !kept {
                return Err(RuntimeError::Config(format!(
                    "cannot refresh {app:?}: would break relation {:?}",
                    r.key()
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! Relations through a real host and the real `relator` guest: the events each unit
    //! gets, in order, what it sees of the other side, and what is committed.

    use std::path::{Path, PathBuf};

    use cairn_testutil::TempDir;

    use super::super::test_support::{self, settled};
    use super::super::*;

    const META: &str = include_str!("../../../../../tests/programs/relator/charmcraft.yaml");

    fn charm_dir(dir: &TempDir) -> PathBuf {
        test_support::charm_dir(dir, "relator", META, cairn_test_programs::RELATOR_WASM)
    }

    async fn deploy(host: &Host, charm: &Path, name: &str, units: u32) {
        let opts = DeployOptions {
            name: Some(name.into()),
            units,
            ..DeployOptions::default()
        };
        host.deploy_with(charm, &opts).await.unwrap();
    }

    /// What `unit` recorded of the relation events it handled, in order.
    async fn seen(host: &Host, unit: &str) -> Vec<String> {
        let apps = host.inner.apps.lock().await;
        let stored = find_unit(&apps, unit)
            .unwrap()
            .with_record(|r| r.stored.get("seen").cloned());
        stored
            .map(|b| serde_json::from_slice(&b).unwrap())
            .unwrap_or_default()
    }

    /// The lines of `unit`'s record about `endpoint`'s relations.
    async fn seen_on(host: &Host, unit: &str, endpoint: &str) -> Vec<String> {
        seen(host, unit)
            .await
            .into_iter()
            .filter(|l| l.starts_with(&format!("{endpoint}-")))
            .collect()
    }

    /// The event kind and remote unit of each line (`joined a/0`).
    fn kinds(lines: &[String]) -> Vec<String> {
        lines
            .iter()
            .map(|l| {
                let mut words = l.split(' ');
                let name = words.next().unwrap();
                let kind = name.rsplit('-').next().unwrap();
                let remote = l
                    .split(" remote=")
                    .nth(1)
                    .unwrap()
                    .split(' ')
                    .next()
                    .unwrap();
                format!("{kind} {remote}")
            })
            .collect()
    }

    /// A host with `a` (2 units) and `b` (1 unit) of the relator charm, settled.
    async fn two_apps(dir: &TempDir) -> Host {
        let state = dir.path().join("state");
        let host = test_support::open(&state, true).await;
        let charm = charm_dir(dir);
        deploy(&host, &charm, "a", 2).await;
        deploy(&host, &charm, "b", 1).await;
        settled(&host).await;
        host
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_status_of_some_apps_shows_them_and_only_their_relations() {
        let dir = TempDir::new("rel-status");
        let host = two_apps(&dir).await;
        deploy(&host, &charm_dir(&dir), "c", 1).await;
        host.integrate("a:in", "b:out").await.unwrap();
        settled(&host).await;
        let every = host.status().await;
        assert_eq!(every.apps.len(), 3);
        let some = host.status_of(&["b".into()]).await;
        let apps: Vec<&str> = some.apps.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(apps, ["b"]);
        let ends: Vec<(&str, &str)> = some
            .relations
            .iter()
            .map(|r| (r.provider.as_str(), r.requirer.as_str()))
            .collect();
        assert!(
            ends.contains(&("b:out", "a:in")) || ends.contains(&("a:in", "b:out")),
            "{ends:?}"
        );
        assert!(
            ends.iter()
                .all(|(p, r)| p.starts_with("b:") || r.starts_with("b:")),
            "{ends:?}"
        );
        assert!(ends.len() < every.relations.len(), "{ends:?}");
        let none = host.status_of(&["nosuch".into()]).await;
        assert!(none.apps.is_empty() && none.relations.is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn peers_join_each_other_from_deploy_and_read_their_bags() {
        let dir = TempDir::new("rel-peers");
        let host = two_apps(&dir).await;
        // The peer relation was made with the app: created after install, then joined
        // and changed for the other unit.
        let a1 = seen_on(&host, "a/1", "mesh").await;
        assert_eq!(
            kinds(&a1)[..3],
            ["created -", "joined a/0", "changed a/0"],
            "{a1:#?}"
        );
        assert!(a1[0].contains("units=[]"), "{}", a1[0]);
        assert!(a1[1].contains("units=[a/0]"), "{}", a1[1]);
        // Every peer reads the app's bag of a peer relation; the leader wrote it.
        let last = a1.last().unwrap();
        assert!(last.contains("app-bag=[leader=a/0]"), "{a1:#?}");
        let report = host.relations().await;
        assert_eq!(report.len(), 2, "{report:?}");
        assert_eq!(
            (report[0].provider.as_str(), report[0].kind.as_str()),
            ("a:mesh", "peer")
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn integrate_gives_created_then_joined_and_changed_and_each_side_reads_the_other() {
        let dir = TempDir::new("rel-integrate");
        let host = two_apps(&dir).await;
        // relator has `in` and `out` of one interface: "a b" could be either way.
        let err = host.integrate("a", "b").await.unwrap_err().to_string();
        assert_eq!(
            err,
            "ambiguous relation: \"a b\" could refer to \"a:out b:in\"; \"a:in b:out\""
        );
        let rel = host.integrate("a:in", "b").await.unwrap();
        assert_eq!(
            (
                rel.requirer.as_str(),
                rel.provider.as_str(),
                rel.interface.as_str()
            ),
            ("a:in", "b:out", "rel-test")
        );
        let again = host
            .integrate("b:out", "a:in")
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(
            again,
            "cannot add relation \"a:in b:out\": relation a:in b:out already exists"
        );
        settled(&host).await;
        let b0 = seen_on(&host, "b/0", "out").await;
        let k = kinds(&b0);
        assert_eq!(
            k[..3],
            ["created -", "joined a/0", "changed a/0"],
            "{b0:#?}"
        );
        assert!(k.contains(&"joined a/1".to_string()), "{b0:#?}");
        assert!(b0[0].contains("units=[]"), "{b0:#?}");
        // Once everything settled b/0 has seen both units' bags and the leader's app bag.
        let last_of = |u: &str| {
            b0.iter()
                .rev()
                .find(|l| l.contains(&format!("remote={u} ")))
                .cloned()
                .unwrap()
        };
        assert!(last_of("a/0").contains("unit-bag=[name=a/0]"), "{b0:#?}");
        assert!(last_of("a/1").contains("unit-bag=[name=a/1]"), "{b0:#?}");
        assert!(b0.last().unwrap().contains("units=[a/0 a/1]"), "{b0:#?}");
        let a1 = seen_on(&host, "a/1", "in").await;
        assert!(
            a1.iter().any(|l| l.contains("app-bag=[leader=b/0]")),
            "{a1:#?}"
        );
        // The bags are in the relation's record, written by the units' commits.
        let file = std::fs::read_to_string(dir.path().join("state/relations.json")).unwrap();
        assert!(file.contains("\"leader\":\"b/0\""), "{file}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn removing_a_relation_departs_every_remote_unit_then_breaks_it_on_both_sides() {
        let dir = TempDir::new("rel-remove");
        let host = two_apps(&dir).await;
        host.integrate("a:in", "b:out").await.unwrap();
        settled(&host).await;
        let before = seen_on(&host, "b/0", "out").await.len();
        host.remove_relation("a:in", Some("b")).await.unwrap();
        settled(&host).await;
        let b0 = seen_on(&host, "b/0", "out").await;
        let tail = &b0[before..];
        assert_eq!(
            kinds(tail),
            ["departed a/0", "departed a/1", "broken -"],
            "{tail:#?}"
        );
        // During departed the departing unit is no longer listed but its bag is read.
        assert!(tail[0].contains("units=[a/1]"), "{}", tail[0]);
        assert!(tail[0].contains("departing=a/0"), "{}", tail[0]);
        assert!(tail[0].contains("unit-bag=[name=a/0]"), "{}", tail[0]);
        assert!(tail[2].contains("units=[]"), "{}", tail[2]);
        let a0 = seen_on(&host, "a/0", "in").await;
        assert_eq!(kinds(&a0).last().unwrap(), "broken -");
        // Gone once both sides broke; only the peer relations are left.
        let report = host.relations().await;
        assert!(report.iter().all(|r| r.kind == "peer"), "{report:?}");
        let err = host.remove_relation("a", Some("b")).await.unwrap_err();
        assert_eq!(err.to_string(), "relation \"a b\" not found");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_unit_removed_departs_from_every_relation_and_new_units_join() {
        let dir = TempDir::new("rel-units");
        let host = two_apps(&dir).await;
        host.integrate("a:in", "b:out").await.unwrap();
        settled(&host).await;
        let before = seen(&host, "b/0").await.len();
        host.remove_unit("a/1").await.unwrap();
        settled(&host).await;
        let b0 = seen(&host, "b/0").await;
        assert_eq!(kinds(&b0[before..]), ["departed a/1"], "{b0:#?}");
        assert!(b0[before].contains("departing=a/1"), "{}", b0[before]);
        let a0 = seen_on(&host, "a/0", "mesh").await;
        assert_eq!(kinds(&a0).last().unwrap(), "departed a/1", "{a0:#?}");
        // A new unit of b: created after install, joined with a/0 after start; a/0 hears
        // it join.
        host.add_unit("b", 1).await.unwrap();
        settled(&host).await;
        let b1 = seen_on(&host, "b/1", "out").await;
        assert_eq!(
            kinds(&b1)[..3],
            ["created -", "joined a/0", "changed a/0"],
            "{b1:#?}"
        );
        let a0 = seen_on(&host, "a/0", "in").await;
        assert!(kinds(&a0).contains(&"joined b/1".to_string()), "{a0:#?}");
        let events = host.events("b/1", None).await.unwrap();
        let names: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
        let at = |n: &str| names.iter().position(|x| *x == n).unwrap();
        assert!(at("install") < at("out-relation-created"), "{names:?}");
        assert!(at("start") < at("out-relation-joined"), "{names:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_handlers_writes_are_never_committed_or_sent() {
        let dir = TempDir::new("rel-fail");
        let host = two_apps(&dir).await;
        host.set_config("a", &[("fail".into(), "in-relation-changed".into())], &[])
            .await
            .unwrap();
        settled(&host).await;
        host.integrate("a:in", "b:out").await.unwrap();
        // a's units fail on their first changed and stay in error.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let st = host.status().await;
            let errors = st
                .apps
                .iter()
                .flat_map(|a| &a.units)
                .filter(|u| u.status.name() == "error")
                .count();
            if errors == 2 {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{st:#?}");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let file = std::fs::read_to_string(dir.path().join("state/relations.json")).unwrap();
        assert!(!file.contains("\"bad\""), "{file}");
        assert!(
            seen(&host, "b/0")
                .await
                .iter()
                .all(|l| !l.contains("bad=1")),
        );
        host.resolve("a/0", crate::model::unit::Resolve::Skip)
            .await
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn endpoints_are_checked_and_limits_kept_and_relations_survive_a_restart() {
        let dir = TempDir::new("rel-rules");
        let state = dir.path().join("state");
        let host = two_apps(&dir).await;
        let err = |r: Result<crate::model::report::RelationReport, RuntimeError>| {
            r.unwrap_err().to_string()
        };
        assert_eq!(
            err(host.integrate("a:nope", "b").await),
            "application \"a\" has no \"nope\" relation"
        );
        assert_eq!(
            err(host.integrate("a", "zz").await),
            "application \"zz\" not found"
        );
        assert_eq!(
            err(host.integrate("a:mesh", "b:mesh").await),
            "no relations found"
        );
        assert_eq!(
            err(host.integrate("a", "a").await),
            "cannot relate application \"a\" to itself"
        );
        host.integrate("a:out", "b:in").await.unwrap();
        deploy(&host, &charm_dir(&dir), "c", 1).await;
        assert_eq!(
            err(host.integrate("c:out", "b:in").await),
            "cannot add relation \"b:in c:out\": establishing a new relation for b:in would exceed its maximum relation limit of 1"
        );
        host.remove("c").await.unwrap();
        settled(&host).await;
        host.shutdown().await;
        drop(host);
        let host = test_support::open(&state, true).await;
        settled(&host).await;
        let report = host.relations().await;
        assert!(
            report
                .iter()
                .any(|r| r.requirer == "b:in" && r.provider == "a:out"),
            "{report:?}"
        );
        // The bags are kept: a new unit of b reads a's leader from the app bag.
        host.add_unit("b", 1).await.unwrap();
        settled(&host).await;
        let b1 = seen_on(&host, "b/1", "in").await;
        assert!(
            b1.iter().any(|l| l.contains("app-bag=[leader=a/0]")),
            "{b1:#?}"
        );
        // Removing an app breaks its relations on the other side.
        let before = seen_on(&host, "b/0", "in").await.len();
        host.remove("a").await.unwrap();
        settled(&host).await;
        let b0 = seen_on(&host, "b/0", "in").await;
        assert_eq!(
            kinds(&b0[before..]),
            ["departed a/0", "departed a/1", "broken -"],
            "{b0:#?}"
        );
        assert!(host.relations().await.iter().all(|r| r.provider != "a:out"));
    }
}
