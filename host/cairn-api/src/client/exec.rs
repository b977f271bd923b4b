//! Exec through the [`Client`]: `POST /v1/exec`, then the `stdio` (and `stderr`) and
//! `control` websockets on connections of their own, then the change's exit code.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use hyper::Method;
use tokio::net::UnixStream;
use tokio_tungstenite::tungstenite::Message;

use crate::{Client, ClientError};

/// What to run (`POST /v1/exec` fields).
#[derive(Clone, Debug, Default)]
pub struct ExecOptions {
    /// The command and its arguments.
    pub command: Vec<String>,
    /// Environment overrides.
    pub environment: BTreeMap<String, String>,
    /// Working directory.
    pub working_dir: Option<String>,
    /// Kill after this long.
    pub timeout: Option<Duration>,
    /// Run as this user (name).
    pub user: Option<String>,
    /// Run as this group (name).
    pub group: Option<String>,
    /// Inherit this service's environment, user, group and working dir.
    pub service_context: Option<String>,
    /// Use a pseudo-terminal.
    pub terminal: bool,
    /// Forward stdin to the terminal.
    pub interactive: bool,
    /// Keep stderr apart.
    pub split_stderr: bool,
}

/// How an exec ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecOutput {
    /// Exit code (128 + signal when killed; -1 when it never ran to completion).
    pub exit_code: i64,
    /// Standard output (with stderr unless `split_stderr`).
    pub stdout: Vec<u8>,
    /// Standard error, with `split_stderr`.
    pub stderr: Vec<u8>,
    /// The change's error (a timeout), if any.
    pub error: Option<String>,
}

type Ws = tokio_tungstenite::WebSocketStream<UnixStream>;

impl Client {
    /// Upgrades a connection opened ahead of time to the task's websocket `id`.
    async fn upgrade(stream: UnixStream, task: &str, id: &str) -> Result<Ws, ClientError> {
        let url = format!("ws://localhost/v1/tasks/{task}/websocket/{id}");
        let (ws, _) = tokio_tungstenite::client_async(url, stream)
            .await
            .map_err(|e| ClientError::Protocol(format!("cannot connect to {id} websocket: {e}")))?;
        Ok(ws)
    }

    /// Runs a command to completion, feeding it `stdin`; returns its output and exit code.
    pub async fn exec(&self, opts: &ExecOptions, stdin: &[u8]) -> Result<ExecOutput, ClientError> {
        let mut body = serde_json::json!({
            "command": opts.command,
            "environment": opts.environment,
            "terminal": opts.terminal,
            "interactive": opts.interactive,
            "split-stderr": opts.split_stderr,
        });
        if let Some(d) = &opts.working_dir {
            body["working-dir"] = d.clone().into();
        }
        if let Some(t) = opts.timeout {
            body["timeout"] = cairn_plan::format_duration(t).into();
        }
        if let Some(u) = &opts.user {
            body["user"] = u.clone().into();
        }
        if let Some(g) = &opts.group {
            body["group"] = g.clone().into();
        }
        if let Some(c) = &opts.service_context {
            body["service-context"] = c.clone().into();
        }
        // The I/O connections are opened while the request is under way; they are upgraded
        // once the task id is known.
        let post = self.raw(
            Method::POST,
            "/v1/exec",
            Some(serde_json::to_vec(&body).unwrap_or_default()),
        );
        let streams = async {
            if opts.split_stderr {
                let (a, b) = tokio::join!(self.connect_stream(), self.connect_stream());
                Ok::<_, ClientError>((a?, Some(b?)))
            } else {
                Ok((self.connect_stream().await?, None))
            }
        };
        let (posted, streams) = tokio::join!(post, streams);
        let (code, bytes) = posted?;
        let (stdio_stream, stderr_stream) = streams?;
        let env: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(ClientError::protocol)?;
        if code != 202 {
            return Err(ClientError::Api {
                code,
                kind: env["result"]["kind"].as_str().unwrap_or("").into(),
                message: env["result"]["message"].as_str().unwrap_or("").into(),
            });
        }
        let change = env["change"].as_str().unwrap_or("").to_string();
        let task = env["result"]["task-id"].as_str().unwrap_or("").to_string();
        // The control websocket is optional (this client sends no signals); the I/O ones
        // connect together.
        let (stdio, stderr_ws) = match stderr_stream {
            Some(err) => {
                let (a, b) = tokio::join!(
                    Self::upgrade(stdio_stream, &task, "stdio"),
                    Self::upgrade(err, &task, "stderr")
                );
                (a?, Some(b?))
            }
            None => (Self::upgrade(stdio_stream, &task, "stdio").await?, None),
        };
        let (mut io_tx, io_rx) = stdio.split();
        let input = Bytes::copy_from_slice(stdin);
        let send = async move {
            if !input.is_empty() {
                let _ = io_tx.send(Message::Binary(input)).await;
            }
            let _ = io_tx
                .send(Message::Text(r#"{"command":"end"}"#.into()))
                .await;
            io_tx
        };
        let read = |mut rx: futures_util::stream::SplitStream<Ws>| async move {
            let mut out = Vec::new();
            while let Some(Ok(m)) = rx.next().await {
                match m {
                    Message::Binary(b) => out.extend_from_slice(&b),
                    Message::Text(t) if t.as_str().contains("\"end\"") => break,
                    Message::Close(_) => break,
                    _ => {}
                }
            }
            out
        };
        let err_read = async {
            match stderr_ws {
                Some(ws) => read(ws.split().1).await,
                None => Vec::new(),
            }
        };
        let (mut io_tx, stdout, stderr) = tokio::join!(send, read(io_rx), err_read);
        let _ = io_tx.close().await;
        let info = self.wait_change(&change, None).await?;
        let exit_code = info
            .tasks
            .first()
            .and_then(|t| t.data.get("exit-code"))
            .and_then(|v| v.as_i64())
            .unwrap_or(-1);
        Ok(ExecOutput {
            exit_code,
            stdout,
            stderr,
            error: info.err,
        })
    }
}
