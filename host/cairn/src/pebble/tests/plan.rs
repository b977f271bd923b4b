//! `plan`, `add` and `replan`.

use super::{Container, Outcome};

const LAYER: &str = "services:
  srv:
    override: replace
    command: sleep 1000
    startup: enabled
";

#[tokio::test(flavor = "multi_thread")]
async fn add_shows_in_the_plan_and_replan_starts_it() {
    let c = Container::start("plan-add").await;
    assert_eq!(c.run(&["plan"]).await, Outcome::ok("{}\n"));
    let layer = c.file("layer.yaml", LAYER);
    let path = layer.to_str().unwrap();
    assert_eq!(
        c.run(&["add", "base", path]).await,
        Outcome::ok(&format!(
            "Layer \"base\" added successfully from {path:?}\n"
        ))
    );
    assert_eq!(
        c.run(&["add", "base", path]).await,
        Outcome::error("layer \"base\" already exists")
    );
    assert_eq!(
        c.run(&["add", "--combine", "base", path]).await,
        Outcome::ok(&format!(
            "Layer \"base\" added successfully from {path:?}\n"
        ))
    );
    assert_eq!(
        c.run(&["plan"]).await,
        Outcome::ok(
            "services:\n    srv:\n        startup: enabled\n        override: replace\n        command: sleep 1000\n"
        )
    );
    assert_eq!(c.run(&["replan"]).await, Outcome::ok(""));
    let o = c.run(&["services"]).await;
    assert!(o.out.contains("srv      enabled  active"), "{o:?}");
    assert_eq!(c.run(&["replan", "--no-wait"]).await, Outcome::ok("2\n"));
    c.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn add_refuses_a_missing_file_and_a_bad_layer() {
    let c = Container::start("plan-bad").await;
    let missing = c.dir.join("missing.yaml");
    assert_eq!(
        c.run(&["add", "x", missing.to_str().unwrap()]).await,
        Outcome::error(&format!(
            "cannot read {}: No such file or directory (os error 2)",
            missing.display()
        ))
    );
    let bad = c.file("bad.yaml", "services:\n  x:\n    command: y\n");
    assert_eq!(
        c.run(&["add", "bad", bad.to_str().unwrap()]).await,
        Outcome::error("layer \"bad\" must define \"override\" for service \"x\"")
    );
    c.close().await;
}
