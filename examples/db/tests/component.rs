//! The db charm's compiled component, run by Cairn's runtime against declared states
//! (`cairn-testing`).

use std::time::Duration;

use cairn_testing::{
    Budget, CheckStatus, Container, Context, Event, ExecArgs, ExecOutput, Failure, HostEvent,
    RunError, State, WorkloadStatus,
};
use serde_json::json;

fn ctx() -> Context {
    Context::from_charm_dir(env!("CARGO_MANIFEST_DIR")).expect("the db charm builds and loads")
}

fn active(m: &str) -> WorkloadStatus {
    WorkloadStatus::Active(m.into())
}

/// What the workload's `dump` does, on the declared filesystem.
fn fake_dump(args: &ExecArgs, c: &mut Container) -> ExecOutput {
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
            stderr: b"cannot dump /tmp/cairn-db/db.sqlite: no such table: nope\n".to_vec(),
        };
    }
    let out = arg("--out").expect("the charm names the dump");
    c.write_file(&out, "BEGIN TRANSACTION;\nCOMMIT;\n");
    ExecOutput {
        exit_code: 0,
        stdout: format!(r#"{{"path": "{out}", "bytes": 27, "tables": 1, "rows": 0}}"#).into_bytes(),
        stderr: Vec::new(),
    }
}

/// The unit serving, with a `python3` that runs the fake dump.
fn serving(ctx: &Context) -> State {
    let state = ctx.run(Event::ConfigChanged, State::new()).unwrap();
    let db = state
        .container("db")
        .clone()
        .exec_with(&["python3"], fake_dump);
    state.with_container(db)
}

#[test]
fn config_changed_pushes_the_program_writes_the_layer_and_replans() {
    let ctx = ctx();
    let out = ctx.run(Event::ConfigChanged, State::new()).unwrap();
    assert_eq!(out.unit_status, active("serving on 127.0.0.1:7070"));
    let db = out.container("db");
    assert!(
        db.read("/tmp/cairn-db/dbd.py")
            .is_some_and(|p| p.starts_with(b"#")),
        "the program is pushed"
    );
    assert!(db.is_dir("/tmp/cairn-db/backups"));
    let svc = &db.plan().services["db"];
    assert!(svc.command.contains("--port 7070"), "{}", svc.command);
    assert!(db.is_running("db"));
    let out = ctx
        .run(Event::ConfigChanged, out.with_config("port", 7171))
        .unwrap();
    assert_eq!(out.container("db").start_count("db"), 2);
    assert_eq!(out.unit_status, active("serving on 127.0.0.1:7171"));
}

#[test]
fn bad_settings_block() {
    let ctx = ctx();
    for (key, value, message) in [
        ("port", 0, "invalid port 0: must be between 1 and 65535"),
        (
            "backup-interval",
            -1,
            "invalid backup-interval -1: must be 0 or more",
        ),
    ] {
        let out = ctx
            .run(Event::ConfigChanged, State::new().with_config(key, value))
            .unwrap();
        assert_eq!(out.unit_status, WorkloadStatus::Blocked(message.into()));
        assert!(out.container("db").layers().is_empty());
    }
}

#[test]
fn pebble_ready_before_pebble_answers_is_deferred() {
    let out = ctx()
        .run(
            Event::pebble_ready("db"),
            State::new().with_container(Container::new("db").can_connect(false)),
        )
        .unwrap();
    assert_eq!(
        out.deferred,
        [HostEvent::PebbleReady {
            container: "db".into()
        }]
    );
}

#[test]
fn a_failing_health_check_shows_until_it_recovers() {
    let ctx = ctx();
    let out = ctx
        .run(Event::check_failed("db", "ready"), serving(&ctx))
        .unwrap();
    assert_eq!(
        out.unit_status,
        WorkloadStatus::Maintenance("the database does not answer its health check".into())
    );
    assert_eq!(
        out.container("db").check_status("ready"),
        Some(CheckStatus::Down)
    );
    let out = ctx.run(Event::check_recovered("db", "ready"), out).unwrap();
    assert_eq!(out.unit_status, active("serving on 127.0.0.1:7070"));
}

