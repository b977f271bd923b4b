//! The control protocol between the CLI and `cairn run`: one JSON request and one JSON
//! reply per connection on `<state dir>/cairn.sock`.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// File name of the control socket inside the state directory.
pub const SOCKET: &str = "cairn.sock";

/// A request to the daemon.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    /// Deploy a charm directory or `.wasm`.
    Deploy {
        path: String,
        name: Option<String>,
        config: Vec<(String, String)>,
        /// Budget overrides `key=value`.
        #[serde(default)]
        limits: Vec<(String, String)>,
        /// How many units (0 or absent: one).
        #[serde(default)]
        units: u32,
    },
    /// Move an app to a new charm (directory or `.wasm`).
    Refresh { app: String, path: String },
    /// Add units to an app.
    AddUnit { app: String, n: u32 },
    /// Remove units (`app/N`).
    RemoveUnit { units: Vec<String> },
    /// Relate two applications (`app` or `app:endpoint` each).
    Integrate { one: String, other: String },
    /// Remove a relation (two ends, or an id alone).
    RemoveRelation { one: String, other: Option<String> },
    /// Retry (or, with `no_retry`, drop) the event a unit in error is failing on.
    Resolve { unit: String, no_retry: bool },
    /// Set or reset config; with neither, read it. `limits` changes the app's budget.
    Config {
        app: String,
        set: Vec<(String, String)>,
        reset: Vec<String>,
        #[serde(default)]
        limits: Vec<(String, String)>,
        /// Reply once every unit ran `config-changed` for the new config (up to this many
        /// seconds).
        #[serde(default)]
        wait: Option<u64>,
    },
    /// An app's budget and its limit hits.
    Limits { app: String },
    /// The model's status, narrowed to some applications when any are named.
    Status {
        /// The applications to show (every one when empty).
        #[serde(default)]
        apps: Vec<String>,
    },
    /// Every tenant's counters, as an OpenMetrics page.
    Metrics,
    /// A unit's event history.
    Events { unit: String, n: Option<usize> },
    /// Remove an app.
    Remove { app: String },
    /// Queue an action on a unit; with `wait`, reply when it has finished.
    RunAction {
        unit: String,
        action: String,
        params: Vec<(String, String)>,
        wait: Option<u64>,
    },
    /// An action run's record.
    ShowAction { id: String },
}

/// The daemon's reply.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reply {
    /// Success with a JSON value.
    Ok(serde_json::Value),
    /// Failure with one line of text.
    Error(String),
}

/// Decodes one request line as the daemon reads it (pure, so that it can be fuzzed:
/// tests/fuzz compiles this file on its own).
pub fn decode_request(line: impl AsRef<[u8]>) -> serde_json::Result<Request> {
    serde_json::from_slice(line.as_ref())
}

/// Sends one request to the daemon of `dir` and returns its value (blocking: a client
/// command needs no runtime for one request).
pub fn call_blocking(dir: &Path, req: &Request) -> Result<serde_json::Value> {
    let mut line = serde_json::to_vec(req)?;
    line.push(b'\n');
    exchange(dir, &line)
}

/// Sends one request to the daemon of `dir` and returns its value, on a blocking thread.
pub async fn call(dir: &Path, req: &Request) -> Result<serde_json::Value> {
    let mut line = serde_json::to_vec(req)?;
    line.push(b'\n');
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || exchange(&dir, &line)).await?
}

/// Writes one request line to the daemon of `dir` and reads its reply.
fn exchange(dir: &Path, line: &[u8]) -> Result<serde_json::Value> {
    use std::io::{BufRead, Write};
    let path = dir.join(SOCKET);
    let short = cairn_api::sockpath::SocketPath::new(&path)
        .with_context(|| format!("cannot connect to {}", path.display()))?;
    let stream = std::os::unix::net::UnixStream::connect(short.path()).with_context(|| {
        format!(
            "cannot connect to the cairn daemon at {} (start it with `cairn run`)",
            path.display()
        )
    })?;
    (&stream).write_all(line)?;
    stream.shutdown(std::net::Shutdown::Write)?;
    let mut reply = String::new();
    std::io::BufReader::new(&stream).read_line(&mut reply)?;
    decode_reply(&reply)
}

/// The value of a reply line, or its error.
fn decode_reply(reply: &str) -> Result<serde_json::Value> {
    if reply.is_empty() {
        bail!("cannot read reply: the daemon closed the connection");
    }
    match serde_json::from_str::<Reply>(reply).context("cannot decode reply")? {
        Reply::Ok(v) => Ok(v),
        Reply::Error(e) => bail!("{e}"),
    }
}
