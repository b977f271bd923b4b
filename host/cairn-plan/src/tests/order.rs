//! Start/stop ordering and lanes (Pebble's `StartOrder`/`StopOrder` tests).

use super::yaml;
use crate::*;

fn plan(text: &str) -> Plan {
    Plan::from_layers(&[parse_layer(1, "base", yaml(text).as_bytes()).unwrap()]).unwrap()
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn lanes(list: &[&[&str]]) -> Vec<Vec<String>> {
    list.iter().map(|l| names(l)).collect()
}

/// The combined services of Pebble's first `planTests` case.
fn pebble_plan() -> Plan {
    let layers = [
        "
        services:
            srv1:
                override: replace
                command: cmd
                after: [srv2]
                before: [srv3]
                requires: [srv2, srv3]
            srv2:
                override: replace
                command: cmd
                before: [srv3]
            srv3:
                override: replace
                command: cmd
        ",
        "
        services:
            srv1:
                override: merge
                after: [srv4]
                before: [srv5]
            srv2:
                override: replace
                command: cmd
            srv4:
                override: replace
                command: cmd
            srv5:
                override: replace
                command: cmd
        ",
    ];
    let layers: Vec<Layer> = layers
        .iter()
        .enumerate()
        .map(|(i, t)| parse_layer(i as u32, &format!("l{i}"), yaml(t).as_bytes()).unwrap())
        .collect();
    Plan::from_layers(&layers).unwrap()
}

#[test]
fn pebble_start_and_stop_orders() {
    let plan = pebble_plan();
    let cases: &[(&str, &[&str], &[&str])] = &[
        ("srv1", &["srv2", "srv1", "srv3"], &["srv1"]),
        ("srv2", &["srv2"], &["srv1", "srv2"]),
        ("srv3", &["srv3"], &["srv3", "srv1"]),
    ];
    for (name, start, stop) in cases {
        let target = names(&[name]);
        assert_eq!(
            plan.start_order(&target).unwrap(),
            names(start),
            "start {name}"
        );
        assert_eq!(
            plan.stop_order(&target).unwrap(),
            names(stop),
            "stop {name}"
        );
        assert_eq!(
            plan.start_lanes(&target).unwrap(),
            lanes(&[start]),
            "start lanes {name}"
        );
        assert_eq!(
            plan.stop_lanes(&target).unwrap(),
            lanes(&[stop]),
            "stop lanes {name}"
        );
    }
}

#[test]
fn single_lane() {
    let plan = plan(
        "
        services:
            srv1:
                override: replace
                command: cmd
                requires: [srv2]
                before: [srv2]
            srv2:
                override: replace
                command: cmd
                requires: [srv3]
                before: [srv3]
            srv3:
                override: replace
                command: cmd
        ",
    );
    let all = names(&["srv1", "srv2", "srv3"]);
    assert_eq!(
        plan.start_lanes(&all).unwrap(),
        lanes(&[&["srv1", "srv2", "srv3"]])
    );
    assert_eq!(
        plan.stop_lanes(&all).unwrap(),
        lanes(&[&["srv3", "srv2", "srv1"]])
    );
}

#[test]
fn multiple_lanes() {
    let plan = plan(
        "
        services:
            srv1:
                override: replace
                command: cmd
            srv2:
                override: replace
                command: cmd
            srv3:
                override: replace
                command: cmd
            srv4:
                override: replace
                command: cmd
                requires: [srv1]
                after: [srv1]
        ",
    );
    let three = names(&["srv1", "srv2", "srv3"]);
    assert_eq!(
        plan.start_lanes(&three).unwrap(),
        lanes(&[&["srv1"], &["srv2"], &["srv3"]])
    );
    assert_eq!(
        plan.stop_lanes(&three).unwrap(),
        lanes(&[&["srv4", "srv1"], &["srv2"], &["srv3"]])
    );
    let four = names(&["srv1", "srv2", "srv3", "srv4"]);
    assert_eq!(
        plan.start_lanes(&four).unwrap(),
        lanes(&[&["srv1", "srv4"], &["srv2"], &["srv3"]])
    );
    assert_eq!(
        plan.stop_lanes(&four).unwrap(),
        lanes(&[&["srv4", "srv1"], &["srv2"], &["srv3"]])
    );
}

#[test]
fn before_after_alone_do_not_share_a_lane() {
    let plan = plan(
        "
        services:
            a:
                override: replace
                command: cmd
                before: [b]
            b:
                override: replace
                command: cmd
        ",
    );
    let both = names(&["b", "a"]);
    assert_eq!(plan.start_order(&both).unwrap(), names(&["a", "b"]));
    assert_eq!(plan.start_lanes(&both).unwrap(), lanes(&[&["a"], &["b"]]));
    assert_eq!(plan.stop_order(&both).unwrap(), names(&["b", "a"]));
}

#[test]
fn new_lane_counts_from_previous_service() {
    // Pebble numbers a new lane after the previous service's lane, so "d" joins "b"'s lane.
    let plan = plan(
        "
        services:
            a:
                override: replace
                command: cmd
            b:
                override: replace
                command: cmd
            c:
                override: replace
                command: cmd
                requires: [a]
            d:
                override: replace
                command: cmd
        ",
    );
    let all = names(&["a", "b", "c", "d"]);
    assert_eq!(plan.start_order(&all).unwrap(), all);
    assert_eq!(
        plan.start_lanes(&all).unwrap(),
        lanes(&[&["a", "c"], &["b", "d"]])
    );
}

#[test]
fn empty_and_unknown_names() {
    let plan = pebble_plan();
    assert_eq!(plan.start_lanes(&[]).unwrap(), vec![Vec::<String>::new()]);
    let err = plan.start_order(&names(&["nope"])).unwrap_err();
    assert_eq!(err.to_string(), r#"service "nope" does not exist"#);
    let err = plan.stop_lanes(&names(&["nope"])).unwrap_err();
    assert_eq!(err.to_string(), r#"service "nope" does not exist"#);
    let mut broken = plan.clone();
    broken
        .services
        .get_mut("srv1")
        .map(std::sync::Arc::make_mut)
        .unwrap()
        .requires
        .push("ghost".into());
    let err = broken.start_order(&names(&["srv1"])).unwrap_err();
    assert_eq!(err.to_string(), r#"service "ghost" does not exist"#);
}

#[test]
fn cycles_are_reported_sorted() {
    let mut plan = pebble_plan();
    plan.services
        .get_mut("srv3")
        .map(std::sync::Arc::make_mut)
        .unwrap()
        .before
        .push("srv2".into());
    let err = plan.start_order(&names(&["srv1"])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "services in before/after loop: srv1, srv2, srv3"
    );
    // Services outside the requested set do not take part.
    assert_eq!(
        plan.start_order(&names(&["srv4"])).unwrap(),
        names(&["srv4"])
    );
}
