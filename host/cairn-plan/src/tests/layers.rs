//! The add-layer rules of Pebble's plan manager (`TestAppendLayers`, `TestCombineLayers`,
//! `TestAppendLayersWith(out)Inner`, workload immutability).

use super::yaml;
use crate::*;

fn layer(label: &str, text: &str) -> Layer {
    parse_layer(0, label, yaml(text).as_bytes()).unwrap()
}

fn labels_and_orders(layers: &Layers) -> Vec<(String, u32)> {
    layers
        .layers()
        .iter()
        .map(|l| (l.label.clone(), l.order))
        .collect()
}

fn command_of(layers: &Layers, service: &str) -> String {
    layers.plan().services[service].command.clone()
}

#[test]
fn append_assigns_next_thousand_and_rejects_existing_labels() {
    let mut layers = Layers::new(vec![]).unwrap();
    layers
        .add(
            layer(
                "label1",
                "services:\n    svc1:\n        override: replace\n        command: /bin/sh\n",
            ),
            false,
            false,
        )
        .unwrap();
    assert_eq!(labels_and_orders(&layers), [("label1".to_string(), 1000)]);

    let before = layers.clone();
    let err = layers
        .add(
            layer(
                "label1",
                "services:\n    svc1:\n        override: replace\n        command: /bin/bar\n",
            ),
            false,
            false,
        )
        .unwrap_err();
    assert_eq!(err, PlanError::LabelExists("label1".into()));
    assert_eq!(err.to_string(), r#"layer "label1" already exists"#);
    assert!(err.is_client_error());
    assert_eq!(layers, before, "a failed add changes nothing");

    layers
        .add(
            layer(
                "label2",
                "services:\n    svc1:\n        override: replace\n        command: /bin/bash\n",
            ),
            false,
            false,
        )
        .unwrap();
    layers
        .add(
            layer(
                "label3",
                "services:\n    svc2:\n        override: replace\n        command: /bin/foo\n",
            ),
            false,
            false,
        )
        .unwrap();
    assert_eq!(
        labels_and_orders(&layers),
        [
            ("label1".to_string(), 1000),
            ("label2".to_string(), 2000),
            ("label3".to_string(), 3000)
        ]
    );
    assert_eq!(
        layers.plan().to_yaml(),
        yaml(
            "
            services:
                svc1:
                    override: replace
                    command: /bin/bash
                svc2:
                    override: replace
                    command: /bin/foo
            "
        )
    );
}

#[test]
fn combine_merges_into_same_label_and_keeps_order() {
    let mut layers = Layers::new(vec![]).unwrap();
    let svc = |name: &str, cmd: &str| {
        format!("services:\n    {name}:\n        override: replace\n        command: {cmd}\n")
    };
    layers
        .add(layer("label1", &svc("svc1", "/bin/sh")), true, false)
        .unwrap();
    layers
        .add(layer("label2", &svc("svc2", "/bin/foo")), true, false)
        .unwrap();
    layers
        .add(layer("label1", &svc("svc1", "/bin/bash")), true, false)
        .unwrap();
    assert_eq!(
        labels_and_orders(&layers),
        [("label1".to_string(), 1000), ("label2".to_string(), 2000)]
    );
    assert_eq!(command_of(&layers, "svc1"), "/bin/bash");
    layers
        .add(layer("label2", &svc("svc2", "/bin/bar")), true, false)
        .unwrap();
    assert_eq!(command_of(&layers, "svc2"), "/bin/bar");
    layers
        .add(
            layer(
                "label3",
                "services:\n    svc1:\n        override: replace\n        command: /bin/a\n",
            ),
            true,
            false,
        )
        .unwrap();
    assert_eq!(layers.layers().len(), 3);
    assert_eq!(layers.layers()[2].order, 3000);
    assert_eq!(command_of(&layers, "svc1"), "/bin/a");

    // Combining merges the stored layer itself (summary comes from the new layer).
    let mut layers = Layers::new(vec![]).unwrap();
    layers
        .add(
            layer("app", "summary: first\nservices:\n    web:\n        override: replace\n        command: serve\n        environment:\n            A: a\n"),
            false,
            false,
        )
        .unwrap();
    layers
        .add(layer("app", "services:\n    web:\n        override: merge\n        environment:\n            B: b\n"), true, false)
        .unwrap();
    let stored = &layers.layers()[0];
    assert_eq!(stored.summary, "");
    assert_eq!(stored.services["web"].override_, Override::Replace);
    assert_eq!(stored.services["web"].environment.len(), 2);
}

#[test]
fn combine_that_breaks_the_plan_changes_nothing() {
    let mut layers = Layers::new(vec![]).unwrap();
    layers
        .add(
            layer(
                "base",
                "services:\n    a:\n        override: replace\n        command: run\n",
            ),
            false,
            false,
        )
        .unwrap();
    let before = layers.clone();
    let err = layers
        .add(
            layer(
                "base",
                "services:\n    a:\n        override: replace\n        after: [b]\n",
            ),
            true,
            false,
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"plan must define "command" for service "a""#
    );
    assert_eq!(layers, before);
    let err = layers
        .add(
            layer(
                "more",
                "services:\n    b:\n        override: replace\n        command: x\n        after: [a]\n        before: [a]\n",
            ),
            false,
            false,
        )
        .unwrap_err();
    assert_eq!(err.to_string(), "services in before/after loop: a, b");
    assert_eq!(layers, before);
}

#[test]
fn sub_directory_labels_need_inner() {
    let mut layers = Layers::new(vec![]).unwrap();
    layers.add(layer("foo/bar", ""), false, false).unwrap();
    layers.add(layer("baz", ""), false, false).unwrap();
    let err = layers.add(layer("foo/baz", ""), false, false).unwrap_err();
    assert_eq!(err, PlanError::InnerRequired);
    assert_eq!(
        err.to_string(),
        "cannot insert sub-directory layer without 'inner' attribute set"
    );
    assert!(!err.is_client_error());
    // Combine of an absent label is an append, with the same rule.
    assert_eq!(
        layers.add(layer("foo/baz", ""), true, false).unwrap_err(),
        PlanError::InnerRequired
    );
    // As in Pebble, the very first layer gets 1000 even when its label has a sub-directory.
    assert_eq!(
        labels_and_orders(&layers),
        [("foo/bar".to_string(), 1000), ("baz".to_string(), 2000)]
    );
}

#[test]
fn inner_inserts_at_end_of_group() {
    let mut layers = Layers::new(vec![]).unwrap();
    for label in [
        "foo",
        "baz/aaa",
        "something",
        "baz/bbb",
        "else",
        "baz/ccc",
        "zzz/zzz",
        "final",
    ] {
        layers.add(layer(label, ""), false, true).unwrap();
    }
    let expected = [
        ("foo", 1000),
        ("baz/aaa", 2001),
        ("baz/bbb", 2002),
        ("baz/ccc", 2003),
        ("something", 3000),
        ("else", 4000),
        ("zzz/zzz", 5001),
        ("final", 6000),
    ];
    let expected: Vec<(String, u32)> = expected.iter().map(|(l, o)| (l.to_string(), *o)).collect();
    assert_eq!(labels_and_orders(&layers), expected);
}

#[test]
fn new_sorts_and_rejects_duplicate_labels() {
    let mut a = layer("a", "");
    a.order = 2000;
    let mut b = layer("b", "");
    b.order = 1000;
    let layers = Layers::new(vec![a.clone(), b.clone()]).unwrap();
    assert_eq!(
        labels_and_orders(&layers),
        [("b".to_string(), 1000), ("a".to_string(), 2000)]
    );
    let mut dup = a.clone();
    dup.order = 3000;
    assert_eq!(
        Layers::new(vec![a, dup]).unwrap_err(),
        PlanError::LabelExists("a".into())
    );
    let bad = layer("x", "services:\n    s:\n        override: replace\n");
    assert_eq!(
        Layers::new(vec![bad]).unwrap_err().to_string(),
        r#"plan must define "command" for service "s""#
    );
}

#[test]
fn workloads_are_immutable_after_load() {
    let mut start = layer(
        "001",
        "workloads:\n    workload1:\n        override: replace\n",
    );
    start.order = 1000;
    for combine in [false, true] {
        let mut layers = Layers::new(vec![start.clone()]).unwrap();
        let err = layers
            .add(
                layer(
                    "workload2",
                    "workloads:\n    workload2:\n        override: replace\n",
                ),
                combine,
                false,
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"cannot change immutable section "workloads""#
        );
        layers
            .add(layer("workloads", "workloads: {}"), combine, false)
            .unwrap();
    }
    // Without workloads at load time, an API layer cannot add any either.
    let mut layers = Layers::new(vec![]).unwrap();
    let err = layers
        .add(
            layer("w", "workloads:\n    w:\n        override: replace\n"),
            false,
            false,
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"cannot change immutable section "workloads""#
    );
}

#[test]
fn added_yaml_gets_the_api_messages() {
    let mut layers = Layers::new(vec![]).unwrap();
    layers
        .add_yaml(
            "base",
            b"services:\n  a:\n    override: replace\n    command: sleep 1\n",
            false,
            false,
        )
        .unwrap();
    let before = layers.clone();
    let add = |layers: &mut Layers, label: &str, text: &str| {
        layers
            .add_yaml(label, yaml(text).as_bytes(), false, false)
            .unwrap_err()
    };

    let err = add(&mut layers, "x", "services: [");
    assert!(matches!(err, PlanError::LayerYaml(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "cannot parse layer YAML: cannot parse layer \"x\": yaml: line 1: did not find \
         expected node content"
    );
    let err = add(&mut layers, "x", "checks:\n  c:\n    override: sideways\n");
    assert_eq!(
        err,
        PlanError::Override(r#"layer "x" has invalid "override" value for check "c""#.into())
    );
    let err = add(&mut layers, "x", "services:\n  b:\n    command: x\n");
    assert_eq!(
        err.to_string(),
        r#"layer "x" must define "override" for service "b""#
    );
    assert!(matches!(err, PlanError::Override(_)));
    let err = add(&mut layers, "pebble-x", "summary: s\n");
    assert_eq!(
        err.to_string(),
        r#"cannot parse layer YAML: cannot use reserved label prefix "pebble-""#
    );
    assert_eq!(
        add(&mut layers, "", "summary: s\n"),
        PlanError::LabelRequired
    );
    assert_eq!(PlanError::LabelRequired.to_string(), "label must be set");

    // Plan rules come from the combined plan, without a prefix.
    let err = add(
        &mut layers,
        "x",
        "checks:\n  up:\n    override: replace\n    http: {}\n",
    );
    assert_eq!(
        err.to_string(),
        r#"plan must set "url" for http check "up""#
    );
    let err = add(
        &mut layers,
        "x",
        "checks:\n  up:\n    override: replace\n    exec:\n      command: true\n      service-context: nope\n",
    );
    assert_eq!(
        err.to_string(),
        r#"plan check "up" service context specifies non-existent service "nope""#
    );
    assert!(err.is_client_error());
    assert_eq!(layers, before, "a refused layer changes nothing");
}
