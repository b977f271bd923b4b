//! Rendering plans and layers exactly as Pebble (`yaml.v3`) prints them.

use std::time::Duration;

use super::yaml;
use crate::*;

fn plan_of(texts: &[&str]) -> Plan {
    let layers: Vec<Layer> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| parse_layer(i as u32, &format!("layer-{i}"), yaml(t).as_bytes()).unwrap())
        .collect();
    Plan::from_layers(&layers).unwrap()
}

fn check_plan(texts: &[&str], expected: &str) {
    assert_eq!(plan_of(texts).to_yaml(), yaml(expected));
}

#[test]
fn empty_plan() {
    assert_eq!(Plan::default().to_yaml(), "{}\n");
    assert_eq!(plan_of(&["summary: nothing"]).to_yaml(), "{}\n");
    assert_eq!(Layer::default().to_yaml(), "{}\n");
}

#[test]
fn api_plan_example() {
    check_plan(
        &["
        summary: this is a summary
        description: this is a description
        services:
            static:
                override: replace
                command: echo static
        "],
        "
        services:
            static:
                override: replace
                command: echo static
        ",
    );
}

#[test]
fn section_order_and_check_defaults() {
    check_plan(
        &["
        checks:
            chk1:
                override: replace
                exec:
                    command: ping 8.8.8.8
        log-targets:
            lt1:
                override: replace
                type: loki
                location: http://192.168.1.2:3100/loki/api/v1/push
        services:
            srv1:
                override: replace
                command: cmd
        "],
        "
        services:
            srv1:
                override: replace
                command: cmd
        checks:
            chk1:
                override: replace
                threshold: 3
                exec:
                    command: ping 8.8.8.8
        log-targets:
            lt1:
                type: loki
                location: http://192.168.1.2:3100/loki/api/v1/push
                services: []
                override: replace
        ",
    );
}

#[test]
fn every_service_field_in_go_order() {
    check_plan(
        &["
        services:
            svc:
                kill-delay: 90s
                backoff-limit: 1h
                backoff-factor: 3
                backoff-delay: 250ms
                on-check-failure:
                    chk: shutdown
                on-failure: ignore
                on-success: failure-shutdown
                working-dir: /srv
                group: grp
                group-id: 20
                user: usr
                user-id: 10
                environment:
                    B: b
                    A: a
                requires: [other]
                before: [other]
                command: run it
                override: replace
                startup: enabled
                description: long
                summary: short
            other:
                override: replace
                command: other
        "],
        "
        services:
            other:
                override: replace
                command: other
            svc:
                summary: short
                description: long
                startup: enabled
                override: replace
                command: run it
                before:
                    - other
                requires:
                    - other
                environment:
                    A: a
                    B: b
                user-id: 10
                user: usr
                group-id: 20
                group: grp
                working-dir: /srv
                on-success: failure-shutdown
                on-failure: ignore
                on-check-failure:
                    chk: shutdown
                backoff-delay: 250ms
                backoff-factor: 3
                backoff-limit: 1h0m0s
                kill-delay: 1m30s
        ",
    );
}

#[test]
fn checks_and_extensions() {
    check_plan(
        &["
        checks:
            up:
                override: merge
                level: alive
                startup: disabled
                period: 2s
                timeout: 5s
                threshold: 1
                http:
                    url: http://localhost:8080/health
                    headers:
                        X-Token: abc
            port:
                override: replace
                level: ready
                tcp:
                    port: 8080
                    host: 127.0.0.1
            script:
                override: replace
                exec:
                    command: check --now
                    service-context: svc
                    environment:
                        K: v
                    user-id: 0
                    user: root
                    group-id: 0
                    group: root
                    working-dir: /tmp
        services:
            svc:
                override: replace
                command: run
                workload: web
        workloads:
            web:
                override: replace
                environment:
                    PORT: '8080'
                user: www
        pairing:
            mode: single
        "],
        r#"
        services:
            svc:
                override: replace
                command: run
                workload: web
        checks:
            port:
                override: replace
                level: ready
                threshold: 3
                tcp:
                    port: 8080
                    host: 127.0.0.1
            script:
                override: replace
                threshold: 3
                exec:
                    command: check --now
                    service-context: svc
                    environment:
                        K: v
                    user-id: 0
                    user: root
                    group-id: 0
                    group: root
                    working-dir: /tmp
            up:
                override: merge
                level: alive
                startup: disabled
                period: 2s
                timeout: 2s
                threshold: 1
                http:
                    url: http://localhost:8080/health
                    headers:
                        X-Token: abc
        workloads:
            web:
                override: replace
                environment:
                    PORT: "8080"
                user: www
        pairing:
            mode: single
        "#,
    );
}

#[test]
fn service_args_layer() {
    let base = parse_layer(
        0,
        "label1",
        yaml(
            "
            services:
                svc1:
                    override: replace
                    command: foo [ --bar ]
                svc2:
                    override: replace
                    command: foo
                svc3:
                    override: replace
                    command: foo
            ",
        )
        .as_bytes(),
    )
    .unwrap();
    let mut layers = Layers::new(vec![]).unwrap();
    layers.add(base, false, false).unwrap();
    let args = [
        (
            "svc1".to_string(),
            vec!["-abc".to_string(), "--xyz".to_string()],
        ),
        ("svc2".to_string(), vec!["--bar".to_string()]),
    ];
    layers.set_service_args(&args.into()).unwrap();
    assert_eq!(
        layers.plan().to_yaml(),
        yaml(
            "
            services:
                svc1:
                    override: replace
                    command: foo [ -abc --xyz ]
                svc2:
                    override: replace
                    command: foo [ --bar ]
                svc3:
                    override: replace
                    command: foo
            "
        )
    );
    let last = layers.layers().last().unwrap();
    assert_eq!(
        (last.label.as_str(), last.order),
        (SERVICE_ARGS_LABEL, 2000)
    );
    let err = layers
        .set_service_args(&[("nope".to_string(), vec![])].into())
        .unwrap_err();
    assert_eq!(err.to_string(), r#"service "nope" not found in plan"#);
}

/// Renders one environment value under a service and returns its line(s).
fn rendered_env(value: &str) -> String {
    let mut plan = Plan::default();
    let service = Service {
        name: "s".into(),
        override_: Override::Replace,
        command: "c".into(),
        environment: [("K".to_string(), value.to_string())].into(),
        ..Service::default()
    };
    plan.services.insert("s".into(), service.into());
    let text = plan.to_yaml();
    let start = text.find("            K:").expect("rendered key");
    text[start + "            K:".len()..].to_string()
}

#[test]
fn strings_are_quoted_only_when_needed() {
    let cases = [
        ("plain words", " plain words\n"),
        ("", " \"\"\n"),
        ("true", " \"true\"\n"),
        ("yes", " \"yes\"\n"),
        ("off", " \"off\"\n"),
        ("123", " \"123\"\n"),
        ("1.5", " \"1.5\"\n"),
        ("0x1F", " \"0x1F\"\n"),
        ("null", " \"null\"\n"),
        ("~", " \"~\"\n"),
        ("1:30", " \"1:30\"\n"),
        ("2024-01-02", " \"2024-01-02\"\n"),
        ("500ms", " 500ms\n"),
        ("- item", " '- item'\n"),
        ("#hash", " '#hash'\n"),
        ("a #b", " 'a #b'\n"),
        ("a#b", " a#b\n"),
        ("key: value", " 'key: value'\n"),
        ("http://x:80/", " http://x:80/\n"),
        (" leading", " ' leading'\n"),
        ("trailing ", " 'trailing '\n"),
        ("it's [x]", " it's [x]\n"),
        ("'quoted'", " '''quoted'''\n"),
        ("@at", " '@at'\n"),
        ("*star", " '*star'\n"),
        ("$HOME/bin", " $HOME/bin\n"),
        ("tab\there", " \"tab\\there\"\n"),
        ("bell\u{7}", " \"bell\\a\"\n"),
        ("snow ☃", " snow ☃\n"),
        ("smile 😀", " \"smile \\U0001F600\"\n"),
        (
            "line1\nline2",
            " |-\n                line1\n                line2\n",
        ),
        (
            "line1\nline2\n",
            " |\n                line1\n                line2\n",
        ),
        ("keep\n\n", " |+\n                keep\n\n"),
        (
            "  indented\nx",
            " |4-\n                  indented\n                x\n",
        ),
        ("trailing space \nx", " \"trailing space \\nx\"\n"),
    ];
    for (value, expected) in cases {
        assert_eq!(rendered_env(value), expected, "rendering {value:?}");
    }
}

#[test]
fn rendered_strings_parse_back() {
    let values = [
        "plain",
        "",
        "true",
        "- x",
        "a: b",
        " x ",
        "it's",
        "tab\t",
        "😀",
        "multi\nline\n",
        "keep\n\n",
        "  lead\nx",
        "\u{85}next",
        "back\\slash \"quotes\"",
        "a long value that goes on and on well past the eighty column limit of the emitter, so that it folds",
        "a 'long' value that needs single quotes: it goes on and on past the eighty column limit so it folds",
        "a \"long\" value with a tab\tthat needs double quotes and goes on past the eighty column limit, folding",
        "    double  spaced   words and more words to push this past eighty columns so   folding happens  ",
        // Lines starting with a tab: a literal block of them does not parse back.
        "\t\tfirst: tab\nsecond",
        "first\n\tsecond: tab",
        "\n\tafter a break",
    ];
    for value in values {
        let service = Service {
            name: "s".into(),
            override_: Override::Replace,
            command: "c".into(),
            environment: [("K".to_string(), value.to_string())].into(),
            ..Service::default()
        };
        let layer = Layer {
            services: [("s".to_string(), service.into())].into(),
            ..Layer::default()
        };
        let text = layer.to_yaml();
        let back = parse_layer(0, "x", text.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(
            back.services["s"].environment["K"], value,
            "round trip of {value:?} via\n{text}"
        );
    }
}

/// As real Pebble v1.32.1 writes them: `yaml.v3` never folds a long line.
#[test]
fn long_lines_are_not_folded() {
    let command = "/usr/local/bin/my-server --config /etc/my-server/config.yaml --listen 0.0.0.0:8080 --verbose --log-format json --tls-cert /etc/ssl/certs/server.pem";
    let mut plan = Plan::default();
    let service = Service {
        name: "srv".into(),
        override_: Override::Replace,
        command: command.into(),
        ..Service::default()
    };
    plan.services.insert("srv".into(), service.into());
    let expected = "services:\n    srv:\n        override: replace\n        command: /usr/local/bin/my-server --config /etc/my-server/config.yaml --listen 0.0.0.0:8080 --verbose --log-format json --tls-cert /etc/ssl/certs/server.pem\n";
    assert_eq!(plan.to_yaml(), expected);
    let back = parse_layer(0, "x", plan.to_yaml().as_bytes()).unwrap();
    assert_eq!(back.services["srv"].command, command);
}

#[test]
fn keys_use_natural_order() {
    let mut plan = Plan::default();
    for name in [
        "srv10", "srv2", "srv1", "Srv", "a-b", "a_b", "a1", "1", "10", "9",
    ] {
        let service = Service {
            name: name.into(),
            override_: Override::Replace,
            command: "c".into(),
            ..Service::default()
        };
        plan.services.insert(name.into(), service.into());
    }
    let text = plan.to_yaml();
    let keys: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("    ") && !l.starts_with("        "))
        .collect();
    assert_eq!(
        keys,
        [
            "    \"1\":",
            "    \"9\":",
            "    \"10\":",
            "    Srv:",
            "    a-b:",
            "    a_b:",
            "    a1:",
            "    srv1:",
            "    srv2:",
            "    srv10:",
        ]
    );
}

#[test]
fn numbers_and_durations_format_like_go() {
    let cases = [
        (1.5, "1.5"),
        (2.0, "2"),
        (10.0, "10"),
        (123456.0, "123456"),
        (1e6, "1e+06"),
        (1234567.0, "1.234567e+06"),
        (f64::INFINITY, ".inf"),
    ];
    for (factor, expected) in cases {
        let mut plan = Plan::default();
        let service = Service {
            name: "s".into(),
            command: "c".into(),
            backoff_factor: Some(factor),
            ..Service::default()
        };
        plan.services.insert("s".into(), service.into());
        assert!(
            plan.to_yaml()
                .contains(&format!("        backoff-factor: {expected}\n")),
            "{factor}: {}",
            plan.to_yaml()
        );
    }
    let mut plan = Plan::default();
    let service = Service {
        name: "s".into(),
        command: "c".into(),
        kill_delay: Some(Duration::from_millis(1500)),
        backoff_delay: Some(Duration::ZERO),
        ..Service::default()
    };
    plan.services.insert("s".into(), service.into());
    let text = plan.to_yaml();
    assert!(
        text.contains("backoff-delay: 0s\n") && text.contains("kill-delay: 1.5s\n"),
        "{text}"
    );
}

#[test]
fn layer_round_trip() {
    let text = yaml(
        r#"
        summary: Simple layer
        description: A simple layer.
        services:
            srv1:
                summary: Service summary
                startup: enabled
                override: replace
                command: cmd arg1 "arg2 arg3"
                after:
                    - srv2
                before:
                    - srv3
                requires:
                    - srv2
                    - srv3
                environment:
                    var0: val0
                    var1: val1
                    var2: val2
                backoff-delay: 1s
                backoff-factor: 1.5
                backoff-limit: 10s
            srv2:
                override: replace
                command: srv2cmd
            srv3:
                override: replace
                command: srv3cmd
        checks:
            chk:
                override: replace
                tcp:
                    port: 22
        log-targets:
            tgt:
                type: syslog
                location: udp://localhost:514
                services: []
                override: merge
        pairing:
            mode: disabled
        workloads:
            w:
                override: merge
        "#,
    );
    let layer = parse_layer(1, "layer1", text.as_bytes()).unwrap();
    assert_eq!(layer.to_yaml(), text);
    assert_eq!(
        parse_layer(1, "layer1", layer.to_yaml().as_bytes()).unwrap(),
        layer
    );
}
