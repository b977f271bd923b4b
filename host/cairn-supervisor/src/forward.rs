//! Log forwarding: service output sent to the plan's `log-targets` as Pebble sends it.
//!
//! One gatherer task per target batches the lines of the services that log to it and
//! sends them with the target's protocol: Loki's push API (`loki`), OTLP/HTTP JSON logs
//! (`opentelemetry`) or RFC 5424 syslog over TCP or UDP (`syslog`). Batching, buffering and
//! payloads follow Pebble's `logstate`: a flush one second after the first buffered line,
//! or at 100 lines; a flush before labels change (any plan change); the last 100 lines kept
//! while a target is down or answers 5xx/429 (the oldest dropped first), dropped on any
//! other 4xx; streams sorted by service; labels expanded from the service's environment;
//! times to the millisecond, as Pebble's service log keeps them; lines over Pebble's 4 KiB
//! parser buffer cut as it cuts them; JSON escaped as Go's `encoding/json` escapes it.
//!
//! Every service that logs to a target gets a puller task following its log ring; a
//! puller that falls behind a flood loses lines, as Pebble's ring iterator does, and never
//! holds more than the ring's follower queue.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_plan::{LogTarget, LogTargetType, Plan, Service};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::logs::{LogBuffer, LogEntry};

/// Lines a target keeps while it cannot be reached, and the lines that trigger a flush.
const MAX_REQUEST_ENTRIES: usize = 100;
/// How long a line waits for others before its batch is sent.
const BUFFER_TIMEOUT: Duration = Duration::from_secs(1);
/// Whole-request timeout of a Loki or OpenTelemetry push (Go's `http.Client.Timeout`).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a stopping target may take to send what it holds.
const FINAL_FLUSH_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a stopping gatherer may take in all before it is abandoned.
const STOP_TIMEOUT: Duration = Duration::from_secs(3);
/// Pebble's log parser reads a service's formatted log in chunks of this size: a longer
/// line reaches a target cut into pieces of it.
const PARSER_SIZE: usize = 4 * 1024;
/// Entries in flight from a service's puller to its gatherer.
const PULLER_QUEUE: usize = 64;
/// The name payloads give their sender (OpenTelemetry's scope, syslog's SD-ID), as Pebble
/// gives it: dashboards and queries written for Pebble's logs keep working.
const PROGRAM: &str = "pebble";
/// Canonical's private enterprise number, in syslog's structured data ID.
const ENTERPRISE_NUMBER: u32 = 28978;
/// Largest syslog message sent over UDP (longer ones are cut and end in `...`).
const MAX_UDP_MESSAGE: usize = 4000;

/// One line as a target receives it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Entry {
    /// Unix time in nanoseconds, to the millisecond.
    nanos: i64,
    service: String,
    message: String,
}

/// The lines a target receives for one log line: its time cut to the millisecond, and the
/// line cut where Pebble's 4 KiB parser cuts the formatted line
/// (`2006-01-02T15:04:05.000Z [svc] message\n`).
fn entries_of(e: &LogEntry) -> Vec<Entry> {
    let nanos = e.time.unix_timestamp_nanos() as i64;
    let nanos = nanos - nanos.rem_euclid(1_000_000);
    let header = 24 + 2 + e.service.len() + 2;
    let total = header + e.message.len() + 1;
    let entry = |message: String| Entry {
        nanos,
        service: e.service.clone(),
        message,
    };
    if total <= PARSER_SIZE || header >= PARSER_SIZE {
        return vec![entry(e.message.clone())];
    }
    let mut line = Vec::with_capacity(total - header);
    line.extend_from_slice(e.message.as_bytes());
    line.push(b'\n');
    let mut out = Vec::new();
    let mut at = 0;
    let mut room = PARSER_SIZE - header;
    while at < line.len() {
        let end = (at + room).min(line.len());
        let piece = &line[at..end];
        let piece = piece.strip_suffix(b"\n").unwrap_or(piece);
        if !piece.is_empty() {
            out.push(entry(go_string(piece)));
        }
        at = end;
        room = PARSER_SIZE;
    }
    out
}

/// Bytes as Go's `encoding/json` writes a string of them: each byte of invalid UTF-8
/// becomes U+FFFD.
fn go_string(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    let mut rest = bytes;
    loop {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                out.push_str(s);
                return out;
            }
            Err(e) => {
                let valid = e.valid_up_to();
                out.push_str(std::str::from_utf8(&rest[..valid]).unwrap_or_default());
                let bad = e.error_len().unwrap_or(rest.len() - valid);
                for _ in 0..bad {
                    out.push('\u{fffd}');
                }
                rest = &rest[valid + bad..];
            }
        }
    }
}

