//! Every endpoint through the typed client, on a real socket over a real supervisor.

use std::time::Duration;

use cairn_supervisor::{Supervisor, SupervisorOptions};
use hyper::Method;

use crate::{ApiServer, Client, ClientError, ServerHandle, serve};

async fn setup(name: &str) -> (Supervisor, Client, ServerHandle, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("cairn-api-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let sup = Supervisor::open(SupervisorOptions::new(&dir)).unwrap();
    let socket = dir.join(".pebble.socket");
    let handle = serve(ApiServer::new(sup.clone(), None), &socket, None)
        .await
        .unwrap();
    (sup, Client::unix(&socket), handle, dir)
}

const LAYER: &str = "services:\n    srv:\n        override: replace\n        command: sh -c 'echo hello; exec sleep 1000'\n        startup: enabled\n";

fn api_err(r: Result<impl std::fmt::Debug, ClientError>) -> (u16, String, String) {
    match r.unwrap_err() {
        ClientError::Api {
            code,
            kind,
            message,
        } => (code, kind, message),
        other => panic!("not an API error: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn issue3_system_info_health_layers_plan() {
    let (_sup, c, h, _) = setup("info").await;
    let info = c.system_info().await.unwrap();
    assert_eq!(info.version, concat!("v", env!("CARGO_PKG_VERSION")));
    assert!(!info.boot_id.is_empty());
    assert!(c.health(None, &[]).await.unwrap());
    assert!(c.health(Some("ready"), &[]).await.unwrap());
    assert_eq!(
        api_err(c.health(Some("bogus"), &[]).await),
        (
            400,
            String::new(),
            "level must be \"alive\" or \"ready\"".into()
        )
    );
    c.add_layer("base", LAYER, false, false).await.unwrap();
    let plan = c.plan().await.unwrap();
    assert!(plan.starts_with("services:\n    srv:\n"), "{plan}");
    assert!(
        plan.contains("command: sh -c 'echo hello; exec sleep 1000'"),
        "{plan}"
    );
    assert_eq!(
        api_err(c.add_layer("base", LAYER, false, false).await).2,
        "layer \"base\" already exists"
    );
    let (code, _, msg) = api_err(
        c.add_layer("bad", "services:\n  x:\n    command: y\n", false, false)
            .await,
    );
    assert_eq!(
        (code, msg.as_str()),
        (
            400,
            "layer \"bad\" must define \"override\" for service \"x\""
        )
    );
    assert_eq!(
        c.plan().await.unwrap(),
        plan,
        "a bad layer changed the plan"
    );
    h.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn issue3_services_changes_wait_logs_signals() {
    let (sup, c, h, _) = setup("svc").await;
    c.add_layer("base", LAYER, false, false).await.unwrap();
    let svcs = c.services(&[]).await.unwrap();
    assert_eq!(
        (svcs[0].name.as_str(), svcs[0].startup.as_str()),
        ("srv", "enabled")
    );
    assert_eq!(svcs[0].current.as_str(), "inactive");

    let id = c.services_action("replan", &[]).await.unwrap();
    let info = c
        .wait_change(&id, Some(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(
        (info.kind.as_str(), info.status.as_str()),
        ("replan", "Done")
    );
    assert_eq!(
        c.services(&["srv".into()]).await.unwrap()[0]
            .current
            .as_str(),
        "active"
    );
    assert_eq!(c.change(&id).await.unwrap().id, id);
    assert!(
        c.changes("all", Some("srv"))
            .await
            .unwrap()
            .iter()
            .any(|ch| ch.id == id)
    );
    assert!(c.changes("in-progress", None).await.unwrap().is_empty());
    assert_eq!(
        api_err(c.abort_change(&id).await).2,
        format!("cannot abort change {id} with nothing pending")
    );
    assert_eq!(
        api_err(c.change("999").await),
        (
            404,
            String::new(),
            "cannot find change with id \"999\"".into()
        )
    );

    let logs = c.logs(&[], Some(10)).await.unwrap();
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert_eq!(
        (logs[0].service.as_str(), logs[0].message.as_str()),
        ("srv", "hello")
    );

    c.send_signal("SIGCONT", &["srv".into()]).await.unwrap();
    let (code, _, msg) = api_err(c.send_signal("SIGHUP", &["nope".into()]).await);
    assert_eq!(
        (code, msg.as_str()),
        (
            500,
            "cannot send signal to \"nope\": service is not running"
        )
    );
    let (code, _, msg) = api_err(c.send_signal("SIGFOO", &["srv".into()]).await);
    assert_eq!(
        (code, msg.as_str()),
        (
            500,
            "cannot send signal to \"srv\": invalid signal name \"SIGFOO\""
        )
    );

    let (code, _, msg) = api_err(c.services_action("start", &["nope".into()]).await);
    assert_eq!(
        (code, msg.as_str()),
        (
            400,
            "cannot start services: service \"nope\" does not exist"
        )
    );
    let (code, _, msg) = api_err(c.services_action("frob", &["srv".into()]).await);
    assert_eq!((code, msg.as_str()), (400, "invalid action \"frob\""));

    let id = c.services_action("stop", &["srv".into()]).await.unwrap();
    let info = c.wait_change(&id, None).await.unwrap();
    assert_eq!(info.status, "Done");
    sup.stop_all().await;
    h.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn issue3_wait_times_out_with_504() {
    let (sup, c, h, _) = setup("wait").await;
    c.add_layer(
        "base",
        "services:\n  s:\n    override: replace\n    command: sleep 1000\n",
        false,
        false,
    )
    .await
    .unwrap();
    let id = c.services_action("start", &["s".into()]).await.unwrap();
    let (code, _, msg) = api_err(c.wait_change(&id, Some(Duration::from_millis(100))).await);
    assert_eq!(
        (code, msg.as_str()),
        (504, "timed out waiting for change after 100ms")
    );
    c.wait_change(&id, None).await.unwrap();
    sup.stop_all().await;
    h.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn issue3_follow_logs_streams_new_lines() {
    let (sup, c, h, _) = setup("follow").await;
    c.add_layer(
        "base",
        "services:\n  tick:\n    override: replace\n    command: sh -c 'while true; do echo tick; sleep 0.1; done'\n",
        false,
        false,
    )
    .await
    .unwrap();
    c.run_action("start", &["tick".into()]).await.unwrap();
    let mut rx = c.follow_logs(&["tick".into()], None).await.unwrap();
    for _ in 0..3 {
        let line = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (line.service.as_str(), line.message.as_str()),
            ("tick", "tick")
        );
    }
    sup.stop_all().await;
    h.stop();
}

/// Sends a raw request and asserts the status code and the start of the error message.
#[track_caller]
fn check(got: (u16, bytes::Bytes), code: u16, message: &str) {
    let v: serde_json::Value = serde_json::from_slice(&got.1).unwrap();
    let msg = v["result"]["message"].as_str().unwrap_or_default();
    assert_eq!(got.0, code, "{v}");
    assert!(
        msg.starts_with(message),
        "{msg:?} does not start with {message:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn issue3_malformed_requests_get_4xx_and_change_nothing() {
    let (_sup, c, h, _) = setup("bad").await;
    let post =
        |path: &'static str, body: &'static [u8]| c.raw(Method::POST, path, Some(body.to_vec()));
    check(
        post("/v1/services", b"{not json").await.unwrap(),
        400,
        "cannot decode data from request body: ",
    );
    check(
        post("/v1/services", br#"{"action":null,"services":null}"#)
            .await
            .unwrap(),
        400,
        "must specify services for  action",
    );
    check(
        post(
            "/v1/layers",
            br#"{"action":"add","label":"x","format":"yaml","layer":"services: ["}"#,
        )
        .await
        .unwrap(),
        400,
        "cannot parse layer YAML: ",
    );
    check(
        post("/v1/layers", br#"{"action":"drop","label":"x"}"#)
            .await
            .unwrap(),
        400,
        "invalid action \"drop\"",
    );
    check(
        c.raw(Method::GET, "/v1/nope", None).await.unwrap(),
        404,
        "invalid API endpoint requested",
    );
    check(
        c.raw(Method::POST, "/v1/health", None).await.unwrap(),
        405,
        "method \"POST\" not allowed",
    );
    check(
        c.raw(Method::GET, "/v1/plan?format=json", None)
            .await
            .unwrap(),
        400,
        "invalid format \"json\"",
    );
    check(
        c.raw(Method::GET, "/v1/changes?select=some", None)
            .await
            .unwrap(),
        400,
        "select should be one of: all,in-progress,ready",
    );
    assert_eq!(c.plan().await.unwrap(), "{}\n");
    assert!(c.changes("all", None).await.unwrap().is_empty());
    h.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn issue3_read_only_callers_cannot_write() {
    let (_sup, _c, h, dir) = setup("access").await;
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let socket = dir.join(".pebble.socket");
    // A real peer with another uid: python drops to nobody, then talks HTTP on the socket.
    let script = r#"
import os, socket, sys
os.setgid(65534); os.setuid(65534)
def req(method, path, body=b""):
    s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
    s.sendall(f"{method} {path} HTTP/1.0\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk: break
        data += chunk
    print(data.split(b"\r\n\r\n", 1)[1].decode())
req("GET", "/v1/services")
req("POST", "/v1/layers", b'{"action":"add","label":"x","format":"yaml","layer":"{}"}')
req("GET", "/v1/plan?format=yaml")
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&socket)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines[0]["status-code"], 200,
        "read access refused: {}",
        lines[0]
    );
    let denied = serde_json::json!({"message": "access denied", "kind": "login-required"});
    assert_eq!(
        (lines[1]["status-code"].clone(), lines[1]["result"].clone()),
        (401.into(), denied.clone())
    );
    assert_eq!(
        (lines[2]["status-code"].clone(), lines[2]["result"].clone()),
        (401.into(), denied)
    );
    h.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn issue5_notices_and_checks_requests_get_pebbles_errors() {
    let (_sup, c, h, _) = setup("notices").await;
    let post =
        |path: &'static str, body: String| c.raw(Method::POST, path, Some(body.into_bytes()));
    check(
        post(
            "/v1/notices",
            r#"{"action":"add","type":"warning","key":"x"}"#.into(),
        )
        .await
        .unwrap(),
        400,
        "invalid type \"warning\" (can only add \"custom\" notices)",
    );
    check(
        post(
            "/v1/notices",
            r#"{"action":"add","type":"custom","key":"nodomain/x"}"#.into(),
        )
        .await
        .unwrap(),
        400,
        "invalid key \"nodomain/x\" (must be in \"example.com/path\" format)",
    );
    let long = format!("example.com/{}", "a".repeat(260));
    check(
        post(
            "/v1/notices",
            format!(r#"{{"action":"add","type":"custom","key":"{long}"}}"#),
        )
        .await
        .unwrap(),
        400,
        "key must be 256 bytes or less",
    );
    check(
        post(
            "/v1/notices",
            format!(
                r#"{{"action":"add","type":"custom","key":"example.com/x","data":{{"k":"{}"}}}}"#,
                "v".repeat(5000)
            ),
        )
        .await
        .unwrap(),
        400,
        "total size of data must be 4096 bytes or less",
    );
    check(
        post("/v1/notices", r#"{"action":"remove"}"#.into())
            .await
            .unwrap(),
        400,
        "invalid action \"remove\"",
    );
    check(
        post(
            "/v1/notices",
            r#"{"action":"add","type":"custom","key":"example.com/x","repeat-after":"soon"}"#
                .into(),
        )
        .await
        .unwrap(),
        400,
        "invalid repeat-after: ",
    );
    check(
        c.raw(Method::GET, "/v1/notices?after=yesterday", None)
            .await
            .unwrap(),
        400,
        "invalid \"after\" timestamp: ",
    );
    check(
        c.raw(Method::GET, "/v1/notices?users=some", None)
            .await
            .unwrap(),
        400,
        "invalid \"users\" filter: must be \"all\"",
    );
    check(
        c.raw(Method::GET, "/v1/notices/42", None).await.unwrap(),
        404,
        "cannot find notice with ID \"42\"",
    );
    check(
        post("/v1/checks", r#"{"action":"start","checks":[]}"#.into())
            .await
            .unwrap(),
        400,
        "must specify checks for start action",
    );
    check(
        post("/v1/checks", r#"{"action":"pause","checks":["a"]}"#.into())
            .await
            .unwrap(),
        400,
        "invalid action \"pause\"",
    );
    check(
        post("/v1/checks/refresh", r#"{"name":"nope"}"#.into())
            .await
            .unwrap(),
        404,
        "cannot find check with name \"nope\"",
    );
    check(
        c.raw(Method::GET, "/v1/checks?level=sometimes", None)
            .await
            .unwrap(),
        400,
        "level must be \"alive\" or \"ready\"",
    );
    // Unknown types alone select nothing rather than everything.
    c.notify("example.com/x", &Default::default(), None)
        .await
        .unwrap();
    let none = c.notices(&[("types", "bogus".into())], None).await.unwrap();
    assert!(none.is_empty());
    let all = c
        .notices(&[("types", "custom,bogus".into())], None)
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
    h.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn issue5_notices_long_poll_wakes_on_a_new_notice() {
    let (sup, c, h, _) = setup("longpoll").await;
    let since = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let started = std::time::Instant::now();
    let query = [("types", "custom".to_string()), ("after", since)];
    let waiter = c.notices(&query, Some(Duration::from_secs(10)));
    let notifier = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        sup.notify(
            Some(0),
            "example.com/wake",
            [("a".to_string(), "1".to_string())].into(),
            None,
        )
        .unwrap();
    };
    let (found, ()) = tokio::join!(waiter, notifier);
    let found = found.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].key, "example.com/wake");
    assert!(started.elapsed() < Duration::from_secs(2));
    h.stop();
}
