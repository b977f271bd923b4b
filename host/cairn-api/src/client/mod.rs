//! A typed client for Pebble's API over a unix socket, keeping one connection alive.
//!
//! This module holds the connection and the JSON endpoints; [`exec`] adds commands over
//! the task websockets and [`files`] the streaming file calls.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{Connection, SendRequest};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::net::UnixStream;
use tokio::sync::{Mutex, mpsc};

use crate::envelope::{Envelope, ErrorResult};
use crate::types::{ChangeInfo, CheckInfo, Notice, ServiceInfo};

mod exec;
mod files;

pub use exec::{ExecOptions, ExecOutput, ExecProcess};

/// Errors of API calls, shaped like the `ops.pebble` exception families.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket cannot be reached (worded as Pebble's client words it).
    #[error(
        "cannot communicate with server: {request}: {}",
        unreachable(socket, error)
    )]
    Connection {
        /// The request, as Go's HTTP client names it (`Get "http://localhost/v1/services"`).
        request: String,
        /// The socket's path.
        socket: String,
        /// Why it could not be reached.
        error: std::io::Error,
    },
    /// The API refused the request.
    #[error("{message}")]
    Api {
        /// HTTP status code.
        code: u16,
        /// Pebble's error kind (empty when none).
        kind: String,
        /// The message.
        message: String,
    },
    /// A file operation failed on its path (a files response's per-path error, or a
    /// listing's error with a path kind), as `ops.pebble.PathError`.
    #[error("{message}")]
    Path {
        /// `not-found`, `permission-denied` or `generic-file-error`.
        kind: String,
        /// Pebble's (Go-style) message.
        message: String,
    },
    /// A change ended in error.
    #[error("{err}")]
    Change {
        /// The change.
        change_id: String,
        /// Its error text.
        err: String,
    },
    /// The reply was not what the API promises.
    #[error("cannot decode response: {0}")]
    Protocol(String),
}

impl ClientError {
    /// A reply or request that does not follow the API, from whatever failed to handle it.
    fn protocol(e: impl std::fmt::Display) -> Self {
        ClientError::Protocol(e.to_string())
    }
}

/// `GET /v1/system-info`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct SystemInfo {
    /// Changes at every boot of the machine.
    #[serde(rename = "boot-id")]
    pub boot_id: String,
    /// The server's version (`v0.1.0`).
    pub version: String,
    /// The TCP address it also listens on, if any.
    #[serde(rename = "http-address", default)]
    pub http_address: Option<String>,
}

/// One `GET /v1/logs` line.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LogLine {
    /// RFC 3339 time the line was read.
    pub time: String,
    /// The service that printed it.
    pub service: String,
    /// The line.
    pub message: String,
}

/// One kept-alive connection, driven inline by the request that uses it (no separate task,
/// so a request costs no extra wake-ups).
struct Conn {
    sender: SendRequest<Full<Bytes>>,
    driver: std::pin::Pin<Box<Connection<TokioIo<UnixStream>, Full<Bytes>>>>,
}

/// A client of one container's API.
pub struct Client {
    socket: PathBuf,
    conn: Mutex<Option<Conn>>,
}

impl Client {
    /// A client for the API on `socket`; connects lazily.
    pub fn unix(socket: impl AsRef<Path>) -> Self {
        Client {
            socket: socket.as_ref().to_path_buf(),
            conn: Mutex::new(None),
        }
    }

    /// A new connection to the socket (the kept-alive one, streams and websockets), for a
    /// request of `method` to `path` (which a failure names).
    async fn connect_stream(&self, method: &Method, path: &str) -> Result<UnixStream, ClientError> {
        let err = |error| ClientError::Connection {
            request: format!("{} \"http://localhost{path}\"", go_method(method)),
            socket: self.socket.display().to_string(),
            error,
        };
        // Any length of path: a long one is reached through its directory's descriptor.
        let path = crate::sockpath::SocketPath::new(&self.socket).map_err(err)?;
        UnixStream::connect(path.path()).await.map_err(err)
    }

