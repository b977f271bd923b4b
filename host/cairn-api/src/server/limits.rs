//! What one caller can make the server hold: connections, descriptors, time and bytes.
//!
//! Every accepted connection is admitted against three counts: the socket's own, the
//! peer uid's across the whole process (an unprivileged user reaching many unit sockets
//! still gets one share), and the process's descriptor budget: `RLIMIT_NOFILE` minus a
//! reserve that API connections never take, so the daemon's control socket, state files
//! and service pipes always find a descriptor. Root and the daemon's own user may use the
//! whole budget; other users together at most half of it, each a quarter. A refused
//! connection gets a short 503 and is closed at once. Accept errors (`EMFILE`, `ENFILE`,
//! ...) pause the loop with a growing back-off instead of spinning and never end it.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// Limits of one server.
#[derive(Clone, Debug)]
pub struct Limits {
    /// How long a connection may take to send a request's headers, idle keep-alive time
    /// included (long polls, log follows and websockets run after the headers, unbounded).
    pub header_read_timeout: Duration,
    /// How long a buffered (JSON) request body may take to arrive.
    pub body_read_timeout: Duration,
    /// Connections open at once on one socket.
    pub max_connections: usize,
    /// Connections open at once, process-wide, for one unprivileged uid.
    pub max_connections_per_uid: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(60),
            max_connections: 512,
            max_connections_per_uid: 64,
        }
    }
}

/// Bytes of a JSON request body, unless the route says otherwise.
pub const DEFAULT_BODY_LIMIT: usize = 1 << 20;
/// Bytes of a `POST /v1/layers` body (the YAML of a big plan, JSON-escaped).
pub const LAYERS_BODY_LIMIT: usize = 8 << 20;
/// Bytes of a `POST /v1/notices` body (Pebble caps the data at 4 KiB, the key at 256).
pub const NOTICES_BODY_LIMIT: usize = 64 << 10;
/// Bytes of the metadata part of a multipart file write.
pub const FILES_METADATA_LIMIT: usize = 1 << 20;

/// Descriptors API connections leave to everything else: an eighth of the limit, at least
/// 64, at most 4096.
pub fn descriptor_reserve(limit: usize) -> usize {
    (limit / 8).clamp(64, 4096)
}

/// The soft `RLIMIT_NOFILE`.
fn nofile_limit() -> usize {
    getrlimit(Resource::RLIMIT_NOFILE)
        .map(|(soft, _)| usize::try_from(soft).unwrap_or(usize::MAX))
        .unwrap_or(1024)
}

/// Raises the soft `RLIMIT_NOFILE` to the hard one (a daemon serving many sockets needs
/// more than the default 1024); returns the new soft limit.
pub fn raise_nofile_limit() -> io::Result<u64> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(io::Error::from)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).map_err(io::Error::from)?;
    }
    Ok(hard.max(soft))
}

/// Whether `uid` is root or the daemon's own user.
pub(super) fn privileged(uid: u32) -> bool {
    uid == 0 || uid == nix::unistd::Uid::current().as_raw()
}

/// Process-wide connection counts.
#[derive(Default)]
struct Counts {
    total: usize,
    unprivileged: usize,
    per_uid: HashMap<u32, usize>,
}

static COUNTS: Mutex<Option<Counts>> = Mutex::new(None);

/// An admitted connection; dropping it gives its share back.
pub(super) struct Admission {
    uid: u32,
    privileged: bool,
    socket: Arc<AtomicUsize>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.socket.fetch_sub(1, Ordering::Relaxed);
        let mut g = COUNTS.lock().unwrap_or_else(|e| e.into_inner());
        let c = g.get_or_insert_with(Counts::default);
        c.total = c.total.saturating_sub(1);
        if !self.privileged {
            c.unprivileged = c.unprivileged.saturating_sub(1);
        }
        if let Some(n) = c.per_uid.get_mut(&self.uid) {
            *n -= 1;
            if *n == 0 {
                c.per_uid.remove(&self.uid);
            }
        }
    }
}

/// Admits a connection of `uid` on a socket with `socket` connections open, or says why not.
pub(super) fn admit(
    limits: &Limits,
    socket: &Arc<AtomicUsize>,
    uid: u32,
) -> Result<Admission, &'static str> {
    let privileged = privileged(uid);
    let limit = nofile_limit();
    let budget = limit.saturating_sub(descriptor_reserve(limit));
    let mut g = COUNTS.lock().unwrap_or_else(|e| e.into_inner());
    let c = g.get_or_insert_with(Counts::default);
    if socket.load(Ordering::Relaxed) >= limits.max_connections {
        return Err("too many connections on this socket");
    }
    if c.total >= budget {
        return Err("too many connections");
    }
    let mine = c.per_uid.get(&uid).copied().unwrap_or(0);
    if !privileged
        && (c.unprivileged >= budget / 2 || mine >= limits.max_connections_per_uid.min(budget / 4))
    {
        return Err("too many connections from this user");
    }
    c.total += 1;
    if !privileged {
        c.unprivileged += 1;
    }
    *c.per_uid.entry(uid).or_default() += 1;
    socket.fetch_add(1, Ordering::Relaxed);
    Ok(Admission {
        uid,
        privileged,
        socket: socket.clone(),
    })
}

