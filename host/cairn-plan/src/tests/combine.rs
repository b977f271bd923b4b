//! Combining layers and validating the combined plan: one case per merge rule and per
//! combined-plan error (from Pebble's `planTests`, `TestMissingOverride`, ...).

use std::time::Duration;

use super::yaml;
use crate::*;

/// Parses each text as layer "layer-N" (order N).
fn layers(texts: &[&str]) -> Vec<Layer> {
    texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            parse_layer(i as u32, &format!("layer-{i}"), yaml(t).as_bytes())
                .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect()
}

fn check_plan_error(texts: &[&str], expected: &str) {
    let err = Plan::from_layers(&layers(texts)).unwrap_err();
    assert_eq!(err.to_string(), expected);
    assert!(err.is_client_error());
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn service_merge_and_replace() {
    let combined = combine_layers(&layers(&[
        r#"
        summary: Simple layer
        description: A simple layer.
        services:
            srv1:
                override: replace
                summary: Service summary
                command: cmd arg1 "arg2 arg3"
                kill-delay: 10s
                startup: enabled
                after: [srv2]
                before: [srv3]
                requires: [srv2, srv3]
                environment:
                    var1: val1
                    var0: val0
                backoff-delay: 1s
                backoff-factor: 1.5
                backoff-limit: 10s
                working-dir: /workdir/srv1
            srv2:
                override: replace
                startup: enabled
                command: cmd
                before: [srv3]
                working-dir: /workdir/srv2
            srv6:
                override: replace
                command: cmd6a
                user: alice
        "#,
        "
        summary: Simple override layer.
        services:
            srv1:
                override: merge
                environment:
                    var1: changed
                    var3: val3
                after: [srv4, srv2]
                before: [srv5]
                working-dir: /workdir/srv1/override
            srv2:
                override: replace
                startup: disabled
                command: cmd
                summary: Replaced service
            srv6:
                override: merge
                command: cmd6b
                group-id: 7
                on-check-failure:
                    chk1: restart
        ",
    ]))
    .unwrap();
    // Summary and description come from the last layer, even when empty.
    assert_eq!(
        (combined.summary.as_str(), combined.description.as_str()),
        ("Simple override layer.", "")
    );

    let srv1 = &combined.services["srv1"];
    assert_eq!(
        srv1.override_,
        Override::Replace,
        "merge keeps the earlier override"
    );
    assert_eq!(
        srv1.summary, "Service summary",
        "unset fields keep their value"
    );
    assert_eq!(srv1.command, r#"cmd arg1 "arg2 arg3""#);
    assert_eq!(
        srv1.after,
        strings(&["srv2", "srv4", "srv2"]),
        "lists append without dedup"
    );
    assert_eq!(srv1.before, strings(&["srv3", "srv5"]));
    assert_eq!(srv1.requires, strings(&["srv2", "srv3"]));
    let env: Vec<(&str, &str)> = srv1
        .environment
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        env,
        [("var0", "val0"), ("var1", "changed"), ("var3", "val3")],
        "maps merge key-wise"
    );
    assert_eq!(
        srv1.working_dir, "/workdir/srv1/override",
        "set scalars override"
    );
    assert_eq!(srv1.kill_delay, Some(Duration::from_secs(10)));
    assert_eq!(
        srv1.backoff_factor,
        Some(1.5),
        "optional values only change when set"
    );

    let srv2 = &combined.services["srv2"];
    assert_eq!(srv2.startup, ServiceStartup::Disabled);
    assert_eq!(srv2.working_dir, "", "replace drops every earlier field");
    assert!(srv2.before.is_empty());

    let srv6 = &combined.services["srv6"];
    assert_eq!(
        (srv6.command.as_str(), srv6.user.as_str(), srv6.group_id),
        ("cmd6b", "alice", Some(7))
    );
    assert_eq!(srv6.on_check_failure["chk1"], ServiceAction::Restart);
    assert_eq!(
        srv6.backoff_delay, None,
        "defaults are not written into the plan"
    );
    assert_eq!(srv6.effective_backoff_delay(), Duration::from_millis(500));
    assert_eq!(srv6.effective_backoff_factor(), 2.0);
    assert_eq!(srv6.effective_backoff_limit(), Duration::from_secs(30));
    assert_eq!(srv6.effective_kill_delay(), Duration::from_secs(5));
}

#[test]
fn required_field_two_layers_deep() {
    let plan = Plan::from_layers(&layers(&[
        "
        services:
            srv1:
                override: replace
                command: sleep 1000
        ",
        "
        services:
            srv1:
                override: merge
                environment:
                    VAR1: foo
        ",
        "
        services:
            srv1:
                override: merge
                environment:
                    VAR2: bar
        ",
    ]))
    .unwrap();
    let srv1 = &plan.services["srv1"];
    assert_eq!(srv1.command, "sleep 1000");
    assert_eq!(srv1.environment.len(), 2);
}

#[test]
fn check_merge_replace_and_defaults() {
    let plan = Plan::from_layers(&layers(&[
        "
        checks:
            chk-http:
                override: merge
                period: 1s
            chk-tcp:
                override: merge
                timeout: 300ms
                tcp:
                    host: foobar
            chk-exec:
                override: merge
                threshold: 5
                exec:
                    working-dir: /root
            chk-replaced:
                override: replace
                period: 20s
                http:
                    url: https://example.com/foo
        ",
        "
        checks:
            chk-http:
                override: merge
                http:
                    url: https://example.com/bar
                    headers:
                        Foo: bar
            chk-tcp:
                override: merge
                tcp:
                    port: 80
            chk-exec:
                override: merge
                timeout: 7s
                exec:
                    command: sleep 2
                    environment:
                        FOO: bar
            chk-replaced:
                override: replace
                tcp:
                    port: 8888
        ",
    ]))
    .unwrap();
    let http = &plan.checks["chk-http"];
    assert_eq!(http.period, Some(Duration::from_secs(1)));
    assert_eq!(http.timeout, None, "an unset timeout stays unset");
    assert_eq!(
        http.effective_timeout(),
        Duration::from_secs(1),
        "but is capped to the period"
    );
    assert_eq!(
        http.threshold,
        Some(3),
        "threshold defaults to 3 in the combined plan"
    );
    assert_eq!(http.http.as_ref().unwrap().headers["Foo"], "bar");
    let tcp = plan.checks["chk-tcp"].tcp.clone().unwrap();
    assert_eq!(
        (tcp.port, tcp.host.as_str()),
        (80, "foobar"),
        "sub-objects merge field-wise"
    );
    let exec = &plan.checks["chk-exec"];
    assert_eq!(
        (exec.threshold, exec.timeout),
        (Some(5), Some(Duration::from_secs(7)))
    );
    assert_eq!(exec.effective_period(), Duration::from_secs(10));
    let e = exec.exec.as_ref().unwrap();
    assert_eq!(
        (e.command.as_str(), e.working_dir.as_str()),
        ("sleep 2", "/root")
    );
    let replaced = &plan.checks["chk-replaced"];
    assert!(replaced.http.is_none() && replaced.period.is_none());
    assert_eq!(replaced.tcp.as_ref().unwrap().port, 8888);
}

#[test]
fn timeout_longer_than_period_is_capped() {
    let plan = Plan::from_layers(&layers(&["
        checks:
            chk1:
                override: replace
                period: 100ms
                timeout: 2s
                tcp:
                    host: foobar
                    port: 80
        "]))
    .unwrap();
    assert_eq!(
        plan.checks["chk1"].timeout,
        Some(Duration::from_millis(100))
    );
}

#[test]
fn merging_two_check_types_is_an_error() {
    check_plan_error(
        &[
            "
            checks:
                chk1:
                    override: merge
                    tcp:
                        port: 80
            ",
            "
            checks:
                chk1:
                    override: merge
                    http:
                        url: http://localhost/
            ",
        ],
        r#"plan must specify one of "http", "tcp", or "exec" for check "chk1""#,
    );
}

#[test]
fn log_target_merge() {
    let plan = Plan::from_layers(&layers(&[
        "
        services:
            svc1:
                command: foo
                override: merge
            svc2:
                command: bar
                override: merge
        log-targets:
            tgt1:
                type: loki
                location: http://10.1.77.196:3100/loki/api/v1/push
                services: [all]
                override: merge
                labels:
                    label1: foo11
                    label2: foo12
            tgt2:
                type: loki
                location: http://10.1.77.206:3100/loki/api/v1/push
                services: [all]
                override: merge
                labels:
                    label1: foo21
        ",
        "
        log-targets:
            tgt1:
                services: [-all, svc1]
                override: merge
                labels:
                    label2: bar12
                    label3: bar13
            tgt2:
                type: syslog
                location: udp://0.0.0.0:514
                services: [-svc1]
                override: replace
        ",
    ]))
    .unwrap();
    let tgt1 = &plan.log_targets["tgt1"];
    assert_eq!(tgt1.services, strings(&["all", "-all", "svc1"]));
    assert_eq!(tgt1.location, "http://10.1.77.196:3100/loki/api/v1/push");
    let labels: Vec<(&str, &str)> = tgt1
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        labels,
        [
            ("label1", "foo11"),
            ("label2", "bar12"),
            ("label3", "bar13")
        ]
    );
    let tgt2 = &plan.log_targets["tgt2"];
    assert_eq!(
        (tgt2.type_, tgt2.services.clone()),
        (LogTargetType::Syslog, strings(&["-svc1"]))
    );
    assert!(tgt2.labels.is_empty());
    assert!(plan.services["svc1"].logs_to(tgt1));
    assert!(!plan.services["svc2"].logs_to(tgt1));
    assert!(!plan.services["svc1"].logs_to(tgt2));
}

#[test]
fn logs_to_last_match_wins() {
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, bool)]);
    let cases: &[Case] = &[
        (&[], &[("svc1", false)]),
        (&["all"], &[("svc1", true), ("svc2", true)]),
        (&["svc1"], &[("svc1", true), ("svc2", false)]),
        (&["all", "-svc2"], &[("svc1", true), ("svc2", false)]),
        (
            &["svc1", "svc2", "-svc1", "all"],
            &[("svc1", true), ("svc3", true)],
        ),
        (
            &["svc1", "svc2", "-all"],
            &[("svc1", false), ("svc2", false)],
        ),
        (
            &["svc1", "svc2", "-all", "svc3", "svc1", "-svc3"],
            &[("svc1", true), ("svc2", false), ("svc3", false)],
        ),
    ];
    for (services, expectations) in cases {
        let target = LogTarget {
            services: strings(services),
            ..LogTarget::default()
        };
        for (name, expected) in *expectations {
            let service = Service {
                name: name.to_string(),
                ..Service::default()
            };
            assert_eq!(
                service.logs_to(&target),
                *expected,
                "{name} against {services:?}"
            );
        }
    }
}