    /// The socket this client talks to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    async fn handshake(
        &self,
        method: &Method,
        path: &str,
    ) -> Result<
        (
            SendRequest<Full<Bytes>>,
            Connection<TokioIo<UnixStream>, Full<Bytes>>,
        ),
        ClientError,
    > {
        let stream = self.connect_stream(method, path).await?;
        hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(ClientError::protocol)
    }

    async fn connect(&self, method: &Method, path: &str) -> Result<Conn, ClientError> {
        let (sender, driver) = self.handshake(method, path).await?;
        Ok(Conn {
            sender,
            driver: Box::pin(driver),
        })
    }

    fn request(method: Method, path: &str, body: Option<Vec<u8>>) -> Request<Full<Bytes>> {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header("Host", "localhost");
        if body.is_some() {
            b = b.header("Content-Type", "application/json");
        }
        b.body(Full::new(Bytes::from(body.unwrap_or_default())))
            .unwrap()
    }

    /// Sends a request on the kept-alive connection (reconnecting once if it went away)
    /// and returns the status and body.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(u16, Bytes), ClientError> {
        let mut guard = self.conn.lock().await;
        for attempt in 0..2 {
            if guard.as_ref().is_none_or(|c| c.sender.is_closed()) {
                *guard = Some(self.connect(&method, path).await?);
            }
            let conn = guard.as_mut().unwrap();
            let req = Self::request(method.clone(), path, body.clone());
            let exchange = async {
                let resp = conn.sender.send_request(req).await?;
                let code = resp.status().as_u16();
                let bytes = resp.into_body().collect().await?.to_bytes();
                Ok::<_, hyper::Error>((code, bytes))
            };
            let result = tokio::select! {
                biased;
                r = exchange => r.map_err(|e| e.to_string()),
                r = conn.driver.as_mut() => Err(match r {
                    Ok(()) => "connection closed".to_string(),
                    Err(e) => e.to_string(),
                }),
            };
            match result {
                Ok(r) => return Ok(r),
                Err(e) if attempt == 0 => {
                    tracing::debug!("api connection lost, reconnecting: {e}");
                    *guard = None;
                }
                Err(e) => return Err(ClientError::Protocol(e)),
            }
        }
        Err(ClientError::Protocol("connection closed".into()))
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Envelope, ClientError> {
        let body = body.map(|b| serde_json::to_vec(&b).unwrap_or_default());
        let (_, bytes) = self.raw(method, path, body).await?;
        let env: Envelope = serde_json::from_slice(&bytes).map_err(ClientError::protocol)?;
        if env.kind == "error" {
            let err: ErrorResult =
                serde_json::from_value(env.result.clone()).map_err(ClientError::protocol)?;
            return Err(ClientError::Api {
                code: env.status_code,
                kind: err.kind,
                message: err.message,
            });
        }
        Ok(env)
    }

    async fn get<T: for<'de> Deserialize<'de>>(&self, path: &str) -> Result<T, ClientError> {
        let env = self.call(Method::GET, path, None).await?;
        serde_json::from_value(env.result).map_err(ClientError::protocol)
    }

    /// `GET /v1/system-info`.
    pub async fn system_info(&self) -> Result<SystemInfo, ClientError> {
        self.get("/v1/system-info").await
    }

    /// `GET /v1/health`: whether the container is healthy (at `level`, for `names`).
    pub async fn health(&self, level: Option<&str>, names: &[String]) -> Result<bool, ClientError> {
        let mut q = form_urlencoded::Serializer::new(String::new());
        if let Some(l) = level {
            q.append_pair("level", l);
        }
        if !names.is_empty() {
            q.append_pair("names", &names.join(","));
        }
        let (_, bytes) = self
            .raw(Method::GET, &format!("/v1/health?{}", q.finish()), None)
            .await?;
        Ok(decode_envelope(&bytes)?["healthy"]
            .as_bool()
            .unwrap_or(false))
    }

    /// `POST /v1/layers`.
    pub async fn add_layer(
        &self,
        label: &str,
        yaml: &str,
        combine: bool,
        inner: bool,
    ) -> Result<(), ClientError> {
        let body = serde_json::json!({"action": "add", "label": label, "format": "yaml", "layer": yaml, "combine": combine, "inner": inner});
        self.call(Method::POST, "/v1/layers", Some(body))
            .await
            .map(|_| ())
    }

    /// `GET /v1/plan?format=yaml`.
    pub async fn plan(&self) -> Result<String, ClientError> {
        self.get("/v1/plan?format=yaml").await
    }

    /// `GET /v1/services`.
    pub async fn services(&self, names: &[String]) -> Result<Vec<ServiceInfo>, ClientError> {
        // Always with `names` (empty for all), as Pebble's client asks.
        self.get(&format!("/v1/services?names={}", encode(&names.join(","))))
            .await
    }

    /// `POST /v1/services`: returns the change id.
    pub async fn services_action(
        &self,
        action: &str,
        names: &[String],
    ) -> Result<String, ClientError> {
        let env = self
            .call(
                Method::POST,
                "/v1/services",
                Some(serde_json::json!({"action": action, "services": names})),
            )
            .await?;
        env.change
            .ok_or_else(|| ClientError::Protocol("async response without change".into()))
    }

    /// `GET /v1/changes`.
    pub async fn changes(
        &self,
        select: &str,
        service: Option<&str>,
    ) -> Result<Vec<ChangeInfo>, ClientError> {
        let mut path = format!("/v1/changes?select={}", encode(select));
        if let Some(s) = service {
            path.push_str(&format!("&for={}", encode(s)));
        }
        self.get(&path).await
    }

    /// `GET /v1/changes/{id}`.
    pub async fn change(&self, id: &str) -> Result<ChangeInfo, ClientError> {
        self.get(&format!("/v1/changes/{}", encode(id))).await
    }

    /// `POST /v1/changes/{id}` with `abort`.
    pub async fn abort_change(&self, id: &str) -> Result<ChangeInfo, ClientError> {
        let env = self
            .call(
                Method::POST,
                &format!("/v1/changes/{}", encode(id)),
                Some(serde_json::json!({"action": "abort"})),
            )
            .await?;
        serde_json::from_value(env.result).map_err(ClientError::protocol)
    }

    /// `GET /v1/changes/{id}/wait` (`None`: wait as long as it takes).
    pub async fn wait_change(
        &self,
        id: &str,
        timeout: Option<Duration>,
    ) -> Result<ChangeInfo, ClientError> {
        let t = timeout
            .map(cairn_plan::format_duration)
            .unwrap_or_else(|| "0s".into());
        self.get(&format!(
            "/v1/changes/{}/wait?timeout={}",
            encode(id),
            encode(&t)
        ))
        .await
    }

    /// Runs a services action and waits for its change; a failed change is an error.
    pub async fn run_action(
        &self,
        action: &str,
        names: &[String],
    ) -> Result<ChangeInfo, ClientError> {
        let id = self.services_action(action, names).await?;
        let info = self.wait_change(&id, None).await?;
        match &info.err {
            Some(err) => Err(ClientError::Change {
                change_id: id,
                err: err.clone(),
            }),
            None => Ok(info),
        }
    }

    /// `GET /v1/identities`: the identities by name (passwords and certificates masked).
    pub async fn identities(
        &self,
    ) -> Result<BTreeMap<String, cairn_supervisor::identities::Identity>, ClientError> {
        self.get("/v1/identities").await
    }

    /// `POST /v1/identities` with `action` (`add`, `update`, `replace`, `remove`); `None`
    /// sends a `null` (remove).
    pub async fn change_identities(
        &self,
        action: &str,
        identities: &BTreeMap<String, Option<cairn_supervisor::identities::Identity>>,
    ) -> Result<(), ClientError> {
        let body = serde_json::json!({"action": action, "identities": identities});
        self.call(Method::POST, "/v1/identities", Some(body))
            .await
            .map(|_| ())
    }

    /// `POST /v1/signals`.
    pub async fn send_signal(&self, signal: &str, names: &[String]) -> Result<(), ClientError> {
        self.call(
            Method::POST,
            "/v1/signals",
            Some(serde_json::json!({"signal": signal, "services": names})),
        )
        .await
        .map(|_| ())
    }

    /// `GET /v1/checks` (level `alive`, `ready` or empty; all checks when `names` is empty).
    pub async fn checks(
        &self,
        level: &str,
        names: &[String],
    ) -> Result<Vec<CheckInfo>, ClientError> {
        // The query is built before the await, so the future stays `Send`.
        let query = {
            let mut q = form_urlencoded::Serializer::new(String::new());
            if !level.is_empty() {
                q.append_pair("level", level);
            }
            if !names.is_empty() {
                q.append_pair("names", &names.join(","));
            }
            q.finish()
        };
        self.get(&format!("/v1/checks?{query}")).await
    }

    /// `POST /v1/checks` with `start` or `stop`: the checks that changed, sorted.
    pub async fn checks_action(
        &self,
        action: &str,
        names: &[String],
    ) -> Result<Vec<String>, ClientError> {
        let env = self
            .call(
                Method::POST,
                "/v1/checks",
                Some(serde_json::json!({"action": action, "checks": names})),
            )
            .await?;
        // Pebble answers `changed: null` when nothing changed (as ops reads it: none).
        serde_json::from_value::<Option<Vec<String>>>(env.result["changed"].clone())
            .map(Option::unwrap_or_default)
            .map_err(ClientError::protocol)
    }

    /// `POST /v1/checks/refresh`: runs a check now; its info and the run's error, if any.
    pub async fn refresh_check(
        &self,
        name: &str,
    ) -> Result<(CheckInfo, Option<String>), ClientError> {
        let env = self
            .call(
                Method::POST,
                "/v1/checks/refresh",
                Some(serde_json::json!({ "name": name })),
            )
            .await?;
        let info =
            serde_json::from_value(env.result["info"].clone()).map_err(ClientError::protocol)?;
        Ok((info, env.result["error"].as_str().map(str::to_string)))
    }

    /// `POST /v1/notices`: records a custom notice; returns its id.
    pub async fn notify(
        &self,
        key: &str,
        data: &std::collections::BTreeMap<String, String>,
        repeat_after: Option<Duration>,
    ) -> Result<String, ClientError> {
        let mut body = serde_json::json!({"action": "add", "type": "custom", "key": key});
        if !data.is_empty() {
            body["data"] = serde_json::to_value(data).unwrap_or_default();
        }
        if let Some(d) = repeat_after {
            body["repeat-after"] = cairn_plan::format_duration(d).into();
        }
        let env = self.call(Method::POST, "/v1/notices", Some(body)).await?;
        Ok(env.result["id"].as_str().unwrap_or_default().to_string())
    }

    /// `GET /v1/notices` with a query such as `types=custom&keys=...` (already encoded);
    /// with `timeout`, waits that long for a match.
    pub async fn notices(
        &self,
        query: &[(&str, String)],
        timeout: Option<Duration>,
    ) -> Result<Vec<Notice>, ClientError> {
        let query = {
            let mut q = form_urlencoded::Serializer::new(String::new());
            for (k, v) in query {
                q.append_pair(k, v);
            }
            if let Some(t) = timeout {
                q.append_pair("timeout", &cairn_plan::format_duration(t));
            }
            q.finish()
        };
        self.get(&format!("/v1/notices?{query}")).await
    }

    /// `GET /v1/notices/{id}`.
    pub async fn notice(&self, id: &str) -> Result<Notice, ClientError> {
        self.get(&format!("/v1/notices/{}", encode(id))).await
    }

    /// `GET /v1/metrics`: OpenMetrics text.
    pub async fn metrics(&self) -> Result<String, ClientError> {
        let (code, bytes) = self.raw(Method::GET, "/v1/metrics", None).await?;
        if code != 200 {
            return Err(ClientError::Api {
                code,
                kind: String::new(),
                message: String::from_utf8_lossy(&bytes).into_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    fn logs_path(services: &[String], n: Option<i64>, follow: bool) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        if !services.is_empty() {
            q.append_pair("services", &services.join(","));
        }
        if let Some(n) = n {
            q.append_pair("n", &n.to_string());
        }
        if follow {
            q.append_pair("follow", "true");
        }
        format!("/v1/logs?{}", q.finish())
    }

    /// `GET /v1/logs` (`n`: None = server default 30, -1 = all).
    pub async fn logs(
        &self,
        services: &[String],
        n: Option<i64>,
    ) -> Result<Vec<LogLine>, ClientError> {
        let (code, bytes) = self
            .raw(Method::GET, &Self::logs_path(services, n, false), None)
            .await?;
        if code != 200 {
            let env: Envelope = serde_json::from_slice(&bytes).map_err(ClientError::protocol)?;
            return Err(ClientError::Api {
                code,
                kind: String::new(),
                message: env.result["message"].as_str().unwrap_or("").into(),
            });
        }
        bytes
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).map_err(ClientError::protocol))
            .collect()
    }

    /// `GET /v1/logs?follow=true`: lines as they come, on a connection of their own.
    pub async fn follow_logs(
        &self,
        services: &[String],
        n: Option<i64>,
    ) -> Result<mpsc::Receiver<LogLine>, ClientError> {
        let path = Self::logs_path(services, n, true);
        let (mut sender, driver) = self.handshake(&Method::GET, &path).await?;
        tokio::spawn(async move {
            let _ = driver.await;
        });
        let resp = sender
            .send_request(Self::request(Method::GET, &path, None))
            .await
            .map_err(ClientError::protocol)?;
        let (tx, rx) = mpsc::channel(256);
        let mut body = resp.into_body();
        tokio::spawn(async move {
            let _keep = sender;
            let mut buf: Vec<u8> = Vec::new();
            while let Some(Ok(frame)) = body.frame().await {
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                    while let Some(i) = buf.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = buf.drain(..=i).collect();
                        if let Ok(l) = serde_json::from_slice::<LogLine>(&line)
                            && tx.send(l).await.is_err()
                        {
                            return;
                        }
                    }
                }
            }
        });
        Ok(rx)
    }
}

