//! The `web` charm: serves files over HTTP with Python's `http.server` on the configured
//! `port`, bound to 127.0.0.1.
//!
//! An out-of-range port blocks the unit (and stops the server if it runs); a valid one
//! (re)writes the `web` layer, replans, and records the port served in stored state.
//! The layer carries a `ready` HTTP check, `up`, on the server's root: when it fails the
//! unit goes to `maintenance` with the reason, and back to `active` when it recovers.

use cairn_sdk::prelude::*;

/// Name of the container and of its layer.
const WEB: &str = "web";
/// Name of the HTTP service.
const HTTP: &str = "http";
/// Stored-state key of the port being served.
const PORT_KEY: &str = "port";
/// Name of the readiness check.
const UP: &str = "up";

/// The charm; it keeps nothing between events except the port in stored state.
#[derive(Default)]
pub struct WebCharm;

/// Checks that `port` is a TCP port.
fn valid_port(port: i64) -> Result<u16, String> {
    u16::try_from(port)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("invalid port {port}: must be between 1 and 65535"))
}

impl WebCharm {
    /// The layer that serves on `port`, with its readiness check.
    fn layer(port: u16, period: &str) -> Layer {
        Layer::new()
            .summary("web layer")
            .service(
                HTTP,
                Service::new()
                    .summary("python http.server")
                    .command(format!("python3 -m http.server {port} --bind 127.0.0.1"))
                    .enabled()
                    .env("PORT", port.to_string()),
            )
            .check(
                UP,
                Check::http(format!("http://127.0.0.1:{port}/"))
                    .level(CheckLevel::Ready)
                    .period(period)
                    .threshold(3),
            )
    }

    /// Brings the workload in line with the config.
    fn reconcile(&self, ctx: &mut Context, web: &Container) -> Result<()> {
        let port = match valid_port(ctx.config().require_int("port")?) {
            Ok(port) => port,
            Err(reason) => {
                warn!("{reason}");
                if web.can_connect()
                    && web
                        .get_services(&[HTTP])?
                        .iter()
                        .any(ServiceInfo::is_running)
                {
                    web.stop(&[HTTP])?;
                }
                ctx.state().delete(PORT_KEY);
                ctx.set_unit_status(Status::blocked(reason));
                return Ok(());
            }
        };
        if !web.can_connect() {
            ctx.set_unit_status(Status::waiting("waiting for Pebble in the web container"));
            return Ok(());
        }
        let period = ctx
            .config()
            .get_str("check-period")
            .unwrap_or_else(|| "5s".into());
        web.add_layer(WEB, &Self::layer(port, &period), true)?;
        web.replan()?;
        ctx.state().save(PORT_KEY, &port)?;
        info!("serving on port {port}");
        ctx.set_unit_status(Status::active(format!("serving on port {port}")));
        Ok(())
    }
}

impl Charm for WebCharm {
    fn on_pebble_ready(&mut self, ctx: &mut Context, container: Container) -> Result<()> {
        self.reconcile(ctx, &container)
    }

    fn on_config_changed(&mut self, ctx: &mut Context) -> Result<()> {
        let web = ctx.container(WEB)?;
        self.reconcile(ctx, &web)
    }

    fn on_upgrade_charm(&mut self, ctx: &mut Context) -> Result<()> {
        // The workload keeps running; config-changed follows and reconciles it.
        if let Some(port) = ctx.state().load::<u16>(PORT_KEY)? {
            info!("upgraded while serving on port {port}");
        }
        Ok(())
    }

    fn on_pebble_check_failed(&mut self, ctx: &mut Context, event: CheckEvent) -> Result<()> {
        if event.info.name == UP {
            warn!(
                "check {:?} failed {} times",
                event.info.name, event.info.failures
            );
            ctx.set_unit_status(Status::maintenance(format!(
                "check {:?} failing; the server does not answer",
                event.info.name
            )));
        }
        Ok(())
    }

    fn on_pebble_check_recovered(&mut self, ctx: &mut Context, event: CheckEvent) -> Result<()> {
        if event.info.name == UP
            && let Some(port) = ctx.state().load::<u16>(PORT_KEY)?
        {
            ctx.set_unit_status(Status::active(format!("serving on port {port}")));
        }
        Ok(())
    }
}

export_charm!(WebCharm);

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_sdk::testing::Harness;

    fn harness() -> Harness<WebCharm> {
        Harness::from_charmcraft(include_str!("../charmcraft.yaml")).unwrap()
    }

    #[test]
    fn check_failure_and_recovery_move_the_status() {
        let mut h = harness();
        h.deploy().unwrap();
        let check = &h.container(WEB).plan().checks[UP];
        assert_eq!(check.level, Some(CheckLevel::Ready));
        assert_eq!(check.period.as_deref(), Some("5s"));
        h.check_failed(WEB, UP).unwrap();
        assert_eq!(h.container(WEB).check_status(UP), Some(CheckStatus::Down));
        assert_eq!(
            h.unit_status(),
            &Status::maintenance("check \"up\" failing; the server does not answer")
        );
        h.check_recovered(WEB, UP).unwrap();
        assert_eq!(h.unit_status(), &Status::active("serving on port 8080"));
    }

    #[test]
    fn serves_on_the_configured_port() {
        let mut h = harness();
        h.deploy().unwrap();
        assert_eq!(h.unit_status(), &Status::active("serving on port 8080"));
        assert_eq!(h.load_state::<u16>(PORT_KEY), Some(8080));
        let c = h.container(WEB);
        assert!(c.is_running(HTTP));
        let svc = &c.plan().services[HTTP];
        assert_eq!(
            svc.command.as_deref(),
            Some("python3 -m http.server 8080 --bind 127.0.0.1")
        );
        assert_eq!(svc.environment["PORT"], "8080");
    }

    #[test]
    fn invalid_port_blocks_and_stops_the_server() {
        let mut h = harness();
        h.deploy().unwrap();
        for bad in [0, 70000, -1] {
            h.update_config("port", bad).unwrap();
            assert_eq!(
                h.unit_status(),
                &Status::blocked(format!("invalid port {bad}: must be between 1 and 65535"))
            );
            assert!(!h.container(WEB).is_running(HTTP));
            assert_eq!(h.state(PORT_KEY), None);
        }
        h.update_config("port", 9090).unwrap();
        assert_eq!(h.unit_status(), &Status::active("serving on port 9090"));
        assert!(h.container(WEB).is_running(HTTP));
    }

    #[test]
    fn waits_for_pebble() {
        let mut h = harness();
        h.set_can_connect(WEB, false);
        h.config_changed().unwrap();
        assert_eq!(h.unit_status().name(), "waiting");
    }
}
