//! Exec through the [`Client`]: `POST /v1/exec`, then the `control`, `stdio` (and `stderr`)
//! websockets on connections of their own, then the change's exit code.
//!
//! Two ways to run a command: [`Client::exec`] runs it to completion with its whole input
//! and returns its whole output (the CLI's `pebble exec`); [`Client::exec_start`] returns an
//! [`ExecProcess`] whose input, output and signals are channels, pumped to and from the
//! websockets by tasks of their own, so a caller reads and writes piecewise (the charm
//! runtime's `process` resource).

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use cairn_supervisor::exec::{Control, Stdin};
use futures_util::{SinkExt, StreamExt};
use hyper::Method;
use tokio::net::UnixStream;
use tokio::sync::mpsc;
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
    /// Run as this user id.
    pub user_id: Option<u32>,
    /// Run as this user (name).
    pub user: Option<String>,
    /// Run as this group id.
    pub group_id: Option<u32>,
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

/// A command started with [`Client::exec_start`], running while its I/O is pumped.
///
/// Its channels have the shapes of the embedded supervisor's exec endpoints
/// (`cairn_supervisor::exec::Endpoint`), so a caller drives a command the same way
/// whichever side runs it. Wait for its end with [`Client::wait_change`] on `change_id`:
/// the exit code is the first task's `exit-code`.
pub struct ExecProcess {
    /// The `exec` change.
    pub change_id: String,
    /// Its task (the websockets are addressed by it).
    pub task_id: String,
    /// Input to the command: data, then [`Stdin::End`] to close it.
    pub stdin: mpsc::Sender<Stdin>,
    /// The command's output (stderr merged in unless `split_stderr`); ends with the stream.
    pub stdout: mpsc::Receiver<Bytes>,
    /// The command's stderr, with `split_stderr`.
    pub stderr: Option<mpsc::Receiver<Bytes>>,
    /// Signals by name; [`Control::Kill`] sends `SIGKILL`. Dropping it closes the control
    /// websocket.
    pub control: mpsc::Sender<Control>,
}

type Ws = tokio_tungstenite::WebSocketStream<UnixStream>;

/// Chunks of output or input buffered between a websocket and its reader or writer.
const PUMP_DEPTH: usize = 16;

/// The text frame ending a stream, both ways.
const END: &str = r#"{"command":"end"}"#;

/// The websockets of a started command.
struct Started {
    change: String,
    task: String,
    control: Option<Ws>,
    stdio: Ws,
    stderr: Option<Ws>,
}

impl Client {
    /// Upgrades a connection opened ahead of time to the task's websocket `id`.
    async fn upgrade(stream: UnixStream, task: &str, id: &str) -> Result<Ws, ClientError> {
        let url = format!("ws://localhost/v1/tasks/{task}/websocket/{id}");
        let (ws, _) = tokio_tungstenite::client_async(url, stream)
            .await
            .map_err(|e| ClientError::Protocol(format!("cannot connect to {id} websocket: {e}")))?;
        Ok(ws)
    }

    /// The `POST /v1/exec` body, with the fields ops sends.
    fn exec_body(opts: &ExecOptions) -> serde_json::Value {
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
        if let Some(u) = opts.user_id {
            body["user-id"] = u.into();
        }
        if let Some(u) = &opts.user {
            body["user"] = u.clone().into();
        }
        if let Some(g) = opts.group_id {
            body["group-id"] = g.into();
        }
        if let Some(g) = &opts.group {
            body["group"] = g.clone().into();
        }
        if let Some(c) = &opts.service_context {
            body["service-context"] = c.clone().into();
        }
        body
    }

