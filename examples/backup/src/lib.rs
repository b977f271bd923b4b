//! The `backup` charm: its workload archives a directory on a schedule and tells the charm
//! about each archive with a Pebble custom notice, which the charm turns into status and
//! stored state.
//!
//! - `pebble-ready` / `config-changed`: (re)write the `backup` layer with the workload and
//!   its settings, and replan.
//! - `backup-pebble-custom-notice` with key `example.com/backup/done`: keep the archive's
//!   path, size and the notice's occurrence count in stored state and show them in the
//!   status; `example.com/backup/failed` blocks the unit with the error.
//! - `pebble-ready` before the container's Pebble answers is deferred.
//! - check `target-dir` (is the archive directory still there): failing, the unit goes to
//!   `maintenance`; recovered, back to what it showed.
//! - action `list-backups`: the archives in `target-dir` (count, newest, total bytes);
//!   fails when the directory does not exist.

use cairn_sdk::prelude::*;
use serde::{Deserialize, Serialize};

/// Name of the container, its layer and its service.
const BACKUP: &str = "backup";
/// Key of the notice the workload records after each archive.
const DONE: &str = "example.com/backup/done";
/// Key of the notice the workload records when an archive fails.
const FAILED: &str = "example.com/backup/failed";
/// Stored-state key of the last archive.
const LAST: &str = "last-backup";
/// Name of the check that the archive directory exists.
const TARGET_CHECK: &str = "target-dir";
/// Default archive directory.
const DEFAULT_TARGET: &str = "/tmp/cairn-backups";
/// The workload program, passed to `python3 -c`.
const WORKLOAD: &str = include_str!("../workload/backup.py");

/// What the charm remembers of the last archive.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub struct LastBackup {
    /// The archive's path.
    pub path: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// How many archives the workload has reported (the notice's occurrences).
    pub count: u32,
}

/// The charm; what it knows between events is in stored state.
#[derive(Default)]
pub struct BackupCharm;

impl BackupCharm {
    fn layer(ctx: &Context) -> Result<Layer> {
        let config = ctx.config();
        let interval = config.require_int("interval")?;
        if interval < 1 {
            return Err(Error::msg(format!(
                "invalid interval {interval}: must be at least 1"
            )));
        }
        let target = config
            .get_str("target-dir")
            .unwrap_or_else(|| DEFAULT_TARGET.into());
        Ok(Layer::new()
            .summary("backup layer")
            .check(
                TARGET_CHECK,
                Check::exec(format!("test -d {target}"))
                    .level(CheckLevel::Alive)
                    .period("60s")
                    .threshold(2),
            )
            .service(
                BACKUP,
                Service::new()
                    .summary("archive a directory on a schedule")
                    .command(format!("python3 -c '{WORKLOAD}'"))
                    .enabled()
                    .env(
                        "BACKUP_SOURCE",
                        config.get_str("source").unwrap_or_else(|| "/etc".into()),
                    )
                    .env("BACKUP_DIR", target)
                    .env("BACKUP_INTERVAL", interval.to_string()),
            ))
    }

    fn reconcile(&self, ctx: &mut Context, container: &Container) -> Result<()> {
        if !container.can_connect() {
            ctx.set_unit_status(Status::waiting(
                "waiting for Pebble in the backup container",
            ));
            return Ok(());
        }
        let layer = match Self::layer(ctx) {
            Ok(l) => l,
            Err(e) => {
                ctx.set_unit_status(Status::blocked(e.to_string()));
                return Ok(());
            }
        };
        container.add_layer(BACKUP, &layer, true)?;
        container.replan()?;
        let status = Self::settled_status(ctx)?;
        ctx.set_unit_status(status);
        Ok(())
    }

    /// What the unit shows when all is well: the last archive, or that none came yet.
    fn settled_status(ctx: &Context) -> Result<Status> {
        Ok(match ctx.state().load::<LastBackup>(LAST)? {
            Some(last) => Self::status(&last),
            None => Status::active("waiting for the first backup"),
        })
    }

    fn status(last: &LastBackup) -> Status {
        Status::active(format!(
            "backup {} done: {} ({} bytes)",
            last.count, last.path, last.bytes
        ))
    }
}

impl Charm for BackupCharm {
    fn on_pebble_ready(&mut self, ctx: &mut Context, container: Container) -> Result<()> {
        if !container.can_connect() {
            ctx.set_unit_status(Status::waiting(
                "waiting for Pebble in the backup container",
            ));
            ctx.defer();
            return Ok(());
        }
        self.reconcile(ctx, &container)
    }

    fn on_pebble_check_failed(&mut self, ctx: &mut Context, event: CheckEvent) -> Result<()> {
        if event.info.name == TARGET_CHECK {
            let target = ctx
                .config()
                .get_str("target-dir")
                .unwrap_or_else(|| DEFAULT_TARGET.into());
            warn!("check {TARGET_CHECK:?} failed: {target} is gone");
            ctx.set_unit_status(Status::maintenance(format!(
                "archive directory {target} is missing"
            )));
        }
        Ok(())
    }

