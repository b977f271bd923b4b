//! `changes` and `tasks`.

use super::{Container, Outcome, mask_clock, mask_stamps};

const LAYER: &str = "services:
  srv:
    override: replace
    command: sleep 1000
  bad:
    override: replace
    command: sh -c 'echo oops; exit 3'
";

#[tokio::test(flavor = "multi_thread")]
async fn changes_and_tasks_as_pebble_prints_them() {
    let c = Container::start("changes").await;
    assert_eq!(
        c.run(&["changes"]).await,
        Outcome {
            code: 0,
            out: String::new(),
            err: "no changes found\n".into()
        }
    );
    let layer = c.file("layer.yaml", LAYER);
    c.run(&["add", "base", layer.to_str().unwrap()]).await;
    assert_eq!(c.run(&["start", "srv"]).await, Outcome::ok(""));
    let o = c.run(&["changes"]).await;
    assert_eq!(
        (o.code, mask_clock(&o.out).as_str(), o.err.as_str()),
        (
            0,
            "ID   Status  Spawn               Ready               Summary\n\
             1    Done    today at HH:MM UTC  today at HH:MM UTC  Start service \"srv\"\n\n",
            ""
        )
    );
    let o = c.run(&["tasks", "--last=start"]).await;
    assert_eq!(
        mask_clock(&o.out),
        "Status  Spawn               Ready               Summary\n\
         Done    today at HH:MM UTC  today at HH:MM UTC  Start service \"srv\"\n\n"
    );
    assert_eq!(c.run(&["tasks", "1"]).await.out, o.out);
    let o = c.run(&["changes", "--format", "json"]).await;
    assert_eq!(
        mask_stamps(&o.out),
        // Real Pebble's bytes, times masked.
        "{\"changes\":[{\"id\":\"1\",\"kind\":\"start\",\"summary\":\"Start service \\\"srv\\\"\",\
         \"status\":\"Done\",\"tasks\":[{\"id\":\"1\",\"kind\":\"start\",\
         \"summary\":\"Start service \\\"srv\\\"\",\"status\":\"Done\",\
         \"progress\":{\"label\":\"\",\"done\":1,\"total\":1},\"spawn-time\":\"TIME\",\
         \"ready-time\":\"TIME\"}],\"ready\":true,\"spawn-time\":\"TIME\",\"ready-time\":\"TIME\"}]}\n"
    );
    c.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_change_is_an_error_and_its_task_log_is_shown() {
    let c = Container::start("changes-failed").await;
    let layer = c.file("layer.yaml", LAYER);
    c.run(&["add", "base", layer.to_str().unwrap()]).await;
    assert_eq!(
        c.run(&["start", "bad"]).await,
        Outcome::error(
            "cannot perform the following tasks:\n\
             - Start service \"bad\" (service start attempt: exited quickly with code 3, will restart)"
        )
    );
    let o = c.run(&["tasks", "--last=start"]).await;
    assert_eq!(
        mask_stamps(&mask_clock(&o.out)),
        "Status  Spawn               Ready               Summary\n\
         Error   today at HH:MM UTC  today at HH:MM UTC  Start service \"bad\"\n\
         \n\
         ......................................................................\n\
         Start service \"bad\"\n\
         \n\
         TIME INFO Most recent service output:\n    oops\n\
         TIME ERROR service start attempt: exited quickly with code 3, will restart\n\
         \n"
    );
    c.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn change_selection_errors_read_as_pebbles() {
    let c = Container::start("changes-errors").await;
    assert_eq!(
        c.run(&["changes", "12"]).await,
        Outcome::error("'pebble changes' command expects a service name, try 'pebble tasks 12'")
    );
    assert_eq!(
        c.run(&["changes", "everything"]).await,
        Outcome::ok("Yes, yes it does.\n")
    );
    assert_eq!(
        c.run(&["tasks"]).await,
        Outcome::error("please provide change ID or type with --last=<type>")
    );
    assert_eq!(
        c.run(&["tasks", "--last=start", "1"]).await,
        Outcome::error("cannot use change ID and type together")
    );
    assert_eq!(
        c.run(&["tasks", "--last=start"]).await,
        Outcome::error("no changes found")
    );
    assert_eq!(c.run(&["tasks", "--last=start?"]).await, Outcome::ok(""));
    let layer = c.file("layer.yaml", LAYER);
    c.run(&["add", "base", layer.to_str().unwrap()]).await;
    c.run(&["start", "srv"]).await;
    assert_eq!(
        c.run(&["tasks", "--last=stop"]).await,
        Outcome::error("no changes of type \"stop\" found")
    );
    assert_eq!(c.run(&["tasks", "--last=stop?"]).await, Outcome::ok(""));
    assert_eq!(
        c.run(&["tasks", "42"]).await,
        Outcome::error("cannot find change with id \"42\"")
    );
    c.close().await;
}