/// Appends `s` as a JSON string, escaped as Go's `encoding/json` escapes it (HTML
/// characters and U+2028/U+2029 too), so that payloads are Pebble's byte for byte.
fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Go's `os.Expand`: `$NAME` and `${NAME}` replaced by `lookup`'s value (empty when unset).
fn expand(s: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let special = |c: u8| b"*#$@!?-0123456789".contains(&c);
    let alnum = |c: u8| c == b'_' || c.is_ascii_alphanumeric();
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let (mut i, mut j) = (0, 0);
    while j < b.len() {
        if b[j] == b'$' && j + 1 < b.len() {
            out.push_str(&s[i..j]);
            let rest = &b[j + 1..];
            let (name, width): (&[u8], usize) = if rest[0] == b'{' {
                if rest.len() > 2 && special(rest[1]) && rest[2] == b'}' {
                    (&rest[1..2], 3)
                } else {
                    match rest.iter().skip(1).position(|&c| c == b'}') {
                        Some(0) => (&[], 2),
                        Some(k) => (&rest[1..k + 1], k + 2),
                        None => (&[], 1),
                    }
                }
            } else if special(rest[0]) {
                (&rest[..1], 1)
            } else {
                let n = rest.iter().take_while(|&&c| alnum(c)).count();
                (&rest[..n], n)
            };
            if name.is_empty() && width == 0 {
                // `$` not followed by a name stays.
                out.push('$');
            } else if !name.is_empty() {
                let name = String::from_utf8_lossy(name);
                out.push_str(&lookup(&name).unwrap_or_default());
            }
            j += width;
            i = j + 1;
        }
        j += 1;
    }
    out.push_str(&s[i.min(s.len())..]);
    out
}

/// A target's labels for one service, as Pebble evaluates them.
fn evaluate_labels(target: &LogTarget, service: &Service) -> BTreeMap<String, String> {
    target
        .labels
        .iter()
        .map(|(k, v)| {
            let value = expand(v, |name| service.environment.get(name).cloned());
            (k.clone(), value)
        })
        .collect()
}

/// Why a flush failed (logged as Pebble logs it: `Cannot flush logs to target ...`).
type FlushError = String;

/// What a gatherer is told besides lines.
enum Control {
    /// Labels for a service's lines (`None`: the service no longer logs to the target).
    Labels(String, Option<BTreeMap<String, String>>),
}

/// A target's protocol client: the lines it holds, and how it sends them.
struct Client {
    name: String,
    kind: Kind,
    /// The lines not yet sent, oldest first; at most [`MAX_REQUEST_ENTRIES`].
    entries: VecDeque<Entry>,
    /// Per service: its labels, rendered as the protocol carries them.
    labels: HashMap<String, String>,
}

enum Kind {
    Loki(HttpSender),
    Otel(HttpSender),
    Syslog(SyslogSender),
}

impl Client {
    fn new(target: &LogTarget) -> Result<Client, String> {
        let kind = match target.type_ {
            LogTargetType::Loki => Kind::Loki(HttpSender::new(&target.location)?),
            LogTargetType::OpenTelemetry => {
                Kind::Otel(HttpSender::new(&format!("{}/v1/logs", target.location))?)
            }
            LogTargetType::Syslog => Kind::Syslog(SyslogSender::new(&target.location)?),
            LogTargetType::Unset => {
                return Err(format!(
                    "unknown type \"\" for log target {:?}",
                    target.name
                ));
            }
        };
        Ok(Client {
            name: target.name.clone(),
            kind,
            entries: VecDeque::with_capacity(MAX_REQUEST_ENTRIES),
            labels: HashMap::new(),
        })
    }

    fn add(&mut self, entry: Entry) {
        if self.entries.len() >= MAX_REQUEST_ENTRIES {
            self.entries.pop_front();
        }
        self.entries.push_back(entry);
    }

