//! The web charm's compiled component, run by Cairn's runtime against declared states
//! (`cairn-testing`): what ships is what is tested.

use cairn_testing::{CheckStatus, HostEvent, Relation, RelationKind, WorkloadStatus};
use cairn_testing::{Container, Context, Event, Failure, RunError, ServiceStatus, State};
use serde_json::json;

fn ctx() -> Context {
    Context::from_charm_dir(env!("CARGO_MANIFEST_DIR")).expect("the web charm builds and loads")
}

fn active(m: &str) -> WorkloadStatus {
    WorkloadStatus::Active(m.into())
}

/// The unit serving on the default port, as a first config-changed leaves it.
fn serving(ctx: &Context) -> State {
    ctx.run(Event::ConfigChanged, State::new()).unwrap()
}

#[test]
fn config_changed_writes_the_layer_and_replans_restarting_the_server_on_a_new_port() {
    let ctx = ctx();
    let out = ctx
        .run(Event::ConfigChanged, State::new().with_config("port", 9090))
        .unwrap();
    assert_eq!(out.unit_status, active("serving on port 9090"));
    let web = out.container("web");
    let layer = web.get_layer("web").expect("the web layer is added");
    assert_eq!(layer.summary, "web layer");
    let http = &web.plan().services["http"];
    assert_eq!(
        http.command,
        "python3 -m http.server 9090 --bind 127.0.0.1 --directory /tmp/cairn-web"
    );
    assert_eq!(http.environment["PORT"], "9090");
    assert!(web.is_running("http"));
    assert_eq!(web.start_count("http"), 1);
    assert!(web.is_dir("/tmp/cairn-web"));
    assert_eq!(out.load::<u16>("port"), Some(9090));

    // Same config again: the plan is unchanged, nothing restarts.
    let again = ctx.run(Event::ConfigChanged, out).unwrap();
    assert_eq!(again.container("web").start_count("http"), 1);
    // A new port changes the service: replan restarts it.
    let moved = ctx
        .run(Event::ConfigChanged, again.with_config("port", 9091))
        .unwrap();
    assert_eq!(moved.container("web").start_count("http"), 2);
    assert_eq!(moved.unit_status, active("serving on port 9091"));
}

#[test]
fn an_out_of_range_port_blocks_and_stops_the_server() {
    let ctx = ctx();
    let state = serving(&ctx);
    assert!(state.container("web").is_running("http"));
    let out = ctx
        .run(Event::ConfigChanged, state.with_config("port", 70000))
        .unwrap();
    assert_eq!(
        out.unit_status,
        WorkloadStatus::Blocked("invalid port 70000: must be between 1 and 65535".into())
    );
    assert_eq!(
        out.container("web").status_of("http"),
        ServiceStatus::Inactive
    );
    assert_eq!(out.load::<u16>("port"), None);
    assert!(
        out.log_messages()
            .iter()
            .any(|m| m.contains("invalid port 70000")),
        "{:?}",
        out.logs
    );
}

