//! The harness against the host's own rules: layers, service lanes, config, actions.

use super::*;
use crate::Context;
use crate::container::{ExecOptions, ServiceStatus};
use crate::event::{CheckLevel, RelationEvent};
use crate::layer::{Check, Layer, Override, Service};

#[derive(Default)]
struct Counter;

impl Charm for Counter {
    fn on_config_changed(&mut self, ctx: &mut Context) -> Result<()> {
        let n: u64 = ctx.state().load_or_default("n")?;
        ctx.state().save("n", &(n + 1))?;
        match ctx.config().get_str("mode").as_deref() {
            Some("defer") => ctx.defer(),
            Some("fail") => {
                ctx.set_unit_status(Status::maintenance("about to fail"));
                return Err(Error::msg("failing"));
            }
            _ => {}
        }
        ctx.set_unit_status(Status::active(format!("n={}", n + 1)));
        crate::info!("handled {}", n + 1);
        Ok(())
    }
}

/// Adds the layer named by the action's `label` parameter, with the YAML in `layer`, to
/// the `web` container; reports checks and notices it is told about.
#[derive(Default)]
struct Layered;

impl Charm for Layered {
    fn on_action(&mut self, ctx: &mut Context, action: ActionEvent) -> Result<()> {
        let label: String = action.param("label")?.unwrap_or_default();
        let layer: String = action.param("layer")?.unwrap_or_default();
        ctx.container("web")?.add_layer(&label, &layer, false)
    }

    fn on_pebble_check_failed(&mut self, ctx: &mut Context, event: CheckEvent) -> Result<()> {
        let i = &event.info;
        ctx.set_unit_status(Status::maintenance(format!(
            "{} {:?} {}/{}",
            i.name, i.status, i.failures, i.threshold
        )));
        Ok(())
    }

    fn on_pebble_check_recovered(&mut self, ctx: &mut Context, event: CheckEvent) -> Result<()> {
        let i = &event.info;
        ctx.set_unit_status(Status::active(format!("{} {:?}", i.name, i.status)));
        Ok(())
    }

    fn on_pebble_custom_notice(&mut self, ctx: &mut Context, event: NoticeEvent) -> Result<()> {
        let n = &event.notice;
        ctx.set_unit_status(Status::active(format!(
            "{} x{} {:?}",
            n.key, n.occurrences, n.last_data
        )));
        Ok(())
    }
}

const LAYERED_META: &str = "name: layered\ncontainers:\n  web: {}\nconfig:\n  options:\n    port:\n      type: int\n      default: 8080\n    debug:\n      type: boolean\nactions:\n  add:\n    params:\n      label:\n        type: string\n      layer:\n        type: string\n    required: [label]\n    additionalProperties: false\n";

const BASE: &str =
    "services:\n  web:\n    override: replace\n    command: python3 -m http.server\n";

/// What the host's supervisor answers when `layer` is added on top of [`BASE`].
fn host_refusal(layer: &str) -> String {
    let dir = std::env::temp_dir().join(format!("cairn-sdk-harness-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let message = runtime.block_on(async {
        let mut opts = cairn_supervisor::SupervisorOptions::new(&dir);
        opts.persist = false;
        let sup = cairn_supervisor::Supervisor::open(opts).unwrap();
        sup.add_layer("base", BASE.as_bytes(), false, false)
            .unwrap();
        let refused = sup.add_layer("bad", layer.as_bytes(), false, false);
        refused.expect_err("the host refuses the layer").to_string()
    });
    let _ = std::fs::remove_dir_all(&dir);
    message
}

/// What the harness answers when the charm adds `layer` on top of [`BASE`].
fn harness_refusal(layer: &str) -> Error {
    let mut h = Harness::<Layered>::from_charmcraft(LAYERED_META).unwrap();
    h.container_mut("web")
        .add_layer("base", BASE, false)
        .unwrap();
    let params = serde_json::json!({"label": "bad", "layer": layer}).to_string();
    h.run_action("add", &params).unwrap_err()
}

