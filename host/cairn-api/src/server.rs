//! The API server: Pebble's routes over one container's [`Supervisor`].
//!
//! A declarative route table gives each path its read and write access level, as Pebble's
//! `api.go` does. Callers on the unix socket are identified by `SO_PEERCRED`: root and the
//! daemon's own user are admins, any other user may only read. The optional TCP listener
//! has no identity, so only open endpoints (system-info, health) answer there.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use cairn_plan::CheckLevel;
use cairn_supervisor::notices::NoticeType;
use cairn_supervisor::{ChangeSelect, ServicesAction, Supervisor, SupervisorError};

use crate::types;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::mpsc;

use crate::envelope::Reply;

/// Who may call an endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// Anyone, on any listener.
    Open,
    /// Any identified local user.
    Read,
    /// Root or the daemon's user.
    Admin,
}

/// What the server knows of a caller.
#[derive(Clone, Copy, Debug)]
enum Caller {
    /// A unix-socket peer with its uid.
    Unix(u32),
    /// A TCP peer: no identity.
    Http,
}

impl Caller {
    fn access(self) -> Option<Access> {
        match self {
            Caller::Unix(uid) if uid == 0 || uid == nix::unistd::Uid::current().as_raw() => {
                Some(Access::Admin)
            }
            Caller::Unix(_) => Some(Access::Read),
            Caller::Http => None,
        }
    }
}

/// One route: a path pattern with its access levels.
struct Route {
    path: &'static str,
    read: Option<Access>,
    write: Option<Access>,
}

/// Pebble's route table (the endpoints served so far).
const ROUTES: &[Route] = &[
    Route {
        path: "/v1/system-info",
        read: Some(Access::Open),
        write: None,
    },
    Route {
        path: "/v1/health",
        read: Some(Access::Open),
        write: None,
    },
    Route {
        path: "/v1/changes",
        read: Some(Access::Read),
        write: None,
    },
    Route {
        path: "/v1/changes/{id}",
        read: Some(Access::Read),
        write: Some(Access::Admin),
    },
    Route {
        path: "/v1/changes/{id}/wait",
        read: Some(Access::Read),
        write: None,
    },
    Route {
        path: "/v1/services",
        read: Some(Access::Read),
        write: Some(Access::Admin),
    },
    Route {
        path: "/v1/services/{name}",
        read: Some(Access::Read),
        write: Some(Access::Admin),
    },
    Route {
        path: "/v1/plan",
        read: Some(Access::Admin),
        write: None,
    },
    Route {
        path: "/v1/layers",
        read: None,
        write: Some(Access::Admin),
    },
    Route {
        path: "/v1/logs",
        read: Some(Access::Read),
        write: None,
    },
    Route {
        path: "/v1/signals",
        read: None,
        write: Some(Access::Admin),
    },
    Route {
        path: "/v1/checks",
        read: Some(Access::Read),
        write: Some(Access::Admin),
    },
    Route {
        path: "/v1/checks/refresh",
        read: None,
        write: Some(Access::Admin),
    },
    Route {
        path: "/v1/metrics",
        read: Some(Access::Read),
        write: None,
    },
    Route {
        path: "/v1/exec",
        read: None,
        write: Some(Access::Admin),
    },
    Route {
        path: "/v1/tasks/{task-id}/websocket/{websocket-id}",
        read: Some(Access::Admin),
        write: None,
    },
    Route {
        path: "/v1/files",
        read: Some(Access::Admin),
        write: Some(Access::Admin),
    },
    Route {
        path: "/v1/notices",
        read: Some(Access::Read),
        write: Some(Access::Read),
    },
    Route {
        path: "/v1/notices/{id}",
        read: Some(Access::Read),
        write: None,
    },
];

fn match_route(path: &str) -> Option<(&'static Route, Vec<String>)> {
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    ROUTES.iter().find_map(|r| {
        let pat: Vec<&str> = r.path.split('/').collect();
        if pat.len() != segs.len() {
            return None;
        }
        let mut vars = Vec::new();
        for (p, s) in pat.iter().zip(&segs) {
            if p.starts_with('{') {
                if s.is_empty() {
                    return None;
                }
                vars.push(s.to_string());
            } else if p != s {
                return None;
            }
        }
        Some((r, vars))
    })
}

