//! Unit-testing charms natively, without a host: state in, event, state out.
//!
//! A [`Harness`] holds a fake unit (names, leadership, config, status, stored state, log)
//! and fake containers ([`TestContainer`]), and runs your [`Charm`] against them with the
//! same code path the host uses. The containers keep layers with the host's own plan code
//! (`cairn-plan`): a layer the host refuses is refused here with the same message, and
//! services start in the host's order, with what they require. Built from the charm's
//! `charmcraft.yaml` ([`Harness::from_charmcraft`], [`Harness::from_charm_dir`]), the
//! harness also refuses config options and action parameters the metadata does not
//! declare or types otherwise, with the host's messages (`cairn-charm`). Like the host, a
//! failed event's status and stored-state changes are discarded, and deferred events are
//! re-delivered before the next one. Only available outside `wasm32` (in `cargo test`).
//!
//! ```
//! use cairn_sdk::prelude::*;
//! use cairn_sdk::testing::Harness;
//!
//! #[derive(Default)]
//! struct Hello;
//!
//! impl Charm for Hello {
//!     fn on_pebble_ready(&mut self, ctx: &mut Context, c: Container) -> Result<()> {
//!         let greeting = ctx.config().require_str("greeting")?;
//!         let svc = Service::new().command("sleep 1000").enabled().env("GREETING", greeting);
//!         c.add_layer("hello", &Layer::new().service("hello", svc), true)?;
//!         c.replan()?;
//!         ctx.set_unit_status(Status::active(""));
//!         Ok(())
//!     }
//! }
//!
//! let mut h = Harness::<Hello>::from_charmcraft(
//!     "name: hello\ncontainers:\n  hello: {}\nconfig:\n  options:\n    greeting:\n      type: string\n",
//! )
//! .unwrap()
//! .with_config("greeting", "hi");
//! h.pebble_ready("hello").unwrap();
//! assert_eq!(h.unit_status(), &Status::active(""));
//! let c = h.container("hello");
//! assert!(c.is_running("hello"));
//! assert_eq!(c.plan().services["hello"].environment["GREETING"], "hi");
//!
//! // Options charmcraft.yaml does not declare are refused, as the host refuses them.
//! let err = h.set_config("greting", "hey").unwrap_err();
//! assert_eq!(err.to_string(), "unknown option \"greting\"");
//!
//! // A failing event keeps the previous status.
//! h.unset_config("greeting").unwrap();
//! let err = h.pebble_ready("hello").unwrap_err();
//! assert_eq!(err.chain_message(), "config option \"greeting\" is not set");
//! assert_eq!(h.unit_status(), &Status::active(""));
//! ```

mod container;
mod exec;
mod fs;
mod relation;
mod world;

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::path::Path;

use cairn_charm::CharmMeta;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use container::TestContainer;
pub use exec::ExecArgs;
pub(crate) use exec::ExecHandler;
pub use relation::TestRelation;
pub(crate) use relation::{get as relation_get, set as relation_set};
pub use world::ActionOutput;
pub(crate) use world::with_world;
use world::{Lent, World};

use crate::charm::{Charm, dispatch};
use crate::error::{Error, Result};
use crate::event::{ActionEvent, CheckEvent, CheckStatus, Event, NoticeEvent, Outcome};
use crate::model::{ConfigValue, LogLevel, Status};

/// Runs a [`Charm`] natively against a fake unit and fake containers.
///
/// Build one with [`new`](Self::new), [`from_charmcraft`](Self::from_charmcraft) or
/// [`from_charm_dir`](Self::from_charm_dir), set the state in with the `with_*`/`set_*`
/// methods, deliver events, and inspect the state out (status, stored state, layers,
/// services, log). Delivering returns the handler's [`Error`] when it fails.
pub struct Harness<C: Charm> {
    world: World,
    /// The charm's metadata, when the harness was built from it: config settings and
    /// action parameters are then checked as the host checks them.
    meta: Option<CharmMeta>,
    deferred: Vec<Event>,
    history: Vec<(String, core::result::Result<Outcome, String>)>,
    _charm: PhantomData<fn() -> C>,
}

impl<C: Charm> Harness<C> {
    /// A harness for unit `<app>/0` of application `app`, not leader, with no config and
    /// no containers, and no metadata to check config and actions against.
    pub fn new(app: &str) -> Self {
        Harness {
            world: World {
                unit_name: format!("{app}/0"),
                app_name: app.to_string(),
                model_name: "test-model".into(),
                ..World::default()
            },
            meta: None,
            deferred: Vec::new(),
            history: Vec::new(),
            _charm: PhantomData,
        }
    }

