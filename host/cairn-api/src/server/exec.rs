//! `POST /v1/exec` and the task websockets `GET /v1/tasks/{task-id}/websocket/{id}`,
//! exactly as Pebble's exec protocol: `stdio` carries binary frames both ways and a text
//! frame `{"command":"end"}` for end of stream, `stderr` the same outward, `control` JSON
//! text commands (`resize`, `signal`); an abnormal close of `control` kills the command.

use std::collections::BTreeMap;

use bytes::Bytes;
use cairn_supervisor::SupervisorError;
use cairn_supervisor::exec::{Control, Endpoint, ExecArgs, Stdin};
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::{Body, Call, full};
use crate::envelope::Reply;

const END: &str = r#"{"command":"end"}"#;

#[derive(Deserialize, Default)]
#[serde(default)]
struct Payload {
    command: Option<Vec<String>>,
    #[serde(rename = "service-context")]
    service_context: Option<String>,
    environment: Option<BTreeMap<String, String>>,
    #[serde(rename = "working-dir")]
    working_dir: Option<String>,
    timeout: Option<String>,
    #[serde(rename = "user-id")]
    user_id: Option<u32>,
    user: Option<String>,
    #[serde(rename = "group-id")]
    group_id: Option<u32>,
    group: Option<String>,
    terminal: Option<bool>,
    interactive: Option<bool>,
    #[serde(rename = "split-stderr")]
    split_stderr: Option<bool>,
    width: Option<u16>,
    height: Option<u16>,
}

/// `POST /v1/exec`: starts the command; answers with its change and task id, whose
/// websockets carry its input, output and control.
pub(super) fn post(call: &Call<'_>, body: &[u8]) -> Reply {
    let sup = call.sup();
    let p: Payload = match serde_json::from_slice(body) {
        Ok(p) => p,
        Err(e) => return Reply::bad_request(format!("cannot decode request body: {e}")),
    };
    let command = p.command.unwrap_or_default();
    if command.is_empty() {
        return Reply::bad_request("must specify command");
    }
    let timeout = match p.timeout.as_deref() {
        None | Some("") => None,
        Some(t) => match cairn_plan::parse_duration(t) {
            Ok(d) => Some(d).filter(|d| !d.is_zero()),
            Err(e) => return Reply::bad_request(format!("invalid timeout: {e}")),
        },
    };
    let plan = sup.plan();
    let overrides = cairn_plan::ContextOptions {
        environment: p.environment.unwrap_or_default(),
        user_id: p.user_id,
        user: p.user.unwrap_or_default(),
        group_id: p.group_id,
        group: p.group.unwrap_or_default(),
        working_dir: p.working_dir.unwrap_or_default(),
    };
    let merged =
        match plan.merge_service_context(p.service_context.as_deref().unwrap_or(""), overrides) {
            Ok(m) => m,
            Err(e) => return Reply::bad_request(e.to_string()),
        };
    let ids = match cairn_supervisor::users_normalize(
        merged.user_id,
        merged.group_id,
        &merged.user,
        &merged.group,
    ) {
        Ok(ids) => ids,
        Err(e) => return Reply::bad_request(e),
    };
    let args = ExecArgs {
        command,
        environment: merged.environment,
        working_dir: merged.working_dir,
        timeout,
        user_id: ids.map(|(u, _)| u),
        group_id: ids.map(|(_, g)| g),
        terminal: p.terminal.unwrap_or(false),
        interactive: p.interactive.unwrap_or(false),
        split_stderr: p.split_stderr.unwrap_or(false),
        width: p.width.unwrap_or(0),
        height: p.height.unwrap_or(0),
    };
    match sup.exec(args) {
        Ok(s) => Reply::async_with(
            s.change_id,
            serde_json::json!({
                "environment": s.environment,
                "task-id": s.task_id,
                "working-dir": s.working_dir,
            }),
        ),
        // Through the one mapping: 400 for a bad request, 429 when the container runs as
        // many execs as its budget allows, 500 otherwise (as Pebble's).
        Err(e) => super::sup_error(e),
    }
}

