//! Relations: the unit's integrations with other applications (and its peers), and their
//! databags, as ops' `Relation` and `RelationData`.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::host;

/// Whose databag: a unit or application name (`"db/0"`, `"db"`), or this unit or app
/// ([`Context::unit`](crate::Context::unit), [`Context::app`](crate::Context::app)), as
/// ops' `relation.data[unit_or_app]` takes either.
pub trait BagOwner {
    /// The unit's or application's name.
    fn owner_name(&self) -> String;
}

impl BagOwner for &str {
    fn owner_name(&self) -> String {
        self.to_string()
    }
}

impl BagOwner for String {
    fn owner_name(&self) -> String {
        self.clone()
    }
}

impl BagOwner for &String {
    fn owner_name(&self) -> String {
        (*self).clone()
    }
}

impl BagOwner for crate::model::Unit {
    fn owner_name(&self) -> String {
        self.name()
    }
}

impl BagOwner for crate::model::App {
    fn owner_name(&self) -> String {
        self.name()
    }
}

/// One relation of this unit (`ops.Relation`): who is at the other end, and its databags.
///
/// Reads and writes follow Juju's rules: every bag of the relation can be read but this
/// application's, which only the leader reads; this unit writes its own bag
/// ([`set`](Self::set)) and, as leader, its application's ([`set_app`](Self::set_app)).
/// Writes are seen by later reads of the same event, and committed (and sent to the other
/// side) only if the handler succeeds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Relation {
    /// The relation's id (`relation.id`).
    pub id: u32,
    /// This charm's endpoint (`relation.name`).
    pub endpoint: String,
    /// The interface both endpoints speak.
    pub interface: String,
    /// The application at the other end (`relation.app`; this app for a peer relation).
    pub app: String,
    /// The remote units in the relation now, sorted (`relation.units`).
    pub units: Vec<String>,
}

impl Relation {
    /// Every relation of this unit.
    pub fn all() -> Vec<Relation> {
        host::relations()
    }

    /// This unit's relation `id`, if it has it.
    pub fn get(id: u32) -> Option<Relation> {
        Self::all().into_iter().find(|r| r.id == id)
    }

    /// The databag of `owner` (`relation.data[unit_or_app]`): this unit's or app's name, a
    /// remote unit's or the remote app's. Reading this app's bag takes leadership
    /// ([`Error::Model`] `permission denied` otherwise).
    pub fn data(&self, owner: impl BagOwner) -> Result<BTreeMap<String, String>> {
        let pairs = host::relation_get(self.id, &owner.owner_name()).map_err(Error::Model)?;
        let mut bag = BTreeMap::new();
        for (k, v) in pairs {
            bag.insert(k, v);
        }
        Ok(bag)
    }

    /// One key of `owner`'s bag.
    pub fn read(&self, owner: impl BagOwner, key: &str) -> Result<Option<String>> {
        Ok(self.data(owner)?.remove(key))
    }

    /// The remote application's bag (`relation.data[relation.app]`).
    pub fn remote_app_data(&self) -> Result<BTreeMap<String, String>> {
        self.data(self.app.as_str())
    }

    /// This unit's own bag.
    pub fn unit_data(&self) -> Result<BTreeMap<String, String>> {
        self.data(host::unit_name())
    }

    /// This application's bag (leader only).
    pub fn app_data(&self) -> Result<BTreeMap<String, String>> {
        self.data(host::app_name())
    }

    /// Sets `key` in this unit's bag (`relation.data[self.unit][key] = value`); an empty
    /// value deletes it.
    pub fn set(&self, key: &str, value: impl Into<String>) -> Result<()> {
        self.update(&host::unit_name(), [(key, value.into())])
    }

    /// Sets `key` in this application's bag (`relation.data[self.app][key] = value`);
    /// only the leader may (`cannot write relation settings` otherwise).
    pub fn set_app(&self, key: &str, value: impl Into<String>) -> Result<()> {
        self.update(&host::app_name(), [(key, value.into())])
    }

    /// Sets several keys of `owner`'s bag (this unit's or, as leader, this app's) at once.
    pub fn update<'a>(
        &self,
        owner: &str,
        settings: impl IntoIterator<Item = (&'a str, String)>,
    ) -> Result<()> {
        let settings: Vec<(String, String)> = settings
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        host::relation_set(self.id, owner, &settings).map_err(Error::Model)
    }
}

/// The payload of relation events (`ops.RelationEvent`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelationEvent {
    /// The relation's id.
    pub relation_id: u32,
    /// This charm's endpoint of the relation.
    pub endpoint: String,
    /// The application at the other end (`event.app`).
    pub app: String,
    /// The remote unit the event is about (`event.unit`): set for joined, departed and a
    /// unit bag's changed.
    pub unit: Option<String>,
    /// The unit leaving, for departed (`event.departing_unit`).
    pub departing_unit: Option<String>,
}

impl RelationEvent {
    /// The relation the event is about (`event.relation`); a broken relation is still
    /// there while its event runs.
    pub fn relation(&self) -> Result<Relation> {
        Relation::get(self.relation_id).ok_or_else(|| {
            Error::Model(format!(
                "invalid value \"{}\" for option -r: relation not found",
                self.relation_id
            ))
        })
    }
}
