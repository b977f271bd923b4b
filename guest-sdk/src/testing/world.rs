//! The fake unit the native host calls act on while a harness runs an event, and how a
//! harness lends it to them.

use std::cell::RefCell;
use std::collections::BTreeMap;

use super::container::TestContainer;
use crate::error::{Error, Result};
use crate::model::{ConfigValue, LogLevel, Status};

/// The fake unit: names, leadership, config, status, stored state, containers, log.
#[derive(Default)]
pub(crate) struct World {
    pub(crate) unit_name: String,
    pub(crate) app_name: String,
    pub(crate) model_name: String,
    pub(crate) leader: bool,
    pub(crate) config: BTreeMap<String, ConfigValue>,
    pub(crate) unit_status: Status,
    pub(crate) app_status: Status,
    pub(crate) stored: BTreeMap<String, Vec<u8>>,
    pub(crate) containers: BTreeMap<String, TestContainer>,
    pub(crate) logs: Vec<(LogLevel, String)>,
    /// The report of the action being run, if any.
    pub(crate) action: Option<ActionOutput>,
    /// The unit's relations, by id.
    pub(crate) relations: BTreeMap<u32, super::TestRelation>,
}

/// What a charm reported about an action run in the harness.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ActionOutput {
    /// Results set with `set_results`.
    pub results: BTreeMap<String, String>,
    /// Messages of `log`.
    pub log: Vec<String>,
    /// The message of `fail`, if the action failed.
    pub failed: Option<String>,
}

impl World {
    /// The container `name`, or a connection error if it does not answer.
    pub(crate) fn container(&mut self, name: &str) -> Result<&mut TestContainer> {
        let c = self
            .containers
            .get_mut(name)
            .ok_or_else(|| Error::Connection(format!("cannot connect to container {name:?}")))?;
        if !c.can_connect() {
            return Err(Error::Connection(format!(
                "cannot connect to container {name:?}: its supervisor does not answer"
            )));
        }
        Ok(c)
    }
}

thread_local! {
    static WORLD: RefCell<Option<World>> = const { RefCell::new(None) };
}

/// Runs `f` on the world of the harness running an event on this thread.
pub(crate) fn with_world<R>(f: impl FnOnce(&mut World) -> R) -> R {
    WORLD.with(|cell| {
        let mut slot = cell.borrow_mut();
        let world = slot.as_mut().unwrap_or_else(|| {
            panic!(
                "cairn-sdk: host calls need a Cairn host (wasm32) or a running \
                 cairn_sdk::testing::Harness"
            )
        });
        f(world)
    })
}

/// Lends a harness's world to the native host calls for one event, and takes it back
/// even if the handler panics.
pub(super) struct Lent<'a> {
    home: &'a mut World,
}

impl<'a> Lent<'a> {
    /// Moves `home` into this thread's slot until the guard drops.
    pub(super) fn new(home: &'a mut World) -> Self {
        let world = std::mem::take(home);
        WORLD.with(|cell| *cell.borrow_mut() = Some(world));
        Lent { home }
    }
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        if let Some(world) = WORLD.with(|cell| cell.borrow_mut().take()) {
            *self.home = world;
        }
    }
}