#[test]
fn workload_merge_and_validation() {
    let plan = Plan::from_layers(&layers(&[
        "
        workloads:
            w1:
                override: replace
                user: alice
                environment:
                    A: a
        services:
            svc:
                override: replace
                command: run
                workload: w1
        ",
        "
        workloads:
            w1:
                override: merge
                environment:
                    B: b
        ",
    ]))
    .unwrap();
    let w1 = &plan.workloads["w1"];
    assert_eq!((w1.user.as_str(), w1.environment.len()), ("alice", 2));

    check_plan_error(
        &["
        services:
            svc:
                override: replace
                command: run
                workload: missing
        "],
        r#"workload "missing": not defined for service "svc""#,
    );
    let with_workload = "
        workloads:
            w1:
                override: replace
        ";
    check_plan_error(
        &[
            with_workload,
            "services:\n    svc:\n        override: replace\n        command: run\n        workload: w1\n        user: bob\n",
        ],
        r#"plan service "svc" cannot have user information and a workload at the same time"#,
    );
    check_plan_error(
        &[
            with_workload,
            "services:\n    svc:\n        override: replace\n        command: run\n        workload: w1\n        group-id: 3\n",
        ],
        r#"plan service "svc" cannot have group information and a workload at the same time"#,
    );
    check_plan_error(
        &["workloads:\n    w1:\n        user: bob\n"],
        r#"workload "w1": must define an "override" policy"#,
    );
}

#[test]
fn missing_override() {
    for (text, kind, name) in [
        (
            "services:\n    srv1:\n        command: cmd\n",
            "service",
            "srv1",
        ),
        (
            "checks:\n    chk1:\n        tcp:\n            port: 80\n",
            "check",
            "chk1",
        ),
        (
            "log-targets:\n    tgt1:\n        type: loki\n",
            "log target",
            "tgt1",
        ),
    ] {
        let l1 = parse_layer(1, "label1", b"{}").unwrap();
        let l2 = parse_layer(2, "label2", text.as_bytes()).unwrap();
        let err = combine_layers(&[l1, l2]).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(r#"layer "label2" must define "override" for {kind} "{name}""#)
        );
    }
}

#[test]
fn combined_plan_errors() {
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "
            services:
                srv1:
                    override: replace
            ",
                "
            services:
                srv1:
                    override: merge
                    environment:
                        VAR1: foo
            ",
            ],
            r#"plan must define "command" for service "srv1""#,
        ),
        (
            &["checks:\n    chk1:\n        override: replace\n"],
            r#"plan must specify one of "http", "tcp", or "exec" for check "chk1""#,
        ),
        (
            &["checks:\n    chk1:\n        override: replace\n        http: {}\n"],
            r#"plan must set "url" for http check "chk1""#,
        ),
        (
            &["checks:\n    chk2:\n        override: replace\n        tcp: {}\n"],
            r#"plan must set "port" for tcp check "chk2""#,
        ),
        (
            &["checks:\n    chk3:\n        override: replace\n        exec: {}\n"],
            r#"plan must set "command" for exec check "chk3""#,
        ),
        (
            &[
                "checks:\n    chk1:\n        override: replace\n        exec:\n            command: foo\n            service-context: nosvc\n",
            ],
            r#"plan check "chk1" service context specifies non-existent service "nosvc""#,
        ),
        (
            &[
                "log-targets:\n    tgt1:\n        location: http://10.1.77.196:3100/loki/api/v1/push\n        override: merge\n",
            ],
            r#"plan must define "type" ("loki", "opentelemetry" or "syslog") for log target "tgt1""#,
        ),
        (
            &[
                "log-targets:\n    tgt1:\n        type: loki\n        services: [all]\n        override: merge\n",
            ],
            r#"plan must define "location" for log target "tgt1""#,
        ),
        (
            &[
                "log-targets:\n    tgt1:\n        type: loki\n        location: http://x/\n        services: [-nonexistent]\n        override: merge\n",
            ],
            r#"log target "tgt1" specifies unknown service "nonexistent""#,
        ),
        (
            &["
            services:
                srv1:
                    override: replace
                    command: cmd
                    after: [srv3]
                srv2:
                    override: replace
                    command: cmd
                    after: [srv1]
                    before: [srv3]
                srv3:
                    override: replace
                    command: cmd
            "],
            "services in before/after loop: srv1, srv2, srv3",
        ),
        (
            &[
                "services:\n    srv1:\n        override: replace\n        command: cmd\n        after: [srv2]\n",
                "services:\n    srv2:\n        override: replace\n        command: cmd\n        after: [srv1]\n",
            ],
            "services in before/after loop: srv1, srv2",
        ),
    ];
    for (texts, expected) in cases {
        check_plan_error(texts, expected);
    }
}