#[test]
fn layers_the_host_refuses_are_refused_with_its_message() {
    let cases = [
        (
            Layer::new().check("up", Check::http("")),
            r#"plan must set "url" for http check "up""#,
        ),
        (
            Layer::new().check("up", Check::exec("true").service_context("nope")),
            r#"plan check "up" service context specifies non-existent service "nope""#,
        ),
        (
            Layer::new().check("up", Check::tcp(80).period("0s")),
            r#"cannot parse layer YAML: plan check "up" period must not be zero"#,
        ),
    ];
    for (layer, message) in cases {
        let yaml = layer.to_yaml();
        let host = host_refusal(&yaml);
        assert_eq!(host, message, "the host's message for {yaml}");
        let err = harness_refusal(&yaml);
        let api = err
            .as_api()
            .unwrap_or_else(|| panic!("an API error: {err:?}"));
        assert_eq!((api.code, api.message.as_str()), (400, message), "{yaml}");
    }
}

#[test]
fn layers_are_refused_for_reserved_labels_and_missing_overrides_as_in_the_host() {
    for (label, yaml) in [
        ("pebble-x", "summary: s\n"),
        ("", "summary: s\n"),
        ("bad", "services:\n  b:\n    command: x\n"),
        (
            "bad",
            "services:\n  b:\n    override: sideways\n    command: x\n",
        ),
        ("bad", "services: ["),
        ("base", "summary: again\n"),
    ] {
        let mut c = TestContainer::default();
        c.add_layer("base", BASE, false).unwrap();
        let harness = c.add_layer(label, yaml, false).unwrap_err().to_string();
        let mut host = cairn_plan::Layers::default();
        host.add_yaml("base", BASE.as_bytes(), false, false)
            .unwrap();
        let want = host
            .add_yaml(label, yaml.as_bytes(), false, false)
            .unwrap_err()
            .to_string();
        assert_eq!(harness, want, "{label:?}: {yaml}");
    }
}

#[test]
fn failed_events_discard_state_and_status() {
    let mut h = Harness::<Counter>::new("c");
    assert_eq!(h.config_changed().unwrap(), Outcome::Handled);
    assert_eq!(h.load_state::<u64>("n"), Some(1));
    h.set_config("mode", "fail").unwrap();
    assert_eq!(h.config_changed().unwrap_err().chain_message(), "failing");
    assert_eq!(h.load_state::<u64>("n"), Some(1));
    assert_eq!(h.unit_status(), &Status::active("n=1"));
    assert_eq!(h.logs(), &[(LogLevel::Info, "handled 1".to_string())]);
    assert_eq!(h.history()[1].1, Err("failing".to_string()));
}

#[test]
fn deferred_events_come_back_first() {
    let mut h = Harness::<Counter>::new("c").with_config("mode", "defer");
    assert_eq!(h.config_changed().unwrap(), Outcome::Deferred);
    assert_eq!(h.deferred().len(), 1);
    h.set_config("mode", "ok").unwrap();
    assert_eq!(h.update_status().unwrap(), Outcome::Handled);
    assert!(h.deferred().is_empty());
    let names: Vec<&str> = h.history().iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["config-changed", "config-changed", "update-status"]);
    assert_eq!(h.load_state::<u64>("n"), Some(2));
}

#[test]
fn a_failing_deferred_event_is_reported_with_its_name() {
    let mut h = Harness::<Counter>::new("c").with_config("mode", "defer");
    h.config_changed().unwrap();
    h.set_config("mode", "fail").unwrap();
    let err = h.update_status().unwrap_err();
    assert_eq!(err.chain_message(), "deferred config-changed: failing");
    assert_eq!(h.deferred().len(), 1);
}