/// `GET /v1/tasks/{task-id}/websocket/{websocket-id}`: upgrades and bridges the endpoint.
pub(super) fn websocket(call: &Call<'_>, req: Request<Incoming>) -> Response<Body> {
    let (sup, task_id, ws_id) = (call.sup(), call.var(0), call.var(1));
    let key = req
        .headers()
        .get("Sec-WebSocket-Key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let upgrade_ok = req
        .headers()
        .get("Upgrade")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let endpoint = match sup.exec_connect(task_id, ws_id) {
        Ok(ep) => ep,
        Err(SupervisorError::NotFound(m)) => return full(Reply::not_found(m)),
        Err(e) => return full(Reply::bad_request(e.to_string())),
    };
    let (Some(key), true) = (key, upgrade_ok) else {
        return full(Reply::bad_request(
            "websocket: the client is not using the websocket protocol",
        ));
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    tokio::spawn(async move {
        let Ok(upgraded) = hyper::upgrade::on(req).await else {
            return;
        };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        bridge(ws, endpoint).await;
    });
    Response::builder()
        .status(101)
        .header("Upgrade", "websocket")
        .header("Connection", "Upgrade")
        .header("Sec-WebSocket-Accept", accept)
        .body(Empty::<Bytes>::new().map_err(|e| match e {}).boxed())
        .unwrap()
}

type Ws = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Output channel → binary frames, then the end command.
async fn send_output(
    tx: &mut futures_util::stream::SplitSink<Ws, Message>,
    mut out: mpsc::Receiver<Bytes>,
) {
    while let Some(b) = out.recv().await {
        if tx.send(Message::Binary(b)).await.is_err() {
            return;
        }
    }
    let _ = tx.send(Message::Text(END.into())).await;
}

async fn bridge(ws: Ws, endpoint: Endpoint) {
    let (mut tx, mut rx) = ws.split();
    match endpoint {
        Endpoint::Stdio { stdin, stdout } => {
            let input = async move {
                while let Some(msg) = rx.next().await {
                    match msg {
                        Ok(Message::Binary(b)) => {
                            if stdin.send(Stdin::Data(b)).await.is_err() {
                                return;
                            }
                        }
                        Ok(Message::Text(t)) => {
                            let cmd: serde_json::Value =
                                serde_json::from_str(t.as_str()).unwrap_or_default();
                            if cmd["command"] == "end" {
                                let _ = stdin.send(Stdin::End).await;
                                // Keep reading until the client closes.
                            }
                        }
                        Ok(Message::Close(_)) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
                let _ = stdin.send(Stdin::End).await;
            };
            let output = async move {
                send_output(&mut tx, stdout).await;
                let _ = tx.close().await;
            };
            tokio::join!(input, output);
        }
        Endpoint::Stderr(out) => {
            let drain = async move { while let Some(Ok(_)) = rx.next().await {} };
            let output = async move {
                send_output(&mut tx, out).await;
                let _ = tx.close().await;
            };
            tokio::join!(drain, output);
        }
        Endpoint::Control(ctl) => {
            while let Some(msg) = rx.next().await {
                match msg {
                    Ok(Message::Text(t)) => {
                        let v: serde_json::Value =
                            serde_json::from_str(t.as_str()).unwrap_or_default();
                        let cmd = match v["command"].as_str() {
                            Some("signal") => v["signal"]["name"]
                                .as_str()
                                .map(|n| Control::Signal(n.to_string())),
                            Some("resize") => Some(Control::Resize {
                                width: v["resize"]["width"].as_u64().unwrap_or(0) as u16,
                                height: v["resize"]["height"].as_u64().unwrap_or(0) as u16,
                            }),
                            other => {
                                tracing::info!("invalid control websocket command {other:?}");
                                None
                            }
                        };
                        if let Some(c) = cmd
                            && ctl.send(c).await.is_err()
                        {
                            break;
                        }
                    }
                    Ok(Message::Close(_)) => break,
                    Err(_) => {
                        // Abnormal closure: kill the command, as Pebble does.
                        let _ = ctl.send(Control::Kill).await;
                        break;
                    }
                    Ok(_) => {}
                }
            }
            let _ = tx.close().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use hyper::Method;

    use crate::ExecOptions;
    use crate::testutil::{TestApi, check};

    #[tokio::test(flavor = "multi_thread")]
    async fn exec_runs_a_command_with_stderr_apart() {
        let t = TestApi::start("exec").await;
        let opts = ExecOptions {
            command: vec!["sh".into(), "-c".into(), "cat; echo err >&2; exit 3".into()],
            split_stderr: true,
            ..Default::default()
        };
        let out = t.client.exec(&opts, b"in\n").await.unwrap();
        assert_eq!(
            (out.exit_code, &out.stdout[..], &out.stderr[..]),
            (3, &b"in\n"[..], &b"err\n"[..])
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn exec_requests_get_pebbles_errors() {
        let t = TestApi::start("exec-errors").await;
        let c = &t.client;
        let post = |body: &'static str| c.raw(Method::POST, "/v1/exec", Some(body.into()));
        check(post("{}").await.unwrap(), 400, "must specify command");
        check(
            post(r#"{"command":["true"],"timeout":"soon"}"#)
                .await
                .unwrap(),
            400,
            "invalid timeout: ",
        );
        check(
            post("[").await.unwrap(),
            400,
            "cannot decode request body: ",
        );
        check(
            c.raw(Method::GET, "/v1/tasks/nope/websocket/stdio", None)
                .await
                .unwrap(),
            404,
            "",
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_exec_past_the_containers_budget_is_429_too_many_requests() {
        let t = TestApi::start("exec-busy").await;
        t.sup.set_limits(cairn_supervisor::ContainerLimits {
            execs: 1,
            ..cairn_supervisor::ContainerLimits::UNLIMITED
        });
        let post = || {
            t.client.raw(
                Method::POST,
                "/v1/exec",
                Some(r#"{"command":["sleep","100"]}"#.into()),
            )
        };
        // The first waits for its websockets, holding the one slot.
        let (code, body) = post().await.unwrap();
        assert_eq!(code, 202, "{}", String::from_utf8_lossy(&body));
        let (code, body) = post().await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            (code, v["status"].as_str()),
            (429, Some("Too Many Requests")),
            "{v}"
        );
        assert_eq!(
            v["result"]["message"],
            "cannot call exec: 1 commands are running, the container's budget of concurrent execs"
        );
        assert_eq!(t.sup.limit_hits().snapshot().get("execs"), Some(&1));
    }
}