    fn set_labels(&mut self, service: String, labels: Option<BTreeMap<String, String>>) {
        let Some(mut labels) = labels else {
            self.labels.remove(&service);
            return;
        };
        let rendered = match &self.kind {
            Kind::Loki(_) => {
                labels.insert("pebble_service".into(), service.clone());
                let mut out = String::from("{");
                for (i, (k, v)) in labels.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    json_str(&mut out, k);
                    out.push(':');
                    json_str(&mut out, v);
                }
                out.push('}');
                out
            }
            Kind::Otel(_) => {
                let mut out = String::from("[");
                let pairs = std::iter::once(("service.name", &service))
                    .chain(labels.iter().map(|(k, v)| (k.as_str(), v)));
                for (i, (k, v)) in pairs.enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push('{');
                    if !k.is_empty() {
                        out.push_str("\"key\":");
                        json_str(&mut out, k);
                        out.push(',');
                    }
                    out.push_str("\"value\":{\"stringValue\":");
                    json_str(&mut out, v);
                    out.push_str("}}");
                }
                out.push(']');
                out
            }
            Kind::Syslog(_) => {
                let mut out = format!("[{PROGRAM}@{ENTERPRISE_NUMBER}");
                for (k, v) in &labels {
                    let _ = write!(out, " {k}=\"");
                    for c in v.chars() {
                        if matches!(c, '"' | '\\' | ']') {
                            out.push('\\');
                        }
                        out.push(c);
                    }
                    out.push('"');
                }
                out.push(']');
                out
            }
        };
        self.labels.insert(service, rendered);
    }

    /// The lines held, by service in name order (each service's in the order they came).
    fn by_service(&self) -> BTreeMap<&str, Vec<&Entry>> {
        let mut out: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
        for e in &self.entries {
            out.entry(e.service.as_str()).or_default().push(e);
        }
        out
    }

    /// Loki's push request: `{"streams":[{"stream":{labels},"values":[["ns","line"]]}]}`.
    fn loki_body(&self) -> String {
        let mut out = String::from("{\"streams\":[");
        for (i, (service, entries)) in self.by_service().into_iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str("{\"stream\":");
            out.push_str(self.labels.get(service).map_or("null", String::as_str));
            out.push_str(",\"values\":[");
            for (j, e) in entries.into_iter().enumerate() {
                if j > 0 {
                    out.push(',');
                }
                let _ = write!(out, "[\"{}\",", e.nanos);
                json_str(&mut out, &e.message);
                out.push(']');
            }
            out.push_str("]}");
        }
        out.push_str("]}");
        out
    }

    /// OTLP/HTTP JSON logs: one resource per service, its attributes the labels.
    fn otel_body(&self) -> String {
        let mut out = String::from("{\"resourceLogs\":[");
        for (i, (service, entries)) in self.by_service().into_iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str("{\"resource\":{\"attributes\":");
            out.push_str(self.labels.get(service).map_or("null", String::as_str));
            out.push_str("},\"scopeLogs\":[{\"scope\":{\"name\":");
            json_str(&mut out, PROGRAM);
            out.push_str("},\"logRecords\":[");
            for (j, e) in entries.into_iter().enumerate() {
                if j > 0 {
                    out.push(',');
                }
                let _ = write!(
                    out,
                    "{{\"timeUnixNano\":\"{}\",\"body\":{{\"stringValue\":",
                    e.nanos
                );
                json_str(&mut out, &e.message);
                out.push_str("}}");
            }
            out.push_str("]}]}");
        }
        out.push_str("]}");
        out
    }

    /// Sends what is held; what was sent (or refused for good) is forgotten.
    async fn flush(&mut self) -> Result<(), FlushError> {
        if self.entries.is_empty() {
            return Ok(());
        }
        let held = self.entries.len();
        let body = match self.kind {
            Kind::Loki(_) => self.loki_body(),
            Kind::Otel(_) => self.otel_body(),
            Kind::Syslog(_) => String::new(),
        };
        let outcome = match &mut self.kind {
            Kind::Loki(http) => http.post(body, "application/json; charset=utf-8").await,
            Kind::Otel(http) => http
                .post(body, "application/json")
                .await
                .map_err(|e| match e {
                    PostError::Send(e) => PostError::Send(format!("cannot send logs: {e}")),
                    e => e,
                }),
            Kind::Syslog(sender) => {
                sender.send(&mut self.entries, &self.labels).await?;
                self.entries.clear();
                return Ok(());
            }
        };
        match outcome {
            Ok(()) => {
                self.entries.clear();
                Ok(())
            }
            Err(PostError::Dropped(code, e)) => {
                tracing::info!(
                    "Target {:?}: request failed with status {code}, dropping {held} logs",
                    self.name
                );
                self.entries.clear();
                Err(e)
            }
            Err(PostError::Send(e) | PostError::Kept(e)) => Err(e),
        }
    }
}

/// How a push failed: whether the lines are kept for the next flush.
enum PostError {
    /// Not sent (no connection, no answer): kept.
    Send(String),
    /// Refused for now (5xx, 429): kept.
    Kept(String),
    /// Refused for good (any other 4xx): dropped.
    Dropped(u16, String),
}

/// POSTs to one HTTP URL, over a kept-alive connection.
struct HttpSender {
    url: String,
    uri: hyper::Uri,
    conn: Option<hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>>,
}