    fn on_pebble_check_recovered(&mut self, ctx: &mut Context, event: CheckEvent) -> Result<()> {
        if event.info.name == TARGET_CHECK {
            let status = Self::settled_status(ctx)?;
            ctx.set_unit_status(status);
        }
        Ok(())
    }

    fn on_action(&mut self, ctx: &mut Context, action: ActionEvent) -> Result<()> {
        if action.name != "list-backups" {
            return Ok(());
        }
        let target = ctx
            .config()
            .get_str("target-dir")
            .unwrap_or_else(|| DEFAULT_TARGET.into());
        let container = ctx.container(BACKUP)?;
        let archives = match container.list_files(&target, Some("backup-*.tar.gz"), false) {
            Ok(list) => list,
            Err(Error::Path(e)) if e.kind == "not-found" => {
                return action.fail(format!("no archives: {target} does not exist"));
            }
            Err(e) => return Err(e),
        };
        let bytes: u64 = archives.iter().filter_map(|f| f.size).sum();
        let newest = archives.iter().map(|f| f.name.as_str()).max().unwrap_or("");
        action.set_results(&[
            ("count", archives.len().to_string()),
            ("newest", newest.to_string()),
            ("bytes", bytes.to_string()),
        ])
    }

    fn on_config_changed(&mut self, ctx: &mut Context) -> Result<()> {
        let container = ctx.container(BACKUP)?;
        self.reconcile(ctx, &container)
    }

    fn on_pebble_custom_notice(&mut self, ctx: &mut Context, event: NoticeEvent) -> Result<()> {
        let notice = &event.notice;
        match notice.key.as_str() {
            DONE => {
                let path = notice.last_data.get("path").cloned().unwrap_or_default();
                let bytes = notice
                    .last_data
                    .get("bytes")
                    .and_then(|b| b.parse().ok())
                    .unwrap_or(0);
                let last = LastBackup {
                    path,
                    bytes,
                    count: notice.occurrences,
                };
                info!("backup {} done: {}", last.count, last.path);
                ctx.set_unit_status(Self::status(&last));
                ctx.state().save(LAST, &last)?;
            }
            FAILED => {
                let error = notice.last_data.get("error").cloned().unwrap_or_default();
                warn!("backup failed: {error}");
                ctx.set_unit_status(Status::blocked(format!("backup failed: {error}")));
            }
            other => debug!("ignoring notice {other:?}"),
        }
        Ok(())
    }
}

export_charm!(BackupCharm);

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_sdk::testing::Harness;

    fn harness() -> Harness<BackupCharm> {
        Harness::from_charmcraft(include_str!("../charmcraft.yaml")).unwrap()
    }

    #[test]
    fn workload_has_no_single_quote() {
        assert!(!WORKLOAD.contains('\''));
    }

    #[test]
    fn deploy_runs_the_workload_with_its_settings() {
        let mut h = harness();
        h.deploy().unwrap();
        assert_eq!(
            h.unit_status(),
            &Status::active("waiting for the first backup")
        );
        let c = h.container(BACKUP);
        assert!(c.is_running(BACKUP));
        let svc = &c.plan().services[BACKUP];
        assert!(svc.command.as_deref().unwrap().starts_with("python3 -c '"));
        assert_eq!(svc.environment["BACKUP_INTERVAL"], "3600");
        assert_eq!(svc.environment["BACKUP_SOURCE"], "/etc");
    }

    #[test]
    fn done_notices_are_kept_and_shown_failures_block() {
        let mut h = harness();
        h.deploy().unwrap();
        h.container_mut(BACKUP)
            .add_notice(DONE, &[("path", "/b/1.tar.gz"), ("bytes", "10")]);
        h.custom_notice(BACKUP, DONE, &[("path", "/b/2.tar.gz"), ("bytes", "12")])
            .unwrap();
        assert_eq!(
            h.unit_status(),
            &Status::active("backup 2 done: /b/2.tar.gz (12 bytes)")
        );
        assert_eq!(
            h.load_state::<LastBackup>(LAST),
            Some(LastBackup {
                path: "/b/2.tar.gz".into(),
                bytes: 12,
                count: 2
            })
        );
        h.custom_notice(BACKUP, FAILED, &[("error", "disk full")])
            .unwrap();
        assert_eq!(
            h.unit_status(),
            &Status::blocked("backup failed: disk full")
        );
    }

    #[test]
    fn a_bad_interval_blocks() {
        let mut h = harness();
        h.deploy().unwrap();
        h.update_config("interval", 0).unwrap();
        assert_eq!(
            h.unit_status(),
            &Status::blocked("invalid interval 0: must be at least 1")
        );
    }
}
