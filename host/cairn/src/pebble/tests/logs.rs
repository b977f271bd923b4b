//! `logs`.

use std::time::Duration;

use super::{Container, Outcome, mask_stamps};

const LAYER: &str = "services:
  srv:
    override: replace
    command: sh -c 'echo hello; echo world; exec sleep 1000'
";

#[tokio::test(flavor = "multi_thread")]
async fn logs_print_time_service_and_message() {
    let c = Container::start("logs").await;
    assert_eq!(c.run(&["logs"]).await, Outcome::ok(""));
    let layer = c.file("layer.yaml", LAYER);
    c.run(&["add", "base", layer.to_str().unwrap()]).await;
    c.run(&["start", "srv"]).await;
    let o = c.run_until(&["logs"], |o| o.out.contains("world")).await;
    assert_eq!(
        (o.code, mask_stamps(&o.out).as_str(), o.err.as_str()),
        (0, "TIME [srv] hello\nTIME [srv] world\n", "")
    );
    let o = c.run(&["logs", "-n", "1", "srv"]).await;
    assert_eq!(mask_stamps(&o.out), "TIME [srv] world\n");
    let o = c.run(&["logs", "-n", "1", "--format", "json"]).await;
    assert_eq!(
        mask_stamps(&o.out),
        "{\"time\":\"TIME\",\"service\":\"srv\",\"message\":\"world\"}\n"
    );
    assert_eq!(
        c.run(&["logs", "-n", "many"]).await,
        Outcome::error("expected n to be a non-negative integer or \"all\", not \"many\"")
    );
    // -f prints what is buffered, then follows (here until the test stops waiting).
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let follow = c.run_into(&["logs", "-f", "-n", "all"], None, &mut out, &mut err);
    let _ = tokio::time::timeout(Duration::from_millis(500), follow).await;
    assert_eq!(
        mask_stamps(&String::from_utf8(out).unwrap()),
        "TIME [srv] hello\nTIME [srv] world\n"
    );
    c.close().await;
}
