//! `services`, `start`, `stop`, `restart`, `autostart` and `signal`.

use super::{Container, Outcome, mask_clock, mask_stamps};

const LAYER: &str = "services:
  srv1:
    override: replace
    command: sleep 1000
    startup: enabled
  srv2:
    override: replace
    command: sleep 1001
";

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_plan_says_so_on_stderr() {
    let c = Container::start("svc-empty").await;
    assert_eq!(
        c.run(&["services"]).await,
        Outcome {
            code: 0,
            out: String::new(),
            err: "Plan has no services.\n".into()
        }
    );
    assert_eq!(
        c.run(&["services", "nope"]).await,
        Outcome {
            code: 0,
            out: String::new(),
            err: "No matching services.\n".into()
        }
    );
    c.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn start_and_stop_wait_and_the_table_follows() {
    let c = Container::start("svc-table").await;
    let layer = c.file("layer.yaml", LAYER);
    assert_eq!(
        c.run(&["add", "base", layer.to_str().unwrap()]).await.code,
        0
    );
    assert_eq!(
        c.run(&["services"]).await,
        Outcome::ok(
            "Service  Startup   Current   Since\n\
             srv1     enabled   inactive  -\n\
             srv2     disabled  inactive  -\n"
        )
    );
    assert_eq!(c.run(&["start", "srv1"]).await, Outcome::ok(""));
    let o = c.run(&["services"]).await;
    assert_eq!(
        (o.code, mask_clock(&o.out).as_str(), o.err.as_str()),
        (
            0,
            "Service  Startup   Current   Since\n\
             srv1     enabled   active    today at HH:MM UTC\n\
             srv2     disabled  inactive  -\n",
            ""
        )
    );
    assert_eq!(c.run(&["stop", "srv1"]).await, Outcome::ok(""));
    let o = c.run(&["services", "srv1"]).await;
    assert_eq!(
        mask_clock(&o.out),
        "Service  Startup  Current   Since\n\
         srv1     enabled  inactive  today at HH:MM UTC\n"
    );
    // --no-wait prints the change's ID; the service still starts.
    let o = c.run(&["start", "--no-wait", "srv2"]).await;
    assert_eq!(o, Outcome::ok("3\n"));
    c.run_until(&["services", "srv2"], |o| o.out.contains("active    today"))
        .await;
    assert_eq!(c.run(&["restart", "srv2"]).await, Outcome::ok(""));
    assert_eq!(c.run(&["autostart"]).await, Outcome::ok(""));
    let o = c.run(&["services", "--format", "json", "srv1"]).await;
    assert_eq!(
        mask_stamps(&o.out),
        "{\"services\":{\"srv1\":{\"name\":\"srv1\",\"startup\":\"enabled\",\
         \"current\":\"active\",\"current-since\":\"TIME\"}}}\n"
    );
    c.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_are_one_line_and_exit_code_one() {
    let c = Container::start("svc-errors").await;
    let layer = c.file("layer.yaml", LAYER);
    c.run(&["add", "base", layer.to_str().unwrap()]).await;
    assert_eq!(
        c.run(&["start", "nope"]).await,
        Outcome::error("cannot start services: service \"nope\" does not exist")
    );
    assert_eq!(
        c.run(&["signal", "hup", "srv1"]).await,
        Outcome::error("signal name must be uppercase, for example HUP")
    );
    assert_eq!(
        c.run(&["signal", "HUP", "srv1"]).await,
        Outcome::error("cannot send signal to \"srv1\": service is not running")
    );
    c.run(&["start", "srv1"]).await;
    assert_eq!(c.run(&["signal", "HUP", "srv1"]).await, Outcome::ok(""));
    c.close().await;
}
