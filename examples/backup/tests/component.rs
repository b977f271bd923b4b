//! The backup charm's compiled component, run by Cairn's runtime against declared states
//! (`cairn-testing`).

use cairn_testing::{CheckStatus, Container, Context, Event, HostEvent, State, WorkloadStatus};
use serde_json::json;

fn ctx() -> Context {
    Context::from_charm_dir(env!("CARGO_MANIFEST_DIR")).expect("the backup charm builds and loads")
}

fn active(m: &str) -> WorkloadStatus {
    WorkloadStatus::Active(m.into())
}

/// The unit running its workload with the default settings.
fn running(ctx: &Context) -> State {
    ctx.run(Event::ConfigChanged, State::new()).unwrap()
}

#[test]
fn config_changed_writes_the_layer_with_the_settings_and_replans() {
    let ctx = ctx();
    let out = ctx
        .run(
            Event::ConfigChanged,
            State::new()
                .with_config("interval", 60)
                .with_config("target-dir", "/srv/archives"),
        )
        .unwrap();
    assert_eq!(out.unit_status, active("waiting for the first backup"));
    let c = out.container("backup");
    let svc = &c.plan().services["backup"];
    assert!(svc.command.starts_with("python3 -c '"), "{}", svc.command);
    assert_eq!(svc.environment["BACKUP_INTERVAL"], "60");
    assert_eq!(svc.environment["BACKUP_DIR"], "/srv/archives");
    assert!(c.is_running("backup"));
    let check = &c.plan().checks["target-dir"];
    assert_eq!(check.effective_threshold(), 2);
    // A new interval changes the service: replan restarts it.
    let out = ctx
        .run(Event::ConfigChanged, out.with_config("interval", 120))
        .unwrap();
    assert_eq!(out.container("backup").start_count("backup"), 2);
}

#[test]
fn an_interval_below_one_blocks_without_touching_the_workload() {
    let ctx = ctx();
    let state = running(&ctx);
    let out = ctx
        .run(Event::ConfigChanged, state.with_config("interval", 0))
        .unwrap();
    assert_eq!(
        out.unit_status,
        WorkloadStatus::Blocked("invalid interval 0: must be at least 1".into())
    );
    assert_eq!(
        out.container("backup").plan().services["backup"].environment["BACKUP_INTERVAL"],
        "3600"
    );
}

#[test]
fn pebble_ready_before_pebble_answers_is_deferred() {
    let ctx = ctx();
    let out = ctx
        .run(
            Event::pebble_ready("backup"),
            State::new().with_container(Container::new("backup").can_connect(false)),
        )
        .unwrap();
    assert_eq!(
        out.deferred,
        [HostEvent::PebbleReady {
            container: "backup".into()
        }]
    );
    assert_eq!(
        out.unit_status,
        WorkloadStatus::Waiting("waiting for Pebble in the backup container".into())
    );
    let up = out.container("backup").clone().can_connect(true);
    let out = ctx
        .run(Event::UpdateStatus, out.with_container(up))
        .unwrap();
    assert!(out.deferred.is_empty());
    assert!(out.container("backup").is_running("backup"));
}

#[test]
fn a_missing_archive_directory_shows_until_the_check_recovers() {
    let ctx = ctx();
    let out = ctx
        .run(Event::check_failed("backup", "target-dir"), running(&ctx))
        .unwrap();
    assert_eq!(
        out.unit_status,
        WorkloadStatus::Maintenance("archive directory /tmp/cairn-backups is missing".into())
    );
    assert_eq!(
        out.container("backup").check_status("target-dir"),
        Some(CheckStatus::Down)
    );
    let out = ctx
        .run(Event::check_recovered("backup", "target-dir"), out)
        .unwrap();
    assert_eq!(out.unit_status, active("waiting for the first backup"));
}

#[test]
fn done_notices_are_kept_across_runs_and_failures_block() {
    let ctx = ctx();
    let state = running(&ctx);
    let c = state.container("backup").clone().notice(
        "example.com/backup/done",
        &[("path", "/b/2.tar.gz"), ("bytes", "12")],
        2,
    );
    let out = ctx
        .run(
            Event::custom_notice("backup", "example.com/backup/done"),
            state.with_container(c),
        )
        .unwrap();
    assert_eq!(
        out.unit_status,
        active("backup 2 done: /b/2.tar.gz (12 bytes)")
    );
    let last: serde_json::Value = out.load("last-backup").unwrap();
    assert_eq!(
        last,
        json!({"path": "/b/2.tar.gz", "bytes": 12, "count": 2})
    );

    // Stored state carries to the next run: a config change shows the last archive.
    let out = ctx
        .run(Event::ConfigChanged, out.with_config("interval", 30))
        .unwrap();
    assert_eq!(
        out.unit_status,
        active("backup 2 done: /b/2.tar.gz (12 bytes)")
    );

    let c = out.container("backup").clone().notice(
        "example.com/backup/failed",
        &[("error", "disk full")],
        1,
    );
    let out = ctx
        .run(
            Event::custom_notice("backup", "example.com/backup/failed"),
            out.with_container(c),
        )
        .unwrap();
    assert_eq!(
        out.unit_status,
        WorkloadStatus::Blocked("backup failed: disk full".into())
    );
}

#[test]
fn list_backups_reports_the_archives_and_fails_without_the_directory() {
    let ctx = ctx();
    let state = running(&ctx);
    let c = state
        .container("backup")
        .clone()
        .file("/tmp/cairn-backups/backup-1000.tar.gz", vec![0u8; 100])
        .file("/tmp/cairn-backups/backup-2000.tar.gz", vec![0u8; 50])
        .file("/tmp/cairn-backups/notes.txt", "not an archive");
    let out = ctx
        .run(
            Event::action("list-backups", json!({})),
            state.clone().with_container(c),
        )
        .unwrap();
    let report = out.action.unwrap();
    assert_eq!(report.failed, None);
    assert_eq!(report.results["count"], "2");
    assert_eq!(report.results["newest"], "backup-2000.tar.gz");
    assert_eq!(report.results["bytes"], "150");

    let out = ctx
        .run(Event::action("list-backups", json!({})), state)
        .unwrap();
    assert_eq!(
        out.action.unwrap().failed.as_deref(),
        Some("no archives: /tmp/cairn-backups does not exist")
    );
}
