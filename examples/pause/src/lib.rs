//! The `pause` charm: one container running a do-nothing service that prints the
//! configured `message` at start.
//!
//! On `pause-pebble-ready` and `config-changed` it (re)writes the `pause` layer with the
//! message in `$PAUSE_MESSAGE` and replans, so a new message restarts the service. A
//! message that is not one line of at most 1,000 characters blocks the unit.
//!
//! The custom notice `example.com/pause/say` (`pebble notify example.com/pause/say
//! message=hi` in the container) makes the service say its `message` instead, until the
//! config changes; the charm keeps it in stored state, so a later `pebble-ready` says it too.
//! Any check of the container (an operator's layer may add some) that fails shows in the
//! status until it recovers. The `show-message` action reports what the service says and
//! where it came from; it fails when the service is not running. `pause-pebble-ready`
//! before Pebble answers is deferred.

use cairn_sdk::prelude::*;

/// Name of the container, its layer and its service.
const PAUSE: &str = "pause";

/// Stored-state key of the message a notice asked for.
const SAID: &str = "said";
/// Key of the notice that asks the service to say something else.
const SAY: &str = "example.com/pause/say";
/// Longest message, in characters.
const MAX_MESSAGE: usize = 1000;

/// The charm; what it keeps between events is in stored state.
#[derive(Default)]
pub struct PauseCharm;

impl PauseCharm {
    /// The layer that runs the workload with `message`.
    fn layer(message: &str) -> Layer {
        Layer::new().summary("pause layer").service(
            PAUSE,
            Service::new()
                .summary("prints a message, then sleeps")
                .command(r#"/bin/sh -c 'echo "$PAUSE_MESSAGE"; exec sleep 2147483647'"#)
                .enabled()
                .env("PAUSE_MESSAGE", message),
        )
    }

    /// Why `message` cannot be said, if it cannot.
    fn invalid(message: &str) -> Option<String> {
        if message.contains(['\n', '\r']) {
            Some("invalid message: must be one line".into())
        } else if message.chars().count() > MAX_MESSAGE {
            Some(format!(
                "invalid message: longer than {MAX_MESSAGE} characters"
            ))
        } else {
            None
        }
    }

    /// Brings the workload in line with what it should say: the notice's message kept in
    /// stored state (`keep_said`), else the config's.
    fn reconcile(&self, ctx: &mut Context, container: &Container, keep_said: bool) -> Result<()> {
        if !container.can_connect() {
            ctx.set_unit_status(Status::waiting("waiting for Pebble in the pause container"));
            return Ok(());
        }
        if !keep_said {
            ctx.state().delete(SAID);
        }
        let said: Option<String> = ctx.state().load(SAID)?;
        let message = match &said {
            Some(m) => m.clone(),
            None => ctx.config().get_str("message").unwrap_or_default(),
        };
        if let Some(reason) = Self::invalid(&message) {
            ctx.set_unit_status(Status::blocked(reason));
            return Ok(());
        }
        container.add_layer(PAUSE, &Self::layer(&message), true)?;
        container.replan()?;
        debug!("pause service runs with message {message:?}");
        ctx.set_unit_status(match said {
            Some(m) => Status::active(format!("saying {m:?}")),
            None => Status::active(""),
        });
        Ok(())
    }
}

impl Charm for PauseCharm {
    fn on_pebble_ready(&mut self, ctx: &mut Context, container: Container) -> Result<()> {
        if !container.can_connect() {
            ctx.set_unit_status(Status::waiting("waiting for Pebble in the pause container"));
            ctx.defer();
            return Ok(());
        }
        self.reconcile(ctx, &container, true)
    }

    fn on_config_changed(&mut self, ctx: &mut Context) -> Result<()> {
        let container = ctx.container(PAUSE)?;
        self.reconcile(ctx, &container, false)
    }

    fn on_pebble_custom_notice(&mut self, ctx: &mut Context, event: NoticeEvent) -> Result<()> {
        if event.notice.key != SAY {
            return Ok(());
        }
        let message = event
            .notice
            .last_data
            .get("message")
            .cloned()
            .unwrap_or_default();
        if let Some(reason) = Self::invalid(&message) {
            warn!("ignoring {SAY}: {reason}");
            return Ok(());
        }
        ctx.state().save(SAID, &message)?;
        let container = ctx.container(PAUSE)?;
        self.reconcile(ctx, &container, true)
    }

    fn on_pebble_check_failed(&mut self, ctx: &mut Context, event: CheckEvent) -> Result<()> {
        ctx.set_unit_status(Status::maintenance(format!(
            "check {:?} failing",
            event.info.name
        )));
        Ok(())
    }

    fn on_pebble_check_recovered(&mut self, ctx: &mut Context, _event: CheckEvent) -> Result<()> {
        let container = ctx.container(PAUSE)?;
        self.reconcile(ctx, &container, true)
    }

    fn on_action(&mut self, ctx: &mut Context, action: ActionEvent) -> Result<()> {
        if action.name != "show-message" {
            return Ok(());
        }
        let container = ctx.container(PAUSE)?;
        let running = container.can_connect()
            && container
                .get_services(&[PAUSE])?
                .iter()
                .any(ServiceInfo::is_running);
        if !running {
            return action.fail("the pause service is not running");
        }
        let plan = container.get_plan()?;
        let message = plan
            .services
            .get(PAUSE)
            .and_then(|s| s.environment.get("PAUSE_MESSAGE"))
            .cloned()
            .unwrap_or_default();
        let source = if ctx.state().get(SAID).is_some() {
            "notice"
        } else {
            "config"
        };
        action.set_results(&[("message", message.as_str()), ("source", source)])
    }
}

export_charm!(PauseCharm);

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_sdk::testing::Harness;

    fn harness() -> Harness<PauseCharm> {
        Harness::from_charmcraft(include_str!("../charmcraft.yaml")).unwrap()
    }

    #[test]
    fn deploy_runs_the_service_with_the_default_message() {
        let mut h = harness();
        h.deploy().unwrap();
        assert_eq!(h.unit_status(), &Status::active(""));
        let c = h.container(PAUSE);
        assert!(c.is_running(PAUSE));
        let svc = &c.plan().services[PAUSE];
        assert_eq!(svc.environment["PAUSE_MESSAGE"], "hello from cairn");
        assert_eq!(svc.override_, Some(Override::Replace));
    }

    #[test]
    fn new_message_restarts_the_service() {
        let mut h = harness();
        h.deploy().unwrap();
        let starts = h.container(PAUSE).start_count(PAUSE);
        h.update_config("message", "second").unwrap();
        let c = h.container(PAUSE);
        assert_eq!(
            c.plan().services[PAUSE].environment["PAUSE_MESSAGE"],
            "second"
        );
        assert_eq!(c.start_count(PAUSE), starts + 1);
    }

    #[test]
    fn waits_while_pebble_is_unreachable() {
        let mut h = harness();
        h.set_can_connect(PAUSE, false);
        h.config_changed().unwrap();
        assert_eq!(h.unit_status().name(), "waiting");
        assert!(h.container(PAUSE).layers().is_empty());
    }
}
