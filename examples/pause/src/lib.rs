//! The `pause` charm: one container running a do-nothing service that prints the
//! configured `message` at start.
//!
//! On `pause-pebble-ready` and `config-changed` it (re)writes the `pause` layer with the
//! message in `$PAUSE_MESSAGE` and replans, so a new message restarts the service.

use cairn_sdk::prelude::*;

/// Name of the container, its layer and its service.
const PAUSE: &str = "pause";

/// The charm; it keeps nothing between events.
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

    /// Brings the workload in line with the config.
    fn reconcile(&self, ctx: &mut Context, container: &Container) -> Result<()> {
        if !container.can_connect() {
            ctx.set_unit_status(Status::waiting("waiting for Pebble in the pause container"));
            return Ok(());
        }
        let message = ctx.config().get_str("message").unwrap_or_default();
        container.add_layer(PAUSE, &Self::layer(&message), true)?;
        container.replan()?;
        debug!("pause service runs with message {message:?}");
        ctx.set_unit_status(Status::active(""));
        Ok(())
    }
}

impl Charm for PauseCharm {
    fn on_pebble_ready(&mut self, ctx: &mut Context, container: Container) -> Result<()> {
        self.reconcile(ctx, &container)
    }

    fn on_config_changed(&mut self, ctx: &mut Context) -> Result<()> {
        let container = ctx.container(PAUSE)?;
        self.reconcile(ctx, &container)
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