impl HttpSender {
    fn new(url: &str) -> Result<HttpSender, String> {
        let uri: hyper::Uri = url
            .parse()
            .map_err(|e| format!("invalid log target location {url:?}: {e}"))?;
        match uri.scheme_str() {
            Some("http" | "https") => {}
            other => {
                return Err(format!(
                    "invalid log target location {url:?}: unsupported protocol scheme {:?}",
                    other.unwrap_or("")
                ));
            }
        }
        Ok(HttpSender {
            url: url.to_string(),
            uri,
            conn: None,
        })
    }

    async fn post(&mut self, body: String, content_type: &str) -> Result<(), PostError> {
        let url = self.url.clone();
        let post_err = |e: &dyn std::fmt::Display| PostError::Send(format!("Post {url:?}: {e}"));
        match tokio::time::timeout(REQUEST_TIMEOUT, self.post_inner(body, content_type)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                self.conn = None;
                Err(post_err(&e))
            }
            Err(_) => {
                self.conn = None;
                Err(post_err(
                    &"context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
                ))
            }
        }
    }

    async fn post_inner(
        &mut self,
        body: String,
        content_type: &str,
    ) -> Result<Result<(), PostError>, String> {
        use http_body_util::BodyExt;
        let host = self.uri.host().unwrap_or("localhost").to_string();
        let authority = self
            .uri
            .authority()
            .map(|a| a.as_str().to_string())
            .unwrap_or_else(|| host.clone());
        if self.conn.as_ref().is_none_or(|c| c.is_closed()) {
            let tls = self.uri.scheme_str() == Some("https");
            let port = self.uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
            let addr = format!("{host}:{port}");
            let stream = tokio::net::TcpStream::connect(&addr)
                .await
                .map_err(|e| format!("dial tcp {addr}: connect: {}", crate::errno_text(&e)))?;
            let _ = stream.set_nodelay(true);
            let sender = if tls {
                let name = rustls::pki_types::ServerName::try_from(host.clone())
                    .map_err(|e| format!("tls: invalid server name {host:?}: {e}"))?;
                let stream = tokio_rustls::TlsConnector::from(tls_client())
                    .connect(name, stream)
                    .await
                    .map_err(|e| format!("tls: {e}"))?;
                handshake(stream).await?
            } else {
                handshake(stream).await?
            };
            self.conn = Some(sender);
        }
        let sender = self.conn.as_mut().expect("connected above");
        sender.ready().await.map_err(|e| e.to_string())?;
        let path = self
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        let req = hyper::Request::post(path)
            .header("Host", authority)
            .header("User-Agent", concat!("cairn/", env!("CARGO_PKG_VERSION")))
            .header("Content-Type", content_type)
            .header("Content-Length", body.len())
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status();
        // Read (part of) the answer, so that the connection can be used again.
        let mut body = resp.into_body();
        let mut read = 0usize;
        let mut first = Vec::new();
        while read < 1024 * 1024 {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(chunk) = frame.into_data() {
                        read += chunk.len();
                        if first.len() < 1024 {
                            first.extend_from_slice(&chunk[..chunk.len().min(1024 - first.len())]);
                        }
                    }
                }
                Some(Err(e)) => return Err(e.to_string()),
                None => break,
            }
        }
        let code = status.as_u16();
        let status_text = format!("{} {}", code, status.canonical_reason().unwrap_or_default());
        let returned = || {
            tracing::debug!(
                "HTTP {code} error, response {:?}",
                String::from_utf8_lossy(&first)
            );
            format!("server returned HTTP {status_text}")
        };
        Ok(match code {
            200 | 204 => Ok(()),
            429 | 500..=599 => Err(PostError::Kept(returned())),
            400..=499 => Err(PostError::Dropped(code, returned())),
            _ => Err(PostError::Kept(format!(
                "unexpected response from server: {status_text}"
            ))),
        })
    }
}

/// An HTTP/1.1 client connection over `io`, driven by a task of its own.
async fn handshake<T>(
    io: T,
) -> Result<hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>, String>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// The TLS configuration of `https://` targets: the system's roots (`SSL_CERT_FILE` and
/// `SSL_CERT_DIR` honoured, as Go's client honours them), read once.
fn tls_client() -> Arc<rustls::ClientConfig> {
    static CONFIG: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::warn!("Cannot load system root certificates: {e}");
            }
            let (added, _) = roots.add_parsable_certificates(found.certs);
            tracing::debug!("Log targets trust {added} system root certificates");
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("the ring provider supports the default versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Arc::new(config)
        })
        .clone()
}

/// Sends RFC 5424 messages to a syslog server: over TCP octet-counted (RFC 6587) on one
/// kept connection, over UDP one datagram per line.
struct SyslogSender {
    location: String,
    udp: bool,
    addr: String,
    hostname: String,
    tcp: Option<tokio::net::TcpStream>,
    socket: Option<tokio::net::UdpSocket>,
}

