//! The `unit` interface: the unit's identity, config, status, leadership, stored state,
//! action results and log. Changes stay in the store until the handler returns.
//!
//! Config, leadership and statuses are either held by the context (the host's model) or
//! asked of a [`UnitFacts`] source on first use (Juju's hook tools, each a process spawn):
//! a charm that never reads its config never runs `config-get`. An action's `action-log`
//! messages are the exception to "changes at the end": with a source, each goes to it as
//! the charm logs it (Juju shows them live).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::convert::{from_wit_log_level, from_wit_status, to_wit_config, to_wit_status};
use super::v01::cairn::charm::unit as wit_unit;
use super::{StoreState, wit};
use crate::types::{ConfigValue, LogLine, OwnBag, RelationSnapshot, WorkloadStatus};

/// Where a unit's config, leadership and statuses come from when the host does not hold
/// them (under Juju, its hook tools). Each is asked at most once per event context, only
/// when the charm reads it; an error fails the event.
pub trait UnitFacts: Send + Sync {
    /// Every config option with a value (`config-get`).
    fn config(&self) -> Result<BTreeMap<String, ConfigValue>, String>;
    /// Whether the unit leads its application (`is-leader`).
    fn is_leader(&self) -> Result<bool, String>;
    /// The unit's status (`status-get`).
    fn unit_status(&self) -> Result<WorkloadStatus, String>;
    /// The application's status (`status-get --application`).
    fn app_status(&self) -> Result<WorkloadStatus, String>;
    /// The unit's relations with their remote units, bags left empty (`relation-ids`,
    /// `relation-list`); asked once, when the charm first touches a relation.
    fn relations(&self) -> Result<Vec<RelationSnapshot>, String> {
        Ok(Vec::new())
    }
    /// One bag of relation `id` (`relation-get - OWNER`, `--app` for an application's);
    /// asked once per bag, when the charm first reads or writes it.
    fn relation_bag(
        &self,
        id: u32,
        owner: &str,
        app: bool,
    ) -> Result<BTreeMap<String, String>, String> {
        let _ = (id, owner, app);
        Ok(BTreeMap::new())
    }
    /// Sends a running action's progress message at once (`action-log`), so that the
    /// operator sees it while the action runs, not when it ends.
    fn action_log(&self, message: &str) -> Result<(), String>;
}

/// A [`UnitFacts`] source and what has been read from it (or set by the handler) so far.
#[derive(Clone)]
pub struct LazyFacts {
    source: Arc<dyn UnitFacts>,
    config: bool,
    leader: bool,
    unit_status: bool,
    app_status: bool,
    /// Whether a handler set the unit's status (to be written back on success).
    pub unit_status_set: bool,
    /// Whether a handler set the application's status (to be written back on success).
    pub app_status_set: bool,
    /// Whether the relations were asked for.
    relations: bool,
    /// The bags read so far: relation id and owner.
    bags: std::collections::BTreeSet<(u32, String)>,
    /// The unit's own bags as read, before the handler wrote them: what a write-back
    /// compares with (keys gone are deleted).
    pub relation_originals: BTreeMap<(u32, OwnBag), BTreeMap<String, String>>,
}

impl LazyFacts {
    /// Nothing read yet.
    pub fn new(source: Arc<dyn UnitFacts>) -> Self {
        LazyFacts {
            source,
            config: false,
            leader: false,
            unit_status: false,
            app_status: false,
            unit_status_set: false,
            app_status_set: false,
            relations: false,
            bags: Default::default(),
            relation_originals: Default::default(),
        }
    }
}

/// Which fact a call needs.
#[derive(Clone, Copy)]
pub(super) enum Fact {
    Config,
    Leader,
    UnitStatus,
    AppStatus,
}

impl StoreState {
    /// Reads `fact` from the context's source if it has one and has not read it yet.
    /// Asks the context's source for the relations, once (nothing without a source).
    pub(super) fn load_relations(&mut self) -> wasmtime::Result<()> {
        let ctx = &mut self.ctx;
        let Some(f) = ctx.facts.as_mut() else {
            return Ok(());
        };
        if !f.relations {
            let rels = f.source.relations().map_err(wasmtime::Error::msg)?;
            ctx.relations.relations = rels.into_iter().map(|r| (r.id, r)).collect();
            f.relations = true;
        }
        Ok(())
    }

    /// Asks the context's source for `owner`'s bag of relation `id`, once, and puts it where
    /// the snapshot keeps it (`own` for this unit's or app's own bags).
    pub(super) fn load_bag(
        &mut self,
        id: u32,
        owner: &str,
        own: Option<OwnBag>,
    ) -> wasmtime::Result<()> {
        let ctx = &mut self.ctx;
        let Some(f) = ctx.facts.as_mut() else {
            return Ok(());
        };
        if !f.bags.insert((id, owner.to_string())) {
            return Ok(());
        }
        let Some(rel) = ctx.relations.relations.get_mut(&id) else {
            return Ok(());
        };
        let app = own == Some(OwnBag::App) || (own.is_none() && owner == rel.remote_app);
        let bag = f
            .source
            .relation_bag(id, owner, app)
            .map_err(wasmtime::Error::msg)?;
        match own {
            Some(which) => {
                f.relation_originals.insert((id, which), bag.clone());
                match which {
                    OwnBag::Unit => rel.local_unit = bag,
                    OwnBag::App => rel.local_app = bag,
                }
            }
            None if app => rel.remote_app_data = bag,
            None => {
                rel.remote_unit_data.insert(owner.to_string(), bag);
            }
        }
        Ok(())
    }

