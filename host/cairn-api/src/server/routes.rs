//! Pebble's route table: each path with, per method, the access it needs and its handler.
//!
//! Adding an endpoint is one entry here and a handler in its area's module. A request is
//! looked up once: no path is matched anywhere else. As Pebble's `Command`, a method the
//! route has no handler for is refused with 405 before the caller's access is looked at,
//! and GET needs the route's read access, POST its write access. Pebble serves no PUT
//! endpoint, so PUT (like any other method) is always 405.

use futures_util::future::BoxFuture;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Request, Response};

use super::limits::{DEFAULT_BODY_LIMIT, LAYERS_BODY_LIMIT, Limits, NOTICES_BODY_LIMIT};
use super::{
    Access, ApiServer, Body, Call, Caller, Query, changes, checks, exec, files, full, identities,
    logs, notices, pairing, plan, services, signals, system,
};
use crate::envelope::Reply;

/// How a handler answers.
pub(super) enum Handler {
    /// From the whole request body, at once, with an envelope.
    Reply(fn(&Call<'_>, &[u8]) -> Reply),
    /// From the whole request body, waiting (change waits, long polls, check runs).
    Wait(for<'a> fn(&'a Call<'a>, &'a [u8]) -> BoxFuture<'a, Reply>),
    /// From the request itself, with any response: streams (logs, file reads, metrics
    /// text), multipart uploads and websocket upgrades.
    Raw(for<'a> fn(&'a Call<'a>, Request<Incoming>) -> BoxFuture<'a, Response<Body>>),
}

/// One route: a path pattern (`{name}` segments are variables) and what each method does.
pub(super) struct Route {
    /// The pattern, as in Pebble's `api.go`.
    pub(super) path: &'static str,
    /// GET: the read access it needs and its handler.
    pub(super) get: Option<(Access, Handler)>,
    /// POST: the write access it needs and its handler.
    pub(super) post: Option<(Access, Handler)>,
}

/// The endpoints served (a path appears once; a test checks it).
pub(super) const ROUTES: &[Route] = &[
    Route {
        path: "/v1/system-info",
        get: Some((Access::Open, Handler::Reply(system::info))),
        post: None,
    },
    Route {
        path: "/v1/health",
        get: Some((Access::Open, Handler::Reply(checks::health))),
        post: None,
    },
    Route {
        path: "/v1/changes",
        get: Some((Access::Read, Handler::Reply(changes::list))),
        post: None,
    },
    Route {
        path: "/v1/changes/{id}",
        get: Some((Access::Read, Handler::Reply(changes::get))),
        post: Some((Access::Admin, Handler::Reply(changes::post))),
    },
    Route {
        path: "/v1/changes/{id}/wait",
        get: Some((
            Access::Read,
            Handler::Wait(|c, _| Box::pin(changes::wait(c))),
        )),
        post: None,
    },
    Route {
        path: "/v1/services",
        get: Some((Access::Read, Handler::Reply(services::list))),
        post: Some((Access::Admin, Handler::Reply(services::post))),
    },
    Route {
        path: "/v1/services/{name}",
        get: Some((Access::Read, Handler::Reply(services::one))),
        post: Some((Access::Admin, Handler::Reply(services::one))),
    },
    Route {
        path: "/v1/plan",
        get: Some((
            Access::Admin,
            Handler::Wait(|c, body| Box::pin(plan::get(c, body))),
        )),
        post: None,
    },
    Route {
        path: "/v1/layers",
        get: None,
        post: Some((
            Access::Admin,
            Handler::Wait(|c, body| Box::pin(plan::post_layers(c, body))),
        )),
    },
    Route {
        path: "/v1/logs",
        get: Some((
            Access::Read,
            Handler::Raw(|c, _| Box::pin(async move { logs::get(c) })),
        )),
        post: None,
    },
    Route {
        path: "/v1/signals",
        get: None,
        post: Some((Access::Admin, Handler::Reply(signals::post))),
    },
    Route {
        path: "/v1/checks",
        get: Some((Access::Read, Handler::Reply(checks::list))),
        post: Some((Access::Admin, Handler::Reply(checks::post))),
    },
    Route {
        path: "/v1/checks/refresh",
        get: None,
        post: Some((
            Access::Admin,
            Handler::Wait(|c, body| Box::pin(checks::refresh(c, body))),
        )),
    },
    Route {
        path: "/v1/identities",
        get: Some((Access::Read, Handler::Reply(identities::list))),
        post: Some((Access::Admin, Handler::Reply(identities::post))),
    },
    Route {
        path: "/v1/pairing",
        get: None,
        post: Some((Access::Pairing, Handler::Reply(pairing::post))),
    },
    Route {
        path: "/v1/metrics",
        get: Some((
            Access::Metrics,
            Handler::Raw(|c, _| Box::pin(async move { system::metrics(c) })),
        )),
        post: None,
    },
    Route {
        path: "/v1/exec",
        get: None,
        post: Some((Access::Admin, Handler::Reply(exec::post))),
    },
    Route {
        path: "/v1/tasks/{task-id}/websocket/{websocket-id}",
        get: Some((
            Access::Admin,
            Handler::Raw(|c, req| Box::pin(async move { exec::websocket(c, req) })),
        )),
        post: None,
    },
    Route {
        path: "/v1/files",
        get: Some((
            Access::Admin,
            Handler::Raw(|c, req| Box::pin(async move { files::get(c, &req) })),
        )),
        post: Some((
            Access::Admin,
            Handler::Raw(|c, req| Box::pin(files::post(c, req))),
        )),
    },
    Route {
        path: "/v1/notices",
        get: Some((
            Access::Read,
            Handler::Wait(|c, _| Box::pin(notices::list(c))),
        )),
        post: Some((Access::Read, Handler::Reply(notices::post))),
    },
    Route {
        path: "/v1/notices/{id}",
        get: Some((Access::Read, Handler::Reply(notices::get))),
        post: None,
    },
];

/// The user and password of an `Authorization: Basic` header, if the request has one.
fn basic_auth<B>(req: &Request<B>) -> Option<(String, String)> {
    use base64::Engine as _;
    let value = req
        .headers()
        .get(hyper::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let (user, password) = String::from_utf8(decoded)
        .ok()?
        .split_once(':')
        .map(|(u, p)| (u.to_string(), p.to_string()))?;
    Some((user, password))
}

/// The route for `path` and its variables, in order.
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

/// Answers one request: finds its route and handler, checks the caller's access, calls it.
pub(super) async fn dispatch(
    api: &ApiServer,
    limits: &Limits,
    caller: Caller,
    req: Request<Incoming>,
) -> Response<Body> {
    let Some((route, vars)) = match_route(req.uri().path()) else {
        return full(Reply::not_found("invalid API endpoint requested"));
    };
    let method = req.method();
    let served = match *method {
        Method::GET => route.get.as_ref(),
        Method::POST => route.post.as_ref(),
        _ => None,
    };
    let Some((need, handler)) = served else {
        return full(Reply::error(
            405,
            "",
            format!("method {:?} not allowed", method.as_str()),
        ));
    };
    let user = if *need == Access::Open {
        None
    } else {
        caller.access(&api.sup.identities(), basic_auth(&req))
    };
    if !need.allows(caller, user) {
        return full(Reply::error(401, "", "access denied"));
    }
    let call = Call {
        api,
        limits,
        caller,
        user,
        vars,
        query: Query::parse(req.uri().query()),
    };
    let limit = body_limit(route.path);
    match handler {
        Handler::Reply(f) => match read_body(req, limit, limits).await {
            Ok(body) => full(f(&call, &body)),
            Err(r) => full(r),
        },
        Handler::Wait(f) => match read_body(req, limit, limits).await {
            Ok(body) => full(f(&call, &body).await),
            Err(r) => full(r),
        },
        Handler::Raw(f) => f(&call, req).await,
    }
}

/// The most bytes a route's buffered body may have: Pebble's notice cap, room for a big
/// plan on `/v1/layers`, 1 MiB elsewhere (file writes stream and are not buffered).
fn body_limit(path: &str) -> usize {
    match path {
        "/v1/layers" => LAYERS_BODY_LIMIT,
        "/v1/notices" => NOTICES_BODY_LIMIT,
        _ => DEFAULT_BODY_LIMIT,
    }
}

/// The whole request body, refused (413) past `limit` bytes, before reading any of it when
/// `Content-Length` says so, and (400) when it does not arrive in time.
pub(super) async fn read_body(
    req: Request<Incoming>,
    limit: usize,
    limits: &Limits,
) -> Result<bytes::Bytes, Reply> {
    let too_large = || {
        Reply::error(
            413,
            "",
            format!("cannot read request body: body larger than {limit} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let body = http_body_util::Limited::new(req.into_body(), limit);
    match tokio::time::timeout(limits.body_read_timeout, body.collect()).await {
        Ok(Ok(b)) => Ok(b.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(e)) => Err(Reply::bad_request(format!("cannot read request body: {e}"))),
        Err(_) => Err(Reply::bad_request(
            "cannot read request body: timed out".to_string(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::check;

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
    fn every_path_has_one_route() {
        for (i, r) in ROUTES.iter().enumerate() {
            assert!(
                ROUTES[i + 1..].iter().all(|other| other.path != r.path),
                "{} is in the table twice",
                r.path
            );
            assert!(
                r.get.is_some() || r.post.is_some(),
                "{} serves no method",
                r.path
            );
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn unknown_paths_get_404_and_unserved_methods_405() {
        let t = crate::testutil::TestApi::start("routes").await;
        let c = &t.client;
        check(
            c.raw(Method::GET, "/v1/nope", None).await.unwrap(),
            404,
            "invalid API endpoint requested",
        );
        check(
            c.raw(Method::POST, "/v1/health", None).await.unwrap(),
            405,
            "method \"POST\" not allowed",
        );
        // Pebble serves no PUT endpoint, so PUT is refused even where POST writes.
        for path in ["/v1/files", "/v1/layers", "/v1/services/srv"] {
            check(
                c.raw(Method::PUT, path, None).await.unwrap(),
                405,
                "method \"PUT\" not allowed",
            );
        }
        check(
            c.raw(Method::DELETE, "/v1/changes/1", None).await.unwrap(),
            405,
            "method \"DELETE\" not allowed",
        );
    }
}