impl SyslogSender {
    fn new(location: &str) -> Result<SyslogSender, String> {
        let invalid = || {
            format!(
                "invalid syslog server location {location:?}, must be in form \"tcp://host:port\" or \"udp://host:port\""
            )
        };
        let (scheme, rest) = location.split_once("://").ok_or_else(invalid)?;
        let addr = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if !matches!(scheme, "tcp" | "udp") || addr.is_empty() {
            return Err(invalid());
        }
        Ok(SyslogSender {
            location: location.to_string(),
            udp: scheme == "udp",
            addr: addr.to_string(),
            hostname: hostname(),
            tcp: None,
            socket: None,
        })
    }

    /// `<13>1 TIME HOST SERVICE - - SD MESSAGE`.
    fn frame(&self, e: &Entry, labels: &HashMap<String, String>, message: &str) -> String {
        let host = if self.hostname.is_empty() {
            "-"
        } else {
            &self.hostname
        };
        let sd = labels.get(&e.service).map_or("-", String::as_str);
        format!(
            "<13>1 {} {host} {} - - {sd} {message}",
            crate::timefmt::rfc3339(
                time::OffsetDateTime::from_unix_timestamp_nanos(e.nanos as i128)
                    .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
            ),
            e.service
        )
    }

    async fn send(
        &mut self,
        entries: &mut VecDeque<Entry>,
        labels: &HashMap<String, String>,
    ) -> Result<(), FlushError> {
        use tokio::io::AsyncWriteExt;
        let connect_err = |e: std::io::Error| format!("cannot connect to {}: {e}", self.location);
        if self.udp {
            while let Some(e) = entries.front() {
                if self.socket.is_none() {
                    let s = tokio::net::UdpSocket::bind("0.0.0.0:0")
                        .await
                        .map_err(connect_err)?;
                    s.connect(&self.addr).await.map_err(connect_err)?;
                    self.socket = Some(s);
                }
                let message = if e.message.len() > MAX_UDP_MESSAGE {
                    let mut cut = MAX_UDP_MESSAGE - 3;
                    while !e.message.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    format!("{}...", &e.message[..cut])
                } else {
                    e.message.clone()
                };
                let frame = self.frame(e, labels, &message);
                let socket = self.socket.as_ref().expect("bound above");
                if let Err(err) = socket.send(frame.as_bytes()).await {
                    self.socket = None;
                    return Err(format!("cannot send syslogs: {err}"));
                }
                entries.pop_front();
            }
            return Ok(());
        }
        if self.tcp.is_none() {
            let s = tokio::net::TcpStream::connect(&self.addr)
                .await
                .map_err(connect_err)?;
            self.tcp = Some(s);
        }
        let mut out = String::new();
        for e in entries.iter() {
            let frame = self.frame(e, labels, &e.message);
            let _ = write!(out, "{} {frame}", frame.len());
        }
        let tcp = self.tcp.as_mut().expect("connected above");
        if let Err(err) = tcp.write_all(out.as_bytes()).await {
            self.tcp = None;
            return Err(format!("cannot send syslogs: {err}"));
        }
        Ok(())
    }
}

/// This machine's name, for syslog's HOSTNAME field (empty if it has none).
fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if r != 0 {
        tracing::info!("Cannot get hostname for syslog");
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// The gatherer of one target: batches lines, flushes on time, count and label changes.
async fn gather(
    mut client: Client,
    mut control: mpsc::UnboundedReceiver<Control>,
    mut lines: mpsc::Receiver<Entry>,
) {
    let mut deadline: Option<Instant> = None;
    let mut written = 0usize;
    async fn flush(client: &mut Client, deadline: &mut Option<Instant>, written: &mut usize) {
        *deadline = None;
        *written = 0;
        if let Err(e) = client.flush().await {
            tracing::info!("Cannot flush logs to target {:?}: {e}", client.name);
        }
    }
    loop {
        tokio::select! {
            c = control.recv() => match c {
                None => break,
                Some(Control::Labels(service, labels)) => {
                    flush(&mut client, &mut deadline, &mut written).await;
                    client.set_labels(service, labels);
                }
            },
            Some(entry) = lines.recv() => {
                client.add(entry);
                written += 1;
                if written >= MAX_REQUEST_ENTRIES {
                    flush(&mut client, &mut deadline, &mut written).await;
                } else if deadline.is_none() {
                    deadline = Some(Instant::now() + BUFFER_TIMEOUT);
                }
            }
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                flush(&mut client, &mut deadline, &mut written).await;
            }
        }
    }
    while let Ok(entry) = lines.try_recv() {
        client.add(entry);
    }
    match tokio::time::timeout(FINAL_FLUSH_TIMEOUT, client.flush()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::info!("Cannot flush logs to target {:?}: {e}", client.name),
        Err(_) => tracing::info!(
            "Cannot flush logs to target {:?}: context deadline exceeded",
            client.name
        ),
    }
}