#[test]
fn default_services_are_enabled_ones_sorted() {
    let plan = Plan::from_layers(&layers(&["
        services:
            zed:
                override: replace
                command: z
                startup: enabled
            alpha:
                override: replace
                command: a
                startup: enabled
            off:
                override: replace
                command: o
                startup: disabled
            unset:
                override: replace
                command: u
        "]))
    .unwrap();
    assert_eq!(plan.default_services(), strings(&["alpha", "zed"]));
}

#[test]
fn equal_config_compares_everything() {
    let plan = Plan::from_layers(&layers(&[
        "services:\n    a:\n        override: replace\n        command: x\n",
    ]))
    .unwrap();
    let a = Service::clone(&plan.services["a"]);
    assert!(a.equal_config(&a.clone()));
    let mut changed = a.clone();
    changed.environment.insert("K".into(), "v".into());
    assert!(!a.equal_config(&changed));
    let mut changed = a.clone();
    changed.kill_delay = Some(Duration::from_secs(5));
    assert!(
        !a.equal_config(&changed),
        "an explicit default is still a change, as in Pebble"
    );
}

#[test]
fn merge_service_context() {
    let plan = Plan::from_layers(&layers(&["
        services:
            svc1:
                override: replace
                command: run
                environment:
                    x: y
                    w: z
                user-id: 10
                user: svcuser
                group-id: 20
                group: svcgroup
                working-dir: /working/svc
        "]))
    .unwrap();
    let overrides = ContextOptions {
        environment: [("x".to_string(), "a".to_string())].into(),
        user_id: Some(11),
        user: "usr".into(),
        group_id: Some(22),
        group: "grp".into(),
        working_dir: "/working/dir".into(),
    };
    assert_eq!(
        plan.merge_service_context("", overrides.clone()).unwrap(),
        overrides
    );
    let merged = plan
        .merge_service_context("svc1", overrides.clone())
        .unwrap();
    let expected_env: std::collections::BTreeMap<String, String> = [
        ("w".to_string(), "z".to_string()),
        ("x".to_string(), "a".to_string()),
    ]
    .into();
    assert_eq!(
        merged,
        ContextOptions {
            environment: expected_env,
            ..overrides
        }
    );
    let inherited = plan
        .merge_service_context("svc1", ContextOptions::default())
        .unwrap();
    assert_eq!(
        (inherited.user_id, inherited.working_dir.as_str()),
        (Some(10), "/working/svc")
    );
    let err = plan
        .merge_service_context("nosvc", ContextOptions::default())
        .unwrap_err();
    assert_eq!(err.to_string(), r#"context service "nosvc" not found"#);
}