#[test]
fn containers_combine_layers_and_track_services() {
    let mut c = TestContainer::default();
    let base = Layer::new().service("a", Service::new().command("a --x").enabled().env("K", "1"));
    c.add_layer("base", &base.to_yaml(), false).unwrap();
    assert!(c.add_layer("base", &base.to_yaml(), false).is_err());
    c.autostart().unwrap();
    assert!(c.is_running("a"));
    let more = Layer::new().service(
        "a",
        Service::new()
            .with_override(Override::Merge)
            .env("L", "2")
            .after("b"),
    );
    c.add_layer("base", &more.to_yaml(), true).unwrap();
    let plan = c.plan();
    assert_eq!(plan.services["a"].environment.len(), 2);
    assert_eq!(plan.services["a"].command.as_deref(), Some("a --x"));
    assert_eq!(
        c.layers().len(),
        1,
        "combined into the layer of the same label"
    );
    assert_eq!(c.layer("base").unwrap().services["a"].environment.len(), 2);
    c.replan().unwrap();
    assert_eq!(c.start_count("a"), 2, "changed service restarted on replan");
    c.replan().unwrap();
    assert_eq!(c.start_count("a"), 2, "unchanged service left alone");
    let err = c.add_layer("x", "services:\n  b:\n    override: replace\n", false);
    assert_eq!(
        err.unwrap_err().to_string(),
        r#"plan must define "command" for service "b""#
    );
    c.stop(&["a".into()]).unwrap();
    assert_eq!(c.services(&[])[0].current, ServiceStatus::Inactive);
    assert_eq!(
        c.start(&["nope".into()]).unwrap_err().to_string(),
        r#"cannot start services: service "nope" does not exist"#
    );
    assert_eq!(
        c.start(&[]).unwrap_err().to_string(),
        "must specify services for start action"
    );
}

#[test]
fn starting_a_service_starts_what_it_requires_and_stopping_stops_its_dependents() {
    let mut c = TestContainer::default();
    let layer = Layer::new()
        .service("db", Service::new().command("db"))
        .service(
            "web",
            Service::new().command("web").enabled().requires("db"),
        )
        .service("idle", Service::new().command("idle"));
    c.add_layer("base", &layer.to_yaml(), false).unwrap();
    c.replan().unwrap();
    assert!(
        c.is_running("web") && c.is_running("db"),
        "replan pulls in requires"
    );
    assert!(!c.is_running("idle"));
    c.stop(&["db".into()]).unwrap();
    assert!(
        !c.is_running("web"),
        "a service requiring a stopped one stops"
    );
    c.start(&["web".into()]).unwrap();
    assert!(c.is_running("db"));
    c.restart(&["web".into()]).unwrap();
    assert_eq!((c.start_count("web"), c.start_count("db")), (3, 2));

    let mut empty = TestContainer::default();
    let err = empty.autostart().unwrap_err();
    let api = err.as_api().unwrap();
    assert_eq!(
        (api.kind.as_str(), api.message.as_str()),
        ("no-default-services", "no default services")
    );
}

#[test]
fn from_charmcraft_reads_containers_and_defaults() {
    let h = Harness::<Counter>::from_charmcraft(
        "name: web\ncontainers:\n  web:\n    resource: web-image\nconfig:\n  options:\n    \
         port:\n      type: int\n      default: 8080\n    debug:\n      type: boolean\n",
    )
    .unwrap();
    assert_eq!(h.config()["port"], ConfigValue::Int(8080));
    assert!(!h.config().contains_key("debug"));
    assert!(h.container("web").can_connect());
    let err = Harness::<Counter>::from_charmcraft(
        "name: x\nconfig:\n  options:\n    port:\n      type: integer\n",
    )
    .err()
    .unwrap();
    assert_eq!(
        err.to_string(),
        "config option \"port\" has unknown type \"integer\""
    );
}

