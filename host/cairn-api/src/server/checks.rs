//! `/v1/checks` (list, start and stop, refresh) and `GET /v1/health`, which reads them.

use cairn_plan::CheckLevel;
use serde::Deserialize;

use super::{Call, decode, null_default, sup_error};
use crate::envelope::Reply;
use crate::types;

/// The level a validated `level=` query names (`None` for all).
fn check_level(level: &str) -> Option<CheckLevel> {
    match level {
        "alive" => Some(CheckLevel::Alive),
        "ready" => Some(CheckLevel::Ready),
        _ => None,
    }
}

/// `GET /v1/health`: 200 when the checks at `level` (for `names`) are up, else 502.
pub(super) fn health(call: &Call<'_>, _body: &[u8]) -> Reply {
    let q = &call.query;
    match q.get("level") {
        "" | "alive" | "ready" => {}
        _ => return Reply::bad_request("level must be \"alive\" or \"ready\""),
    }
    let healthy = call
        .sup()
        .healthy(check_level(q.get("level")), &q.list("names"));
    Reply::sync_with(
        if healthy { 200 } else { 502 },
        serde_json::json!({ "healthy": healthy }),
    )
}

/// `GET /v1/checks`: the checks at `level`, `names`d (all when none are).
pub(super) fn list(call: &Call<'_>, _body: &[u8]) -> Reply {
    let q = &call.query;
    let level = q.get("level");
    match level {
        "" | "alive" | "ready" => {}
        _ => return Reply::bad_request("level must be \"alive\" or \"ready\""),
    }
    Reply::sync(types::wire::<_, types::CheckInfo>(
        &call.sup().checks(check_level(level), &q.list("names")),
    ))
}

/// `POST /v1/checks`: `start` or `stop` checks; answers with those that changed.
pub(super) fn post(call: &Call<'_>, body: &[u8]) -> Reply {
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
        "start" => call.sup().start_checks(&p.checks),
        "stop" => call.sup().stop_checks(&p.checks),
        other => return Reply::bad_request(format!("invalid action {other:?}")),
    };
    match result {
        Ok(changed) => Reply::sync(serde_json::json!({ "changed": changed })),
        Err(e) => sup_error(e),
    }
}

/// `POST /v1/checks/refresh`: runs a check now; its info and the run's error, if any.
pub(super) async fn refresh(call: &Call<'_>, body: &[u8]) -> Reply {
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
    match call.sup().refresh_check(&p.name).await {
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

#[cfg(test)]
mod tests {
    use hyper::Method;

    use crate::testutil::{TestApi, api_err, check};

    #[tokio::test(flavor = "multi_thread")]
    async fn health_is_up_without_checks_and_refuses_unknown_levels() {
        let t = TestApi::start("health").await;
        let c = &t.client;
        assert!(c.health(None, &[]).await.unwrap());
        assert!(c.health(Some("ready"), &[]).await.unwrap());
        assert_eq!(
            api_err(c.health(Some("bogus"), &[]).await),
            (
                400,
                String::new(),
                "level must be \"alive\" or \"ready\"".into()
            )
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn checks_requests_get_pebbles_errors() {
        let t = TestApi::start("checks").await;
        let c = &t.client;
        let post =
            |path: &'static str, body: &'static str| c.raw(Method::POST, path, Some(body.into()));
        check(
            post("/v1/checks", r#"{"action":"start","checks":[]}"#)
                .await
                .unwrap(),
            400,
            "must specify checks for start action",
        );
        check(
            post("/v1/checks", r#"{"action":"pause","checks":["a"]}"#)
                .await
                .unwrap(),
            400,
            "invalid action \"pause\"",
        );
        check(
            post("/v1/checks/refresh", r#"{"name":"nope"}"#)
                .await
                .unwrap(),
            404,
            "cannot find check with name \"nope\"",
        );
        check(
            c.raw(Method::GET, "/v1/checks?level=sometimes", None)
                .await
                .unwrap(),
            400,
            "level must be \"alive\" or \"ready\"",
        );
    }
}