    /// A harness set up from a `charmcraft.yaml`: its name, containers and config
    /// defaults; config settings and action parameters are checked against it as the
    /// host checks them. Metadata the host refuses is refused with its message.
    pub fn from_charmcraft(yaml: &str) -> Result<Self> {
        let meta = CharmMeta::parse(yaml).map_err(Error::other)?;
        let mut h = Harness::new(&meta.name);
        for name in meta.containers.keys() {
            h = h.with_container(name);
        }
        h.world.config = meta
            .effective_config(&BTreeMap::new())
            .into_iter()
            .map(|(k, v)| (k, sdk_value(v)))
            .collect();
        h.meta = Some(meta);
        Ok(h)
    }

    /// [`from_charmcraft`](Self::from_charmcraft) with the `charmcraft.yaml` of the charm
    /// crate in `dir`, such as `env!("CARGO_MANIFEST_DIR")`.
    pub fn from_charm_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let path = dir.as_ref().join("charmcraft.yaml");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::other(e).context(format!("cannot read {}", path.display())))?;
        Self::from_charmcraft(&text)
    }

    /// Adds a container the charm can connect to.
    pub fn with_container(mut self, name: &str) -> Self {
        self.world
            .containers
            .insert(name.to_string(), TestContainer::default());
        self
    }

    /// Sets a config option; panics if the charm's metadata refuses it (see
    /// [`set_config`](Self::set_config)).
    pub fn with_config(mut self, key: &str, value: impl Into<ConfigValue>) -> Self {
        if let Err(e) = self.set_config(key, value) {
            panic!("cannot set config option {key:?}: {e}");
        }
        self
    }

    /// Sets leadership.
    pub fn with_leader(mut self, leader: bool) -> Self {
        self.world.leader = leader;
        self
    }

    /// Sets raw stored state.
    pub fn with_state(mut self, key: &str, value: impl AsRef<[u8]>) -> Self {
        self.set_state(key, value);
        self
    }

    /// Sets the unit's status, as if an earlier event had set it.
    pub fn with_unit_status(mut self, status: Status) -> Self {
        self.world.unit_status = status;
        self
    }

    /// Sets a config option (deliver [`config_changed`](Self::config_changed) to tell the
    /// charm). With metadata, the value is read as an operator's `key=value` setting would
    /// be (so `"8080"` sets an `int` option to 8080), and an option the charm does not
    /// declare, or a value that does not read as its type, is an [`Error::Config`] with
    /// the host's message.
    pub fn set_config(&mut self, key: &str, value: impl Into<ConfigValue>) -> Result<()> {
        let value = value.into();
        let value = match &self.meta {
            Some(meta) => meta
                .parse_setting(key, &value.to_string())
                .map(sdk_value)
                .map_err(|e| Error::Config(e.to_string()))?,
            None => value,
        };
        self.world.config.insert(key.to_string(), value);
        Ok(())
    }

    /// Removes a config option's value; with metadata the option goes back to its default,
    /// and an option the charm does not declare is an [`Error::Config`], as in the host.
    pub fn unset_config(&mut self, key: &str) -> Result<()> {
        let default = match &self.meta {
            Some(meta) => {
                meta.check_option(key)
                    .map_err(|e| Error::Config(e.to_string()))?;
                meta.config.options[key].default_value().map(sdk_value)
            }
            None => None,
        };
        match default {
            Some(d) => self.world.config.insert(key.to_string(), d),
            None => self.world.config.remove(key),
        };
        Ok(())
    }

    /// Sets leadership (deliver [`leader_elected`](Self::leader_elected) to tell the charm).
    pub fn set_leader(&mut self, leader: bool) {
        self.world.leader = leader;
    }

    /// Sets raw stored state.
    pub fn set_state(&mut self, key: &str, value: impl AsRef<[u8]>) {
        self.world
            .stored
            .insert(key.to_string(), value.as_ref().to_vec());
    }

    /// Stores `value` as JSON, as [`StoredState::save`](crate::StoredState::save) does.
    pub fn save_state<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) {
        let bytes = serde_json::to_vec(value).expect("value serializes to JSON");
        self.set_state(key, bytes);
    }

    /// Sets whether the charm can connect to container `name`.
    pub fn set_can_connect(&mut self, name: &str, yes: bool) {
        self.container_mut(name).set_can_connect(yes);
    }

    /// The container `name` (panics if the harness has none).
    pub fn container(&self, name: &str) -> &TestContainer {
        self.world
            .containers
            .get(name)
            .unwrap_or_else(|| panic!("the harness has no container {name:?}"))
    }

    /// The container `name`, to change it (panics if the harness has none).
    pub fn container_mut(&mut self, name: &str) -> &mut TestContainer {
        self.world
            .containers
            .get_mut(name)
            .unwrap_or_else(|| panic!("the harness has no container {name:?}"))
    }

    /// The unit's status.
    pub fn unit_status(&self) -> &Status {
        &self.world.unit_status
    }

    /// The application's status.
    pub fn app_status(&self) -> &Status {
        &self.world.app_status
    }

    /// The config the charm sees.
    pub fn config(&self) -> &BTreeMap<String, ConfigValue> {
        &self.world.config
    }

    /// Raw stored state under `key`.
    pub fn state(&self, key: &str) -> Option<&[u8]> {
        self.world.stored.get(key).map(Vec::as_slice)
    }

    /// Stored state under `key` decoded from JSON (panics if it does not decode).
    pub fn load_state<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        self.state(key).map(|b| {
            serde_json::from_slice(b)
                .unwrap_or_else(|e| panic!("stored state {key:?} does not decode: {e}"))
        })
    }

    /// Every line the charm logged, oldest first.
    pub fn logs(&self) -> &[(LogLevel, String)] {
        &self.world.logs
    }

    /// Events deferred and waiting to be re-delivered.
    pub fn deferred(&self) -> &[Event] {
        &self.deferred
    }

    /// Every delivery so far: event name and outcome (`Err` holds the failure's whole
    /// message, as the host shows it).
    pub fn history(&self) -> &[(String, core::result::Result<Outcome, String>)] {
        &self.history
    }

    /// Delivers `event`, after re-delivering deferred events as the host does.
    ///
    /// If a re-delivered event fails, its error is returned (with the context
    /// `deferred <event>`), it stays deferred, and `event` is not delivered.
    pub fn run(&mut self, event: Event) -> Result<Outcome> {
        let mut pending = std::mem::take(&mut self.deferred).into_iter();
        while let Some(old) = pending.next() {
            match self.deliver(&old) {
                Ok(Outcome::Handled) => {}
                Ok(Outcome::Deferred) => self.deferred.push(old),
                Err(e) => {
                    let name = old.name();
                    self.deferred.push(old);
                    self.deferred.extend(pending);
                    return Err(e.context(format!("deferred {name}")));
                }
            }
        }
        let outcome = self.deliver(&event)?;
        if outcome == Outcome::Deferred {
            self.deferred.push(event);
        }
        Ok(outcome)
    }

    fn deliver(&mut self, event: &Event) -> Result<Outcome> {
        let before = (
            self.world.unit_status.clone(),
            self.world.app_status.clone(),
            self.world.stored.clone(),
            self.world.relations.clone(),
        );
        let result = {
            let _lent = Lent::new(&mut self.world);
            dispatch::<C>(event.clone())
        };
        if result.is_err() {
            (
                self.world.unit_status,
                self.world.app_status,
                self.world.stored,
                self.world.relations,
            ) = before;
        }
        let record = match &result {
            Ok(outcome) => Ok(*outcome),
            Err(e) => Err(e.chain_message()),
        };
        self.history.push((event.name(), record));
        result
    }

    /// The events of a deploy, as the host delivers them: `install`, `leader-elected`
    /// (if leader), `config-changed`, `start`, then `pebble-ready` for each container
    /// that can connect. Stops at the first failure.
    pub fn deploy(&mut self) -> Result<()> {
        let mut events = vec![Event::Install];
        if self.world.leader {
            events.push(Event::LeaderElected);
        }
        events.extend([Event::ConfigChanged, Event::Start]);
        for (name, c) in &self.world.containers {
            if c.can_connect() {
                events.push(Event::PebbleReady(name.clone()));
            }
        }
        for e in events {
            self.run(e)?;
        }
        Ok(())
    }

    /// Delivers `install`.
    pub fn install(&mut self) -> Result<Outcome> {
        self.run(Event::Install)
    }

    /// Delivers `start`.
    pub fn start(&mut self) -> Result<Outcome> {
        self.run(Event::Start)
    }

    /// Delivers `stop`.
    pub fn stop(&mut self) -> Result<Outcome> {
        self.run(Event::Stop)
    }

    /// Delivers `remove`.
    pub fn remove(&mut self) -> Result<Outcome> {
        self.run(Event::Remove)
    }

    /// Delivers `config-changed`.
    pub fn config_changed(&mut self) -> Result<Outcome> {
        self.run(Event::ConfigChanged)
    }

    /// Sets a config option as [`set_config`](Self::set_config) does, then delivers
    /// `config-changed`.
    pub fn update_config(&mut self, key: &str, value: impl Into<ConfigValue>) -> Result<Outcome> {
        self.set_config(key, value)?;
        self.config_changed()
    }

    /// Delivers `upgrade-charm`.
    pub fn upgrade_charm(&mut self) -> Result<Outcome> {
        self.run(Event::UpgradeCharm)
    }

    /// Delivers `update-status`.
    pub fn update_status(&mut self) -> Result<Outcome> {
        self.run(Event::UpdateStatus)
    }

    /// Delivers `leader-elected`.
    pub fn leader_elected(&mut self) -> Result<Outcome> {
        self.run(Event::LeaderElected)
    }

    /// Delivers `<container>-pebble-ready`.
    pub fn pebble_ready(&mut self, container: &str) -> Result<Outcome> {
        self.run(Event::PebbleReady(container.to_string()))
    }

    /// Marks check `check` of `container` down, having failed `threshold` times in a row,
    /// and delivers `<container>-pebble-check-failed` as the host does when a check hits
    /// its threshold. Panics if the container's plan has no such check.
    pub fn check_failed(&mut self, container: &str, check: &str) -> Result<Outcome> {
        let info = self.check_event(container, check, CheckStatus::Down);
        self.run(Event::PebbleCheckFailed(info))
    }

    /// Marks check `check` of `container` up again and delivers
    /// `<container>-pebble-check-recovered`. Panics if the plan has no such check.
    pub fn check_recovered(&mut self, container: &str, check: &str) -> Result<Outcome> {
        let info = self.check_event(container, check, CheckStatus::Up);
        self.run(Event::PebbleCheckRecovered(info))
    }

    fn check_event(&mut self, container: &str, check: &str, status: CheckStatus) -> CheckEvent {
        let c = self.container_mut(container);
        c.set_check_status(check, status);
        let info = c
            .check_infos(None, &[check.to_string()])
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("container {container:?} has no check {check:?}"));
        CheckEvent {
            container: container.to_string(),
            info,
        }
    }

    /// Records an occurrence of custom notice `key` with `data` in `container`, as a
    /// workload's `pebble notify` would, and delivers `<container>-pebble-custom-notice`.
    pub fn custom_notice(
        &mut self,
        container: &str,
        key: &str,
        data: &[(&str, &str)],
    ) -> Result<Outcome> {
        let notice = self.container_mut(container).add_notice(key, data);
        self.run(Event::PebbleCustomNotice(NoticeEvent {
            container: container.to_string(),
            notice,
        }))
    }

    /// Delivers `<name>-action` with parameters given as a JSON object (see
    /// [`run_action`](Self::run_action)).
    pub fn action(&mut self, name: &str, params_json: &str) -> Result<Outcome> {
        self.run_action(name, params_json).map(|_| Outcome::Handled)
    }

    /// Runs action `name` with JSON parameters and returns what the charm reported
    /// (results, log, failure); `Err` if the handler itself failed.
    ///
    /// With metadata, the parameters are checked as the host checks an operator's
    /// `key=value` parameters (each value read from its text: a JSON string as is, other
    /// values as JSON), with defaults applied; an action or parameter the host refuses is
    /// an [`Error::Model`] with its message, and the charm does not run.
    pub fn run_action(&mut self, name: &str, params_json: &str) -> Result<ActionOutput> {
        let params_json = match &self.meta {
            Some(meta) => {
                let settings = action_settings(params_json)?;
                meta.validate_params(name, &settings)
                    .map_err(|e| Error::Model(e.to_string()))?
                    .to_string()
            }
            None => params_json.to_string(),
        };
        let id = (self.history.len() + 1).to_string();
        self.world.action = Some(ActionOutput::default());
        let r = self.run(Event::Action(ActionEvent {
            id,
            name: name.to_string(),
            params_json,
        }));
        let out = self.world.action.take().unwrap_or_default();
        r.map(|_| out)
    }
}

/// A JSON object of action parameters as the `key=value` texts an operator would type.
fn action_settings(params_json: &str) -> Result<Vec<(String, String)>> {
    let text = if params_json.trim().is_empty() {
        "{}"
    } else {
        params_json
    };
    let params: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text)
        .map_err(|e| Error::Model(format!("cannot parse action parameters: {e}")))?;
    Ok(cairn_charm::param_settings(&params))
}

/// The SDK's form of a config value the metadata typed.
fn sdk_value(v: cairn_charm::ConfigValue) -> ConfigValue {
    match v {
        cairn_charm::ConfigValue::Bool(b) => ConfigValue::Bool(b),
        cairn_charm::ConfigValue::Int(i) => ConfigValue::Int(i),
        cairn_charm::ConfigValue::Float(f) => ConfigValue::Float(f),
        cairn_charm::ConfigValue::String(s) => ConfigValue::String(s),
    }
}

#[cfg(test)]
mod tests;
