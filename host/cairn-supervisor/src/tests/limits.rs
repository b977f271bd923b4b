//! A container's budget on a real supervisor: refused layers change nothing, execs past the
//! budget are busy until one ends, refusals are counted, and a new budget applies at once.

use std::sync::Arc;
use std::time::Duration;

use super::within;
use crate::exec::{Endpoint, ExecArgs, Stdin};
use crate::{ContainerLimits, ErrorKind, LimitHits, Supervisor, SupervisorOptions};

fn sup(name: &str, limits: ContainerLimits) -> (Supervisor, Arc<LimitHits>) {
    let hits = Arc::new(LimitHits::default());
    let opts = SupervisorOptions {
        limits,
        hits: hits.clone(),
        ..SupervisorOptions::new(super::temp_dir("limits", name))
    };
    (Supervisor::open(opts).unwrap(), hits)
}

#[tokio::test(flavor = "multi_thread")]
async fn layers_over_the_budget_are_refused_whole_and_counted() {
    let (s, hits) = sup(
        "layers",
        ContainerLimits {
            layer_bytes: 4096,
            layers: 2,
            services: 2,
            ..ContainerLimits::UNLIMITED
        },
    );
    let svc = |n: &str| format!("services:\n  {n}:\n    override: replace\n    command: sleep 1\n");
    s.add_layer("a", svc("a").as_bytes(), false, false).unwrap();
    let big = format!("summary: {}\n", "x".repeat(5000));
    let e = s
        .add_layer("big", big.as_bytes(), false, false)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::OverBudget);
    assert_eq!(
        e.to_string(),
        "cannot add layer: layer is 4.9 KiB, over the container's budget of 4 KiB of layers"
    );
    // Combining into the same label keeps one layer; services still count.
    let two = format!(
        "{}  b:\n    override: replace\n    command: sleep 1\n",
        svc("a")
    );
    s.add_layer("a", two.as_bytes(), true, false).unwrap();
    let three = format!("{}  c:\n    override: replace\n    command: sleep 1\n", two);
    let e = s.add_layer("a", three.as_bytes(), true, false).unwrap_err();
    assert_eq!(e.limit(), Some("services"));
    s.add_layer("b", b"summary: b\n", false, false).unwrap();
    let e = s.add_layer("c", b"summary: c\n", false, false).unwrap_err();
    assert_eq!(e.limit(), Some("layers"));
    assert_eq!(s.layers().len(), 2);
    assert_eq!(s.plan().services.len(), 2);
    // A lower budget applies to the next request.
    s.set_limits(ContainerLimits {
        layer_bytes: 10,
        ..ContainerLimits::UNLIMITED
    });
    let e = s.add_layer("b", b"summary: b2\n", true, false).unwrap_err();
    assert_eq!(e.limit(), Some("layer-bytes"));
    assert_eq!(
        hits.snapshot(),
        [
            ("layer-bytes".to_string(), 2),
            ("layers".to_string(), 1),
            ("services".to_string(), 1)
        ]
        .into()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn log_targets_past_the_budget_are_refused() {
    let (s, hits) = sup(
        "log-targets",
        ContainerLimits {
            log_targets: 1,
            ..ContainerLimits::UNLIMITED
        },
    );
    let target = |n: &str| {
        format!(
            "log-targets:\n  {n}:\n    override: replace\n    type: loki\n    location: http://127.0.0.1:9/push\n    services: [all]\n"
        )
    };
    s.add_layer("a", target("one").as_bytes(), false, false)
        .unwrap();
    let e = s
        .add_layer("b", target("two").as_bytes(), false, false)
        .unwrap_err();
    assert_eq!(e.limit(), Some("log-targets"));
    assert_eq!(
        e.to_string(),
        "cannot add layer: the plan would have 2 log targets, over the container's budget of 1"
    );
    assert_eq!(s.plan().log_targets.len(), 1);
    assert_eq!(hits.snapshot(), [("log-targets".to_string(), 1)].into());
}

#[tokio::test(flavor = "multi_thread")]
async fn execs_past_the_budget_are_busy_until_one_ends() {
    let (s, hits) = sup(
        "execs",
        ContainerLimits {
            execs: 2,
            ..ContainerLimits::UNLIMITED
        },
    );
    let args = |cmd: &[&str]| ExecArgs {
        command: cmd.iter().map(|s| s.to_string()).collect(),
        ..ExecArgs::default()
    };
    let a = s.exec(args(&["cat"])).unwrap();
    let _b = s.exec(args(&["sleep", "30"])).unwrap();
    let e = s.exec(args(&["true"])).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Busy);
    assert_eq!(
        e.to_string(),
        "cannot call exec: 2 commands are running, the container's budget of concurrent execs"
    );
    // A command that cannot start gives its slot back at once.
    s.set_limits(ContainerLimits {
        execs: 3,
        ..ContainerLimits::UNLIMITED
    });
    assert!(s.exec(args(&["/nonexistent/x"])).is_err());
    let c = s.exec(args(&["true"])).unwrap();
    assert_eq!(s.exec(args(&["true"])).unwrap_err().kind(), ErrorKind::Busy);
    // When `cat` ends, its slot is free again.
    let Endpoint::Stdio { stdin, mut stdout } = s.exec_connect(&a.task_id, "stdio").unwrap() else {
        panic!("not stdio");
    };
    let _ = stdin.send(Stdin::End).await;
    while stdout.recv().await.is_some() {}
    s.wait_change(&a.change_id, Some(Duration::from_secs(10)))
        .await
        .unwrap();
    assert!(
        within(Duration::from_secs(5), || s.exec(args(&["true"])).is_ok()).await,
        "no slot came back"
    );
    let _ = c;
    s.stop_all().await;
    assert_eq!(hits.snapshot()["execs"], 2);
}
