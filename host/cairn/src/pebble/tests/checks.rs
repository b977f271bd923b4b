//! `health`, `checks`, `check`, `start-checks` and `stop-checks`.

use super::{Container, Outcome, mask_stamps};

const LAYER: &str = "checks:
  up:
    override: replace
    level: ready
    period: 1h
    exec:
      command: 'true'
  down:
    override: replace
    level: alive
    period: 1s
    threshold: 1
    startup: disabled
    exec:
      command: sh -c 'echo broken; exit 1'
";

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_plan_has_no_checks_and_is_healthy() {
    let c = Container::start("checks-empty").await;
    let note = |err: &str| Outcome {
        code: 0,
        out: String::new(),
        err: err.into(),
    };
    assert_eq!(
        c.run(&["checks"]).await,
        note("Plan has no health checks.\n")
    );
    assert_eq!(
        c.run(&["checks", "--level", "ready"]).await,
        note("No matching health checks.\n")
    );
    assert_eq!(c.run(&["health"]).await, Outcome::ok("healthy\n"));
    assert_eq!(
        c.run(&["health", "--format", "json"]).await,
        Outcome::ok("{\"healthy\":true}\n")
    );
    assert_eq!(
        c.run(&["check", "nope"]).await,
        Outcome::error("cannot find check \"nope\"")
    );
    c.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_check_makes_health_exit_one_and_shows_its_log() {
    let c = Container::start("checks-failing").await;
    let layer = c.file("layer.yaml", LAYER);
    c.run(&["add", "base", layer.to_str().unwrap()]).await;
    assert_eq!(
        c.run(&["checks"]).await,
        Outcome::ok(
            "Check  Level  Startup   Status    Successes  Failures  Change\n\
             down   alive  disabled  inactive  -          -         -\n\
             up     ready  enabled   up        0          0/3       1\n"
        )
    );
    assert_eq!(
        c.run(&["start-checks", "down"]).await,
        Outcome::ok("Checks started: down\n")
    );
    assert_eq!(
        c.run(&["start-checks", "down", "up"]).await,
        Outcome::ok("Checks already started.\n")
    );
    let o = c.run_until(&["health"], |o| o.code == 1).await;
    assert_eq!(
        o,
        Outcome {
            code: 1,
            out: "unhealthy\n".into(),
            err: String::new()
        }
    );
    assert_eq!(c.run(&["health", "up"]).await, Outcome::ok("healthy\n"));
    let o = c.run(&["checks", "down"]).await;
    assert_eq!(
        o.out,
        "Check  Level  Startup   Status  Successes  Failures  Change\n\
         down   alive  disabled  down    0          1/1       3 (exit status 1; broken)\n"
    );
    let o = c.run(&["check", "down"]).await;
    assert_eq!(
        mask_stamps(&o.out),
        // Pebble's client's field order and quoting.
        "name: down\nlevel: alive\nstartup: disabled\nstatus: down\nsuccesses: 0\nfailures: 1\n\
         threshold: 1\nchange-id: \"3\"\nprev-change-id: \"2\"\n\
         logs: |\n    TIME ERROR exit status 1; broken\n"
    );
    assert_eq!(
        c.run(&["stop-checks", "down"]).await,
        Outcome::ok("Checks stopped: down\n")
    );
    assert_eq!(
        c.run(&["stop-checks", "down"]).await,
        Outcome::ok("Checks already stopped.\n")
    );
    c.close().await;
}