    /// Posts the exec and connects its websockets: `control` first when asked (the command
    /// starts once its I/O is connected, and one that ends before its control connects
    /// leaves nothing to connect to), then `stdio` and `stderr` together. The connections
    /// are opened while the request is under way and upgraded once the task id is known.
    async fn start(&self, opts: &ExecOptions, control: bool) -> Result<Started, ClientError> {
        let post = self.raw(
            Method::POST,
            "/v1/exec",
            Some(serde_json::to_vec(&Self::exec_body(opts)).unwrap_or_default()),
        );
        let optional = |wanted: bool| async move {
            match wanted {
                true => self
                    .connect_stream(&Method::POST, "/v1/exec")
                    .await
                    .map(Some),
                false => Ok(None),
            }
        };
        let streams = async {
            let (c, io, err) = tokio::join!(
                optional(control),
                self.connect_stream(&Method::POST, "/v1/exec"),
                optional(opts.split_stderr)
            );
            Ok::<_, ClientError>((c?, io?, err?))
        };
        let (posted, streams) = tokio::join!(post, streams);
        let (code, bytes) = posted?;
        let env: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(ClientError::protocol)?;
        if code != 202 {
            return Err(ClientError::Api {
                code,
                kind: env["result"]["kind"].as_str().unwrap_or("").into(),
                message: env["result"]["message"].as_str().unwrap_or("").into(),
            });
        }
        let (control_stream, stdio_stream, stderr_stream) = streams?;
        let change = env["change"].as_str().unwrap_or("").to_string();
        let task = env["result"]["task-id"].as_str().unwrap_or("").to_string();
        let control = match control_stream {
            Some(s) => Some(Self::upgrade(s, &task, "control").await?),
            None => None,
        };
        let (stdio, stderr) = match stderr_stream {
            Some(err) => {
                let (a, b) = tokio::join!(
                    Self::upgrade(stdio_stream, &task, "stdio"),
                    Self::upgrade(err, &task, "stderr")
                );
                (a?, Some(b?))
            }
            None => (Self::upgrade(stdio_stream, &task, "stdio").await?, None),
        };
        Ok(Started {
            change,
            task,
            control,
            stdio,
            stderr,
        })
    }

    /// Starts a command and returns it running, its I/O and signals as channels (pumped by
    /// tasks that end with the websockets or when the channels' other ends are dropped).
    pub async fn exec_start(&self, opts: &ExecOptions) -> Result<ExecProcess, ClientError> {
        let started = self.start(opts, true).await?;
        let (stdin_tx, stdin_rx) = mpsc::channel(PUMP_DEPTH);
        let (stdout_tx, stdout_rx) = mpsc::channel(PUMP_DEPTH);
        let (control_tx, control_rx) = mpsc::channel(4);
        let (io_sink, io_stream) = started.stdio.split();
        tokio::spawn(pump_stdin(stdin_rx, io_sink));
        tokio::spawn(pump_output(io_stream, stdout_tx));
        let stderr = started.stderr.map(|ws| {
            let (tx, rx) = mpsc::channel(PUMP_DEPTH);
            tokio::spawn(pump_output(ws.split().1, tx));
            rx
        });
        if let Some(ws) = started.control {
            tokio::spawn(pump_control(control_rx, ws));
        }
        Ok(ExecProcess {
            change_id: started.change,
            task_id: started.task,
            stdin: stdin_tx,
            stdout: stdout_rx,
            stderr,
            control: control_tx,
        })
    }

