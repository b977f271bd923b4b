//! `/v1/changes`: list, get, abort and wait for changes.

use cairn_supervisor::ChangeSelect;
use serde::Deserialize;

use super::{Call, decode, null_default, sup_error};
use crate::envelope::Reply;
use crate::types;

/// `GET /v1/changes`: the changes `select`ed (in progress by default), optionally `for` a
/// service.
pub(super) fn list(call: &Call<'_>, _body: &[u8]) -> Reply {
    let q = &call.query;
    let select = match q.get("select") {
        "" | "in-progress" => ChangeSelect::InProgress,
        "ready" => ChangeSelect::Ready,
        "all" => ChangeSelect::All,
        _ => return Reply::bad_request("select should be one of: all,in-progress,ready"),
    };
    let svc = Some(q.get("for")).filter(|s| !s.is_empty());
    Reply::sync(types::wire::<_, types::ChangeInfo>(
        &call.sup().changes(select, svc),
    ))
}

/// `GET /v1/changes/{id}`.
pub(super) fn get(call: &Call<'_>, _body: &[u8]) -> Reply {
    call.sup()
        .change(call.var(0))
        .map(|c| Reply::sync(types::ChangeInfo::from(&c)))
        .unwrap_or_else(sup_error)
}

/// `POST /v1/changes/{id}`: `abort`, the only action.
pub(super) fn post(call: &Call<'_>, body: &[u8]) -> Reply {
    #[derive(Deserialize)]
    struct Payload {
        #[serde(default, deserialize_with = "null_default")]
        action: String,
    }
    let id = call.var(0);
    if let Err(e) = call.sup().change(id) {
        return sup_error(e);
    }
    let p: Payload = match decode(body, "cannot decode data from request body") {
        Ok(p) => p,
        Err(r) => return r,
    };
    if p.action != "abort" {
        return Reply::bad_request(format!("invalid action {:?}", p.action));
    }
    call.sup()
        .abort_change(id)
        .map(|c| Reply::sync(types::ChangeInfo::from(&c)))
        .unwrap_or_else(sup_error)
}

/// `GET /v1/changes/{id}/wait`: the change once ready, or 504 after `timeout` (none or
/// zero: as long as it takes).
pub(super) async fn wait(call: &Call<'_>) -> Reply {
    let t = call.query.get("timeout");
    let timeout = if t.is_empty() {
        None
    } else {
        match cairn_plan::parse_duration(t) {
            Ok(d) if d.is_zero() => None,
            Ok(d) => Some(d),
            Err(e) => return Reply::bad_request(format!("invalid timeout: {e}")),
        }
    };
    call.sup()
        .wait_change(call.var(0), timeout)
        .await
        .map(|c| Reply::sync(types::ChangeInfo::from(&c)))
        .unwrap_or_else(sup_error)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use hyper::Method;

    use crate::testutil::{LAYER, TestApi, api_err, check};

    #[tokio::test(flavor = "multi_thread")]
    async fn changes_are_listed_and_got_and_a_done_change_cannot_be_aborted() {
        let t = TestApi::start("changes").await;
        let c = &t.client;
        c.add_layer("base", LAYER, false, false).await.unwrap();
        let id = c.services_action("replan", &[]).await.unwrap();
        c.wait_change(&id, Some(Duration::from_secs(10)))
            .await
            .unwrap();
        assert_eq!(c.change(&id).await.unwrap().id, id);
        assert!(
            c.changes("all", Some("srv"))
                .await
                .unwrap()
                .iter()
                .any(|ch| ch.id == id)
        );
        assert!(c.changes("in-progress", None).await.unwrap().is_empty());
        assert_eq!(
            api_err(c.abort_change(&id).await).2,
            format!("cannot abort change {id} with nothing pending")
        );
        assert_eq!(
            api_err(c.change("999").await),
            (
                404,
                String::new(),
                "cannot find change with id \"999\"".into()
            )
        );
        t.sup.stop_all().await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn wait_times_out_with_504() {
        let t = TestApi::start("wait").await;
        let c = &t.client;
        c.add_layer(
            "base",
            "services:\n  s:\n    override: replace\n    command: sleep 1000\n",
            false,
            false,
        )
        .await
        .unwrap();
        let id = c.services_action("start", &["s".into()]).await.unwrap();
        let (code, _, msg) = api_err(c.wait_change(&id, Some(Duration::from_millis(100))).await);
        assert_eq!(
            (code, msg.as_str()),
            (504, "timed out waiting for change after 100ms")
        );
        c.wait_change(&id, None).await.unwrap();
        t.sup.stop_all().await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn changes_select_must_be_known() {
        let t = TestApi::start("select").await;
        check(
            t.client
                .raw(Method::GET, "/v1/changes?select=some", None)
                .await
                .unwrap(),
            400,
            "select should be one of: all,in-progress,ready",
        );
    }
}
