//! The [`Charm`] trait and the [`Context`] every handler receives.

use crate::container::Container;
use crate::error::Result;
use crate::event::{ActionEvent, CheckEvent, Event, NoticeEvent, Outcome};
use crate::host;
use crate::model::{App, Config, Status, StoredState, Unit};
use crate::relation::{Relation, RelationEvent};

/// A charm: one method per event, each a no-op unless overridden.
///
/// The host makes a fresh instance of the component for every event, so the charm value
/// is built fresh too (with [`Default`]) and nothing but stored state survives between
/// events. Returning an error fails the event: the unit goes to `error` with the error's
/// message, the event's status and stored-state changes are discarded, and the host
/// retries it later, as Juju does with a failed hook.
pub trait Charm: Default {
    /// Runs before the handler of every event, like the body of an ops charm's `__init__`.
    fn setup(&mut self, ctx: &mut Context) -> Result<()> {
        let _ = ctx;
        Ok(())
    }

    /// Routes `event` to its `on_*` method; override it to handle every event in one
    /// place (the "reconcile" style).
    fn handle(&mut self, ctx: &mut Context, event: Event) -> Result<()> {
        match event {
            Event::Install => self.on_install(ctx),
            Event::Start => self.on_start(ctx),
            Event::Stop => self.on_stop(ctx),
            Event::Remove => self.on_remove(ctx),
            Event::ConfigChanged => self.on_config_changed(ctx),
            Event::UpgradeCharm => self.on_upgrade_charm(ctx),
            Event::UpdateStatus => self.on_update_status(ctx),
            Event::LeaderElected => self.on_leader_elected(ctx),
            Event::PebbleReady(name) => {
                let container = Container::get(&name)?;
                self.on_pebble_ready(ctx, container)
            }
            Event::PebbleCheckFailed(e) => self.on_pebble_check_failed(ctx, e),
            Event::PebbleCheckRecovered(e) => self.on_pebble_check_recovered(ctx, e),
            Event::PebbleCustomNotice(e) => self.on_pebble_custom_notice(ctx, e),
            Event::Action(a) => self.on_action(ctx, a),
            Event::RelationCreated(e) => self.on_relation_created(ctx, e),
            Event::RelationJoined(e) => self.on_relation_joined(ctx, e),
            Event::RelationChanged(e) => self.on_relation_changed(ctx, e),
            Event::RelationDeparted(e) => self.on_relation_departed(ctx, e),
            Event::RelationBroken(e) => self.on_relation_broken(ctx, e),
        }
    }

    /// `install`: the unit was deployed.
    fn on_install(&mut self, ctx: &mut Context) -> Result<()> {
        let _ = ctx;
        Ok(())
    }

    /// `start`: the unit is about to run its workload.
    fn on_start(&mut self, ctx: &mut Context) -> Result<()> {
        let _ = ctx;
        Ok(())
    }

    /// `stop`: the unit is being removed.
    fn on_stop(&mut self, ctx: &mut Context) -> Result<()> {
        let _ = ctx;
        Ok(())
    }

    /// `remove`: the unit is going away.
    fn on_remove(&mut self, ctx: &mut Context) -> Result<()> {
        let _ = ctx;
        Ok(())
    }

    /// `config-changed`: config changed, or the unit was deployed or refreshed.
    fn on_config_changed(&mut self, ctx: &mut Context) -> Result<()> {
        let _ = ctx;
        Ok(())
    }

    /// `upgrade-charm`: the charm was refreshed to a new component.
    fn on_upgrade_charm(&mut self, ctx: &mut Context) -> Result<()> {
        let _ = ctx;
        Ok(())
    }

    /// `update-status`: the periodic status timer fired.
    fn on_update_status(&mut self, ctx: &mut Context) -> Result<()> {
        let _ = ctx;
        Ok(())
    }

    /// `leader-elected`: this unit became its application's leader.
    fn on_leader_elected(&mut self, ctx: &mut Context) -> Result<()> {
        let _ = ctx;
        Ok(())
    }

    /// `<container>-pebble-ready`: the container's supervisor is up.
    fn on_pebble_ready(&mut self, ctx: &mut Context, container: Container) -> Result<()> {
        let _ = (ctx, container);
        Ok(())
    }

    /// `<container>-pebble-check-failed`: a check reached its failure threshold.
    fn on_pebble_check_failed(&mut self, ctx: &mut Context, event: CheckEvent) -> Result<()> {
        let _ = (ctx, event);
        Ok(())
    }

    /// `<container>-pebble-check-recovered`: a failing check passed again.
    fn on_pebble_check_recovered(&mut self, ctx: &mut Context, event: CheckEvent) -> Result<()> {
        let _ = (ctx, event);
        Ok(())
    }

    /// `<container>-pebble-custom-notice`: a custom notice occurred.
    fn on_pebble_custom_notice(&mut self, ctx: &mut Context, event: NoticeEvent) -> Result<()> {
        let _ = (ctx, event);
        Ok(())
    }

    /// `<action>-action`: an operator ran an action (match on `action.name`).
    fn on_action(&mut self, ctx: &mut Context, action: ActionEvent) -> Result<()> {
        let _ = (ctx, action);
        Ok(())
    }

    /// `<endpoint>-relation-created`: a relation was made (match on `event.endpoint`).
    fn on_relation_created(&mut self, ctx: &mut Context, event: RelationEvent) -> Result<()> {
        let _ = (ctx, event);
        Ok(())
    }

