//! `cairn run --metrics-listen ADDR`: the per-tenant metrics page over plain HTTP, where
//! Prometheus-style scrapers look for it (`GET /metrics`, OpenMetrics text).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use cairn_runtime::Host;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;

/// The content type OpenMetrics scrapers ask for.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// How long a scraper may take to send its request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Scrapes served at once; more wait in the listen queue.
const MAX_CONNECTIONS: usize = 64;

/// Binds `addr` and serves the metrics page until the daemon exits.
pub async fn listen(addr: &str, host: Arc<Host>) -> Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for metrics on {addr}"))?;
    tracing::info!("metrics on http://{}/metrics", listener.local_addr()?);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let what = format!("metrics listener {addr}");
    tokio::spawn(async move {
        let mut backoff = cairn_api::server::AcceptBackoff::new();
        loop {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let (stream, _) = backoff.accept(&what, || listener.accept()).await;
            let host = host.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let service = hyper::service::service_fn(move |req| {
                    let host = host.clone();
                    async move { Ok::<_, Infallible>(respond(&host, req).await) }
                });
                let mut http = hyper::server::conn::http1::Builder::new();
                http.timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT);
                let io = hyper_util::rt::TokioIo::new(stream);
                if let Err(e) = http.serve_connection(io, service).await {
                    tracing::debug!("metrics connection: {e}");
                }
            });
        }
    });
    Ok(())
}

/// The page for `GET /metrics`, 404 elsewhere, 405 for other methods.
async fn respond(host: &Host, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        r
    };
    if req.uri().path() != "/metrics" {
        return reply(StatusCode::NOT_FOUND, "not found\n".into());
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed\n".into(),
        );
    }
    let mut r = reply(StatusCode::OK, host.metrics().await);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(CONTENT_TYPE),
    );
    r
}
