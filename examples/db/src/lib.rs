//! The `db` charm: a small SQLite-backed key-value database whose backups are made two
//! ways, on a schedule by the workload and on demand by an action.
//!
//! - `pebble-ready` / `config-changed` / `upgrade-charm`: push the workload program into
//!   `data-dir`, (re)write the `db` layer (the server and its `ready` HTTP check) and
//!   replan. An invalid port or interval blocks the unit.
//! - `db-pebble-custom-notice` `example.com/db/backup`: the workload finished a scheduled
//!   dump; the charm keeps it in stored state and shows it in the status.
//!   `example.com/db/backup-failed` blocks the unit with the workload's error.
//! - action `backup`: runs the workload's `dump` command in the container with `exec`,
//!   pulls the dump back, and reports its path, size, SHA-256 and row count as results.
//!   A dump that fails (no such table, say) fails the action with the command's error.
//! - `db-pebble-ready` before the container's Pebble answers is deferred.
//! - check `ready` failing puts the unit in `maintenance`; recovered, back to `active`.
//! - `database` relations (interface `cairn-kv`): the leader publishes the server's URL
//!   (`url`) in the app bag when a relation is made and whenever the port changes; each
//!   unit logs the `site` its clients publish.

use cairn_sdk::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Name of the container, its layer and its service.
const DB: &str = "db";
/// Name of the readiness check.
const READY: &str = "ready";
/// Key of the notice the workload records after each scheduled dump.
const SCHEDULED: &str = "example.com/db/backup";
/// Key of the notice the workload records when a scheduled dump fails.
const SCHEDULED_FAILED: &str = "example.com/db/backup-failed";
/// Stored-state key of the last scheduled backup.
const LAST: &str = "last-scheduled-backup";
/// The endpoint clients relate on.
const DATABASE: &str = "database";
/// The workload program, pushed into the container.
const WORKLOAD: &str = include_str!("../workload/dbd.py");

/// What the charm remembers of the last scheduled backup.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct LastBackup {
    /// The dump's path.
    pub path: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// How many scheduled dumps the workload has reported (the notice's occurrences).
    pub count: u32,
}

/// The `backup` action's parameters (charmcraft.yaml has the schema).
#[derive(Debug, Deserialize)]
struct BackupParams {
    name: Option<String>,
    table: Option<String>,
    #[serde(default)]
    compress: bool,
}

/// What the workload's `dump` command prints.
#[derive(Debug, Deserialize)]
struct DumpSummary {
    path: String,
    tables: u64,
    rows: u64,
}

/// Where things live in the container, from `data-dir`.
struct Paths {
    data: String,
}

impl Paths {
    fn program(&self) -> String {
        format!("{}/dbd.py", self.data)
    }
    fn database(&self) -> String {
        format!("{}/db.sqlite", self.data)
    }
    fn backups(&self) -> String {
        format!("{}/backups", self.data)
    }
}

/// The charm; what it knows between events is in stored state.
#[derive(Default)]
pub struct DbCharm;

/// The workload's settings, checked.
struct Settings {
    port: u16,
    interval: u64,
    paths: Paths,
}

