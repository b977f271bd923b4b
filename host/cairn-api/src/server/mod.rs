//! The API server: Pebble's routes over one container's [`Supervisor`].
//!
//! [`routes`] is the table: each path with, per method, the access it needs and the handler
//! that answers it, as Pebble's `api.go` does; dispatch looks a request up there once. The
//! handlers live one module per area (system, changes, services, plan and layers, checks
//! and health, notices, logs, signals, exec, files). This module serves connections and
//! identifies callers: on the unix socket by `SO_PEERCRED` (root and the daemon's own user
//! are admins, any other user may only read); the optional TCP listener has no identity,
//! so only open endpoints (system-info, health) answer there.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use cairn_supervisor::identities::IdentityAccess;
use cairn_supervisor::{Supervisor, SupervisorError};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::Response;
use hyper::body::Frame;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Deserialize;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::mpsc;

use crate::envelope::Reply;
use crate::sockpath::SocketPath;

pub(crate) use limits::truncate;
pub use limits::{AcceptBackoff, Limits, raise_nofile_limit};

mod changes;
mod checks;
mod exec;
mod files;
mod identities;
mod limits;
mod logs;
mod notices;
mod pairing;
mod plan;
mod routes;
mod services;
mod signals;
mod system;
pub mod tls;

/// Who may call an endpoint (Pebble's access checkers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// Anyone, on any listener.
    Open,
    /// A `metrics` user over HTTP (basic auth), or a `metrics`, `read` or `admin` user on
    /// the unix socket or over HTTPS.
    Metrics,
    /// A `read` or `admin` user on the unix socket or over HTTPS.
    Read,
    /// An `admin` user on the unix socket or over HTTPS.
    Admin,
    /// Pebble's `PairingAccess`: any caller over HTTPS while a pairing window is open.
    /// Pebble v1.32.1 opens none (its `EnablePairing` has no caller) and neither does
    /// Cairn, so every caller is refused, as Pebble refuses them.
    Pairing,
}

impl Access {
    /// Whether a caller over `caller`'s transport with access level `user` may call an
    /// endpoint that needs `self` (plain HTTP is never trusted beyond metrics).
    fn allows(self, caller: Caller, user: Option<IdentityAccess>) -> bool {
        let concealed = matches!(caller, Caller::Unix(_) | Caller::Https(_));
        match self {
            Access::Open => true,
            Access::Admin => concealed && user == Some(IdentityAccess::Admin),
            Access::Read => concealed && user >= Some(IdentityAccess::Read),
            Access::Metrics => {
                (matches!(caller, Caller::Http) && user == Some(IdentityAccess::Metrics))
                    || (concealed && user >= Some(IdentityAccess::Metrics))
            }
            Access::Pairing => matches!(caller, Caller::Https(_)) && PAIRING_WINDOW_OPEN,
        }
    }
}

/// What the server knows of a caller.
#[derive(Clone, Copy, Debug)]
enum Caller {
    /// A unix-socket peer with its uid.
    Unix(u32),
    /// A TCP peer: no identity.
    Http,
    /// A TLS peer, known by the SHA-256 of the one certificate it presented.
    Https([u8; 32]),
}

impl Caller {
    /// The access a caller has without a named identity: root and the daemon's user are
    /// admins, other local users read, HTTP callers nothing.
    fn default_access(self) -> Option<IdentityAccess> {
        match self {
            Caller::Unix(uid) if uid == 0 || uid == nix::unistd::Uid::current().as_raw() => {
                Some(IdentityAccess::Admin)
            }
            Caller::Unix(_) => Some(IdentityAccess::Read),
            Caller::Http | Caller::Https(_) => None,
        }
    }