    /// `<endpoint>-relation-joined`: a remote unit (`event.unit`) joined.
    fn on_relation_joined(&mut self, ctx: &mut Context, event: RelationEvent) -> Result<()> {
        let _ = (ctx, event);
        Ok(())
    }

    /// `<endpoint>-relation-changed`: a remote unit's bag (`event.unit`) or the remote
    /// app's (`event.unit` unset) changed.
    fn on_relation_changed(&mut self, ctx: &mut Context, event: RelationEvent) -> Result<()> {
        let _ = (ctx, event);
        Ok(())
    }

    /// `<endpoint>-relation-departed`: a unit (`event.departing_unit`) left.
    fn on_relation_departed(&mut self, ctx: &mut Context, event: RelationEvent) -> Result<()> {
        let _ = (ctx, event);
        Ok(())
    }

    /// `<endpoint>-relation-broken`: the relation is gone.
    fn on_relation_broken(&mut self, ctx: &mut Context, event: RelationEvent) -> Result<()> {
        let _ = (ctx, event);
        Ok(())
    }
}

/// What a handler can reach: the event, the unit, its config, stored state and containers.
#[derive(Debug)]
pub struct Context {
    event: Event,
    deferred: bool,
}

impl Context {
    /// A context for delivering `event`.
    pub fn new(event: Event) -> Self {
        Context {
            event,
            deferred: false,
        }
    }

    /// The event being handled.
    pub fn event(&self) -> &Event {
        &self.event
    }

    /// The event's name as Juju shows hooks, such as `web-pebble-ready`.
    pub fn event_name(&self) -> String {
        self.event.name()
    }

    /// Asks the host to re-deliver this event before the next one (`event.defer()` in
    /// ops). The handler should then return `Ok(())`; an error still fails the event.
    pub fn defer(&mut self) {
        self.deferred = true;
    }

    /// Whether [`defer`](Self::defer) was called.
    pub fn is_deferred(&self) -> bool {
        self.deferred
    }

    /// This unit.
    pub fn unit(&self) -> Unit {
        Unit::new()
    }

    /// This unit's application.
    pub fn app(&self) -> App {
        App::new()
    }

    /// The unit's name, such as `web/0`.
    pub fn unit_name(&self) -> String {
        host::unit_name()
    }

    /// The application's name, such as `web`.
    pub fn app_name(&self) -> String {
        host::app_name()
    }

    /// The model's name.
    pub fn model_name(&self) -> String {
        host::model_name()
    }

    /// Whether this unit leads its application.
    pub fn is_leader(&self) -> bool {
        host::is_leader()
    }

    /// The unit's status.
    pub fn unit_status(&self) -> Status {
        host::unit_status()
    }

    /// Sets the unit's status; committed only if the handler succeeds.
    pub fn set_unit_status(&self, status: Status) {
        host::set_unit_status(&status);
    }

    /// The application's status.
    pub fn app_status(&self) -> Status {
        host::app_status()
    }

    /// Sets the application's status; only the leader may
    /// ([`Error::Model`](crate::Error::Model) otherwise).
    pub fn set_app_status(&self, status: Status) -> Result<()> {
        self.app().set_status(status)
    }

    /// The charm's config.
    pub fn config(&self) -> Config {
        Config::new()
    }

    /// The unit's stored state.
    pub fn state(&self) -> StoredState {
        StoredState::new()
    }

    /// The names of the unit's containers, as declared in `charmcraft.yaml`.
    pub fn container_names(&self) -> Vec<String> {
        host::containers()
    }

    /// Opens the unit's container `name`.
    pub fn container(&self, name: &str) -> Result<Container> {
        Container::get(name)
    }

    /// The relations of `endpoint` (`self.model.relations["db"]`), by id.
    pub fn relations(&self, endpoint: &str) -> Vec<Relation> {
        Relation::all()
            .into_iter()
            .filter(|r| r.endpoint == endpoint)
            .collect()
    }

    /// The one relation of `endpoint`, if there is one (`self.model.get_relation("db")`);
    /// more than one is an [`Error::Model`](crate::Error::Model), as in ops.
    pub fn relation(&self, endpoint: &str) -> Result<Option<Relation>> {
        let mut rels = self.relations(endpoint);
        if rels.len() > 1 {
            return Err(crate::Error::Model(format!(
                "cannot choose among {} relations of endpoint {endpoint:?}: name one by id",
                rels.len()
            )));
        }
        Ok(rels.pop())
    }

    /// Every relation of this unit, whatever its endpoint.
    pub fn all_relations(&self) -> Vec<Relation> {
        Relation::all()
    }
}

/// Builds a fresh `C` and lets it handle `event`: what the host's call of the exported
/// handler does, and what the native `testing::Harness` runs. A failure is the error's
/// whole chain as text, as the host shows it.
pub fn run_event<C: Charm>(event: Event) -> core::result::Result<Outcome, String> {
    dispatch::<C>(event).map_err(|e| e.chain_message())
}

/// [`run_event`] with the handler's error kept as an [`Error`](crate::Error).
pub(crate) fn dispatch<C: Charm>(event: Event) -> Result<Outcome> {
    let mut ctx = Context::new(event.clone());
    let mut charm = C::default();
    charm
        .setup(&mut ctx)
        .and_then(|()| charm.handle(&mut ctx, event))?;
    Ok(if ctx.deferred {
        Outcome::Deferred
    } else {
        Outcome::Handled
    })
}