/// Percent-encodes a query value or path segment.
fn encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Decodes an envelope; an error envelope becomes [`ClientError::Api`]; returns the result.
fn decode_envelope(bytes: &[u8]) -> Result<Value, ClientError> {
    let env: Envelope = serde_json::from_slice(bytes).map_err(ClientError::protocol)?;
    if env.kind == "error" {
        let err: ErrorResult = serde_json::from_value(env.result).map_err(ClientError::protocol)?;
        return Err(ClientError::Api {
            code: env.status_code,
            kind: err.kind,
            message: err.message,
        });
    }
    Ok(env.result)
}

/// A method as Go's HTTP client errors name it (`Get`, `Post`, `Put`).
fn go_method(method: &Method) -> String {
    let m = method.as_str();
    let mut out = m[..1].to_string();
    out.push_str(&m[1..].to_ascii_lowercase());
    out
}

/// Why the socket could not be reached, as Pebble's client says it: a missing socket is
/// `socket "…" not found`, anything else Go's dial error.
fn unreachable(socket: &str, error: &std::io::Error) -> String {
    if error.kind() == std::io::ErrorKind::NotFound {
        return format!("socket {socket:?} not found");
    }
    let text = error.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text);
    let mut chars = text.chars();
    let text = chars
        .next()
        .map(|c| c.to_lowercase().chain(chars).collect::<String>())
        .unwrap_or_default();
    format!("dial unix {socket}: connect: {text}")
}
