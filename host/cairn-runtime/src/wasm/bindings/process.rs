//! The `process` resource: a command a guest started with `exec`, its stdin, its output
//! streams (read piecewise or to the end) and its signals. Whichever backend runs the
//! command, its I/O arrives as the same channels (the embedded supervisor's exec endpoints,
//! or `cairn_api::ExecProcess`'s websocket pumps); only waiting for its change differs.
//! A custom backend's command ([`Command`]) runs once the guest has given all its stdin
//! (it closed stdin, read output or waited); its output is then read from memory.

use cairn_supervisor::Supervisor;
use cairn_supervisor::exec::{Control, Endpoint, ExecStarted, Stdin};
use wasmtime::component::Resource;

use super::convert::api_error;
use super::remote::client_error;
use super::{StoreState, pebble, until_deadline};
use crate::wasm::backend::{ExecSlot, PebbleClient};
use crate::wasm::custom::{Command, ExecOutput};

/// A command started by a guest: its I/O channels and change.
pub struct ProcessRes {
    waiter: Waiter,
    change: String,
    stdin: Option<tokio::sync::mpsc::Sender<Stdin>>,
    stdout: OutputStream,
    stderr: OutputStream,
    control: Option<tokio::sync::mpsc::Sender<Control>>,
    /// Through the API: its place in the host's budget of concurrent execs, given back
    /// when the process is dropped.
    _slot: Option<ExecSlot>,
    /// From a custom backend: the command until it runs, and the stdin it was given.
    pending: Option<Pending>,
}

/// A custom backend's command that has not run yet.
struct Pending {
    command: Box<dyn Command>,
    stdin: Vec<u8>,
    split_stderr: bool,
}

/// Where the command's change is waited on.
#[derive(Clone)]
enum Waiter {
    Embedded(Supervisor),
    Pebble(PebbleClient),
    /// A custom backend's command: how it ended, once it ran.
    Done(Option<Result<i32, pebble::Error>>),
}

impl Waiter {
    /// Waits for the change to end: the command's exit code (-1 when it has none, as
    /// ops reads it) and the change's error.
    async fn wait(&self, change: &str) -> Result<(i32, Option<String>), pebble::Error> {
        let exit_code = |data: Option<&serde_json::Map<String, serde_json::Value>>| {
            data.and_then(|d| d.get("exit-code"))
                .and_then(|v| v.as_i64())
                .unwrap_or(-1) as i32
        };
        match self {
            Waiter::Embedded(sup) => {
                let info = sup.wait_change(change, None).await.map_err(api_error)?;
                Ok((exit_code(info.tasks.first().map(|t| &t.data)), info.err))
            }
            Waiter::Pebble(c) => {
                let info = c
                    .api()
                    .wait_change(change, None)
                    .await
                    .map_err(client_error)?;
                Ok((exit_code(info.tasks.first().map(|t| &t.data)), info.err))
            }
            Waiter::Done(Some(Ok(code))) => Ok((*code, None)),
            Waiter::Done(Some(Err(e))) => Err(e.clone()),
            Waiter::Done(None) => Err(pebble::Error::Connection("the command never ran".into())),
        }
    }
}

impl ProcessRes {
    /// Connects to a started command's streams: control, stderr when split, then stdio.
    pub(super) fn connect(
        sup: Supervisor,
        started: &ExecStarted,
        split_stderr: bool,
    ) -> Result<Self, pebble::Error> {
        let connect = |id: &str| sup.exec_connect(&started.task_id, id).map_err(api_error);
        let mut res = ProcessRes {
            waiter: Waiter::Embedded(sup.clone()),
            change: started.change_id.clone(),
            stdin: None,
            stdout: OutputStream::default(),
            stderr: OutputStream::default(),
            control: None,
            _slot: None,
            pending: None,
        };
        if let Endpoint::Control(c) = connect("control")? {
            res.control = Some(c);
        }
        if split_stderr && let Endpoint::Stderr(e) = connect("stderr")? {
            res.stderr.rx = Some(e);
        }
        if let Endpoint::Stdio { stdin, stdout } = connect("stdio")? {
            res.stdin = Some(stdin);
            res.stdout.rx = Some(stdout);
        }
        Ok(res)
    }