    /// The caller's access level, as Pebble finds it: a TLS peer's certificate may be a
    /// cert identity's (basic auth is not taken over TLS, as Pebble does not take it);
    /// elsewhere basic-auth credentials name an identity whose password they must match;
    /// otherwise a unix peer's user id may name a local identity; failing all,
    /// [`Caller::default_access`].
    fn access(
        self,
        idents: &cairn_supervisor::identities::Identities,
        basic: Option<(String, String)>,
    ) -> Option<IdentityAccess> {
        let named = match (basic, self) {
            (_, Caller::Https(digest)) => idents
                .values()
                .find(|i| {
                    i.cert.as_ref().is_some_and(|c| {
                        cairn_supervisor::identities::certificate_der(&c.pem)
                            .is_ok_and(|der| tls::cert_digest(&der) == digest)
                    })
                })
                .map(|i| i.level()),
            (Some((user, password)), _) => idents
                .get(&user)
                .filter(|i| {
                    i.basic
                        .as_ref()
                        .is_some_and(|b| sha_crypt::sha512_check(&password, &b.password).is_ok())
                })
                .map(|i| i.level()),
            (None, Caller::Unix(uid)) => {
                cairn_supervisor::identities::by_user_id(idents, uid).map(|(_, i)| i.level())
            }
            (None, Caller::Http) => None,
        };
        named.or_else(|| self.default_access())
    }
}

/// The API of one container.
pub struct ApiServer {
    sup: Supervisor,
    boot_id: String,
    http_address: Option<String>,
    https_address: Option<String>,
}

impl ApiServer {
    /// An API over `sup`; `http_address` is reported by system-info when a TCP listener runs.
    pub fn new(sup: Supervisor, http_address: Option<String>) -> Arc<Self> {
        Self::with_addresses(sup, http_address, None)
    }

    /// [`ApiServer::new`], with the HTTPS listener's address for system-info too.
    pub fn with_addresses(
        sup: Supervisor,
        http_address: Option<String>,
        https_address: Option<String>,
    ) -> Arc<Self> {
        let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        Arc::new(ApiServer {
            sup,
            boot_id,
            http_address,
            https_address,
        })
    }
}

/// Whether a pairing window is open: never, as in stock Pebble (see [`Access::Pairing`]).
const PAIRING_WINDOW_OPEN: bool = false;

/// What a handler is given besides the request body: the server, the caller, the path's
/// variables in order, and the query.
struct Call<'a> {
    api: &'a ApiServer,
    limits: &'a Limits,
    caller: Caller,
    /// The caller's access level (`None` for an open endpoint's anonymous caller).
    user: Option<IdentityAccess>,
    vars: Vec<String>,
    query: Query,
}

impl Call<'_> {
    /// The container's supervisor.
    fn sup(&self) -> &Supervisor {
        &self.api.sup
    }

    /// The path variable at `i` (the table's pattern guarantees it is there).
    fn var(&self, i: usize) -> &str {
        &self.vars[i]
    }
}

/// A response body: whole, streamed or empty.
type Body = BoxBody<Bytes, Infallible>;

/// An envelope reply as a JSON response.
fn full(reply: Reply) -> Response<Body> {
    Response::builder()
        .status(reply.code)
        .header("Content-Type", "application/json")
        .body(Full::new(reply.body).boxed())
        .unwrap()
}