/// The reply a refused connection gets before it is closed.
pub(super) fn refusal(reason: &str) -> Vec<u8> {
    let body = serde_json::json!({
        "type": "error",
        "status-code": 503,
        "status": "Service Unavailable",
        "result": {"message": format!("cannot serve connection: {reason}")},
    })
    .to_string();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Pauses an accept loop after errors, longer after each (10 ms doubling to 1 s), so that
/// running out of descriptors neither spins the CPU nor stops the loop.
#[derive(Debug, Default)]
pub struct AcceptBackoff {
    pause: Option<Duration>,
    logged: Option<std::time::Instant>,
}

impl AcceptBackoff {
    /// A fresh back-off.
    pub fn new() -> Self {
        AcceptBackoff::default()
    }

    /// An accept succeeded: the next error pauses briefly again.
    pub fn reset(&mut self) {
        self.pause = None;
    }

    /// An accept failed with `e` on `what`: logs it (at most every 10 s) and waits.
    pub async fn failed(&mut self, what: &str, e: &io::Error) {
        let pause = self.pause.map_or(Duration::from_millis(10), |p| {
            (p * 2).min(Duration::from_secs(1))
        });
        self.pause = Some(pause);
        if self
            .logged
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(10))
        {
            self.logged = Some(std::time::Instant::now());
            tracing::warn!("cannot accept connection on {what}: {e} (retrying)");
        }
        tokio::time::sleep(pause).await;
    }

    /// Calls `accept` until it succeeds, backing off after each error: the whole accept
    /// step of a loop that must survive `EMFILE` (cancel-safe when `accept` is).
    pub async fn accept<T, F, Fut>(&mut self, what: &str, mut accept: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = io::Result<T>>,
    {
        loop {
            match accept().await {
                Ok(v) => {
                    self.reset();
                    return v;
                }
                Err(e) => self.failed(what, &e).await,
            }
        }
    }
}

/// At most `max` bytes of `s` (cut at a character boundary), marked when cut: error
/// messages quote what callers sent, and must not grow with it.
pub fn truncate(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if s.len() <= max {
        return s.into();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &s[..end], s.len()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_short_text_and_cuts_long_text_at_a_character() {
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abcd", 3), "abc... (4 bytes)");
        assert_eq!(truncate("ééé", 3), "é... (6 bytes)");
    }

    use std::io::{Read, Write};
    use std::os::unix::fs::PermissionsExt;
    use std::time::Instant;

    use cairn_supervisor::{Supervisor, SupervisorOptions};
    use hyper::Method;

    use crate::testutil::{TempDir, TestApi, check};
    use crate::{ApiServer, Client};

    /// Sends `head` and then `len` bytes of `x` on a new connection; returns the reply.
    fn send_raw(socket: &std::path::Path, head: &str, len: usize) -> String {
        let mut s = std::os::unix::net::UnixStream::connect(socket).unwrap();
        // A server that waits for the whole body would keep this test waiting forever.
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
        s.write_all(head.as_bytes()).unwrap();
        let chunk = vec![b'x'; 1 << 16];
        let mut left = len;
        while left > 0 {
            let n = left.min(chunk.len());
            // The server may answer and close before all is sent: that is the point.
            if s.write_all(&chunk[..n]).is_err() {
                break;
            }
            left -= n;
        }
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn oversized_bodies_are_refused_with_a_short_error() {
        let t = TestApi::start("body-limit").await;
        let socket = t.socket.clone();
        let big = LAYERS_BODY_LIMIT + 1;
        let replies = tokio::task::spawn_blocking(move || {
            let declared = send_raw(
                &socket,
                &format!("POST /v1/layers HTTP/1.1\r\nHost: x\r\nContent-Length: {big}\r\n\r\n"),
                big,
            );
            let chunked = send_raw(
                &socket,
                &format!(
                    "POST /v1/services HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
                    2 * DEFAULT_BODY_LIMIT
                ),
                2 * DEFAULT_BODY_LIMIT,
            );
            (declared, chunked)
        })
        .await
        .unwrap();
        for reply in [replies.0, replies.1] {
            assert!(reply.starts_with("HTTP/1.1 413"), "{reply:.300}");
            assert!(reply.len() < 1024, "long reply: {} bytes", reply.len());
            assert!(
                reply.contains("cannot read request body: body larger than"),
                "{reply}"
            );
        }
        // The server goes on serving.
        t.client.services(&[]).await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn errors_quote_at_most_a_kilobyte_of_what_was_sent() {
        let t = TestApi::start("short-errors").await;
        let action = "a".repeat(DEFAULT_BODY_LIMIT - 100);
        let body = serde_json::json!({ "action": action }).to_string();
        let (code, reply) = t
            .client
            .raw(Method::POST, "/v1/services", Some(body.into_bytes()))
            .await
            .unwrap();
        assert_eq!(code, 400);
        assert!(reply.len() < 2048, "reply of {} bytes", reply.len());
        check((code, reply), 400, "must specify services for aaaa");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn idle_connections_are_closed_but_long_polls_are_not() {
        let dir = TempDir::new("idle");
        let sup = Supervisor::open(SupervisorOptions::new(dir.path())).unwrap();
        let socket = dir.path().join(".pebble.socket");
        let limits = Limits {
            header_read_timeout: Duration::from_millis(300),
            ..Limits::default()
        };
        let h = crate::serve_with(ApiServer::new(sup, None), &socket, None, limits)
            .await
            .unwrap();
        let s = socket.clone();
        let idle = tokio::task::spawn_blocking(move || {
            let mut c = std::os::unix::net::UnixStream::connect(&s).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let start = Instant::now();
            let mut buf = [0u8; 64];
            (c.read(&mut buf).map_err(|e| e.kind()), start.elapsed())
        })
        .await
        .unwrap();
        assert!(
            matches!(idle.0, Ok(0)) && idle.1 < Duration::from_secs(5),
            "an idle connection was kept: {idle:?}"
        );
        // A long poll waits past the header timeout and still gets its answer.
        let c = Client::unix(&socket);
        let (code, _) = c
            .raw(Method::GET, "/v1/notices?timeout=1s", None)
            .await
            .unwrap();
        assert_eq!(code, 200);
        h.stop();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn serve_and_connect_work_on_a_200_byte_socket_path() {
        let dir = TempDir::new("long-path");
        let mut deep = dir.path().to_path_buf();
        while deep.as_os_str().len() < 200 - ".pebble.socket".len() - 1 {
            deep.push("d".repeat(30));
        }
        std::fs::create_dir_all(&deep).unwrap();
        let socket = deep.join(".pebble.socket");
        assert!(socket.as_os_str().len() >= 200, "{}", socket.display());
        let sup = Supervisor::open(SupervisorOptions::new(&deep)).unwrap();
        let h = crate::serve(ApiServer::new(sup, None), &socket, None)
            .await
            .unwrap();
        assert!(socket.exists());
        let info = Client::unix(&socket).system_info().await.unwrap();
        assert!(info.version.starts_with('v'), "{info:?}");
        h.stop();
        assert!(!socket.exists(), "the socket was left behind");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_unprivileged_user_gets_a_capped_share_of_connections_and_root_still_gets_in() {
        cairn_testutil::require_root!("connecting as another user");
        let t = TestApi::start("per-uid").await;
        std::fs::set_permissions(t.dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
        // A real peer as nobody holds 100 connections, each asking for the services.
        let script = r#"
import os, socket, sys
os.setgid(65534); os.setuid(65534)
held, served, refused = [], 0, 0
for i in range(100):
    s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
    # A refused connection may be closed before the request is all sent, or reset.
    try:
        s.sendall(b"GET /v1/services HTTP/1.1\r\nHost: x\r\n\r\n")
        head = s.recv(12)
    except (BrokenPipeError, ConnectionResetError):
        head = b""
    if head.startswith(b"HTTP/1.1 200"): served += 1
    elif head.startswith(b"HTTP/1.1 503") or head == b"": refused += 1
    held.append(s)
print(served, refused)
"#;
        let out = tokio::process::Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(&t.socket)
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let counts: Vec<usize> = text
            .split_whitespace()
            .map(|n| n.parse().unwrap())
            .collect();
        let cap = Limits::default().max_connections_per_uid;
        assert!(
            counts[0] <= cap && counts[0] > 0 && counts[0] + counts[1] == 100,
            "served, refused: {counts:?}"
        );
        t.client.services(&[]).await.unwrap();
    }

    #[test]
    fn the_reserve_grows_with_the_limit_within_bounds() {
        assert_eq!(descriptor_reserve(256), 64);
        assert_eq!(descriptor_reserve(8192), 1024);
        assert_eq!(descriptor_reserve(1 << 20), 4096);
    }
}