impl DbCharm {
    fn settings(ctx: &Context) -> Result<Settings> {
        let config = ctx.config();
        let port = config.require_int("port")?;
        let port = u16::try_from(port)
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| {
                Error::msg(format!("invalid port {port}: must be between 1 and 65535"))
            })?;
        // Unit K listens on port+K: the units of one app share a machine's ports.
        let unit = ctx.unit_name();
        let k: u16 = unit
            .rsplit_once('/')
            .and_then(|(_, n)| n.parse().ok())
            .unwrap_or(0);
        let port = port.checked_add(k).ok_or_else(|| {
            Error::msg(format!(
                "invalid port {port}: {unit} would listen on {port}+{k}, past 65535"
            ))
        })?;
        let interval = config.require_int("backup-interval")?;
        let interval = u64::try_from(interval).map_err(|_| {
            Error::msg(format!(
                "invalid backup-interval {interval}: must be 0 or more"
            ))
        })?;
        let data = config
            .get_str("data-dir")
            .unwrap_or_else(|| "/tmp/cairn-db".into());
        if !data.starts_with('/') {
            return Err(Error::msg(format!(
                "invalid data-dir {data:?}: must be an absolute path"
            )));
        }
        Ok(Settings {
            port,
            interval,
            paths: Paths {
                data: data.trim_end_matches('/').to_string(),
            },
        })
    }

    /// The layer that serves the database; the program's checksum is in the environment,
    /// so a charm upgrade that changes the program restarts the service on replan.
    fn layer(s: &Settings) -> Layer {
        let command = format!(
            "python3 {} serve --db {} --port {} --backup-dir {} --backup-interval {}",
            s.paths.program(),
            s.paths.database(),
            s.port,
            s.paths.backups(),
            s.interval
        );
        Layer::new()
            .summary("db layer")
            .service(
                DB,
                Service::new()
                    .summary("key-value database")
                    .command(command)
                    .enabled()
                    .env("DBD_PROGRAM_SHA256", hex(&Sha256::digest(WORKLOAD))),
            )
            .check(
                READY,
                Check::http(format!("http://127.0.0.1:{}/health", s.port))
                    .level(CheckLevel::Ready)
                    .period("5s")
                    .threshold(3),
            )
    }

    /// As leader, publishes the server's URL to every client relation (the app bag is the
    /// leader's to write).
    fn publish(ctx: &Context, port: u16) -> Result<()> {
        if !ctx.is_leader() {
            return Ok(());
        }
        for rel in ctx.relations(DATABASE) {
            rel.set_app("url", format!("http://127.0.0.1:{port}"))?;
        }
        Ok(())
    }

    fn reconcile(&self, ctx: &mut Context) -> Result<()> {
        let container = ctx.container(DB)?;
        if !container.can_connect() {
            ctx.set_unit_status(Status::waiting("waiting for Pebble in the db container"));
            return Ok(());
        }
        let settings = match Self::settings(ctx) {
            Ok(s) => s,
            Err(e) => {
                ctx.set_unit_status(Status::blocked(e.to_string()));
                return Ok(());
            }
        };
        container.push_with(
            &settings.paths.program(),
            WORKLOAD,
            &FileOptions::make_parents().permissions(0o755),
        )?;
        container.make_dir(&settings.paths.backups(), &FileOptions::make_parents())?;
        container.add_layer(DB, &Self::layer(&settings), true)?;
        container.replan()?;
        Self::publish(ctx, settings.port)?;
        let status = Self::settled_status(ctx, settings.port)?;
        ctx.set_unit_status(status);
        Ok(())
    }

    /// What the unit shows when the database serves: its address and the last scheduled
    /// backup, if any.
    fn settled_status(ctx: &Context, port: u16) -> Result<Status> {
        Ok(match ctx.state().load::<LastBackup>(LAST)? {
            Some(last) => Self::status(port, &last),
            None => Status::active(format!("serving on 127.0.0.1:{port}")),
        })
    }

    fn status(port: u16, last: &LastBackup) -> Status {
        Status::active(format!(
            "serving on 127.0.0.1:{port}; scheduled backup {}: {} ({} bytes)",
            last.count, last.path, last.bytes
        ))
    }

    /// The `backup` action: dump with exec, pull the dump, report it.
    fn backup(&self, ctx: &mut Context, action: &ActionEvent) -> Result<()> {
        let params: BackupParams = action.params()?;
        let settings = Self::settings(ctx)?;
        let name = params
            .name
            .unwrap_or_else(|| format!("backup-{}", action.id));
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            return action.fail(format!(
                "invalid name {name:?}: must be a file name without directories"
            ));
        }
        let suffix = if params.compress { ".sql.gz" } else { ".sql" };
        let out = format!("{}/{name}{suffix}", settings.paths.backups());
        let container = ctx.container(DB)?;
        let program = settings.paths.program();
        let database = settings.paths.database();
        let mut command = vec![
            "python3",
            program.as_str(),
            "dump",
            "--db",
            database.as_str(),
            "--out",
            out.as_str(),
        ];
        if let Some(table) = &params.table {
            command.extend(["--table", table.as_str()]);
        }
        if params.compress {
            command.push("--gzip");
        }
        action.log(format!("dumping {database} into {out}"))?;
        let options = ExecOptions {
            timeout: Some(std::time::Duration::from_secs(30)),
            ..ExecOptions::default()
        };
        let output = match container.exec_with(&command, &options)?.wait_output() {
            Ok(output) => output,
            Err(Error::Exec(e)) => {
                let reason = String::from_utf8_lossy(&e.stderr).trim().to_string();
                return action.fail(format!("dump failed (exit code {}): {reason}", e.exit_code));
            }
            Err(e) => return Err(e),
        };
        let summary: DumpSummary = serde_json::from_slice(&output.stdout)
            .map_err(|e| Error::msg(format!("cannot read the dump's summary: {e}")))?;
        action.log(format!("pulling {}", summary.path))?;
        let dump = container.pull(&summary.path)?;
        let expected: &[u8] = if params.compress {
            &[0x1f, 0x8b]
        } else {
            b"BEGIN TRANSACTION;"
        };
        if !dump.starts_with(expected) {
            return action.fail(format!("{} is not a dump", summary.path));
        }
        action.set_results(&[
            ("path", summary.path.clone()),
            ("size", dump.len().to_string()),
            ("sha256", hex(&Sha256::digest(&dump))),
            ("tables", summary.tables.to_string()),
            ("rows", summary.rows.to_string()),
            ("compressed", params.compress.to_string()),
        ])?;
        info!("backup {} done: {} bytes", summary.path, dump.len());
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Charm for DbCharm {
    fn on_pebble_ready(&mut self, ctx: &mut Context, container: Container) -> Result<()> {
        if !container.can_connect() {
            ctx.set_unit_status(Status::waiting("waiting for Pebble in the db container"));
            ctx.defer();
            return Ok(());
        }
        self.reconcile(ctx)
    }

    fn on_pebble_check_failed(&mut self, ctx: &mut Context, event: CheckEvent) -> Result<()> {
        if event.info.name == READY {
            warn!("check {READY:?} failed {} times", event.info.failures);
            ctx.set_unit_status(Status::maintenance(
                "the database does not answer its health check",
            ));
        }
        Ok(())
    }

    fn on_pebble_check_recovered(&mut self, ctx: &mut Context, event: CheckEvent) -> Result<()> {
        if event.info.name == READY
            && let Ok(settings) = Self::settings(ctx)
        {
            let status = Self::settled_status(ctx, settings.port)?;
            ctx.set_unit_status(status);
        }
        Ok(())
    }

    fn on_config_changed(&mut self, ctx: &mut Context) -> Result<()> {
        self.reconcile(ctx)
    }

    fn on_upgrade_charm(&mut self, ctx: &mut Context) -> Result<()> {
        self.reconcile(ctx)
    }

    fn on_pebble_custom_notice(&mut self, ctx: &mut Context, event: NoticeEvent) -> Result<()> {
        let notice = &event.notice;
        match notice.key.as_str() {
            SCHEDULED => {
                let last = LastBackup {
                    path: notice.last_data.get("path").cloned().unwrap_or_default(),
                    bytes: notice
                        .last_data
                        .get("bytes")
                        .and_then(|b| b.parse().ok())
                        .unwrap_or(0),
                    count: notice.occurrences,
                };
                info!("scheduled backup {} done: {}", last.count, last.path);
                let port = Self::settings(ctx)?.port;
                ctx.set_unit_status(Self::status(port, &last));
                ctx.state().save(LAST, &last)?;
            }
            SCHEDULED_FAILED => {
                let error = notice.last_data.get("error").cloned().unwrap_or_default();
                warn!("scheduled backup failed: {error}");
                ctx.set_unit_status(Status::blocked(format!("scheduled backup failed: {error}")));
            }
            other => debug!("ignoring notice {other:?}"),
        }
        Ok(())
    }

    fn on_relation_created(&mut self, ctx: &mut Context, event: RelationEvent) -> Result<()> {
        if event.endpoint == DATABASE
            && let Ok(settings) = Self::settings(ctx)
        {
            Self::publish(ctx, settings.port)?;
        }
        Ok(())
    }

    fn on_leader_elected(&mut self, ctx: &mut Context) -> Result<()> {
        if let Ok(settings) = Self::settings(ctx) {
            Self::publish(ctx, settings.port)?;
        }
        Ok(())
    }

    fn on_relation_changed(&mut self, _ctx: &mut Context, event: RelationEvent) -> Result<()> {
        if event.endpoint != DATABASE {
            return Ok(());
        }
        if let Some(unit) = &event.unit
            && let Some(site) = event.relation()?.read(unit.as_str(), "site")?
        {
            info!("client {unit} serves {site}");
        }
        Ok(())
    }

    fn on_action(&mut self, ctx: &mut Context, action: ActionEvent) -> Result<()> {
        match action.name.as_str() {
            "backup" => self.backup(ctx, &action),
            other => Err(Error::msg(format!("unknown action {other:?}"))),
        }
    }
}