/// A streaming body fed by a channel (logs, file reads).
struct ChannelBody(mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

/// Query parameters, with Pebble's list rules (repeated and comma-joined both work).
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(q: Option<&str>) -> Query {
        Query(
            form_urlencoded::parse(q.unwrap_or("").as_bytes())
                .into_owned()
                .collect(),
        )
    }

    fn get(&self, key: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    /// Every value of a repeated parameter, not split on commas (file paths may hold them).
    fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn has(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }

    fn list(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }
}

/// A supervisor error as Pebble's API reports it (through the one mapping in [`crate::error`]).
fn sup_error(e: SupervisorError) -> Reply {
    let e = crate::ApiError::from(&e);
    Reply::error(e.code, e.kind, e.message)
}

/// Decodes a JSON body; explicit `null`s are fine (fields are optional).
fn decode<T: for<'de> Deserialize<'de>>(body: &[u8], prefix: &str) -> Result<T, Reply> {
    serde_json::from_slice(body).map_err(|e| Reply::bad_request(format!("{prefix}: {e}")))
}

/// Deserializes an explicit `null` as the default, as Go's JSON decoding does.
fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A running server; dropping it leaves the listeners running until [`ServerHandle::stop`].
pub struct ServerHandle {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    socket: Option<PathBuf>,
    /// Set to true by [`ServerHandle::stop`]: open connections end with it.
    closed: tokio::sync::watch::Sender<bool>,
}

impl ServerHandle {
    /// Stops accepting connections, ends the open ones (a request in progress is dropped,
    /// so that nothing reaches a container being removed through a kept-alive connection)
    /// and removes the socket file.
    pub fn stop(self) {
        for t in &self.tasks {
            t.abort();
        }
        let _ = self.closed.send(true);
        if let Some(s) = &self.socket {
            let _ = std::fs::remove_file(s);
        }
    }
}

fn serve_conn<S>(
    api: Arc<ApiServer>,
    limits: Arc<Limits>,
    caller: Caller,
    stream: S,
    mut closed: tokio::sync::watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let lim = limits.clone();
        // The tenant pays for its requests from its share of the host's CPU: each waits
        // while the share is in debt, and the connection's work is charged to it.
        let share = api.sup.cpu_share().cloned();
        let charged = share.clone();
        let svc = service_fn(move |req| {
            let (api, lim, share) = (api.clone(), lim.clone(), share.clone());
            async move {
                if let Some(share) = &share {
                    share.wait().await;
                }
                Ok::<_, Infallible>(routes::dispatch(&api, &lim, caller, req).await)
            }
        });
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_buf_size(MAX_HEAD)
            .serve_connection(TokioIo::new(stream), svc)
            .with_upgrades();
        let conn = cairn_supervisor::share::Charged::new(conn, charged);
        tokio::select! {
            result = conn => {
                if let Err(e) = result {
                    tracing::debug!("api connection: {e}");
                }
            }
            // The server was stopped: the connection ends. (A dropped handle leaves the
            // server running, its connections too.)
            _ = async {
                if closed.wait_for(|c| *c).await.is_err() {
                    std::future::pending::<()>().await;
                }
            } => {}
        }
    });
}

/// Bytes hyper buffers for a request head (Go's `DefaultMaxHeaderBytes` is 1 MiB).
const MAX_HEAD: usize = 1 << 20;

/// Admits an accepted connection of `uid`, or answers 503 and closes it.
fn admit_or_refuse<S>(
    limits: &Limits,
    count: &Arc<AtomicUsize>,
    uid: u32,
    stream: &S,
    write: impl Fn(&S, &[u8]) -> std::io::Result<usize>,
) -> Option<limits::Admission> {
    match limits::admit(limits, count, uid) {
        Ok(a) => Some(a),
        Err(reason) => {
            tracing::debug!("refusing api connection of uid {uid}: {reason}");
            let _ = write(stream, &limits::refusal(reason));
            None
        }
    }
}

/// Serves the API on a unix socket (mode 0666, as Pebble's) and, if given, plain HTTP on
/// `http` for the open endpoints, with the default [`Limits`].
pub async fn serve(
    api: Arc<ApiServer>,
    socket: &Path,
    http: Option<SocketAddr>,
) -> std::io::Result<ServerHandle> {
    serve_with(api, socket, http, Limits::default()).await
}

/// [`serve`] with the given limits. The socket path may be of any length.
pub async fn serve_with(
    api: Arc<ApiServer>,
    socket: &Path,
    http: Option<SocketAddr>,
    limits: Limits,
) -> std::io::Result<ServerHandle> {
    serve_tls(api, socket, http, None, limits).await
}

