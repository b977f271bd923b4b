//! `GET /v1/system-info` and `GET /v1/metrics`.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Response;

use super::{Body, Call};
use crate::envelope::Reply;

/// `GET /v1/system-info`: the boot id, the version and, when it listens, the TCP address.
pub(super) fn info(call: &Call<'_>, _body: &[u8]) -> Reply {
    let api = call.api;
    let mut v = serde_json::json!({
        "boot-id": api.boot_id,
        "version": concat!("v", env!("CARGO_PKG_VERSION")),
    });
    if let Some(a) = &api.http_address {
        v["http-address"] = a.clone().into();
    }
    if let Some(a) = &api.https_address {
        v["https-address"] = a.clone().into();
    }
    Reply::sync(v)
}

/// `GET /v1/metrics`: OpenMetrics text, not an envelope.
pub(super) fn metrics(call: &Call<'_>) -> Response<Body> {
    Response::builder()
        .status(200)
        .header("Content-Type", "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from(call.sup().metrics())).boxed())
        .unwrap()
}

#[cfg(test)]
mod tests {
    use crate::testutil::TestApi;

    #[tokio::test(flavor = "multi_thread")]
    async fn system_info_reports_version_and_boot_id() {
        let t = TestApi::start("info").await;
        let info = t.client.system_info().await.unwrap();
        assert_eq!(info.version, concat!("v", env!("CARGO_PKG_VERSION")));
        assert!(!info.boot_id.is_empty());
        assert_eq!(info.http_address, None);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn metrics_are_plain_text() {
        let t = TestApi::start("metrics").await;
        let (code, body) = t
            .client
            .raw(hyper::Method::GET, "/v1/metrics", None)
            .await
            .unwrap();
        assert_eq!(code, 200);
        assert!(serde_json::from_slice::<serde_json::Value>(&body).is_err());
        assert_eq!(t.client.metrics().await.unwrap().as_bytes(), &body[..]);
    }
}
