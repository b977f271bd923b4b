//! The pause charm's compiled component, run by Cairn's runtime against declared states
//! (`cairn-testing`).

use cairn_testing::{Container, Context, Event, HostEvent, State, WorkloadStatus};
use serde_json::json;

fn ctx() -> Context {
    Context::from_charm_dir(env!("CARGO_MANIFEST_DIR")).expect("the pause charm builds and loads")
}

fn message(state: &State) -> &str {
    &state.container("pause").plan().services["pause"].environment["PAUSE_MESSAGE"]
}

#[test]
fn config_changed_writes_the_layer_and_a_new_message_restarts_the_service() {
    let ctx = ctx();
    let out = ctx.run(Event::ConfigChanged, State::new()).unwrap();
    assert_eq!(out.unit_status, WorkloadStatus::Active(String::new()));
    assert_eq!(message(&out), "hello from cairn");
    assert!(out.container("pause").is_running("pause"));
    let out = ctx
        .run(Event::ConfigChanged, out.with_config("message", "second"))
        .unwrap();
    assert_eq!(message(&out), "second");
    assert_eq!(out.container("pause").start_count("pause"), 2);
}

#[test]
fn a_message_of_several_lines_blocks() {
    let out = ctx()
        .run(
            Event::ConfigChanged,
            State::new().with_config("message", "one\ntwo"),
        )
        .unwrap();
    assert_eq!(
        out.unit_status,
        WorkloadStatus::Blocked("invalid message: must be one line".into())
    );
    assert!(out.container("pause").layers().is_empty());
}

#[test]
fn pebble_ready_before_pebble_answers_is_deferred() {
    let out = ctx()
        .run(
            Event::pebble_ready("pause"),
            State::new().with_container(Container::new("pause").can_connect(false)),
        )
        .unwrap();
    assert_eq!(
        out.deferred,
        [HostEvent::PebbleReady {
            container: "pause".into()
        }]
    );
}

#[test]
fn a_failing_check_an_operator_added_shows_until_it_recovers() {
    let ctx = ctx();
    let state = ctx.run(Event::ConfigChanged, State::new()).unwrap();
    let ops_layer = "checks:\n  disk:\n    override: replace\n    exec:\n      command: df /\n";
    let c = state.container("pause").clone().layer("ops", ops_layer);
    let out = ctx
        .run(
            Event::check_failed("pause", "disk"),
            state.with_container(c),
        )
        .unwrap();
    assert_eq!(
        out.unit_status,
        WorkloadStatus::Maintenance("check \"disk\" failing".into())
    );
    let out = ctx
        .run(Event::check_recovered("pause", "disk"), out)
        .unwrap();
    assert_eq!(out.unit_status, WorkloadStatus::Active(String::new()));
}

#[test]
fn a_say_notice_changes_the_message_and_is_remembered_until_the_config_changes() {
    let ctx = ctx();
    let state = ctx.run(Event::ConfigChanged, State::new()).unwrap();
    let c = state.container("pause").clone().notice(
        "example.com/pause/say",
        &[("message", "hi there")],
        1,
    );
    let out = ctx
        .run(
            Event::custom_notice("pause", "example.com/pause/say"),
            state.with_container(c),
        )
        .unwrap();
    assert_eq!(message(&out), "hi there");
    assert_eq!(
        out.unit_status,
        WorkloadStatus::Active("saying \"hi there\"".into())
    );
    assert_eq!(out.load::<String>("said").as_deref(), Some("hi there"));

    // Stored state carries it to the next run: pebble-ready says it still.
    let out = ctx.run(Event::pebble_ready("pause"), out).unwrap();
    assert_eq!(message(&out), "hi there");
    // A config change goes back to the config's message.
    let out = ctx.run(Event::ConfigChanged, out).unwrap();
    assert_eq!(message(&out), "hello from cairn");
    assert_eq!(out.load::<String>("said"), None);
}

#[test]
fn show_message_reports_the_message_and_fails_when_the_service_is_down() {
    let ctx = ctx();
    let state = ctx.run(Event::ConfigChanged, State::new()).unwrap();
    let out = ctx
        .run(Event::action("show-message", json!({})), state)
        .unwrap();
    let report = out.action.unwrap();
    assert_eq!(report.results["message"], "hello from cairn");
    assert_eq!(report.results["source"], "config");

    let out = ctx
        .run(Event::action("show-message", json!({})), State::new())
        .unwrap();
    assert_eq!(
        out.action.unwrap().failed.as_deref(),
        Some("the pause service is not running")
    );
}
