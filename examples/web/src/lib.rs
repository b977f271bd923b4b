//! The `web` charm: serves files over HTTP with Python's `http.server` on the configured
//! `port`, bound to 127.0.0.1.
//!
//! An out-of-range port blocks the unit (and stops the server if it runs); a valid one
//! (re)writes the `web` layer, replans, and records the port served in stored state.
//! The layer carries a `ready` HTTP check, `up`, on the server's root: when it fails the
//! unit goes to `maintenance` with the reason, and back to `active` when it recovers.
//!
//! Related to a database on its `db` endpoint (interface `cairn-kv`), it reads the URL
//! the database's leader publishes in its app bag (`url`), gives it to the server as
//! `DB_URL` (a change restarts it on replan) and serves it as `db.txt` from its `site-dir`,
//! and publishes its own site (`site`) in its unit bag; when the relation is broken the
//! server runs without them again and the status says the relation went.
//!
//! `web-pebble-ready` before the container's Pebble answers is deferred. The custom notice
//! `example.com/web/restart` (`pebble notify example.com/web/restart` in the container,
//! after the site changed say) restarts the server. The `site-info` action reports the
//! port, the served directory and its files; it fails when the server is not running.

use cairn_sdk::prelude::*;

/// Name of the container and of its layer.
const WEB: &str = "web";
/// Name of the HTTP service.
const HTTP: &str = "http";
/// Stored-state key of the port being served.
const PORT_KEY: &str = "port";
/// Name of the readiness check.
const UP: &str = "up";
/// The endpoint a database relates on.
const DB: &str = "db";
/// Key of the custom notice that asks for a restart of the server.
const RESTART: &str = "example.com/web/restart";
/// Default directory served.
const DEFAULT_DIR: &str = "/tmp/cairn-web";

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
    /// The layer that serves on `port` (with the database at `db`, when related), with its
    /// readiness check.
    fn layer(port: u16, period: &str, dir: &str, db: Option<&str>) -> Layer {
        let mut service = Service::new()
            .summary("python http.server")
            .command(format!(
                "python3 -m http.server {port} --bind 127.0.0.1 --directory {dir}"
            ))
            .enabled()
            .env("PORT", port.to_string());
        if let Some(url) = db {
            service = service.env("DB_URL", url);
        }
        Layer::new()
            .summary("web layer")
            .service(HTTP, service)
            .check(
                UP,
                Check::http(format!("http://127.0.0.1:{port}/"))
                    .level(CheckLevel::Ready)
                    .period(period)
                    .threshold(3),
            )
    }

    /// The database URL its leader published, if a `db` relation has one; `leaving` is a
    /// relation being broken, which no longer counts.
    fn db_url(ctx: &Context, leaving: Option<u32>) -> Result<Option<String>> {
        for rel in ctx.relations(DB) {
            if Some(rel.id) == leaving {
                continue;
            }
            if let Some(url) = rel.read(rel.app.as_str(), "url")? {
                return Ok(Some(url));
            }
        }
        Ok(None)
    }

    /// Brings the workload in line with the config and the `db` relation.
    fn reconcile(&self, ctx: &mut Context, web: &Container) -> Result<()> {
        self.reconcile_leaving(ctx, web, None)
    }

    /// [`reconcile`](Self::reconcile), with relation `leaving` on its way out.
    fn reconcile_leaving(
        &self,
        ctx: &mut Context,
        web: &Container,
        leaving: Option<u32>,
    ) -> Result<()> {
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
        let dir = ctx
            .config()
            .get_str("site-dir")
            .unwrap_or_else(|| DEFAULT_DIR.into());
        if !dir.starts_with('/') || dir.contains(char::is_whitespace) {
            let reason =
                format!("invalid site-dir {dir:?}: must be an absolute path without spaces");
            ctx.set_unit_status(Status::blocked(reason));
            return Ok(());
        }
        let db = Self::db_url(ctx, leaving)?;
        web.make_dir(&dir, &FileOptions::make_parents())?;
        let served = format!("{dir}/db.txt");
        match &db {
            Some(url) => web.push(&served, format!("{url}\n"))?,
            None if web.exists(&served)? => web.remove_path(&served, false)?,
            None => {}
        }
        for rel in ctx.relations(DB) {
            if Some(rel.id) != leaving {
                rel.set("site", format!("http://127.0.0.1:{port}/"))?;
            }
        }
        web.add_layer(WEB, &Self::layer(port, &period, &dir, db.as_deref()), true)?;
        web.replan()?;
        ctx.state().save(PORT_KEY, &port)?;
        let status = match (&db, leaving) {
            (Some(url), _) => format!("serving on port {port} with the database at {url}"),
            (None, Some(id)) => format!("serving on port {port}; database relation {id} removed"),
            (None, None) => format!("serving on port {port}"),
        };
        info!("{status}");
        ctx.set_unit_status(Status::active(status));
        Ok(())
    }
}