    /// Runs a command to completion, feeding it `stdin`; returns its output and exit code.
    pub async fn exec(&self, opts: &ExecOptions, stdin: &[u8]) -> Result<ExecOutput, ClientError> {
        // No control websocket: this call sends no signals.
        let started = self.start(opts, false).await?;
        let (mut io_tx, io_rx) = started.stdio.split();
        let input = Bytes::copy_from_slice(stdin);
        let send = async move {
            if !input.is_empty() {
                let _ = io_tx.send(Message::Binary(input)).await;
            }
            let _ = io_tx.send(Message::Text(END.into())).await;
            io_tx
        };
        let read = |mut rx: futures_util::stream::SplitStream<Ws>| async move {
            let mut out = Vec::new();
            while let Some(chunk) = next_output(&mut rx).await {
                out.extend_from_slice(&chunk);
            }
            out
        };
        let err_read = async {
            match started.stderr {
                Some(ws) => read(ws.split().1).await,
                None => Vec::new(),
            }
        };
        let (mut io_tx, stdout, stderr) = tokio::join!(send, read(io_rx), err_read);
        let _ = io_tx.close().await;
        let info = self.wait_change(&started.change, None).await?;
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

/// The next chunk of a command's output; `None` at the end of the stream (its `end`
/// command, a close, or a broken connection).
async fn next_output(rx: &mut futures_util::stream::SplitStream<Ws>) -> Option<Bytes> {
    while let Some(Ok(m)) = rx.next().await {
        match m {
            Message::Binary(b) => return Some(b),
            Message::Text(t) if t.as_str().contains("\"end\"") => return None,
            Message::Close(_) => return None,
            _ => {}
        }
    }
    None
}

/// Forwards a websocket's output to `tx` until the stream ends or the reader goes away.
async fn pump_output(mut rx: futures_util::stream::SplitStream<Ws>, tx: mpsc::Sender<Bytes>) {
    while let Some(chunk) = next_output(&mut rx).await {
        if tx.send(chunk).await.is_err() {
            return;
        }
    }
}

/// Forwards input to the `stdio` websocket until its end (sent as Pebble's `end` command)
/// or until the writer goes away.
async fn pump_stdin(
    mut rx: mpsc::Receiver<Stdin>,
    mut sink: futures_util::stream::SplitSink<Ws, Message>,
) {
    while let Some(input) = rx.recv().await {
        let sent = match input {
            Stdin::Data(b) => sink.send(Message::Binary(b)).await,
            Stdin::End => {
                let _ = sink.send(Message::Text(END.into())).await;
                return;
            }
        };
        if sent.is_err() {
            return;
        }
    }
}

/// Forwards signals (and resizes) to the `control` websocket as Pebble's control commands;
/// closes it when the sender is dropped.
async fn pump_control(mut rx: mpsc::Receiver<Control>, mut ws: Ws) {
    while let Some(c) = rx.recv().await {
        let msg = match c {
            Control::Signal(name) => {
                serde_json::json!({"command": "signal", "signal": {"name": name}})
            }
            Control::Kill => {
                serde_json::json!({"command": "signal", "signal": {"name": "SIGKILL"}})
            }
            Control::Resize { width, height } => {
                serde_json::json!({"command": "resize", "resize": {"width": width, "height": height}})
            }
        };
        if ws
            .send(Message::Text(msg.to_string().into()))
            .await
            .is_err()
        {
            return;
        }
    }
    let _ = ws.close(None).await;
}

#[cfg(test)]
mod tests {
    use cairn_supervisor::exec::{Control, Stdin};

    use crate::ExecOptions;
    use crate::testutil::TestApi;

    /// Everything left on a channel, to its end.
    async fn drain(rx: &mut tokio::sync::mpsc::Receiver<bytes::Bytes>) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(b) = rx.recv().await {
            out.extend_from_slice(&b);
        }
        out
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_started_command_takes_input_and_gives_output_piecewise() {
        let t = TestApi::start("exec-start").await;
        let opts = ExecOptions {
            command: vec!["sh".into(), "-c".into(), "cat; echo err >&2; exit 4".into()],
            split_stderr: true,
            ..Default::default()
        };
        let mut p = t.client.exec_start(&opts).await.unwrap();
        p.stdin.send(Stdin::Data("one ".into())).await.unwrap();
        assert_eq!(&p.stdout.recv().await.unwrap()[..], b"one ");
        p.stdin.send(Stdin::Data("two".into())).await.unwrap();
        p.stdin.send(Stdin::End).await.unwrap();
        assert_eq!(drain(&mut p.stdout).await, b"two");
        assert_eq!(drain(p.stderr.as_mut().unwrap()).await, b"err\n");
        let info = t.client.wait_change(&p.change_id, None).await.unwrap();
        assert_eq!(info.tasks[0].data["exit-code"], 4);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_started_command_gets_signals_through_its_control_websocket() {
        let t = TestApi::start("exec-signal").await;
        let opts = ExecOptions {
            command: vec!["sleep".into(), "100".into()],
            ..Default::default()
        };
        let p = t.client.exec_start(&opts).await.unwrap();
        p.control
            .send(Control::Signal("SIGTERM".into()))
            .await
            .unwrap();
        let info = t.client.wait_change(&p.change_id, None).await.unwrap();
        assert_eq!(info.tasks[0].data["exit-code"], 143);
        // Kill is SIGKILL; dropping the process's channels ends its pumps.
        let p = t.client.exec_start(&opts).await.unwrap();
        p.control.send(Control::Kill).await.unwrap();
        let info = t.client.wait_change(&p.change_id, None).await.unwrap();
        assert_eq!(info.tasks[0].data["exit-code"], 137);
    }
}