/// [`serve_with`], plus an HTTPS listener (`pebble run --https`) with its TLS
/// configuration ([`tls::server_config`]).
pub async fn serve_tls(
    api: Arc<ApiServer>,
    socket: &Path,
    http: Option<SocketAddr>,
    https: Option<(SocketAddr, Arc<rustls::ServerConfig>)>,
    limits: Limits,
) -> std::io::Result<ServerHandle> {
    let limits = Arc::new(limits);
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(SocketPath::new(socket)?.path())?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o666))?;
    let mut tasks = Vec::new();
    let (closed, closed_rx) = tokio::sync::watch::channel(false);
    {
        let (api, limits, closed) = (api.clone(), limits.clone(), closed_rx.clone());
        let what = socket.display().to_string();
        // Accepting (and refusing) connections is work for the tenant too: charged to its
        // share, and held while the share is in debt, so that a workload reconnecting in a
        // loop waits in the socket's backlog instead of costing the daemon.
        let share = api.sup.cpu_share().cloned();
        tasks.push(tokio::spawn(cairn_supervisor::share::Charged::new(
            async move {
                let count = Arc::new(AtomicUsize::new(0));
                let mut backoff = AcceptBackoff::new();
                loop {
                    if let Some(share) = api.sup.cpu_share() {
                        share.wait().await;
                    }
                    let (stream, _) = backoff.accept(&what, || listener.accept()).await;
                    let uid = stream.peer_cred().map(|c| c.uid()).unwrap_or(u32::MAX);
                    // A strict container's root (the first host id of its range) is the admin
                    // of its own Pebble, as root in a pod is.
                    let tenant_root = api.sup.root().and_then(|r| r.ids()).map(|m| m.base);
                    let uid = if tenant_root == Some(uid) { 0 } else { uid };
                    let Some(admission) =
                        admit_or_refuse(&limits, &count, uid, &stream, |s, b| s.try_write(b))
                    else {
                        continue;
                    };
                    serve_conn(
                        api.clone(),
                        limits.clone(),
                        Caller::Unix(uid),
                        Admitted {
                            io: stream,
                            _admission: admission,
                        },
                        closed.clone(),
                    );
                }
            },
            share,
        )));
    }
    if let Some(addr) = http {
        let tcp = TcpListener::bind(addr).await?;
        let (api, limits, closed_rx) = (api.clone(), limits.clone(), closed_rx.clone());
        tasks.push(tokio::spawn(async move {
            let mut admit = TcpAdmission::new(addr);
            loop {
                let (stream, _, admission) = admit.next(&tcp, &limits).await;
                serve_conn(
                    api.clone(),
                    limits.clone(),
                    Caller::Http,
                    Admitted {
                        io: stream,
                        _admission: admission,
                    },
                    closed_rx.clone(),
                );
            }
        }));
    }
    if let Some((addr, config)) = https {
        let tcp = TcpListener::bind(addr).await?;
        let (api, limits, closed_rx) = (api.clone(), limits.clone(), closed_rx.clone());
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        tasks.push(tokio::spawn(async move {
            let mut admit = TcpAdmission::new(addr);
            loop {
                // Counted as plain HTTP peers are, from before the handshake.
                let (stream, peer, admission) = admit.next(&tcp, &limits).await;
                let (api, limits, closed, acceptor) = (
                    api.clone(),
                    limits.clone(),
                    closed_rx.clone(),
                    acceptor.clone(),
                );
                // The handshake runs beside the accept loop, bounded as a request head is.
                tokio::spawn(async move {
                    let handshake =
                        tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream));
                    let tls = match handshake.await {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(e)) => {
                            tracing::info!("http: TLS handshake error from {peer}: {e}");
                            return;
                        }
                        Err(_) => {
                            tracing::info!("http: TLS handshake error from {peer}: timed out");
                            return;
                        }
                    };
                    let Some(cert) = tls.get_ref().1.peer_certificates().and_then(|c| c.first())
                    else {
                        return;
                    };
                    let caller = Caller::Https(tls::cert_digest(cert));
                    serve_conn(
                        api,
                        limits.clone(),
                        caller,
                        Admitted {
                            io: tls,
                            _admission: admission,
                        },
                        closed,
                    );
                });
            }
        }));
    }
    Ok(ServerHandle {
        tasks,
        socket: Some(socket.to_path_buf()),
        closed,
    })
}

/// The accept loop of a TCP listener (HTTP or HTTPS): accept errors back off, and every
/// peer is admitted as one unprivileged user (TCP peers have no identity: they share its
/// share of connections).
struct TcpAdmission {
    count: Arc<AtomicUsize>,
    backoff: AcceptBackoff,
    what: String,
}

impl TcpAdmission {
    fn new(addr: SocketAddr) -> Self {
        TcpAdmission {
            count: Arc::new(AtomicUsize::new(0)),
            backoff: AcceptBackoff::new(),
            what: addr.to_string(),
        }
    }