/// Follows one service's log ring into a gatherer.
async fn pull(mut rx: broadcast::Receiver<LogEntry>, tx: mpsc::Sender<Entry>) {
    loop {
        match rx.recv().await {
            Ok(line) => {
                for e in entries_of(&line) {
                    if tx.send(e).await.is_err() {
                        return;
                    }
                }
            }
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::debug!("log forwarding fell {n} lines behind");
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// A running target.
struct Gatherer {
    /// The target's type and location it was started for (a change starts it anew).
    target: LogTarget,
    control: mpsc::UnboundedSender<Control>,
    lines: mpsc::Sender<Entry>,
    /// Per service logging to it: the puller and the ring it follows.
    pullers: HashMap<String, (Arc<LogBuffer>, JoinHandle<()>)>,
    /// The gatherer task (taken by [`Gatherer::stop`]).
    task: Option<JoinHandle<()>>,
}

impl Drop for Gatherer {
    /// Pullers end with their target: none outlives the supervisor that started it.
    fn drop(&mut self) {
        for (_, (_, task)) in self.pullers.drain() {
            task.abort();
        }
    }
}

impl Gatherer {
    fn start(target: &LogTarget) -> Result<Gatherer, String> {
        let client = Client::new(target).map_err(|e| format!("cannot create log client: {e}"))?;
        let (control, control_rx) = mpsc::unbounded_channel();
        let (lines, lines_rx) = mpsc::channel(PULLER_QUEUE);
        Ok(Gatherer {
            target: target.clone(),
            control,
            lines,
            pullers: HashMap::new(),
            task: Some(tokio::spawn(gather(client, control_rx, lines_rx))),
        })
    }

    fn follow(&mut self, service: &str, buffer: &Arc<LogBuffer>) {
        if let Some((b, _)) = self.pullers.get(service)
            && Arc::ptr_eq(b, buffer)
        {
            return;
        }
        let task = tokio::spawn(pull(buffer.subscribe(), self.lines.clone()));
        if let Some((_, old)) = self
            .pullers
            .insert(service.to_string(), (buffer.clone(), task))
        {
            old.abort();
        }
    }

    fn unfollow(&mut self, service: &str) {
        if let Some((_, task)) = self.pullers.remove(service) {
            task.abort();
        }
    }

    /// Stops following, lets the gatherer send what it holds; the handle ends when it has.
    fn stop(mut self) -> Option<JoinHandle<()>> {
        self.task.take()
    }
}

/// The container's log forwarding: which targets run, which services they follow (and,
/// for `pebble run --verbose`, stdout).
#[derive(Default)]
pub(crate) struct Forwarder {
    state: Mutex<ForwardState>,
    /// Whether service output is echoed to stdout.
    echo: bool,
}

#[derive(Default)]
struct ForwardState {
    plan: Arc<Plan>,
    /// The log ring of every service started under the current plan.
    buffers: HashMap<String, Arc<LogBuffer>>,
    gatherers: HashMap<String, Gatherer>,
    /// Per service: the task echoing its ring to stdout.
    echoers: HashMap<String, JoinHandle<()>>,
}

impl Drop for ForwardState {
    fn drop(&mut self) {
        for (_, task) in self.echoers.drain() {
            task.abort();
        }
    }
}

/// Writes a service's new lines to stdout as its log keeps them.
async fn echo(mut rx: broadcast::Receiver<LogEntry>) {
    use std::io::Write as _;
    loop {
        match rx.recv().await {
            Ok(line) => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{}", line.format());
                let _ = out.flush();
            }
            Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

impl Forwarder {
    /// A forwarder; `echo` also writes service output to stdout.
    pub(crate) fn new(echo: bool) -> Forwarder {
        Forwarder {
            echo,
            ..Default::default()
        }
    }

    /// Starts, stops and re-labels targets for a new plan (as Pebble's `PlanChanged`).
    pub(crate) fn plan_changed(&self, plan: &Arc<Plan>) {
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let mut st = self.state.lock().unwrap();
        let ForwardState {
            plan: current,
            buffers,
            gatherers,
            echoers,
        } = &mut *st;
        let mut stopping = Vec::new();
        let mut kept = HashMap::new();
        for (name, target) in &plan.log_targets {
            let gatherer = match gatherers.remove(name) {
                Some(g)
                    if g.target.type_ == target.type_ && g.target.location == target.location =>
                {
                    Some(g)
                }
                other => {
                    stopping.extend(other.and_then(Gatherer::stop));
                    match Gatherer::start(target) {
                        Ok(g) => Some(g),
                        Err(e) => {
                            tracing::warn!(
                                "Internal error: cannot create gatherer for target {name:?}: {e}"
                            );
                            None
                        }
                    }
                }
            };
            let Some(mut g) = gatherer else { continue };
            g.target = target.clone();
            let gone: Vec<String> = g
                .pullers
                .keys()
                .filter(|s| !plan.services.get(*s).is_some_and(|svc| svc.logs_to(target)))
                .cloned()
                .collect();
            for s in gone {
                g.unfollow(&s);
                let _ = g.control.send(Control::Labels(s, None));
            }
            for service in plan.services.values() {
                if !service.logs_to(target) {
                    continue;
                }
                let labels = evaluate_labels(target, service);
                let _ = g
                    .control
                    .send(Control::Labels(service.name.clone(), Some(labels)));
                if let Some(buffer) = buffers.get(&service.name) {
                    g.follow(&service.name, buffer);
                }
            }
            kept.insert(name.clone(), g);
        }
        stopping.extend(gatherers.drain().filter_map(|(_, g)| g.stop()));
        *gatherers = kept;
        buffers.retain(|s, _| plan.services.contains_key(s));
        echoers.retain(|s, task| {
            let keep = plan.services.contains_key(s);
            if !keep {
                task.abort();
            }
            keep
        });
        *current = plan.clone();
        drop(st);
        if !stopping.is_empty() {
            tokio::spawn(finish(stopping));
        }
    }

    /// A service's process started, its output going to `buffer` (Pebble's `ServiceStarted`).
    pub(crate) fn service_started(&self, service: &Service, buffer: &Arc<LogBuffer>) {
        let mut st = self.state.lock().unwrap();
        if st
            .buffers
            .get(&service.name)
            .is_some_and(|b| Arc::ptr_eq(b, buffer))
        {
            return;
        }
        st.buffers.insert(service.name.clone(), buffer.clone());
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        if self.echo {
            let task = tokio::spawn(echo(buffer.subscribe()));
            if let Some(old) = st.echoers.insert(service.name.clone(), task) {
                old.abort();
            }
        }
        let ForwardState {
            plan, gatherers, ..
        } = &mut *st;
        for (name, g) in gatherers.iter_mut() {
            if plan
                .log_targets
                .get(name)
                .is_some_and(|t| service.logs_to(t))
            {
                g.follow(&service.name, buffer);
            }
        }
    }

    /// Stops every target, each sending what it holds (at most [`STOP_TIMEOUT`] in all).
    pub(crate) async fn stop(&self) {
        let stopping: Vec<JoinHandle<()>> = {
            let mut st = self.state.lock().unwrap();
            st.gatherers.drain().filter_map(|(_, g)| g.stop()).collect()
        };
        finish(stopping).await;
    }
}

/// Waits for stopping gatherers to send what they hold; abandons them after the timeout.
async fn finish(tasks: Vec<JoinHandle<()>>) {
    let aborts: Vec<_> = tasks.iter().map(JoinHandle::abort_handle).collect();
    let all = async {
        for t in tasks {
            let _ = t.await;
        }
    };
    if tokio::time::timeout(STOP_TIMEOUT, all).await.is_err() {
        tracing::debug!("log targets did not finish sending in time");
        for a in aborts {
            a.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped_as_go_escapes_them() {
        let mut out = String::new();
        json_str(
            &mut out,
            "a\"b\\c\n\r\t\u{8}\u{c}\u{1}<>&\u{2028}\u{2029}\u{7f}é",
        );
        assert_eq!(
            out,
            r#""a\"b\\c\n\r\t\b\f\u0001\u003c\u003e\u0026\u2028\u2029"#.to_string() + "\u{7f}é\""
        );
    }

    #[test]
    fn invalid_utf8_becomes_one_replacement_per_byte() {
        assert_eq!(go_string(b"ok\xe2\x82x\xff"), "ok\u{fffd}\u{fffd}x\u{fffd}");
        assert_eq!(go_string(b"end\xe2\x82"), "end\u{fffd}\u{fffd}");
    }

    #[test]
    fn labels_expand_as_os_expand() {
        let env = |n: &str| match n {
            "A" => Some("1".to_string()),
            "AB" => Some("2".to_string()),
            "$" => Some("pid".to_string()),
            _ => None,
        };
        for (raw, want) in [
            ("x$A", "x1"),
            ("$AB-${A}", "2-1"),
            ("${}z", "z"),
            ("${A", "A"),
            ("$$", "pid"),
            ("${$}", "pid"),
            ("a$", "a$"),
            ("$ b", "$ b"),
            ("$NOPE.", "."),
            ("plain", "plain"),
        ] {
            assert_eq!(expand(raw, env), want, "{raw}");
        }
    }

    #[test]
    fn long_lines_are_cut_where_pebbles_parser_cuts_them() {
        let time =
            time::OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_789).unwrap();
        let line = |message: String| LogEntry {
            time,
            service: "svc".into(),
            message,
        };
        let short = entries_of(&line("hi".into()));
        assert_eq!(short.len(), 1);
        assert_eq!(short[0].nanos, 1_700_000_000_123_000_000);
        // Header "<24-byte time> [svc] " is 31 bytes: the first piece holds 4096 - 31.
        let long = "x".repeat(5000);
        let pieces = entries_of(&line(long));
        let lens: Vec<usize> = pieces.iter().map(|e| e.message.len()).collect();
        assert_eq!(lens, [4096 - 31, 5000 - (4096 - 31)]);
        // A line filling the first chunk exactly: its newline alone is the second read,
        // which Pebble's parser drops as empty.
        let exact = "y".repeat(4096 - 31);
        assert_eq!(entries_of(&line(exact)).len(), 1);
    }

    fn target(type_: LogTargetType) -> LogTarget {
        LogTarget {
            name: "t".into(),
            type_,
            location: match type_ {
                LogTargetType::Syslog => "tcp://127.0.0.1:1".into(),
                _ => "http://127.0.0.1:1/push".into(),
            },
            services: vec!["all".into()],
            ..Default::default()
        }
    }

    fn entry(service: &str, nanos: i64, message: &str) -> Entry {
        Entry {
            nanos,
            service: service.into(),
            message: message.into(),
        }
    }

    #[test]
    fn loki_payload_is_pebbles() {
        let mut c = Client::new(&target(LogTargetType::Loki)).unwrap();
        c.set_labels(
            "b".into(),
            Some(BTreeMap::from([("zone".into(), "<z>".into())])),
        );
        c.set_labels("a".into(), Some(BTreeMap::new()));
        c.add(entry("b", 2_000_000, "b1"));
        c.add(entry("a", 3_000_000, "a1"));
        c.add(entry("b", 4_000_000, "b2"));
        assert_eq!(
            c.loki_body(),
            r#"{"streams":[{"stream":{"pebble_service":"a"},"values":[["3000000","a1"]]},{"stream":{"pebble_service":"b","zone":"\u003cz\u003e"},"values":[["2000000","b1"],["4000000","b2"]]}]}"#
        );
    }

    #[test]
    fn otel_payload_is_pebbles() {
        let mut c = Client::new(&target(LogTargetType::OpenTelemetry)).unwrap();
        c.set_labels("a".into(), Some(BTreeMap::from([("k".into(), "v".into())])));
        c.add(entry("a", 5_000_000, "hello"));
        assert_eq!(
            c.otel_body(),
            r#"{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"a"}},{"key":"k","value":{"stringValue":"v"}}]},"scopeLogs":[{"scope":{"name":"pebble"},"logRecords":[{"timeUnixNano":"5000000","body":{"stringValue":"hello"}}]}]}]}"#
        );
    }

    #[test]
    fn a_target_keeps_its_last_hundred_lines() {
        let mut c = Client::new(&target(LogTargetType::Loki)).unwrap();
        for i in 0..150 {
            c.add(entry("a", i, &i.to_string()));
        }
        assert_eq!(c.entries.len(), MAX_REQUEST_ENTRIES);
        assert_eq!(c.entries.front().unwrap().message, "50");
    }

    #[test]
    fn syslog_structured_data_is_escaped() {
        let mut c = Client::new(&target(LogTargetType::Syslog)).unwrap();
        c.set_labels(
            "a".into(),
            Some(BTreeMap::from([("k".into(), r#"q"b\r]"#.into())])),
        );
        assert_eq!(c.labels["a"], r#"[pebble@28978 k="q\"b\\r\]"]"#);
        let Kind::Syslog(s) = &c.kind else {
            unreachable!()
        };
        let frame = s.frame(&entry("a", 1_500_000_000, "m"), &c.labels, "m");
        assert!(
            frame.starts_with("<13>1 1970-01-01T00:00:01.5Z "),
            "{frame}"
        );
        assert!(
            frame.ends_with(r#" a - - [pebble@28978 k="q\"b\\r\]"] m"#),
            "{frame}"
        );
    }

    #[test]
    fn bad_syslog_locations_are_refused_with_pebbles_words() {
        let err = SyslogSender::new("http://x:1").err().unwrap();
        assert_eq!(
            err,
            r#"invalid syslog server location "http://x:1", must be in form "tcp://host:port" or "udp://host:port""#
        );
    }
}