    /// A command started through a container's Pebble API, holding its exec slot.
    pub(super) fn remote(c: PebbleClient, p: cairn_api::ExecProcess, slot: ExecSlot) -> Self {
        ProcessRes {
            waiter: Waiter::Pebble(c),
            change: p.change_id,
            stdin: Some(p.stdin),
            stdout: OutputStream {
                rx: Some(p.stdout),
                pending: Default::default(),
            },
            stderr: OutputStream {
                rx: p.stderr,
                pending: Default::default(),
            },
            control: Some(p.control),
            _slot: Some(slot),
            pending: None,
        }
    }

    /// A command a custom backend accepted; it runs when the guest has given its stdin.
    pub(super) fn custom(command: Box<dyn Command>, split_stderr: bool) -> Self {
        ProcessRes {
            waiter: Waiter::Done(None),
            change: String::new(),
            stdin: None,
            stdout: OutputStream::default(),
            stderr: OutputStream::default(),
            control: None,
            _slot: None,
            pending: Some(Pending {
                command,
                stdin: Vec::new(),
                split_stderr,
            }),
        }
    }

    /// Takes in how a custom backend's command ended: its output becomes the streams'
    /// (stderr after stdout on the one stream unless split, as a real command's merged
    /// output), its end the waiter's.
    fn ran(&mut self, ended: Result<ExecOutput, pebble::Error>, split_stderr: bool) {
        match ended {
            Ok(mut out) => {
                if !split_stderr {
                    let err = std::mem::take(&mut out.stderr);
                    out.stdout.extend(err);
                }
                self.stdout.pending = out.stdout.into();
                self.stderr.pending = out.stderr.into();
                self.waiter = Waiter::Done(Some(Ok(out.exit_code)));
            }
            Err(e) => self.waiter = Waiter::Done(Some(Err(e))),
        }
    }
}

impl Drop for ProcessRes {
    /// A command the guest did not wait for dies with its event, as Pebble kills one whose
    /// client went away (its control websocket closed abnormally when the hook ended).
    fn drop(&mut self) {
        if let Some(c) = &self.control {
            let _ = c.try_send(Control::Kill);
        }
    }
}

/// One output stream of a command as the guest reads it: the channel from the supervisor
/// and what was received but not yet handed over.
#[derive(Default)]
struct OutputStream {
    rx: Option<tokio::sync::mpsc::Receiver<bytes::Bytes>>,
    pending: bytes::Bytes,
}

impl OutputStream {
    /// Up to `max` bytes, waiting for some; `None` at the end of the stream.
    async fn read(&mut self, max: usize) -> Option<bytes::Bytes> {
        while self.pending.is_empty() {
            self.pending = self.rx.as_mut()?.recv().await?;
        }
        let n = self.pending.len().min(max.max(1));
        Some(self.pending.split_to(n))
    }

    /// Everything left, to the end of the stream, keeping at most `limit` bytes (the rest
    /// is read and dropped, so the command is never blocked on a full pipe); `None` when
    /// the output went past the limit.
    async fn read_to_end(&mut self, limit: usize) -> Option<Vec<u8>> {
        let mut buf = std::mem::take(&mut self.pending).to_vec();
        let mut over = buf.len() > limit;
        if let Some(rx) = self.rx.as_mut() {
            while let Some(b) = rx.recv().await {
                if !over && buf.len() + b.len() <= limit {
                    buf.extend_from_slice(&b);
                } else if !over {
                    over = true;
                    buf = Vec::new();
                }
            }
        }
        (!over).then_some(buf)
    }
}

/// The most one `read-stdout`/`read-stderr` hands over, whatever the guest asks for.
const MAX_READ: usize = 1 << 20;

