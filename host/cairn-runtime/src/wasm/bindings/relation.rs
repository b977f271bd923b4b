//! The `relation` interface (0.2): the unit's relations and their databags, served from the
//! [`Relations`](crate::types::Relations) snapshot the model lends the event. Reads and
//! writes follow Juju's rules: a unit reads every bag of a relation but its own
//! application's unless it leads; it writes its own bag, and its application's only as
//! leader. Writes land in the snapshot (seen by later reads of the same event) and are
//! listed in `written`; the model commits them only if the handler succeeds.

use super::StoreState;
use super::unit::Fact;
use super::v02::cairn::charm0_2_0::relation as wit_relation;
use crate::types::{OwnBag, RelationSnapshot};

/// Juju's `relation-get`/`relation-set` text for a relation id the unit does not have.
fn not_found(id: u32) -> String {
    format!("invalid value \"{id}\" for option -r: relation not found")
}

/// Which bag `owner` names in `rel`, seen from unit `unit` of app `app`.
enum Bag<'a> {
    OwnUnit,
    OwnApp,
    RemoteUnit(&'a str),
    RemoteApp,
}

fn bag<'a>(rel: &RelationSnapshot, unit: &str, app: &str, owner: &'a str) -> Option<Bag<'a>> {
    if owner == unit {
        Some(Bag::OwnUnit)
    } else if owner == app {
        // For a peer relation the remote app is this app: its bag is this app's.
        Some(Bag::OwnApp)
    } else if owner == rel.remote_app {
        Some(Bag::RemoteApp)
    } else if rel.remote_units.iter().any(|u| u == owner)
        || rel.remote_unit_data.contains_key(owner)
    {
        Some(Bag::RemoteUnit(owner))
    } else {
        None
    }
}

impl wit_relation::Host for StoreState {
    fn relations(&mut self) -> wasmtime::Result<Vec<wit_relation::RelationInfo>> {
        self.load_relations()?;
        Ok(self
            .ctx
            .relations
            .relations
            .values()
            .map(|r| {
                let mut remote_units = r.remote_units.clone();
                remote_units.sort();
                wit_relation::RelationInfo {
                    id: r.id,
                    endpoint: r.endpoint.clone(),
                    interface: r.interface.clone(),
                    remote_app: r.remote_app.clone(),
                    remote_units,
                }
            })
            .collect())
    }

    fn get(
        &mut self,
        id: u32,
        owner: String,
    ) -> wasmtime::Result<Result<Vec<(String, String)>, String>> {
        self.load_relations()?;
        let ctx = &self.ctx;
        let Some(rel) = ctx.relations.relations.get(&id) else {
            return Ok(Err(not_found(id)));
        };
        let which = bag(rel, &ctx.unit_name, &ctx.app_name, &owner);
        // Every peer reads its application's bag in a peer relation; elsewhere only the
        // leader reads its own application's.
        let peer = rel.remote_app == ctx.app_name;
        if matches!(which, Some(Bag::OwnApp)) && !peer {
            self.load(Fact::Leader)?;
            if !self.ctx.leader {
                return Ok(Err("permission denied".into()));
            }
        }
        let own = match which {
            Some(Bag::OwnUnit) => Some(OwnBag::Unit),
            Some(Bag::OwnApp) => Some(OwnBag::App),
            _ => None,
        };
        if which.is_some() {
            self.load_bag(id, &owner, own)?;
        }
        let rel = &self.ctx.relations.relations[&id];
        let data = match which {
            Some(Bag::OwnUnit) => &rel.local_unit,
            Some(Bag::OwnApp) => &rel.local_app,
            Some(Bag::RemoteApp) => &rel.remote_app_data,
            Some(Bag::RemoteUnit(u)) => match rel.remote_unit_data.get(u) {
                Some(d) => d,
                None => return Ok(Ok(Vec::new())),
            },
            None => {
                return Ok(Err(format!(
                    "cannot read settings for {owner:?} in relation \"{}:{id}\": not a unit or application of the relation",
                    rel.endpoint
                )));
            }
        };
        Ok(Ok(data
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()))
    }

    fn set(
        &mut self,
        id: u32,
        owner: String,
        settings: Vec<(String, String)>,
    ) -> wasmtime::Result<Result<(), String>> {
        self.load_relations()?;
        let ctx = &self.ctx;
        let Some(rel) = ctx.relations.relations.get(&id) else {
            return Ok(Err(not_found(id)));
        };
        let own = match bag(rel, &ctx.unit_name, &ctx.app_name, &owner) {
            Some(Bag::OwnUnit) => OwnBag::Unit,
            Some(Bag::OwnApp) => {
                self.load(Fact::Leader)?;
                if !self.ctx.leader {
                    return Ok(Err("cannot write relation settings".into()));
                }
                OwnBag::App
            }
            _ => {
                return Ok(Err(format!(
                    "cannot write relation settings of {owner:?}: only this unit's and, as leader, its application's"
                )));
            }
        };
        if let Some((k, _)) = settings.iter().find(|(k, _)| k.is_empty()) {
            return Ok(Err(format!(
                "expected \"key=value\", got {:?}",
                format!("{k}=")
            )));
        }
        if let Err(e) = self.spend.relation_write(&settings) {
            return Ok(Err(e));
        }
        self.load_bag(id, &owner, Some(own))?;
        let ctx = &mut self.ctx;
        let Some(rel) = ctx.relations.relations.get_mut(&id) else {
            return Ok(Err(not_found(id)));
        };
        let data = match own {
            OwnBag::Unit => &mut rel.local_unit,
            OwnBag::App => &mut rel.local_app,
        };
        for (k, v) in settings {
            // An empty value deletes the key, as `relation-set key=`.
            if v.is_empty() {
                data.remove(&k);
            } else {
                data.insert(k, v);
            }
        }
        ctx.relations.written.insert((id, own));
        Ok(Ok(()))
    }
}
