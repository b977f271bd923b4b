//! Parsing and per-layer validation: Pebble's `planTests` error cases and the decoding rules.

use std::time::Duration;

use super::yaml;
use crate::*;

/// Parses `text` as layer "layer-0" and expects exactly `expected` as the error.
fn check_error(text: &str, expected: &str) {
    let err = parse_layer(0, "layer-0", yaml(text).as_bytes()).expect_err(text);
    assert_eq!(err.to_string(), expected, "layer:\n{text}");
    assert!(err.is_client_error(), "{err:?} should be a format error");
}

fn parse(text: &str) -> Layer {
    parse_layer(0, "layer-0", yaml(text).as_bytes()).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

#[test]
fn reserved_and_invalid_names() {
    let err = parse_layer(0, "pebble-foo", b"{}").unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"cannot use reserved label prefix "pebble-""#
    );
    check_error(
        "
        services:
            pebble:
                command: cmd
        ",
        r#"cannot use reserved service name "pebble""#,
    );
    check_error(
        "
        services:
            -svc1:
                command: foo
                override: merge
        ",
        r#"cannot use service name "-svc1": starting with "-" not allowed"#,
    );
    check_error(
        r#"
        services:
            "":
                override: replace
                command: cmd
        "#,
        "cannot use empty string as service name",
    );
    check_error(
        "
        services:
            svc1: ~
        ",
        r#"service object cannot be null for service "svc1""#,
    );
    check_error(
        "
        checks:
            chk1:
        ",
        r#"check object cannot be null for check "chk1""#,
    );
    check_error(
        r#"
        checks:
            "":
                override: replace
        "#,
        "cannot use empty string as check name",
    );
    check_error(
        "
        log-targets:
            tgt1: null
        ",
        r#"log target object cannot be null for log target "tgt1""#,
    );
    // Deprecated names are still accepted.
    for name in ["all", "default", "none"] {
        let layer = parse(&format!(
            "services:\n    {name}:\n        override: replace\n        command: cmd\n"
        ));
        assert!(layer.services.contains_key(name));
    }
}

#[test]
fn service_field_errors() {
    let cases = [
        (
            "on-success: foo",
            r#"plan service "svc1" on-success action "foo" invalid"#,
        ),
        (
            "on-success: success-shutdown",
            r#"plan service "svc1" on-success action "success-shutdown" invalid"#,
        ),
        (
            "on-failure: failure-shutdown",
            r#"plan service "svc1" on-failure action "failure-shutdown" invalid"#,
        ),
        (
            "on-check-failure:\n            test: failure-shutdown",
            r#"plan service "svc1" on-check-failure action "failure-shutdown" invalid"#,
        ),
        (
            "backoff-delay: foo",
            r#"cannot parse layer "layer-0" section "services": invalid duration "foo""#,
        ),
        (
            "kill-delay: [1s]",
            r#"cannot parse layer "layer-0" section "services": duration must be a YAML string"#,
        ),
        (
            "backoff-factor: 0",
            r#"plan service "svc1" backoff-factor must be 1.0 or greater, not 0"#,
        ),
        (
            "backoff-factor: 0.5",
            r#"plan service "svc1" backoff-factor must be 1.0 or greater, not 0.5"#,
        ),
        (
            "backoff-factor: foo",
            r#"cannot parse layer "layer-0" section "services": invalid floating-point number "foo""#,
        ),
        (
            "backoff-factor: {}",
            r#"cannot parse layer "layer-0" section "services": value must be a YAML number"#,
        ),
        (
            "startup: sometimes",
            r#"plan service "svc1" startup must be "enabled" or "disabled""#,
        ),
        (
            "override: foo",
            r#"layer "layer-0" has invalid "override" value for service "svc1""#,
        ),
    ];
    for (field, expected) in cases {
        let override_line = if field.starts_with("override") {
            ""
        } else {
            "        override: replace\n"
        };
        let text =
            format!("services:\n    svc1:\n{override_line}        command: cmd\n        {field}\n");
        let err = parse_layer(0, "layer-0", text.as_bytes()).expect_err(&text);
        assert_eq!(err.to_string(), expected, "layer:\n{text}");
    }
}