#[test]
fn config_the_metadata_does_not_declare_or_types_otherwise_is_refused_as_in_the_host() {
    let mut h = Harness::<Counter>::from_charmcraft(LAYERED_META).unwrap();
    let meta = cairn_charm::CharmMeta::parse(LAYERED_META).unwrap();
    let host = |key: &str, text: &str| meta.parse_setting(key, text).unwrap_err().to_string();

    let err = h.set_config("prot", 9090).unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    assert_eq!(err.to_string(), host("prot", "9090"));
    assert_eq!(err.to_string(), "unknown option \"prot\"");
    let err = h.update_config("port", "high").unwrap_err();
    assert_eq!(err.to_string(), host("port", "high"));
    assert_eq!(
        err.to_string(),
        "option \"port\" expected int, got \"high\""
    );
    let err = h.set_config("debug", 1).unwrap_err();
    assert_eq!(
        err.to_string(),
        "option \"debug\" expected boolean, got \"1\""
    );
    assert!(h.history().is_empty(), "a refused setting delivers nothing");

    // Values read as an operator's text would.
    h.set_config("port", "9090").unwrap();
    assert_eq!(h.config()["port"], ConfigValue::Int(9090));
    h.set_config("debug", true).unwrap();
    assert_eq!(h.config()["debug"], ConfigValue::Bool(true));
    // Unset goes back to the default, as a reset in the host.
    h.unset_config("port").unwrap();
    assert_eq!(h.config()["port"], ConfigValue::Int(8080));
    h.unset_config("debug").unwrap();
    assert!(!h.config().contains_key("debug"));
    assert_eq!(
        h.unset_config("prot").unwrap_err().to_string(),
        "unknown option \"prot\""
    );
}

#[test]
fn a_misspelt_action_parameter_fails_as_in_the_host() {
    let mut h = Harness::<Layered>::from_charmcraft(LAYERED_META).unwrap();
    let meta = cairn_charm::CharmMeta::parse(LAYERED_META).unwrap();
    let host = meta
        .validate_params("add", &[("lable".into(), "x".into())])
        .unwrap_err()
        .to_string();
    assert_eq!(
        host,
        "invalid parameters for action \"add\": unknown parameter \"lable\""
    );
    let err = h.run_action("add", r#"{"lable": "x"}"#).unwrap_err();
    assert!(matches!(err, Error::Model(_)), "{err:?}");
    assert_eq!(err.to_string(), host);
    assert_eq!(
        h.run_action("ad", "{}").unwrap_err().to_string(),
        "action \"ad\" not defined by charm \"layered\" (it has: add)"
    );
    assert_eq!(
        h.run_action("add", "{}").unwrap_err().to_string(),
        "invalid parameters for action \"add\": missing required parameter \"label\""
    );
    assert!(
        h.history().is_empty(),
        "refused actions never reach the charm"
    );
}

#[test]
fn check_and_notice_helpers_deliver_what_the_host_would() {
    let mut h = Harness::<Layered>::from_charmcraft(LAYERED_META).unwrap();
    let layer = Layer::new()
        .service("web", Service::new().command("web").enabled())
        .check("up", Check::tcp(8080).threshold(2).level(CheckLevel::Ready));
    h.container_mut("web")
        .add_layer("base", &layer.to_yaml(), false)
        .unwrap();

    h.check_failed("web", "up").unwrap();
    assert_eq!(h.unit_status(), &Status::maintenance("up Down 2/2"));
    let info = &h.container("web").check_infos(None, &[])[0];
    assert_eq!((info.status, info.failures), (CheckStatus::Down, 2));
    h.check_recovered("web", "up").unwrap();
    assert_eq!(h.unit_status(), &Status::active("up Up"));

    h.custom_notice("web", "example.com/done", &[("n", "1")])
        .unwrap();
    h.custom_notice("web", "example.com/done", &[("n", "2")])
        .unwrap();
    assert_eq!(
        h.unit_status(),
        &Status::active("example.com/done x2 {\"n\": \"2\"}")
    );
    let names: Vec<&str> = h.history().iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "web-pebble-check-failed",
            "web-pebble-check-recovered",
            "web-pebble-custom-notice",
            "web-pebble-custom-notice"
        ]
    );
}