#[test]
fn a_scheduled_backup_notice_is_kept_and_shown_on_later_events() {
    let ctx = ctx();
    let state = serving(&ctx);
    let db = state.container("db").clone().notice(
        "example.com/db/backup",
        &[("path", "/tmp/cairn-db/backups/s1.sql"), ("bytes", "99")],
        3,
    );
    let out = ctx
        .run(
            Event::custom_notice("db", "example.com/db/backup"),
            state.with_container(db),
        )
        .unwrap();
    let shown =
        "serving on 127.0.0.1:7070; scheduled backup 3: /tmp/cairn-db/backups/s1.sql (99 bytes)";
    assert_eq!(out.unit_status, active(shown));
    let out = ctx.run(Event::UpgradeCharm, out).unwrap();
    assert_eq!(out.unit_status, active(shown), "stored state carried over");
}

#[test]
fn the_backup_action_reports_the_dump_and_fails_with_the_commands_error() {
    let ctx = ctx();
    let out = ctx
        .run(
            Event::action("backup", json!({"name": "nightly"})),
            serving(&ctx),
        )
        .unwrap();
    let report = out.action.clone().unwrap();
    assert_eq!(report.failed, None, "{report:?}");
    assert_eq!(report.results["path"], "/tmp/cairn-db/backups/nightly.sql");
    assert_eq!(report.results["size"], "27");
    assert_eq!(report.results["tables"], "1");
    assert_eq!(report.results["compressed"], "false");
    assert_eq!(report.results["sha256"].len(), 64);
    let dump = &out.container("db").exec_log()[0];
    assert_eq!(&dump.command[2..4], ["dump", "--db"]);

    let out = ctx
        .run(
            Event::action("backup", json!({"table": "nope"})),
            serving(&ctx),
        )
        .unwrap();
    assert_eq!(
        out.action.unwrap().failed.as_deref(),
        Some("dump failed (exit code 2): cannot dump /tmp/cairn-db/db.sqlite: no such table: nope")
    );

    let out = ctx
        .run(
            Event::action("backup", json!({"name": "../x"})),
            serving(&ctx),
        )
        .unwrap();
    assert_eq!(
        out.action.unwrap().failed.as_deref(),
        Some("invalid name \"../x\": must be a file name without directories")
    );

    let err = ctx
        .run(
            Event::action("backup", json!({"compress": "yes"})),
            serving(&ctx),
        )
        .unwrap_err();
    assert!(matches!(err, RunError::Action(_)), "{err:?}");
}

#[test]
fn a_dump_slower_than_the_event_deadline_fails_the_event_as_the_host_fails_it() {
    // Only the compiled component has a deadline: a dump that takes 300 ms under a 100 ms
    // deadline ends the event with the host's error (the native harness waits it out).
    let ctx = ctx().with_budget(Budget {
        deadline: Duration::from_millis(100),
        ..Budget::default()
    });
    let state = serving(&ctx);
    let slow = state
        .container("db")
        .clone()
        .exec_with(&["python3"], |args, c| {
            std::thread::sleep(Duration::from_millis(300));
            fake_dump(args, c)
        });
    let err = ctx
        .run(
            Event::action("backup", json!({})),
            state.with_container(slow),
        )
        .unwrap_err();
    let RunError::Failed { failure, .. } = err else {
        panic!("{err:?}");
    };
    // The event's deadline ends it; should the command's own wait (bounded by the same
    // deadline) be the first to see it, the charm gets that wait's timeout instead, and
    // fails with it, as on the host.
    match &failure {
        Failure::Deadline(d) => {
            assert_eq!(*d, Duration::from_millis(100));
            assert_eq!(failure.to_string(), "event deadline of 100ms exceeded");
        }
        Failure::Handler(m) => assert!(m.contains("the event's deadline passed"), "{m}"),
        other => panic!("{other:?}"),
    }
}