#[test]
fn command_errors() {
    let cases = [
        ("foo '", "EOF found when expecting closing quote"),
        (
            "cmd -v [ --foo ] bar",
            "cannot have any arguments after [ ... ] group",
        ),
        ("cmd -v ] foo", "cannot have ] outside of [ ... ] group"),
        ("cmd -v [ foo [ --bar ] ]", "cannot nest [ ... ] groups"),
        ("'[ cmd ]'", "cannot start command with [ ... ] group"),
    ];
    for (command, message) in cases {
        let text = format!(
            "services:\n    svc1:\n        override: replace\n        command: {command}\n"
        );
        let err = parse_layer(0, "layer-0", text.as_bytes()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                r#"plan service "svc1" command invalid: cannot parse service "svc1" command: {message}"#
            )
        );
    }
    // Brackets inside quotes are ordinary words.
    let layer = parse(
        r#"
        services:
            svc1:
                override: replace
                command: cmd -v [ --foo bar -e "x [ y ] z" ]
        "#,
    );
    assert_eq!(
        layer.services["svc1"].command,
        r#"cmd -v [ --foo bar -e "x [ y ] z" ]"#
    );
}

#[test]
fn check_errors() {
    check_error(
        "
        checks:
            chk1:
                override: replace
                startup: true
                exec:
                    command: foo
        ",
        r#"plan check "chk1" startup must be "enabled" or "disabled""#,
    );
    check_error(
        "
        checks:
            bad-check:
                override: replace
                level: invalid
                tcp:
                    port: 8080
        ",
        r#"plan check "bad-check" level must be "alive" or "ready""#,
    );
    check_error(
        "
        checks:
            chk1:
                override: replace
                period: 0s
                tcp:
                    port: 8080
        ",
        r#"plan check "chk1" period must not be zero"#,
    );
    check_error(
        "
        checks:
            chk1:
                override: replace
                timeout: 0
                tcp:
                    port: 8080
        ",
        r#"plan check "chk1" timeout must not be zero"#,
    );
    check_error(
        "
        checks:
            chk1:
                override: replace
                exec:
                    command: foo '
        ",
        r#"plan check "chk1" command invalid: EOF found when expecting closing quote"#,
    );
    check_error(
        "
        checks:
            chk1:
                override: other
                tcp:
                    port: 8080
        ",
        r#"layer "layer-0" has invalid "override" value for check "chk1""#,
    );
}

#[test]
fn log_target_errors() {
    check_error(
        "
        log-targets:
            tgt1:
                type: foobar
                location: http://10.1.77.196:3100/loki/api/v1/push
                override: merge
        ",
        r#"log target "tgt1" has unsupported type "foobar", must be "loki", "opentelemetry" or "syslog""#,
    );
    check_error(
        "
        log-targets:
            tgt1:
                override: merge
                type: loki
                location: https://my.loki.server/loki/api/v1/push
                labels:
                    pebble_service: illegal
        ",
        r#"log target "tgt1": label "pebble_service" uses reserved prefix "pebble_""#,
    );
    check_error(
        "
        log-targets:
            tgt1:
                override: sometimes
                type: loki
        ",
        r#"layer "layer-0" has invalid "override" value for log target "tgt1""#,
    );
}

#[test]
fn extension_section_errors() {
    check_error(
        "
        workloads:
            w1:
        ",
        r#"workload "w1": cannot have a null value"#,
    );
    check_error(
        "
        workloads:
            w1:
                override: sideways
        ",
        r#"workload "w1": has an invalid "override" policy: "sideways""#,
    );
    check_error(
        "
        workloads:
            w1:
                override: replace
                shell: bash
        ",
        "cannot parse the \"workloads\" section: yaml: unmarshal errors:\n  line 3: field shell not found in type workloads.Workload",
    );
    check_error(
        "
        pairing:
            mode: sometimes
        ",
        r#"invalid pairing mode "sometimes": should be "disabled", "single" or "multiple""#,
    );
    check_error(
        "
        pairing:
            mode: single
            window: 10s
        ",
        "cannot parse the pairing section: yaml: unmarshal errors:\n  line 2: field window not found in type pairingstate.pairingConfig",
    );
    let layer = parse(
        "
        pairing:
            mode: multiple
        workloads:
            w1:
                override: replace
                environment:
                    A: b
                user-id: 1000
        ",
    );
    assert_eq!(layer.pairing.mode, PairingMode::Multiple);
    let w = &layer.workloads["w1"];
    assert_eq!(
        (w.name.as_str(), w.override_, w.user_id),
        ("w1", Override::Replace, Some(1000))
    );
    assert_eq!(w.environment["A"], "b");
}