#[test]
fn exec_output_keeps_stderr_apart_unless_combined() {
    let mut c = TestContainer::default();
    c.handle_exec(&["sh"], 0, "out\n", "err\n");
    let handler = c.fake_exec(&["sh".into()]).unwrap();
    let mut args = ExecArgs {
        command: vec!["sh".into()],
        ..ExecArgs::default()
    };
    let out = handler.run(&args, &mut c);
    assert_eq!(
        (out.stdout.as_slice(), out.stderr.as_slice()),
        (&b"out\n"[..], &b"err\n"[..])
    );
    args.options = ExecOptions {
        combine_stderr: true,
        ..ExecOptions::default()
    };
    let out = handler.run(&args, &mut c);
    assert_eq!(
        (out.stdout.as_slice(), out.stderr.as_slice()),
        (&b"out\nerr\n"[..], &b""[..])
    );
}

#[test]
fn list_files_reads_patterns_as_the_host_does() {
    let mut c = TestContainer::default();
    for name in ["a.conf", "b.conf", "!x", "c.txt"] {
        c.put_file(&format!("/etc/{name}"), "x");
    }
    let names = |c: &TestContainer, p: &str| -> Vec<String> {
        c.fs_list("/etc", Some(p), false)
            .unwrap()
            .into_iter()
            .map(|i| i.name)
            .collect()
    };
    assert_eq!(names(&c, "*.conf"), ["a.conf", "b.conf"]);
    assert_eq!(names(&c, "[^a]*"), ["!x", "b.conf", "c.txt"]);
    assert_eq!(
        names(&c, "[!a]*"),
        ["!x", "a.conf"],
        "`!` is no negation in Go"
    );
    let err = c.fs_list("/etc", Some("[a-"), false).unwrap_err();
    assert_eq!(err.to_string(), "syntax error in pattern");
}

/// Publishes its address in its unit bag and, as leader, in its app's bag; records the
/// remote app's `host` in its status and what departed or broke.
#[derive(Default)]
struct Related;

impl Charm for Related {
    fn on_relation_created(&mut self, ctx: &mut Context, event: RelationEvent) -> Result<()> {
        let rel = event.relation()?;
        rel.set(
            "address",
            format!("{}.local", ctx.unit_name().replace('/', "-")),
        )?;
        if ctx.is_leader() {
            rel.set_app("leader", ctx.unit_name())?;
            // ops' `relation.data[self.app]`, `relation.data[self.unit]`.
            assert_eq!(rel.data(ctx.app())?.len(), 1);
            let address = rel.read(ctx.unit(), "address")?;
            assert_eq!(address, rel.unit_data()?.remove("address"));
        }
        Ok(())
    }

    fn on_relation_changed(&mut self, ctx: &mut Context, event: RelationEvent) -> Result<()> {
        let rel = ctx
            .relation(&event.endpoint)?
            .ok_or(Error::msg("no relation"))?;
        let host = rel.remote_app_data()?.remove("host").unwrap_or_default();
        if host == "bad" {
            rel.set("address", "")?;
            return Err(Error::msg("bad host"));
        }
        let units = rel.units.join(",");
        ctx.set_unit_status(Status::active(format!("host={host} units={units}")));
        Ok(())
    }

    fn on_relation_joined(&mut self, _ctx: &mut Context, event: RelationEvent) -> Result<()> {
        // Whoever runs it: only the leader may.
        let rel = event.relation()?;
        rel.set("joined", event.unit.clone().unwrap_or_default())?;
        rel.set_app("joined", event.unit.unwrap_or_default())
    }

    fn on_relation_departed(&mut self, ctx: &mut Context, event: RelationEvent) -> Result<()> {
        let gone = event.departing_unit.unwrap_or_default();
        ctx.set_unit_status(Status::waiting(format!("{gone} departed")));
        Ok(())
    }

    fn on_relation_broken(&mut self, ctx: &mut Context, event: RelationEvent) -> Result<()> {
        ctx.set_unit_status(Status::blocked(format!("{} broken", event.endpoint)));
        Ok(())
    }
}