    /// The next admitted peer (refused ones are answered 503 and closed here).
    async fn next(
        &mut self,
        tcp: &TcpListener,
        limits: &Limits,
    ) -> (tokio::net::TcpStream, SocketAddr, limits::Admission) {
        loop {
            let (stream, peer) = match tcp.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    self.backoff.failed(&self.what, &e).await;
                    continue;
                }
            };
            self.backoff.reset();
            let admitted = admit_or_refuse(limits, &self.count, u32::MAX, &stream, |s, b| {
                s.try_write(b)
            });
            if let Some(admission) = admitted {
                let _ = stream.set_nodelay(true);
                return (stream, peer, admission);
            }
        }
    }
}

/// A connection with its admission, given back when the connection is dropped.
struct Admitted<S> {
    io: S,
    _admission: limits::Admission,
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Admitted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Admitted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// How long a client waits for a change by default (as ops' 30 s).
pub const DEFAULT_WAIT: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_lists_accept_repeats_and_commas() {
        let q = Query::parse(Some("names=a,b&names=c&x=1"));
        assert_eq!(q.list("names"), ["a", "b", "c"]);
        assert_eq!(q.get("x"), "1");
        assert_eq!(q.get("y"), "");
    }

    #[test]
    fn access_levels_follow_peer_uid_then_identities() {
        use cairn_supervisor::identities::{BasicIdentity, Identity, LocalIdentity};
        let none = Default::default();
        assert_eq!(
            Caller::Unix(0).access(&none, None),
            Some(IdentityAccess::Admin)
        );
        assert_eq!(
            Caller::Unix(54321).access(&none, None),
            Some(IdentityAccess::Read)
        );
        assert_eq!(Caller::Http.access(&none, None), None);
        let mut ids = cairn_supervisor::identities::Identities::new();
        ids.insert(
            "bob".into(),
            Identity {
                access: "untrusted".into(),
                local: Some(LocalIdentity {
                    user_id: Some(54321),
                }),
                basic: None,
                cert: None,
            },
        );
        // `openssl passwd -6 -salt saltsalt secret`.
        let hash = "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1";
        ids.insert(
            "scraper".into(),
            Identity {
                access: "metrics".into(),
                local: None,
                basic: Some(BasicIdentity {
                    password: hash.into(),
                }),
                cert: None,
            },
        );
        assert_eq!(
            Caller::Unix(54321).access(&ids, None),
            Some(IdentityAccess::Untrusted)
        );
        let creds = |u: &str, p: &str| Some((u.to_string(), p.to_string()));
        assert_eq!(
            Caller::Http.access(&ids, creds("scraper", "secret")),
            Some(IdentityAccess::Metrics)
        );
        assert_eq!(Caller::Http.access(&ids, creds("scraper", "wrong")), None);
        assert!(Access::Metrics.allows(Caller::Http, Some(IdentityAccess::Metrics)));
        assert!(!Access::Metrics.allows(Caller::Http, Some(IdentityAccess::Admin)));
        assert!(!Access::Read.allows(Caller::Http, Some(IdentityAccess::Admin)));
        assert!(!Access::Read.allows(Caller::Unix(1), Some(IdentityAccess::Untrusted)));
        assert!(Access::Open.allows(Caller::Http, None));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn read_only_callers_cannot_write() {
        if !nix::unistd::Uid::current().is_root() {
            eprintln!("skipped: needs root to call the API as another user");
            return;
        }
        let t = crate::testutil::TestApi::start("access").await;
        std::fs::set_permissions(t.dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
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
            .arg(&t.socket)
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
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn stopping_a_server_ends_its_kept_alive_connections() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut t = crate::testutil::TestApi::start("stop-conns").await;
        let mut conn = tokio::net::UnixStream::connect(&t.socket).await.unwrap();
        let get = b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n";
        conn.write_all(get).await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = conn.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
        // The connection is kept alive; stopping the server must end it, so that nothing
        // reaches a container being removed through it.
        // The server closes it without a request (its idle timeout, 30 s, is far off).
        t.stop_server();
        let end = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf))
            .await
            .expect("the connection outlived the server");
        assert!(matches!(end, Ok(0) | Err(_)), "{end:?}");
    }
}
