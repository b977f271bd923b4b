//! The harness's relations: what the host's model lends an event, and the host's rules for
//! reading and writing their bags (the same texts as the host's `relation` imports).

use std::collections::BTreeMap;

use super::world::World;

/// One relation of the harness's unit, with every bag it can see.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TestRelation {
    /// The relation's id.
    pub id: u32,
    /// The charm's endpoint.
    pub endpoint: String,
    /// The interface both endpoints speak.
    pub interface: String,
    /// The application at the other end (the charm's own for a peer relation).
    pub remote_app: String,
    /// The remote units in the relation now.
    pub remote_units: Vec<String>,
    /// The unit's own bag.
    pub local_unit: BTreeMap<String, String>,
    /// The application's bag.
    pub local_app: BTreeMap<String, String>,
    /// The remote units' bags.
    pub remote_unit_data: BTreeMap<String, BTreeMap<String, String>>,
    /// The remote application's bag.
    pub remote_app_data: BTreeMap<String, String>,
}

/// Which bag a name is, seen from the unit.
enum Bag {
    OwnUnit,
    OwnApp,
    RemoteUnit,
    RemoteApp,
}

fn not_found(id: u32) -> String {
    format!("invalid value \"{id}\" for option -r: relation not found")
}

fn bag(w: &World, rel: &TestRelation, owner: &str) -> Option<Bag> {
    if owner == w.unit_name {
        Some(Bag::OwnUnit)
    } else if owner == w.app_name {
        Some(Bag::OwnApp)
    } else if owner == rel.remote_app {
        Some(Bag::RemoteApp)
    } else if rel.remote_units.iter().any(|u| u == owner)
        || rel.remote_unit_data.contains_key(owner)
    {
        Some(Bag::RemoteUnit)
    } else {
        None
    }
}