impl Charm for WebCharm {
    fn on_pebble_ready(&mut self, ctx: &mut Context, container: Container) -> Result<()> {
        if !container.can_connect() {
            // Pebble went away again before the charm ran: try again with the next event.
            ctx.set_unit_status(Status::waiting("waiting for Pebble in the web container"));
            ctx.defer();
            return Ok(());
        }
        self.reconcile(ctx, &container)
    }

    fn on_pebble_custom_notice(&mut self, ctx: &mut Context, event: NoticeEvent) -> Result<()> {
        if event.notice.key != RESTART {
            return Ok(());
        }
        let web = ctx.container(WEB)?;
        if !web
            .get_services(&[HTTP])?
            .iter()
            .any(ServiceInfo::is_running)
        {
            info!("restart asked while the server is not running: nothing to do");
            return Ok(());
        }
        web.restart(&[HTTP])?;
        info!(
            "server restarted on request ({} requests so far)",
            event.notice.occurrences
        );
        Ok(())
    }

    fn on_action(&mut self, ctx: &mut Context, action: ActionEvent) -> Result<()> {
        if action.name != "site-info" {
            return Ok(());
        }
        let web = ctx.container(WEB)?;
        let running = web.can_connect()
            && web
                .get_services(&[HTTP])?
                .iter()
                .any(ServiceInfo::is_running);
        let Some(port) = ctx.state().load::<u16>(PORT_KEY)?.filter(|_| running) else {
            return action.fail("the server is not running");
        };
        let dir = ctx
            .config()
            .get_str("site-dir")
            .unwrap_or_else(|| DEFAULT_DIR.into());
        let files: Vec<String> = web
            .list_files(&dir, None, false)?
            .into_iter()
            .map(|f| f.name)
            .collect();
        action.set_results(&[
            ("port", port.to_string()),
            ("site-dir", dir),
            ("files", files.join(",")),
        ])
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

    fn on_relation_changed(&mut self, ctx: &mut Context, event: RelationEvent) -> Result<()> {
        if event.endpoint != DB {
            return Ok(());
        }
        let web = ctx.container(WEB)?;
        self.reconcile(ctx, &web)
    }

    fn on_relation_broken(&mut self, ctx: &mut Context, event: RelationEvent) -> Result<()> {
        if event.endpoint != DB {
            return Ok(());
        }
        info!("the database relation {} is gone", event.relation_id);
        let web = ctx.container(WEB)?;
        self.reconcile_leaving(ctx, &web, Some(event.relation_id))
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
            Some("python3 -m http.server 8080 --bind 127.0.0.1 --directory /tmp/cairn-web")
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
    fn a_related_database_url_reaches_the_server_and_goes_with_the_relation() {
        let mut h = harness();
        h.deploy().unwrap();
        let id = h.add_relation(DB, "db").unwrap();
        h.add_relation_unit(id, "db/0", &[]).unwrap();
        // No URL yet: the server runs without one, the site is published.
        assert_eq!(h.unit_status(), &Status::active("serving on port 8080"));
        assert_eq!(
            h.relation(id).unwrap().local_unit["site"],
            "http://127.0.0.1:8080/"
        );
        h.update_relation_data(id, "db", &[("url", "http://127.0.0.1:7070")])
            .unwrap();
        let env = &h.container(WEB).plan().services[HTTP].environment;
        assert_eq!(env["DB_URL"], "http://127.0.0.1:7070");
        assert_eq!(
            h.container(WEB).file("/tmp/cairn-web/db.txt"),
            Some(&b"http://127.0.0.1:7070\n"[..])
        );
        assert_eq!(
            h.unit_status(),
            &Status::active("serving on port 8080 with the database at http://127.0.0.1:7070")
        );
        h.remove_relation(id).unwrap();
        let env = &h.container(WEB).plan().services[HTTP].environment;
        assert!(!env.contains_key("DB_URL"), "{env:?}");
        assert!(h.container(WEB).file("/tmp/cairn-web/db.txt").is_none());
        assert_eq!(
            h.unit_status(),
            &Status::active(format!(
                "serving on port 8080; database relation {id} removed"
            ))
        );
    }

    #[test]
    fn waits_for_pebble() {
        let mut h = harness();
        h.set_can_connect(WEB, false);
        h.config_changed().unwrap();
        assert_eq!(h.unit_status().name(), "waiting");
    }
}
