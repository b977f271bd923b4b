//! `/v1/services`: list services and act on them.

use cairn_supervisor::ServicesAction;
use serde::Deserialize;

use super::{Call, decode, null_default, sup_error};
use crate::envelope::Reply;
use crate::types;

/// `GET /v1/services`: the services `names`d (all when none are).
pub(super) fn list(call: &Call<'_>, _body: &[u8]) -> Reply {
    let services = call.sup().services(&call.query.list("names"));
    Reply::sync(services.iter().map(types::ServiceView).collect::<Vec<_>>())
}

/// `POST /v1/services`: start, stop, restart, replan…; answers with the change.
pub(super) fn post(call: &Call<'_>, body: &[u8]) -> Reply {
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
            return Reply::bad_request(format!("must specify services for {} action", p.action));
        }
        Err(e) => return sup_error(e),
    };
    match call.sup().services_action(action, &p.services) {
        Ok(id) => Reply::async_change(id),
        Err(e) => sup_error(e),
    }
}

/// `GET`/`POST /v1/services/{name}`: routed but not implemented, as in Pebble.
pub(super) fn one(_call: &Call<'_>, _body: &[u8]) -> Reply {
    Reply::bad_request("not implemented")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use hyper::Method;

    use crate::testutil::{LAYER, TestApi, api_err, check};

    #[tokio::test(flavor = "multi_thread")]
    async fn services_start_by_replan_and_stop_through_changes() {
        let t = TestApi::start("services").await;
        let c = &t.client;
        c.add_layer("base", LAYER, false, false).await.unwrap();
        let svcs = c.services(&[]).await.unwrap();
        assert_eq!(
            (svcs[0].name.as_str(), svcs[0].startup.as_str()),
            ("srv", "enabled")
        );
        assert_eq!(svcs[0].current.as_str(), "inactive");

        let id = c.services_action("replan", &[]).await.unwrap();
        let info = c
            .wait_change(&id, Some(Duration::from_secs(10)))
            .await
            .unwrap();
        assert_eq!(
            (info.kind.as_str(), info.status.as_str()),
            ("replan", "Done")
        );
        assert_eq!(
            c.services(&["srv".into()]).await.unwrap()[0]
                .current
                .as_str(),
            "active"
        );

        let id = c.services_action("stop", &["srv".into()]).await.unwrap();
        let info = c.wait_change(&id, None).await.unwrap();
        assert_eq!(info.status, "Done");
        t.sup.stop_all().await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn services_actions_refuse_unknown_services_and_verbs() {
        let t = TestApi::start("actions").await;
        let c = &t.client;
        c.add_layer("base", LAYER, false, false).await.unwrap();
        let (code, _, msg) = api_err(c.services_action("start", &["nope".into()]).await);
        assert_eq!(
            (code, msg.as_str()),
            (
                400,
                "cannot start services: service \"nope\" does not exist"
            )
        );
        let (code, _, msg) = api_err(c.services_action("frob", &["srv".into()]).await);
        assert_eq!((code, msg.as_str()), (400, "invalid action \"frob\""));
        assert!(c.changes("all", None).await.unwrap().is_empty());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn malformed_services_requests_get_400_and_change_nothing() {
        let t = TestApi::start("bad-services").await;
        let c = &t.client;
        let post = |body: &'static str| c.raw(Method::POST, "/v1/services", Some(body.into()));
        check(
            post("{not json").await.unwrap(),
            400,
            "cannot decode data from request body: ",
        );
        check(
            post(r#"{"action":null,"services":null}"#).await.unwrap(),
            400,
            "must specify services for  action",
        );
        for method in [Method::GET, Method::POST] {
            check(
                c.raw(method, "/v1/services/srv", Some(b"{}".to_vec()))
                    .await
                    .unwrap(),
                400,
                "not implemented",
            );
        }
        assert!(c.changes("all", None).await.unwrap().is_empty());
    }
}