#[test]
fn yaml_decoding_errors() {
    let cases = [
        (
            "
            services:
                srv1:
                    future: true
                    override: replace
                    command: cmd
            ",
            "cannot parse layer \"layer-0\" section \"services\": yaml: unmarshal errors:\n  line 2: field future not found in type plan.Service",
        ),
        (
            "foo: bar",
            r#"cannot parse layer "layer-0": unknown section "foo""#,
        ),
        (
            "services: [a, b]",
            "cannot parse layer \"layer-0\" section \"services\": yaml: unmarshal errors:\n  line 1: cannot unmarshal !!seq into map[string]*plan.Service",
        ),
        (
            "
            services:
                a: hello
                b:
                    override: replace
                    command: [x]
                    after: abc
            ",
            "cannot parse layer \"layer-0\" section \"services\": yaml: unmarshal errors:\n  line 1: cannot unmarshal !!str `hello` into plan.Service\n  line 4: cannot unmarshal !!seq into string\n  line 5: cannot unmarshal !!str `abc` into []string",
        ),
        (
            "
            checks:
                chk1:
                    override: replace
                    threshold: lots
                    tcp:
                        port: '80'
            ",
            "cannot parse layer \"layer-0\" section \"checks\": yaml: unmarshal errors:\n  line 3: cannot unmarshal !!str `lots` into int\n  line 5: cannot unmarshal !!str `80` into int",
        ),
        (
            "summary: [x]",
            "cannot parse layer \"layer-0\" section \"summary\": yaml: unmarshal errors:\n  line 1: cannot unmarshal !!seq into string",
        ),
        (
            "
            summary: a
            summary: b
            ",
            "cannot parse layer \"layer-0\": yaml: unmarshal errors:\n  line 2: mapping key \"summary\" already defined at line 1",
        ),
        (
            "
            summary: a
            description: b
            summary: c
            description: d
            summary: e
            ",
            "cannot parse layer \"layer-0\": yaml: unmarshal errors:\n  line 3: mapping key \"summary\" already defined at line 1\n  line 5: mapping key \"summary\" already defined at line 1\n  line 4: mapping key \"description\" already defined at line 2\n  line 5: mapping key \"summary\" already defined at line 3",
        ),
        (
            "- a",
            "cannot parse layer \"layer-0\": yaml: unmarshal errors:\n  line 1: cannot unmarshal !!seq into map[string]yaml.Node",
        ),
        (
            "just text",
            "cannot parse layer \"layer-0\": yaml: unmarshal errors:\n  line 1: cannot unmarshal !!str `just text` into map[string]yaml.Node",
        ),
        (
            "a: b: c",
            r#"cannot parse layer "layer-0": yaml: mapping values are not allowed in this context"#,
        ),
        (
            "services:\n  a:\n    command: 'x\n",
            r#"cannot parse layer "layer-0": yaml: line 3: found unexpected end of stream"#,
        ),
        (
            "x: *nope",
            r#"cannot parse layer "layer-0": yaml: unknown anchor 'nope' referenced"#,
        ),
        (
            "
            services:
                s:
                    command: a-very-long-command-line
                    kill-delay: 5
            ",
            r#"cannot parse layer "layer-0" section "services": invalid duration "5""#,
        ),
    ];
    for (text, expected) in cases {
        check_error(text, expected);
    }
}