impl pebble::HostProcess for StoreState {
    async fn write_stdin(
        &mut self,
        self_: Resource<ProcessRes>,
        data: Vec<u8>,
    ) -> Result<(), pebble::Error> {
        let limit = self.output_limit;
        if let Ok(p) = self.table.get_mut(&self_)
            && let Some(pending) = p.pending.as_mut()
        {
            // Held by the host until the command runs: no more than the guest could hold.
            if pending.stdin.len() + data.len() > limit {
                return Err(pebble::Error::Api(pebble::ApiError {
                    code: 413,
                    status: "Request Entity Too Large".into(),
                    kind: String::new(),
                    message: format!(
                        "cannot write to the command's stdin: it exceeds {} MiB, the unit's \
                         memory limit",
                        limit >> 20
                    ),
                }));
            }
            pending.stdin.extend_from_slice(&data);
            return Ok(());
        }
        let tx = self.process(&self_)?.stdin.clone();
        let tx = tx.ok_or_else(|| pebble::Error::Connection("stdin is closed".into()))?;
        until_deadline(self.deadline, "write to the command's stdin", async move {
            tx.send(Stdin::Data(data.into()))
                .await
                .map_err(|_| pebble::Error::Connection("the command's stdin is closed".into()))
        })
        .await
    }

    async fn close_stdin(&mut self, self_: Resource<ProcessRes>) {
        self.run_pending(&self_).await;
        if let Ok(p) = self.table.get_mut(&self_)
            && let Some(tx) = p.stdin.take()
        {
            let _ = until_deadline(self.deadline, "close the command's stdin", async move {
                let _ = tx.send(Stdin::End).await;
                Ok(())
            })
            .await;
        }
    }

    async fn send_signal(
        &mut self,
        self_: Resource<ProcessRes>,
        signal: String,
    ) -> Result<(), pebble::Error> {
        let signal = if signal.starts_with("SIG") {
            signal
        } else {
            format!("SIG{signal}")
        };
        let p = self.process(&self_)?;
        if matches!(p.waiter, Waiter::Done(_)) {
            // A custom backend's command has ended (or ends at once): nothing to signal.
            return Ok(());
        }
        let tx = p.control.clone();
        let tx = tx.ok_or_else(|| pebble::Error::Connection("no control channel".into()))?;
        until_deadline(self.deadline, "send a signal to the command", async move {
            tx.send(Control::Signal(signal))
                .await
                .map_err(|_| pebble::Error::Connection("the command has ended".into()))
        })
        .await
    }

    async fn read_stdout(
        &mut self,
        self_: Resource<ProcessRes>,
        max: u32,
    ) -> Result<Option<Vec<u8>>, pebble::Error> {
        self.read_output(self_, max, false).await
    }

    async fn read_stderr(
        &mut self,
        self_: Resource<ProcessRes>,
        max: u32,
    ) -> Result<Option<Vec<u8>>, pebble::Error> {
        self.read_output(self_, max, true).await
    }

    async fn wait(&mut self, self_: Resource<ProcessRes>) -> Result<i32, pebble::Error> {
        self.finish(self_, false).await.map(|o| o.exit_code)
    }

    async fn wait_output(
        &mut self,
        self_: Resource<ProcessRes>,
    ) -> Result<pebble::ExecOutput, pebble::Error> {
        self.finish(self_, true).await
    }

    fn drop(&mut self, rep: Resource<ProcessRes>) -> wasmtime::Result<()> {
        // A process dropped without waiting is killed (`ProcessRes`'s Drop).
        self.table.delete(rep)?;
        Ok(())
    }
}