    pub(super) fn load(&mut self, fact: Fact) -> wasmtime::Result<()> {
        let ctx = &mut self.ctx;
        let Some(f) = ctx.facts.as_mut() else {
            return Ok(());
        };
        let err = wasmtime::Error::msg;
        match fact {
            Fact::Config if !f.config => {
                ctx.config = f.source.config().map_err(err)?;
                f.config = true;
            }
            Fact::Leader if !f.leader => {
                ctx.leader = f.source.is_leader().map_err(err)?;
                f.leader = true;
            }
            Fact::UnitStatus if !f.unit_status => {
                ctx.unit_status = f.source.unit_status().map_err(err)?;
                f.unit_status = true;
            }
            Fact::AppStatus if !f.app_status => {
                ctx.app_status = f.source.app_status().map_err(err)?;
                f.app_status = true;
            }
            _ => {}
        }
        Ok(())
    }
}

impl wit::Host for StoreState {}

impl wit_unit::Host for StoreState {
    fn unit_name(&mut self) -> String {
        self.ctx.unit_name.clone()
    }

    fn app_name(&mut self) -> String {
        self.ctx.app_name.clone()
    }

    fn model_name(&mut self) -> String {
        self.ctx.model_name.clone()
    }

    fn containers(&mut self) -> Vec<String> {
        self.ctx.containers.keys().cloned().collect()
    }

    fn config(&mut self) -> wasmtime::Result<Vec<(String, wit::ConfigValue)>> {
        self.load(Fact::Config)?;
        Ok(self
            .ctx
            .config
            .iter()
            .map(|(k, v)| (k.clone(), to_wit_config(v)))
            .collect())
    }

    fn config_get(&mut self, key: String) -> wasmtime::Result<Option<wit::ConfigValue>> {
        self.load(Fact::Config)?;
        Ok(self.ctx.config.get(&key).map(to_wit_config))
    }

    fn unit_status(&mut self) -> wasmtime::Result<wit::Status> {
        self.load(Fact::UnitStatus)?;
        Ok(to_wit_status(&self.ctx.unit_status))
    }

    fn set_unit_status(&mut self, status: wit::Status) {
        self.ctx.unit_status = self.spend.status(from_wit_status(status));
        if let Some(f) = self.ctx.facts.as_mut() {
            f.unit_status = true;
            f.unit_status_set = true;
        }
    }

    fn app_status(&mut self) -> wasmtime::Result<wit::Status> {
        self.load(Fact::AppStatus)?;
        Ok(to_wit_status(&self.ctx.app_status))
    }

    fn set_app_status(&mut self, status: wit::Status) -> wasmtime::Result<Result<(), String>> {
        self.load(Fact::Leader)?;
        if !self.ctx.leader {
            return Ok(Err(
                "cannot set application status: unit is not the leader".into()
            ));
        }
        self.ctx.app_status = self.spend.status(from_wit_status(status));
        if let Some(f) = self.ctx.facts.as_mut() {
            f.app_status = true;
            f.app_status_set = true;
        }
        Ok(Ok(()))
    }

    fn is_leader(&mut self) -> wasmtime::Result<bool> {
        self.load(Fact::Leader)?;
        Ok(self.ctx.leader)
    }

    fn state_get(&mut self, key: String) -> Option<Vec<u8>> {
        self.ctx.stored.get(&key).cloned()
    }

    fn state_set(&mut self, key: String, value: Vec<u8>) {
        self.spend.state_set(&mut self.ctx.stored, key, value);
    }

    fn state_delete(&mut self, key: String) {
        self.spend.state_delete(&mut self.ctx.stored, &key);
    }

    fn state_keys(&mut self) -> Vec<String> {
        self.ctx.stored.keys().cloned().collect()
    }

    fn action_set_results(&mut self, results: Vec<(String, String)>) -> Result<(), String> {
        let a = self.ctx.action.as_mut().ok_or("not running an action")?;
        self.spend.action_results(&mut a.results, results)
    }

    fn action_log(&mut self, message: String) -> Result<(), String> {
        let a = self.ctx.action.as_mut().ok_or("not running an action")?;
        if let Some(line) = self.spend.log("", &message) {
            if let Some(f) = &self.ctx.facts {
                f.source.action_log(&line)?;
            }
            a.log.push((crate::now(), line));
        }
        Ok(())
    }

    fn action_fail(&mut self, message: String) -> Result<(), String> {
        let a = self.ctx.action.as_mut().ok_or("not running an action")?;
        a.failed = Some(self.spend.message(&message));
        Ok(())
    }

    fn log(&mut self, level: wit::LogLevel, message: String) {
        let prefix = format!("{}: ", self.ctx.unit_name);
        if let Some(message) = self.spend.log(&prefix, &message) {
            self.logs.push(LogLine {
                time: crate::now(),
                level: from_wit_log_level(level),
                message,
            });
        }
    }
}