#[test]
fn a_setting_of_the_wrong_type_is_refused_as_the_host_refuses_it() {
    let err = ctx()
        .run(
            Event::ConfigChanged,
            State::new().with_config("port", "eighty"),
        )
        .unwrap_err();
    assert!(matches!(err, RunError::Config(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "option \"port\" expected int, got \"eighty\""
    );
}

#[test]
fn a_layer_the_host_refuses_fails_the_event_with_the_hosts_message() {
    let err = ctx()
        .run(
            Event::ConfigChanged,
            State::new().with_config("check-period", "soon"),
        )
        .unwrap_err();
    let RunError::Failed { event, failure, .. } = err else {
        panic!("{err:?}");
    };
    assert_eq!(event, "config-changed");
    assert_eq!(
        failure.to_string(),
        "cannot parse layer YAML: cannot parse layer \"web\" section \"checks\": invalid duration \"soon\""
    );
}

#[test]
fn pebble_ready_before_pebble_answers_is_deferred_then_delivered_first() {
    let ctx = ctx();
    let down = State::new().with_container(Container::new("web").can_connect(false));
    let out = ctx.run(Event::pebble_ready("web"), down).unwrap();
    assert_eq!(
        out.unit_status,
        WorkloadStatus::Waiting("waiting for Pebble in the web container".into())
    );
    assert_eq!(
        out.deferred,
        [cairn_runtime_event_pebble_ready("web")],
        "the event is kept to be delivered again"
    );
    assert!(out.container("web").layers().is_empty());

    // Pebble is up by the next event: the deferred pebble-ready goes first and serves.
    let web = out.container("web").clone().can_connect(true);
    let out = ctx
        .run(Event::UpdateStatus, out.with_container(web))
        .unwrap();
    assert!(out.deferred.is_empty());
    assert_eq!(out.unit_status, active("serving on port 8080"));
    assert!(out.container("web").is_running("http"));
}

fn cairn_runtime_event_pebble_ready(c: &str) -> HostEvent {
    HostEvent::PebbleReady {
        container: c.into(),
    }
}

#[test]
fn a_failing_check_puts_the_unit_in_maintenance_until_it_recovers() {
    let ctx = ctx();
    let out = ctx
        .run(Event::check_failed("web", "up"), serving(&ctx))
        .unwrap();
    assert_eq!(
        out.unit_status,
        WorkloadStatus::Maintenance("check \"up\" failing; the server does not answer".into())
    );
    assert_eq!(
        out.container("web").check_status("up"),
        Some(CheckStatus::Down)
    );
    assert!(
        out.log_messages()
            .iter()
            .any(|m| m.ends_with("check \"up\" failed 3 times")),
        "{:?}",
        out.logs
    );
    let out = ctx.run(Event::check_recovered("web", "up"), out).unwrap();
    assert_eq!(out.unit_status, active("serving on port 8080"));
    assert_eq!(
        out.container("web").check_status("up"),
        Some(CheckStatus::Up)
    );
}

#[test]
fn a_restart_notice_restarts_a_running_server_and_is_ignored_otherwise() {
    let ctx = ctx();
    let state = serving(&ctx);
    let web = state
        .container("web")
        .clone()
        .notice("example.com/web/restart", &[], 2);
    let out = ctx
        .run(
            Event::custom_notice("web", "example.com/web/restart"),
            state.with_container(web),
        )
        .unwrap();
    assert_eq!(out.container("web").start_count("http"), 2);
    assert!(out.container("web").is_running("http"));
    assert!(
        out.log_messages()
            .iter()
            .any(|m| m.ends_with("server restarted on request (2 requests so far)")),
        "{:?}",
        out.logs
    );

    // No server yet: nothing to restart, and the event succeeds.
    let idle = State::new().with_container(Container::new("web").notice(
        "example.com/web/restart",
        &[],
        1,
    ));
    let out = ctx
        .run(Event::custom_notice("web", "example.com/web/restart"), idle)
        .unwrap();
    assert_eq!(out.container("web").start_count("http"), 0);
}

#[test]
fn site_info_reports_the_site_and_fails_when_the_server_is_down() {
    let ctx = ctx();
    let state = serving(&ctx);
    let web = state
        .container("web")
        .clone()
        .file("/tmp/cairn-web/index.html", "<h1>hi</h1>")
        .file("/tmp/cairn-web/style.css", "");
    let out = ctx
        .run(
            Event::action("site-info", json!({})),
            state.with_container(web),
        )
        .unwrap();
    let report = out.action.expect("an action reports");
    assert_eq!(report.failed, None);
    assert_eq!(report.results["port"], "8080");
    assert_eq!(report.results["site-dir"], "/tmp/cairn-web");
    assert_eq!(report.results["files"], "index.html,style.css");

    // Blocked on a bad port, the server is down: the action fails, the event does not.
    let blocked = ctx
        .run(Event::ConfigChanged, serving(&ctx).with_config("port", 0))
        .unwrap();
    let out = ctx
        .run(Event::action("site-info", json!({})), blocked)
        .unwrap();
    let report = out.action.unwrap();
    assert_eq!(report.failed.as_deref(), Some("the server is not running"));
    assert!(report.results.is_empty());

    // Parameters the schema does not allow are refused before the charm runs, with the
    // host's message.
    let err = ctx
        .run(
            Event::action("site-info", json!({"verbose": true})),
            State::new(),
        )
        .unwrap_err();
    assert!(matches!(err, RunError::Action(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "invalid parameters for action \"site-info\": unknown parameter \"verbose\""
    );
}

#[test]
fn stored_state_is_carried_from_one_run_to_the_next() {
    let ctx = ctx();
    let first = ctx
        .run(Event::ConfigChanged, State::new().with_config("port", 8181))
        .unwrap();
    assert_eq!(first.load::<u16>("port"), Some(8181));
    let second = ctx.run(Event::UpgradeCharm, first).unwrap();
    assert!(
        second
            .log_messages()
            .iter()
            .any(|m| m.ends_with("upgraded while serving on port 8181")),
        "{:?}",
        second.logs
    );
    assert_eq!(second.load::<u16>("port"), Some(8181));
}

#[test]
fn a_site_too_big_for_the_memory_budget_fails_the_action_with_the_hosts_error() {
    // What only the compiled component shows: listing 20,000 files makes the guest grow
    // its linear memory past a 4 MiB budget, and the host stops it (the native harness
    // has no memory limit and would pass).
    let small = cairn_testing::Budget {
        memory: 4 << 20,
        ..Default::default()
    };
    let ctx = ctx().with_budget(small);
    let state = serving(&ctx);
    let mut web = state.container("web").clone();
    for i in 0..20_000 {
        web = web.file(&format!("/tmp/cairn-web/page-{i:05}.html"), "");
    }
    let err = ctx
        .run(
            Event::action("site-info", json!({})),
            state.with_container(web),
        )
        .unwrap_err();
    let RunError::Failed { failure, .. } = err else {
        panic!("{err:?}");
    };
    assert_eq!(failure, Failure::MemoryLimit(4 << 20));
    assert_eq!(failure.to_string(), "memory limit of 4 MiB exceeded");
}

#[test]
fn a_related_databases_url_reaches_the_server_and_goes_with_the_relation() {
    let ctx = ctx();
    let related = serving(&ctx).with_relation(
        Relation::new(3, "db", "db")
            .remote_unit("db/0", &[])
            .remote_app_data(&[("url", "http://127.0.0.1:7070")]),
    );
    let out = ctx
        .run(Event::relation(RelationKind::Changed, 3, None), related)
        .unwrap();
    let web = out.container("web");
    assert_eq!(
        web.plan().services["http"].environment["DB_URL"],
        "http://127.0.0.1:7070"
    );
    assert_eq!(
        web.read("/tmp/cairn-web/db.txt"),
        Some(&b"http://127.0.0.1:7070\n"[..])
    );
    assert_eq!(
        web.start_count("http"),
        2,
        "the new environment restarts it"
    );
    assert_eq!(out.relation(3).local_unit["site"], "http://127.0.0.1:8080/");
    assert_eq!(
        out.unit_status,
        active("serving on port 8080 with the database at http://127.0.0.1:7070")
    );

    let out = ctx
        .run(Event::relation(RelationKind::Broken, 3, None), out)
        .unwrap();
    let web = out.container("web");
    assert!(
        !web.plan().services["http"]
            .environment
            .contains_key("DB_URL")
    );
    assert_eq!(web.read("/tmp/cairn-web/db.txt"), None);
    assert_eq!(
        out.unit_status,
        active("serving on port 8080; database relation 3 removed")
    );
}

#[test]
fn a_check_period_under_the_apps_budget_is_refused_with_the_hosts_message() {
    // The app's budget applies to the layers a charm adds, as on the host: a 5 s check
    // under a budget whose shortest check period is 10 s fails the event.
    let ctx = ctx().with_budget(cairn_testing::Budget {
        check_period: std::time::Duration::from_secs(10),
        ..Default::default()
    });
    let err = ctx.run(Event::ConfigChanged, State::new()).unwrap_err();
    let RunError::Failed { failure, .. } = err else {
        panic!("{err:?}");
    };
    assert_eq!(
        failure.to_string(),
        "cannot add layer: check \"up\" has period 5s, shorter than the container's minimum of 10s"
    );
    // With a period the budget allows, the same charm serves.
    let out = ctx
        .run(
            Event::ConfigChanged,
            State::new().with_config("check-period", "30s"),
        )
        .unwrap();
    assert_eq!(out.unit_status, active("serving on port 8080"));
}