export_charm!(DbCharm);

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_sdk::ExecOutput;
    use cairn_sdk::testing::{ExecArgs, Harness, TestContainer};

    fn harness() -> Harness<DbCharm> {
        let mut h = Harness::from_charmcraft(include_str!("../charmcraft.yaml")).unwrap();
        h.set_config("data-dir", "/srv/db").unwrap();
        h
    }

    /// What the real `dump` does, on the fake filesystem.
    fn fake_dump(args: &ExecArgs, c: &mut TestContainer) -> ExecOutput {
        let arg = |flag: &str| {
            args.command
                .iter()
                .position(|a| a == flag)
                .map(|i| args.command[i + 1].clone())
        };
        if arg("--table").as_deref() == Some("nope") {
            return ExecOutput {
                exit_code: 2,
                stdout: Vec::new(),
                stderr: b"cannot dump /srv/db/db.sqlite: no such table: nope\n".to_vec(),
            };
        }
        let out = arg("--out").unwrap();
        let dump = "BEGIN TRANSACTION;\nCOMMIT;\n";
        c.put_file(&out, dump);
        ExecOutput {
            exit_code: 0,
            stdout: format!(r#"{{"path": "{out}", "bytes": 27, "tables": 1, "rows": 0}}"#)
                .into_bytes(),
            stderr: Vec::new(),
        }
    }

    #[test]
    fn the_leader_publishes_the_url_to_clients_and_follows_the_port() {
        let mut h = harness();
        h.set_leader(true);
        h.deploy().unwrap();
        let id = h.add_relation(DATABASE, "web").unwrap();
        assert_eq!(
            h.relation(id).unwrap().local_app["url"],
            "http://127.0.0.1:7070"
        );
        h.add_relation_unit(id, "web/0", &[("site", "http://127.0.0.1:8080/")])
            .unwrap();
        h.update_config("port", 7171).unwrap();
        assert_eq!(
            h.relation(id).unwrap().local_app["url"],
            "http://127.0.0.1:7171"
        );
    }

    #[test]
    fn a_unit_that_does_not_lead_publishes_nothing() {
        let mut h = harness();
        h.set_leader(false);
        h.deploy().unwrap();
        let id = h.add_relation(DATABASE, "web").unwrap();
        assert!(h.relation(id).unwrap().local_app.is_empty());
    }

    #[test]
    fn deploy_pushes_the_program_and_serves() {
        let mut h = harness();
        h.deploy().unwrap();
        assert_eq!(
            h.unit_status(),
            &Status::active("serving on 127.0.0.1:7070")
        );
        let c = h.container(DB);
        assert_eq!(c.file("/srv/db/dbd.py"), Some(WORKLOAD.as_bytes()));
        assert!(c.is_running(DB));
        let svc = &c.plan().services[DB];
        assert_eq!(
            svc.command.as_deref(),
            Some(
                "python3 /srv/db/dbd.py serve --db /srv/db/db.sqlite --port 7070 \
                 --backup-dir /srv/db/backups --backup-interval 3600"
            )
        );
        h.set_config("port", 0i64).unwrap();
        h.config_changed().unwrap();
        assert!(matches!(h.unit_status(), Status::Blocked(m) if m.contains("invalid port 0")));
    }

    #[test]
    fn the_backup_action_dumps_pulls_and_reports() {
        let mut h = harness();
        h.deploy().unwrap();
        h.container_mut(DB)
            .handle_exec_with(&["python3", "/srv/db/dbd.py", "dump"], fake_dump);
        let out = h.run_action("backup", r#"{"name": "nightly"}"#).unwrap();
        assert_eq!(out.failed, None);
        assert_eq!(out.results["path"], "/srv/db/backups/nightly.sql");
        assert_eq!(out.results["size"], "27");
        assert_eq!(out.results["sha256"].len(), 64);
        assert_eq!(out.results["rows"], "0");
        let ran = h.container(DB).exec_log().last().unwrap().clone();
        assert_eq!(
            ran,
            [
                "python3",
                "/srv/db/dbd.py",
                "dump",
                "--db",
                "/srv/db/db.sqlite",
                "--out",
                "/srv/db/backups/nightly.sql"
            ]
        );

        let out = h.run_action("backup", r#"{"table": "nope"}"#).unwrap();
        assert_eq!(
            out.failed.as_deref(),
            Some("dump failed (exit code 2): cannot dump /srv/db/db.sqlite: no such table: nope")
        );
        let out = h.run_action("backup", r#"{"name": "../x"}"#).unwrap();
        assert!(out.failed.unwrap().starts_with("invalid name \"../x\""));
    }

    #[test]
    fn parameters_the_schema_refuses_never_reach_the_charm() {
        let mut h = harness();
        h.deploy().unwrap();
        let delivered = h.history().len();
        // The messages `cairn run-action` gives for the same parameters (tests/e2e/actions.rs).
        for (params, message) in [
            (
                r#"{"nmae": "nightly"}"#,
                "invalid parameters for action \"backup\": unknown parameter \"nmae\"",
            ),
            (
                r#"{"compress": "maybe"}"#,
                "invalid parameters for action \"backup\": compress: expected boolean, got \"maybe\"",
            ),
        ] {
            let err = h.run_action("backup", params).unwrap_err();
            assert_eq!(err.to_string(), message, "{params}");
        }
        assert_eq!(
            h.history().len(),
            delivered,
            "refused runs are not delivered"
        );
    }

    #[test]
    fn scheduled_backups_are_kept_and_shown() {
        let mut h = harness();
        h.deploy().unwrap();
        h.custom_notice(
            DB,
            SCHEDULED,
            &[("path", "/srv/db/backups/scheduled-1.sql"), ("bytes", "99")],
        )
        .unwrap();
        assert_eq!(
            h.unit_status(),
            &Status::active(
                "serving on 127.0.0.1:7070; scheduled backup 1: /srv/db/backups/scheduled-1.sql (99 bytes)"
            )
        );
        assert_eq!(h.load_state::<LastBackup>(LAST).unwrap().bytes, 99);
    }
}