const RELATED_YAML: &str =
    "name: web\nrequires:\n  db:\n    interface: pgsql\npeers:\n  cluster: web-peers\n";

#[test]
fn a_relation_is_made_joined_changed_departed_and_broken_with_the_charms_writes_kept() {
    let mut h = Harness::<Related>::from_charmcraft(RELATED_YAML)
        .unwrap()
        .with_leader(true)
        .with_unit_number(2);
    let id = h.add_relation("db", "pg").unwrap();
    let rel = h.relation(id).unwrap();
    assert_eq!(rel.interface, "pgsql");
    assert_eq!(rel.local_unit["address"], "web-2.local");
    assert_eq!(rel.local_app["leader"], "web/2");

    h.add_relation_unit(id, "pg/0", &[("port", "5432")])
        .unwrap();
    h.update_relation_data(id, "pg", &[("host", "10.0.0.9")])
        .unwrap();
    assert_eq!(h.unit_status(), &Status::active("host=10.0.0.9 units=pg/0"));

    h.remove_relation_unit(id, "pg/0").unwrap();
    assert_eq!(h.unit_status(), &Status::waiting("pg/0 departed"));
    h.remove_relation(id).unwrap();
    assert_eq!(h.unit_status(), &Status::blocked("db broken"));
    assert!(h.relation(id).is_none());
    let names: Vec<_> = h.history().iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "db-relation-created",
            "db-relation-joined",
            "db-relation-changed",
            "db-relation-changed",
            "db-relation-departed",
            "db-relation-broken"
        ]
    );
}

#[test]
fn a_follower_writes_its_unit_bag_but_not_its_apps() {
    let mut h = Harness::<Related>::from_charmcraft(RELATED_YAML).unwrap();
    let id = h.add_relation("db", "pg").unwrap();
    assert_eq!(h.relation(id).unwrap().local_unit["address"], "web-0.local");
    assert!(h.relation(id).unwrap().local_app.is_empty());
    let err = h.add_relation_unit(id, "pg/0", &[]).unwrap_err();
    assert_eq!(err.chain_message(), "cannot write relation settings");
    // The failed event kept nothing, as the host keeps nothing of it.
    assert!(!h.relation(id).unwrap().local_unit.contains_key("joined"));
    h.set_leader(true);
    let joined = Event::RelationJoined(RelationEvent {
        relation_id: id,
        endpoint: "db".into(),
        app: "pg".into(),
        unit: Some("pg/0".into()),
        departing_unit: None,
    });
    h.run(joined).unwrap();
    let rel = h.relation(id).unwrap();
    assert_eq!(
        (
            rel.local_unit["joined"].as_str(),
            rel.local_app["joined"].as_str()
        ),
        ("pg/0", "pg/0")
    );
}

#[test]
fn a_failed_relation_event_keeps_no_bag_write() {
    let mut h = Harness::<Related>::from_charmcraft(RELATED_YAML)
        .unwrap()
        .with_leader(true);
    let id = h.add_relation("db", "pg").unwrap();
    let err = h
        .update_relation_data(id, "pg", &[("host", "bad")])
        .unwrap_err();
    assert_eq!(err.chain_message(), "bad host");
    assert_eq!(h.relation(id).unwrap().local_unit["address"], "web-0.local");
}

#[test]
fn relations_need_a_declared_endpoint_and_peers_relate_to_their_own_app() {
    let mut h = Harness::<Related>::from_charmcraft(RELATED_YAML)
        .unwrap()
        .with_leader(true);
    let err = h.add_relation("website", "x").unwrap_err();
    assert_eq!(err.to_string(), "charm \"web\" has no endpoint \"website\"");
    let id = h.add_relation("cluster", "web").unwrap();
    assert_eq!(h.relation(id).unwrap().interface, "web-peers");
    h.add_relation_unit(id, "web/1", &[]).unwrap();
    // A peer reads its app's bag as leader (its own write of created is there).
    assert_eq!(h.relation(id).unwrap().local_app["leader"], "web/0");
}