/// `relation.get` on the harness's world.
pub(crate) fn get(w: &World, id: u32, owner: &str) -> Result<Vec<(String, String)>, String> {
    let rel = w.relations.get(&id).ok_or_else(|| not_found(id))?;
    let data = match bag(w, rel, owner) {
        Some(Bag::OwnUnit) => &rel.local_unit,
        Some(Bag::OwnApp) if !w.leader => return Err("permission denied".into()),
        Some(Bag::OwnApp) => &rel.local_app,
        Some(Bag::RemoteApp) => &rel.remote_app_data,
        Some(Bag::RemoteUnit) => match rel.remote_unit_data.get(owner) {
            Some(d) => d,
            None => return Ok(Vec::new()),
        },
        None => {
            return Err(format!(
                "cannot read settings for {owner:?} in relation \"{}:{id}\": not a unit or application of the relation",
                rel.endpoint
            ));
        }
    };
    Ok(data.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

/// `relation.set` on the harness's world.
pub(crate) fn set(
    w: &mut World,
    id: u32,
    owner: &str,
    settings: &[(String, String)],
) -> Result<(), String> {
    let rel = w.relations.get(&id).ok_or_else(|| not_found(id))?;
    let app = match bag(w, rel, owner) {
        Some(Bag::OwnUnit) => false,
        Some(Bag::OwnApp) if !w.leader => return Err("cannot write relation settings".into()),
        Some(Bag::OwnApp) => true,
        _ => {
            return Err(format!(
                "cannot write relation settings of {owner:?}: only this unit's and, as leader, its application's"
            ));
        }
    };
    if let Some((k, _)) = settings.iter().find(|(k, _)| k.is_empty()) {
        return Err(format!("expected \"key=value\", got {:?}", format!("{k}=")));
    }
    let rel = w.relations.get_mut(&id).ok_or_else(|| not_found(id))?;
    let data = if app {
        &mut rel.local_app
    } else {
        &mut rel.local_unit
    };
    for (k, v) in settings {
        if v.is_empty() {
            data.remove(k);
        } else {
            data.insert(k.clone(), v.clone());
        }
    }
    Ok(())
}

use super::Harness;
use crate::charm::Charm;
use crate::error::{Error, Result};
use crate::event::{Event, Outcome, RelationEvent};

impl<C: Charm> Harness<C> {
    /// Names this harness's unit `<app>/<n>` (unit 0 by default): for charms that act on
    /// their unit number, or several harnesses of one application's units.
    pub fn with_unit_number(mut self, n: u32) -> Self {
        self.world.unit_name = format!("{}/{n}", self.world.app_name);
        self
    }

    /// Adds a relation of `endpoint` with `remote_app` (this app for a `peers` endpoint)
    /// and delivers `<endpoint>-relation-created`; returns its id. With metadata, the
    /// endpoint must be declared, and the relation speaks its interface.
    pub fn add_relation(&mut self, endpoint: &str, remote_app: &str) -> Result<u32> {
        let interface = match &self.meta {
            Some(meta) => match meta.endpoint(endpoint) {
                Some((_, spec)) => spec.interface.clone(),
                None => {
                    return Err(Error::Model(format!(
                        "charm {:?} has no endpoint {endpoint:?}",
                        meta.name
                    )));
                }
            },
            None => endpoint.to_string(),
        };
        let id = self.world.relations.keys().next_back().map_or(0, |k| k + 1);
        self.world.relations.insert(
            id,
            TestRelation {
                id,
                endpoint: endpoint.to_string(),
                interface,
                remote_app: remote_app.to_string(),
                ..TestRelation::default()
            },
        );
        self.run(Event::RelationCreated(self.relation_event(id, None, None)?))?;
        Ok(id)
    }

    /// Adds `unit` to relation `id` with its bag and delivers `-joined`, then `-changed`,
    /// as Juju does.
    pub fn add_relation_unit(
        &mut self,
        id: u32,
        unit: &str,
        data: &[(&str, &str)],
    ) -> Result<Outcome> {
        let rel = self.relation_mut(id)?;
        if !rel.remote_units.iter().any(|u| u == unit) {
            rel.remote_units.push(unit.to_string());
        }
        rel.remote_unit_data.insert(unit.to_string(), bag_of(data));
        self.run(Event::RelationJoined(self.relation_event(
            id,
            Some(unit),
            None,
        )?))?;
        self.run(Event::RelationChanged(self.relation_event(
            id,
            Some(unit),
            None,
        )?))
    }

    /// Sets keys of a remote unit's bag (`owner` a unit name) or of the remote app's, and
    /// delivers `-changed` about it (an empty value deletes the key).
    pub fn update_relation_data(
        &mut self,
        id: u32,
        owner: &str,
        data: &[(&str, &str)],
    ) -> Result<Outcome> {
        let rel = self.relation_mut(id)?;
        let unit = if owner == rel.remote_app {
            None
        } else if rel.remote_units.iter().any(|u| u == owner) {
            Some(owner.to_string())
        } else {
            return Err(Error::Model(format!(
                "{owner:?} is not the remote app or a remote unit of relation {id}"
            )));
        };
        let target = match &unit {
            Some(u) => rel.remote_unit_data.entry(u.clone()).or_default(),
            None => &mut rel.remote_app_data,
        };
        for (k, v) in data {
            if v.is_empty() {
                target.remove(*k);
            } else {
                target.insert(k.to_string(), v.to_string());
            }
        }
        let event = self.relation_event(id, unit.as_deref(), None)?;
        self.run(Event::RelationChanged(event))
    }

    /// Removes `unit` from relation `id` and delivers `-departed` (its bag stays readable
    /// during the event, then goes).
    pub fn remove_relation_unit(&mut self, id: u32, unit: &str) -> Result<Outcome> {
        let rel = self.relation_mut(id)?;
        rel.remote_units.retain(|u| u != unit);
        let event = self.relation_event(id, Some(unit), Some(unit))?;
        let out = self.run(Event::RelationDeparted(event));
        if let Ok(rel) = self.relation_mut(id) {
            rel.remote_unit_data.remove(unit);
        }
        out
    }

    /// Removes relation `id`: `-departed` for each remote unit, then `-broken`; the
    /// relation is gone after.
    pub fn remove_relation(&mut self, id: u32) -> Result<Outcome> {
        let units = self.relation_mut(id)?.remote_units.clone();
        for unit in &units {
            self.remove_relation_unit(id, unit)?;
        }
        let event = self.relation_event(id, None, None)?;
        let out = self.run(Event::RelationBroken(event));
        if out.is_ok() {
            self.world.relations.remove(&id);
        }
        out
    }

    /// Relation `id` as the charm left it: its own bags (`local_unit`, `local_app`) hold
    /// what the charm wrote.
    pub fn relation(&self, id: u32) -> Option<&TestRelation> {
        self.world.relations.get(&id)
    }

    fn relation_mut(&mut self, id: u32) -> Result<&mut TestRelation> {
        self.world
            .relations
            .get_mut(&id)
            .ok_or_else(|| Error::Model(not_found(id)))
    }

    fn relation_event(
        &self,
        id: u32,
        unit: Option<&str>,
        departing: Option<&str>,
    ) -> Result<RelationEvent> {
        let rel = self
            .world
            .relations
            .get(&id)
            .ok_or_else(|| Error::Model(not_found(id)))?;
        Ok(RelationEvent {
            relation_id: id,
            endpoint: rel.endpoint.clone(),
            app: rel.remote_app.clone(),
            unit: unit.map(str::to_string),
            departing_unit: departing.map(str::to_string),
        })
    }
}

fn bag_of(data: &[(&str, &str)]) -> BTreeMap<String, String> {
    data.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