impl StoreState {
    /// Runs a custom backend's command if it has not run, on a blocking thread (a command
    /// takes time, as a real one does), until the event's deadline.
    async fn run_pending(&mut self, res: &Resource<ProcessRes>) {
        let Some(p) = self.table.get_mut(res).ok().and_then(|p| p.pending.take()) else {
            return;
        };
        let Pending {
            command,
            stdin,
            split_stderr,
        } = p;
        let ended = until_deadline(self.deadline, "wait for the command", async move {
            tokio::task::spawn_blocking(move || command.run(stdin))
                .await
                .map_err(|e| pebble::Error::Connection(format!("cannot run the command: {e}")))?
                .map_err(super::convert::custom_error)
        })
        .await;
        if let Ok(p) = self.table.get_mut(res) {
            p.ran(ended, split_stderr);
        }
    }

    /// The process a handle names.
    fn process(&self, res: &Resource<ProcessRes>) -> Result<&ProcessRes, pebble::Error> {
        self.table
            .get(res)
            .map_err(|e| pebble::Error::Connection(e.to_string()))
    }

    /// One `read-stdout`/`read-stderr`: the stream is taken out of the table while the
    /// host waits on it, and put back afterwards.
    async fn read_output(
        &mut self,
        res: Resource<ProcessRes>,
        max: u32,
        stderr: bool,
    ) -> Result<Option<Vec<u8>>, pebble::Error> {
        self.run_pending(&res).await;
        let p = self
            .table
            .get_mut(&res)
            .map_err(|e| pebble::Error::Connection(e.to_string()))?;
        if let Waiter::Done(Some(Err(e))) = &p.waiter {
            return Err(e.clone());
        }
        let slot = if stderr { &mut p.stderr } else { &mut p.stdout };
        let mut stream = std::mem::take(slot);
        let max = (max as usize).min(MAX_READ);
        let what = if stderr { "read stderr" } else { "read stdout" };
        let got = until_deadline(self.deadline, what, async { Ok(stream.read(max).await) }).await;
        if let Ok(p) = self.table.get_mut(&res) {
            *(if stderr { &mut p.stderr } else { &mut p.stdout }) = stream;
        }
        got.map(|b| b.map(|b| b.to_vec()))
    }

    /// Closes stdin, drains the output (kept when `keep`), waits for the change and returns
    /// the exit code and output; a change error (such as a timeout) is the error.
    async fn finish(
        &mut self,
        res: Resource<ProcessRes>,
        keep: bool,
    ) -> Result<pebble::ExecOutput, pebble::Error> {
        self.run_pending(&res).await;
        let p = self
            .table
            .get_mut(&res)
            .map_err(|e| pebble::Error::Connection(e.to_string()))?;
        let stdin = p.stdin.take();
        let mut out = std::mem::take(&mut p.stdout);
        let mut err = std::mem::take(&mut p.stderr);
        let (waiter, change) = (p.waiter.clone(), p.change.clone());
        // What is not kept is still drained, so the command can run to its end.
        let limit = if keep { self.output_limit } else { 0 };
        until_deadline(self.deadline, "wait for the command", async move {
            if let Some(tx) = stdin {
                let _ = tx.send(Stdin::End).await;
            }
            let (stdout, stderr) = tokio::join!(out.read_to_end(limit), err.read_to_end(limit));
            let (exit_code, err) = waiter.wait(&change).await?;
            if let Some(e) = err {
                return Err(pebble::Error::Change(pebble::ChangeError {
                    change_id: change,
                    err: e,
                }));
            }
            let (stdout, stderr) = match (keep, stdout, stderr) {
                (false, _, _) => (Vec::new(), Vec::new()),
                (true, Some(o), Some(e)) => (o, e),
                _ => {
                    return Err(pebble::Error::Api(pebble::ApiError {
                        code: 413,
                        status: "Request Entity Too Large".into(),
                        kind: String::new(),
                        message: format!(
                            "cannot wait for the command's output: it exceeds {} MiB, the unit's \
                             memory limit; read it with read-stdout",
                            limit >> 20
                        ),
                    }));
                }
            };
            Ok(pebble::ExecOutput {
                exit_code,
                stdout,
                stderr,
            })
        })
        .await
    }
}