/// The API of one container.
pub struct ApiServer {
    sup: Supervisor,
    boot_id: String,
    http_address: Option<String>,
}

pub(crate) type Body = BoxBody<Bytes, Infallible>;

pub(crate) fn full(reply: Reply) -> Response<Body> {
    Response::builder()
        .status(reply.code)
        .header("Content-Type", "application/json")
        .body(Full::new(reply.body).boxed())
        .unwrap()
}

/// A streaming body fed by a channel (for `GET /v1/logs`).
pub(crate) struct ChannelBody(pub(crate) mpsc::Receiver<Bytes>);

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
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    fn parse(q: Option<&str>) -> Query {
        Query(
            form_urlencoded::parse(q.unwrap_or("").as_bytes())
                .into_owned()
                .collect(),
        )
    }

    pub(crate) fn get(&self, key: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    /// Every value of a repeated parameter, not split on commas (file paths may hold them).
    pub(crate) fn all(&self, key: &str) -> Vec<String> {
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

pub(crate) fn sup_error(e: SupervisorError) -> Reply {
    let e = crate::ApiError::from(&e);
    Reply::error(e.code, e.kind, e.message)
}

/// The level a validated `level=` query names (`None` for all).
fn check_level(level: &str) -> Option<CheckLevel> {
    match level {
        "alive" => Some(CheckLevel::Alive),
        "ready" => Some(CheckLevel::Ready),
        _ => None,
    }
}

/// Decodes a JSON body; explicit `null`s are fine (fields are optional).
fn decode<T: for<'de> Deserialize<'de>>(body: &[u8], prefix: &str) -> Result<T, Reply> {
    serde_json::from_slice(body).map_err(|e| Reply::bad_request(format!("{prefix}: {e}")))
}

fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

impl ApiServer {
    /// An API over `sup`; `http_address` is reported by system-info when a TCP listener runs.
    pub fn new(sup: Supervisor, http_address: Option<String>) -> Arc<Self> {
        let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        Arc::new(ApiServer {
            sup,
            boot_id,
            http_address,
        })
    }

    async fn handle(self: Arc<Self>, caller: Caller, req: Request<Incoming>) -> Response<Body> {
        let path = req.uri().path().to_string();
        let Some((route, vars)) = match_route(&path) else {
            return full(Reply::not_found("invalid API endpoint requested"));
        };
        let method = req.method().clone();
        let need = match method {
            Method::GET => route.read,
            Method::POST | Method::PUT => route.write,
            _ => None,
        };
        let Some(need) = need else {
            return full(Reply::error(
                405,
                "",
                format!("method {:?} not allowed", method.as_str()),
            ));
        };
        if need != Access::Open && caller.access().is_none_or(|have| have < need) {
            return full(Reply::error(401, "", "access denied"));
        }
        let query = Query::parse(req.uri().query());
        if route.path == "/v1/logs" {
            return self.logs(&query);
        }
        if route.path == "/v1/tasks/{task-id}/websocket/{websocket-id}" {
            return crate::exec_api::websocket(&self.sup, req, &vars[0], &vars[1]);
        }
        if route.path == "/v1/files" {
            return match method {
                Method::GET => crate::files_api::get(&req, &query, self.sup.root().cloned()),
                _ => crate::files_api::post(req, self.sup.root().cloned()).await,
            };
        }
        if route.path == "/v1/metrics" {
            return Response::builder()
                .status(200)
                .header("Content-Type", "text/plain; charset=utf-8")
                .body(Full::new(Bytes::from(self.sup.metrics())).boxed())
                .unwrap();
        }
        let body = match req.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => return full(Reply::bad_request(format!("cannot read request body: {e}"))),
        };
        let reply = match (method, route.path) {
            (Method::GET, "/v1/system-info") => self.system_info(),
            (Method::GET, "/v1/health") => self.health(&query),
            (Method::GET, "/v1/changes") => self.changes(&query),
            (Method::GET, "/v1/changes/{id}") => self
                .sup
                .change(&vars[0])
                .map(|c| Reply::sync(types::ChangeInfo::from(&c)))
                .unwrap_or_else(sup_error),
            (Method::POST, "/v1/changes/{id}") => self.post_change(&vars[0], &body),
            (Method::GET, "/v1/changes/{id}/wait") => self.wait_change(&vars[0], &query).await,
            (Method::GET, "/v1/services") => Reply::sync(types::wire::<_, types::ServiceInfo>(
                &self.sup.services(&query.list("names")),
            )),
            (Method::POST, "/v1/services") => self.post_services(&body),
            (_, "/v1/services/{name}") => Reply::bad_request("not implemented"),
            (Method::GET, "/v1/plan") => self.plan(&query),
            (Method::POST, "/v1/layers") => self.post_layers(&body),
            (Method::POST, "/v1/signals") => self.post_signals(&body),
            (Method::GET, "/v1/checks") => self.checks(&query),
            (Method::POST, "/v1/checks") => self.post_checks(&body),
            (Method::POST, "/v1/exec") => crate::exec_api::post(&self.sup, &body),
            (Method::POST, "/v1/checks/refresh") => self.refresh_check(&body).await,
            (Method::GET, "/v1/notices") => self.notices(caller, &query).await,
            (Method::POST, "/v1/notices") => self.post_notices(caller, &body),
            (Method::GET, "/v1/notices/{id}") => self.notice(caller, &vars[0]),
            (m, _) => Reply::error(405, "", format!("method {:?} not allowed", m.as_str())),
        };
        full(reply)
    }

    fn system_info(&self) -> Reply {
        let mut v = serde_json::json!({
            "boot-id": self.boot_id,
            "version": concat!("v", env!("CARGO_PKG_VERSION")),
        });
        if let Some(a) = &self.http_address {
            v["http-address"] = a.clone().into();
        }
        Reply::sync(v)
    }

    fn health(&self, q: &Query) -> Reply {
        match q.get("level") {
            "" | "alive" | "ready" => {}
            _ => return Reply::bad_request("level must be \"alive\" or \"ready\""),
        }
        let healthy = self.sup.healthy(check_level(q.get("level")), &q.list("names"));
        Reply::sync_with(
            if healthy { 200 } else { 502 },
            serde_json::json!({ "healthy": healthy }),
        )
    }

    async fn notices(&self, caller: Caller, q: &Query) -> Reply {
        let Caller::Unix(uid) = caller else {
            return Reply::error(
                403,
                "",
                "cannot determine UID of request, so cannot retrieve notices",
            );
        };
        let admin = caller.access() == Some(Access::Admin);
        let mut user_id = Some(uid);
        let user_ids = q.list("user-id");
        if q.has("user-id") {
            if !admin {
                return Reply::error(403, "", "only admins may use the \"user-id\" filter");
            }
            if user_ids.len() != 1 {
                return Reply::bad_request(
                    "invalid \"user-id\" filter: must only include one \"user-id\"",
                );
            }
            match user_ids[0].parse::<i64>() {
                Ok(n) if (0..=u32::MAX as i64).contains(&n) => user_id = Some(n as u32),
                Ok(n) => {
                    return Reply::bad_request(format!(
                        "invalid \"user-id\" filter: user ID is not a valid uint32: {n}"
                    ));
                }
                Err(_) => {
                    return Reply::bad_request(format!(
                        "invalid \"user-id\" filter: strconv.ParseInt: parsing {:?}: invalid syntax",
                        user_ids[0]
                    ));
                }
            }
        }
        if q.has("users") {
            if !admin {
                return Reply::error(403, "", "only admins may use the \"users\" filter");
            }
            if q.has("user-id") {
                return Reply::bad_request("cannot use both \"users\" and \"user-id\" parameters");
            }
            if q.get("users") != "all" {
                return Reply::bad_request("invalid \"users\" filter: must be \"all\"");
            }
            user_id = None;
        }
        let requested = q.list("types");
        let mut types: Vec<NoticeType> = Vec::new();
        for t in requested.iter().filter_map(|t| NoticeType::from_name(t)) {
            if !types.contains(&t) {
                types.push(t);
            }
        }
        if types.is_empty() && !requested.is_empty() {
            return Reply::sync(Vec::<types::Notice>::new());
        }
        let after = match q.get("after") {
            "" => None,
            t => {
                match time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                {
                    Ok(t) => Some(t),
                    Err(e) => {
                        return Reply::bad_request(format!("invalid \"after\" timestamp: {e}"));
                    }
                }
            }
        };
        let timeout = match q.get("timeout") {
            "" => None,
            t => match cairn_plan::parse_duration(t) {
                Ok(d) => Some(d).filter(|d| !d.is_zero()),
                Err(e) => return Reply::bad_request(format!("invalid timeout: {e}")),
            },
        };
        let filter = cairn_supervisor::notices::NoticeFilter {
            user_id,
            types,
            keys: q.list("keys"),
            after,
        };
        let found = match timeout {
            Some(t) => self.sup.wait_notices(&filter, t).await,
            None => self.sup.notices(&filter),
        };
        Reply::sync(types::wire::<_, types::Notice>(&found))
    }

    fn post_notices(&self, caller: Caller, body: &[u8]) -> Reply {
        let Caller::Unix(uid) = caller else {
            return Reply::error(
                403,
                "",
                "cannot determine UID of request, so cannot create notice",
            );
        };
        #[derive(Deserialize)]
        struct Payload {
            #[serde(default, deserialize_with = "null_default")]
            action: String,
            #[serde(default, rename = "type", deserialize_with = "null_default")]
            type_: String,
            #[serde(default, deserialize_with = "null_default")]
            key: String,
            #[serde(default, rename = "repeat-after", deserialize_with = "null_default")]
            repeat_after: String,
            #[serde(default)]
            data: Option<serde_json::Value>,
        }
        let p: Payload = match decode(body, "cannot decode request body") {
            Ok(p) => p,
            Err(r) => return r,
        };
        if p.action != "add" {
            return Reply::bad_request(format!("invalid action {:?}", p.action));
        }
        if p.type_ != "custom" {
            return Reply::bad_request(format!(
                "invalid type {:?} (can only add \"custom\" notices)",
                p.type_
            ));
        }
        let repeat_after = match p.repeat_after.as_str() {
            "" => None,
            d => match cairn_plan::parse_duration(d) {
                Ok(d) => Some(d),
                Err(e) => return Reply::bad_request(format!("invalid repeat-after: {e}")),
            },
        };
        let raw = p.data.as_ref().map(|v| v.to_string()).unwrap_or_default();
        if raw.len() > cairn_supervisor::notices::MAX_DATA_SIZE {
            return Reply::bad_request(format!(
                "total size of data must be {} bytes or less",
                cairn_supervisor::notices::MAX_DATA_SIZE
            ));
        }
        let data: std::collections::BTreeMap<String, String> = match raw.as_str() {
            "" | "null" => Default::default(),
            raw => match serde_json::from_str(raw) {
                Ok(d) => d,
                Err(e) => return Reply::bad_request(format!("cannot decode notice data: {e}")),
            },
        };
        match self.sup.notify(Some(uid), &p.key, data, repeat_after) {
            Ok(id) => Reply::sync(serde_json::json!({ "id": id })),
            Err(e) => sup_error(e),
        }
    }

    fn notice(&self, caller: Caller, id: &str) -> Reply {
        let Caller::Unix(uid) = caller else {
            return Reply::error(
                403,
                "",
                "cannot determine UID of request, so cannot retrieve notice",
            );
        };
        let Some(n) = self.sup.notice(id) else {
            return Reply::not_found(format!("cannot find notice with ID {id:?}"));
        };
        let admin = caller.access() == Some(Access::Admin);
        if n.user_id.is_some_and(|owner| owner != uid) && !admin {
            return Reply::error(
                403,
                "",
                format!("not allowed to access notice with id {id:?}"),
            );
        }
        Reply::sync(types::Notice::from(&n))
    }

    fn checks(&self, q: &Query) -> Reply {
        let level = q.get("level");
        match level {
            "" | "alive" | "ready" => {}
            _ => return Reply::bad_request("level must be \"alive\" or \"ready\""),
        }
        Reply::sync(types::wire::<_, types::CheckInfo>(
            &self.sup.checks(check_level(level), &q.list("names")),
        ))
    }

    fn post_checks(&self, body: &[u8]) -> Reply {
        #[derive(Deserialize)]
        struct Payload {
            #[serde(default, deserialize_with = "null_default")]
            action: String,
            #[serde(default, deserialize_with = "null_default")]
            checks: Vec<String>,
        }
        let p: Payload = match decode(body, "cannot decode data from request body") {
            Ok(p) => p,
            Err(r) => return r,
        };
        // Pebble checks for names before the action, whatever the action is.
        if p.checks.is_empty() {
            return Reply::bad_request(format!("must specify checks for {} action", p.action));
        }
        let result = match p.action.as_str() {
            "start" => self.sup.start_checks(&p.checks),
            "stop" => self.sup.stop_checks(&p.checks),
            other => return Reply::bad_request(format!("invalid action {other:?}")),
        };
        match result {
            Ok(changed) => Reply::sync(serde_json::json!({ "changed": changed })),
            Err(e) => sup_error(e),
        }
    }

    async fn refresh_check(&self, body: &[u8]) -> Reply {
        #[derive(Deserialize)]
        struct Payload {
            #[serde(default, deserialize_with = "null_default")]
            name: String,
        }
        let p: Payload = match decode(body, "cannot decode data from request body") {
            Ok(p) => p,
            Err(r) => return r,
        };
        if p.name.is_empty() {
            return Reply::bad_request("must specify check name");
        }
        match self.sup.refresh_check(&p.name).await {
            Ok((info, error)) => {
                let mut v = serde_json::json!({ "info": types::CheckInfo::from(&info) });
                if let Some(e) = error {
                    v["error"] = e.into();
                }
                Reply::sync(v)
            }
            Err(e) => sup_error(e),
        }
    }

    fn changes(&self, q: &Query) -> Reply {
        let select = match q.get("select") {
            "" | "in-progress" => ChangeSelect::InProgress,
            "ready" => ChangeSelect::Ready,
            "all" => ChangeSelect::All,
            _ => return Reply::bad_request("select should be one of: all,in-progress,ready"),
        };
        let svc = Some(q.get("for")).filter(|s| !s.is_empty());
        Reply::sync(types::wire::<_, types::ChangeInfo>(
            &self.sup.changes(select, svc),
        ))
    }

    fn post_change(&self, id: &str, body: &[u8]) -> Reply {
        #[derive(Deserialize)]
        struct Payload {
            #[serde(default, deserialize_with = "null_default")]
            action: String,
        }
        if let Err(e) = self.sup.change(id) {
            return sup_error(e);
        }
        let p: Payload = match decode(body, "cannot decode data from request body") {
            Ok(p) => p,
            Err(r) => return r,
        };
        if p.action != "abort" {
            return Reply::bad_request(format!("invalid action {:?}", p.action));
        }
        self.sup
            .abort_change(id)
            .map(|c| Reply::sync(types::ChangeInfo::from(&c)))
            .unwrap_or_else(sup_error)
    }

    async fn wait_change(&self, id: &str, q: &Query) -> Reply {
        let t = q.get("timeout");
        let timeout = if t.is_empty() {
            None
        } else {
            match cairn_plan::parse_duration(t) {
                Ok(d) if d.is_zero() => None,
                Ok(d) => Some(d),
                Err(e) => return Reply::bad_request(format!("invalid timeout: {e}")),
            }
        };
        self.sup
            .wait_change(id, timeout)
            .await
            .map(|c| Reply::sync(types::ChangeInfo::from(&c)))
            .unwrap_or_else(sup_error)
    }

    fn post_services(&self, body: &[u8]) -> Reply {
        #[derive(Deserialize)]
        struct Payload {
            #[serde(default, deserialize_with = "null_default")]
            action: String,
            #[serde(default, deserialize_with = "null_default")]
            services: Vec<String>,
        }
        let p: Payload = match decode(body, "cannot decode data from request body") {
            Ok(p) => p,
            Err(r) => return r,
        };
        let action = match p.action.parse::<ServicesAction>() {
            Ok(a) => a,
            // Pebble asks for service names before it looks at the verb.
            Err(_) if p.services.is_empty() => {
                return Reply::bad_request(format!(
                    "must specify services for {} action",
                    p.action
                ));
            }
            Err(e) => return sup_error(e),
        };
        match self.sup.services_action(action, &p.services) {
            Ok(id) => Reply::async_change(id),
            Err(e) => sup_error(e),
        }
    }

    fn plan(&self, q: &Query) -> Reply {
        match q.get("format") {
            "yaml" => Reply::sync(self.sup.plan().to_yaml()),
            other => Reply::bad_request(format!("invalid format {other:?}")),
        }
    }

    fn post_layers(&self, body: &[u8]) -> Reply {
        #[derive(Deserialize)]
        struct Payload {
            #[serde(default, deserialize_with = "null_default")]
            action: String,
            #[serde(default, deserialize_with = "null_default")]
            combine: bool,
            #[serde(default, deserialize_with = "null_default")]
            inner: bool,
            #[serde(default, deserialize_with = "null_default")]
            label: String,
            #[serde(default, deserialize_with = "null_default")]
            format: String,
            #[serde(default, deserialize_with = "null_default")]
            layer: String,
        }
        let p: Payload = match decode(body, "cannot decode request body") {
            Ok(p) => p,
            Err(r) => return r,
        };
        if p.action != "add" {
            return Reply::bad_request(format!("invalid action {:?}", p.action));
        }
        if p.label.is_empty() {
            return Reply::bad_request("label must be set");
        }
        if p.format != "yaml" {
            return Reply::bad_request(format!("invalid format {:?}", p.format));
        }
        match self
            .sup
            .add_layer(&p.label, p.layer.as_bytes(), p.combine, p.inner)
        {
            Ok(()) => Reply::sync(true),
            Err(e) => sup_error(e),
        }
    }

    fn post_signals(&self, body: &[u8]) -> Reply {
        #[derive(Deserialize)]
        struct Payload {
            #[serde(default, deserialize_with = "null_default")]
            signal: String,
            #[serde(default, deserialize_with = "null_default")]
            services: Vec<String>,
        }
        let p: Payload = match decode(body, "cannot decode request body") {
            Ok(p) => p,
            Err(r) => return r,
        };
        if p.services.is_empty() {
            return Reply::bad_request("must specify one or more services");
        }
        match self.sup.send_signal(&p.signal, &p.services) {
            Ok(()) => Reply::sync(true),
            Err(e) => Reply::server_error(e.to_string()),
        }
    }

    /// `GET /v1/logs`: ndjson, `n` (default 30, -1 all), `follow`, `services`.
    fn logs(&self, q: &Query) -> Response<Body> {
        let follow = match q.get("follow") {
            "" | "false" => false,
            "true" => true,
            _ => {
                return full(Reply::bad_request(
                    "follow parameter must be \"true\" or \"false\"",
                ));
            }
        };
        let n: Option<usize> = match q.get("n") {
            "" if follow => Some(0),
            "" => Some(30),
            s => match s.parse::<i64>() {
                Ok(-1) => None,
                Ok(n) if n >= 0 => Some(n as usize),
                _ => return full(Reply::bad_request("n must be -1, 0, or a positive integer")),
            },
        };
        let names = q.list("services");
        let buffers = self.sup.log_buffers(&names);
        let mut subs: Vec<_> = if follow {
            buffers.iter().map(|b| b.subscribe()).collect()
        } else {
            Vec::new()
        };
        let backlog = match n {
            Some(0) => Vec::new(),
            n => self.sup.logs(&names, n),
        };
        let (tx, rx) = mpsc::channel::<Bytes>(64);
        let line = |e: &cairn_supervisor::LogEntry| {
            let mut v = serde_json::to_vec(&serde_json::json!({
                "time": cairn_supervisor::timefmt::rfc3339(e.time),
                "service": e.service,
                "message": e.message,
            }))
            .unwrap_or_default();
            v.push(b'\n');
            Bytes::from(v)
        };
        let last_seen = backlog.last().map(|e| e.time);
        let first: Vec<Bytes> = backlog.iter().map(line).collect();
        tokio::spawn(async move {
            for b in first {
                if tx.send(b).await.is_err() {
                    return;
                }
            }
            if subs.is_empty() {
                return;
            }
            let (etx, mut erx) = mpsc::channel(256);
            for mut sub in subs.drain(..) {
                let etx = etx.clone();
                tokio::spawn(async move {
                    loop {
                        match sub.recv().await {
                            Ok(e) => {
                                if etx.send(e).await.is_err() {
                                    return;
                                }
                            }
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                            Err(_) => return,
                        }
                    }
                });
            }
            drop(etx);
            while let Some(e) = erx.recv().await {
                if last_seen.is_some_and(|t| e.time <= t) {
                    continue;
                }
                if tx.send(line(&e)).await.is_err() {
                    return;
                }
            }
        });
        Response::builder()
            .status(200)
            .header("Content-Type", "application/x-ndjson")
            .body(BodyExt::boxed(ChannelBody(rx)))
            .unwrap()
    }
}

/// A running server; dropping it leaves the listeners running until [`ServerHandle::stop`].
pub struct ServerHandle {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    socket: Option<PathBuf>,
}

impl ServerHandle {
    /// Stops accepting connections and removes the socket file.
    pub fn stop(self) {
        for t in &self.tasks {
            t.abort();
        }
        if let Some(s) = &self.socket {
            let _ = std::fs::remove_file(s);
        }
    }
}

fn serve_conn<S>(api: Arc<ApiServer>, caller: Caller, stream: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let svc = service_fn(move |req| {
            let api = api.clone();
            async move { Ok::<_, Infallible>(api.handle(caller, req).await) }
        });
        if let Err(e) = http1::Builder::new()
            .serve_connection(TokioIo::new(stream), svc)
            .with_upgrades()
            .await
        {
            tracing::debug!("api connection: {e}");
        }
    });
}