#[test]
fn scalars_decode_as_written() {
    let layer = parse(
        r#"
        summary: 1.10
        services:
            srv1:
                override: replace
                command: cmd
                environment:
                    a: true
                    b: 1.1
                    c:
                    d: ~
                    e: "null"
                    f: 0x10
                user-id: 1000
                group-id: ~
                backoff-factor: "1.5"
        "#,
    );
    assert_eq!(layer.summary, "1.10");
    let s = &layer.services["srv1"];
    let env: Vec<(&str, &str)> = s
        .environment
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        env,
        [
            ("a", "true"),
            ("b", "1.1"),
            ("c", ""),
            ("d", ""),
            ("e", "null"),
            ("f", "0x10")
        ]
    );
    assert_eq!(s.user_id, Some(1000));
    assert_eq!(s.group_id, None);
    assert_eq!(s.backoff_factor, Some(1.5));
}

#[test]
fn anchors_aliases_and_merge_keys() {
    let layer = parse(
        "
        services:
            base: &base
                override: replace
                command: sleep 10
                environment: &env
                    A: a
            other:
                <<: *base
                command: sleep 20
                environment: *env
        ",
    );
    let other = &layer.services["other"];
    assert_eq!(other.override_, Override::Replace);
    assert_eq!(other.command, "sleep 20");
    assert_eq!(other.environment["A"], "a");
    check_error(
        "
        services:
            s:
                <<: [1]
        ",
        r#"cannot parse layer "layer-0" section "services": yaml: map merge requires map or sequence of maps as the value"#,
    );
    // A merge-key bomb is refused rather than expanded.
    let mut bomb = String::from("services:\n  a0: &a0 {override: replace, command: x}\n");
    for i in 1..9 {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        bomb.push_str(&format!("  a{i}: &a{i} {{<<: [{refs}]}}\n"));
    }
    let err = parse_layer(0, "layer-0", bomb.as_bytes()).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"cannot parse layer "layer-0" section "services": yaml: document contains excessive aliasing"#
    );
    check_error(
        "
        services:
            s: &s
                override: replace
                command: x
                <<: *s
        ",
        r#"cannot parse layer "layer-0" section "services": yaml: anchor 's' value contains itself"#,
    );
}

#[test]
fn full_layer_fields() {
    let layer = parse(
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
                after:
                    - srv2
                before:
                    - srv3
                requires:
                    - srv2
                    - srv3
                environment:
                    var1: val1
                user: alice
                user-id: 1001
                group: staff
                group-id: 50
                working-dir: /workdir/srv1
                on-success: shutdown
                on-failure: success-shutdown
                on-check-failure:
                    chk1: ignore
                backoff-delay: 1s
                backoff-factor: 1.5
                backoff-limit: 10s
        checks:
            chk1:
                override: merge
                level: ready
                startup: disabled
                period: 20s
                timeout: 500ms
                threshold: 7
                http:
                    url: https://example.com/foo
                    headers:
                        Foo: bar
        log-targets:
            tgt1:
                type: opentelemetry
                location: http://10.1.77.196:4318
                services: [all, -srv1]
                override: merge
                labels:
                    env: $ENV
        "#,
    );
    assert_eq!((layer.order, layer.label.as_str()), (0, "layer-0"));
    assert_eq!(
        (layer.summary.as_str(), layer.description.as_str()),
        ("Simple layer", "A simple layer.")
    );
    let s = &layer.services["srv1"];
    let expected = Service {
        name: "srv1".into(),
        summary: "Service summary".into(),
        startup: ServiceStartup::Enabled,
        override_: Override::Replace,
        command: r#"cmd arg1 "arg2 arg3""#.into(),
        after: vec!["srv2".into()],
        before: vec!["srv3".into()],
        requires: vec!["srv2".into(), "srv3".into()],
        environment: [("var1".to_string(), "val1".to_string())].into(),
        user_id: Some(1001),
        user: "alice".into(),
        group_id: Some(50),
        group: "staff".into(),
        working_dir: "/workdir/srv1".into(),
        on_success: ServiceAction::Shutdown,
        on_failure: ServiceAction::SuccessShutdown,
        on_check_failure: [("chk1".to_string(), ServiceAction::Ignore)].into(),
        backoff_delay: Some(Duration::from_secs(1)),
        backoff_factor: Some(1.5),
        backoff_limit: Some(Duration::from_secs(10)),
        kill_delay: Some(Duration::from_secs(10)),
        ..Service::default()
    };
    assert_eq!(**s, expected);
    let c = &layer.checks["chk1"];
    assert_eq!(
        (
            c.override_,
            c.level,
            c.startup,
            c.period,
            c.timeout,
            c.threshold
        ),
        (
            Override::Merge,
            CheckLevel::Ready,
            CheckStartup::Disabled,
            Some(Duration::from_secs(20)),
            Some(Duration::from_millis(500)),
            Some(7)
        )
    );
    let http = c.http.as_ref().unwrap();
    assert_eq!(
        (http.url.as_str(), http.headers["Foo"].as_str()),
        ("https://example.com/foo", "bar")
    );
    assert!(c.tcp.is_none() && c.exec.is_none());
    let t = &layer.log_targets["tgt1"];
    assert_eq!(t.type_, LogTargetType::OpenTelemetry);
    assert_eq!(t.services, ["all", "-srv1"]);
    assert_eq!(t.labels["env"], "$ENV");
}