/// Serves the API on a unix socket (mode 0666, as Pebble's) and, if given, plain HTTP on
/// `http` for the open endpoints.
pub async fn serve(
    api: Arc<ApiServer>,
    socket: &Path,
    http: Option<SocketAddr>,
) -> std::io::Result<ServerHandle> {
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket)?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o666))?;
    let mut tasks = Vec::new();
    {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let uid = stream.peer_cred().map(|c| c.uid()).unwrap_or(u32::MAX);
                serve_conn(api.clone(), Caller::Unix(uid), stream);
            }
        }));
    }
    if let Some(addr) = http {
        let tcp = TcpListener::bind(addr).await?;
        tasks.push(tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = tcp.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                serve_conn(api.clone(), Caller::Http, stream);
            }
        }));
    }
    Ok(ServerHandle {
        tasks,
        socket: Some(socket.to_path_buf()),
    })
}

/// How long a client waits for a change by default (as ops' 30 s).
pub const DEFAULT_WAIT: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_with_variables() {
        let (r, v) = match_route("/v1/changes/12/wait").unwrap();
        assert_eq!(
            (r.path, v),
            ("/v1/changes/{id}/wait", vec!["12".to_string()])
        );
        assert!(match_route("/v1/nope").is_none());
        assert!(match_route("/v1/changes//wait").is_none());
    }

    #[test]
    fn query_lists_accept_repeats_and_commas() {
        let q = Query::parse(Some("names=a,b&names=c&x=1"));
        assert_eq!(q.list("names"), ["a", "b", "c"]);
        assert_eq!(q.get("x"), "1");
        assert_eq!(q.get("y"), "");
    }

    #[test]
    fn access_levels_follow_peer_uid() {
        assert_eq!(Caller::Unix(0).access(), Some(Access::Admin));
        assert_eq!(Caller::Unix(54321).access(), Some(Access::Read));
        assert_eq!(Caller::Http.access(), None);
    }
}