#[test]
fn empty_documents() {
    for text in ["", "{}", "~", "---\n", "# only a comment\n", "services:\n"] {
        let layer =
            parse_layer(3, "empty", text.as_bytes()).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert_eq!(
            layer,
            Layer {
                order: 3,
                label: "empty".into(),
                ..Layer::default()
            },
            "{text:?}"
        );
    }
}

#[test]
fn never_panics_on_odd_input() {
    let inputs: &[&[u8]] = &[
        b"\xff\xfe",
        b"[[[[[[[[[[",
        b"services: {a: {command: [}",
        b"services:\n  a: &x\n    after: *x\n",
        b"&a [*a]",
        b"? [a]\n: b\n",
        b"services:\n  ? [a]\n  : {override: replace}\n",
        b"\t- x",
        b"!!binary aGVsbG8=",
        b"services: !!map {}",
        b"checks: {c: {override: replace, threshold: 99999999999999999999}}",
        b"checks: {c: {override: replace, threshold: -1.5}}",
    ];
    for input in inputs {
        let _ = parse_layer(0, "x", input);
    }
    // A long chain of merge keys is refused without exhausting the stack.
    let mut chain = String::from("services:\n  s0: &s0 {override: replace, command: x}\n");
    for i in 1..5000 {
        chain.push_str(&format!("  s{i}: &s{i} {{<<: *s{}}}\n", i - 1));
    }
    let err = parse_layer(0, "x", chain.as_bytes())
        .unwrap_err()
        .to_string();
    assert!(
        err.ends_with("yaml: document contains excessive aliasing"),
        "{err}"
    );
    let deep = "[".repeat(20_000);
    let err = parse_layer(0, "x", deep.as_bytes())
        .unwrap_err()
        .to_string();
    assert!(err.contains("exceeded max depth of 10000"), "{err}");
}

#[test]
fn error_lines_refer_to_the_re_rendered_section() {
    // Pebble re-renders each section before decoding it, so lines count from the section's
    // first entry, blank lines disappear and flow style stays on one line.
    check_error(
        "
        summary: x
        services:

            srv1:
                override: replace

                future: true
        ",
        "cannot parse layer \"layer-0\" section \"services\": yaml: unmarshal errors:\n  line 3: field future not found in type plan.Service",
    );
    check_error(
        "services: {srv1: {override: replace, future: true}}",
        "cannot parse layer \"layer-0\" section \"services\": yaml: unmarshal errors:\n  line 1: field future not found in type plan.Service",
    );
    check_error(
        "
        checks:
            chk:
                override: replace
                http:
                    url: |
                        http://a/
                        http://b/
                    method: GET
        ",
        "cannot parse layer \"layer-0\" section \"checks\": yaml: unmarshal errors:\n  line 7: field method not found in type plan.HTTPCheck",
    );
}

#[test]
fn a_key_repeated_thousands_of_times_reports_a_bounded_number_of_duplicates() {
    let yaml = "summary: x\n".repeat(5000);
    let err = crate::parse_layer(0, "layer-0", yaml.as_bytes())
        .unwrap_err()
        .to_string();
    assert_eq!(err.matches("already defined").count(), 100, "{:.300}", err);
    assert!(err.contains("line 2: mapping key \"summary\" already defined at line 1"));
}
