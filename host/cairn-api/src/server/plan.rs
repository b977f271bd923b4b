//! `GET /v1/plan` and `POST /v1/layers`.

use cairn_supervisor::share::spawn_blocking_charged;
use serde::Deserialize;

use super::{Call, decode, null_default, sup_error};
use crate::envelope::Reply;

/// `GET /v1/plan?format=yaml`: the combined plan as YAML (the only format), rendered on a
/// blocking thread (a big plan takes a while).
pub(super) async fn get(call: &Call<'_>, _body: &[u8]) -> Reply {
    match call.query.get("format") {
        "yaml" => {
            let plan = call.sup().plan();
            let share = call.sup().cpu_share().cloned();
            match spawn_blocking_charged(share, move || plan.to_yaml()).await {
                Ok(yaml) => Reply::sync(yaml),
                Err(e) => Reply::server_error(format!("cannot render plan: {e}")),
            }
        }
        other => Reply::bad_request(format!("invalid format {other:?}")),
    }
}

/// `POST /v1/layers`: adds (or combines) a YAML layer, parsed and checked on a blocking
/// thread so that a big layer holds up no other request.
pub(super) async fn post_layers(call: &Call<'_>, body: &[u8]) -> Reply {
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
    let sup = call.sup().clone();
    let added = spawn_blocking_charged(sup.cpu_share().cloned(), move || {
        sup.add_layer(&p.label, p.layer.as_bytes(), p.combine, p.inner)
    });
    match added.await {
        Ok(Ok(())) => Reply::sync(true),
        Ok(Err(e)) => sup_error(e),
        Err(e) => Reply::server_error(format!("cannot add layer: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use hyper::Method;

    use crate::testutil::{LAYER, TestApi, api_err, check};

    #[tokio::test(flavor = "multi_thread")]
    async fn layers_add_to_the_plan_and_a_refused_layer_changes_nothing() {
        let t = TestApi::start("layers").await;
        let c = &t.client;
        c.add_layer("base", LAYER, false, false).await.unwrap();
        let plan = c.plan().await.unwrap();
        assert!(plan.starts_with("services:\n    srv:\n"), "{plan}");
        assert!(
            plan.contains("command: sh -c 'echo hello; exec sleep 1000'"),
            "{plan}"
        );
        assert_eq!(
            api_err(c.add_layer("base", LAYER, false, false).await).2,
            "layer \"base\" already exists"
        );
        let (code, _, msg) = api_err(
            c.add_layer("bad", "services:\n  x:\n    command: y\n", false, false)
                .await,
        );
        assert_eq!(
            (code, msg.as_str()),
            (
                400,
                "layer \"bad\" must define \"override\" for service \"x\""
            )
        );
        assert_eq!(
            c.plan().await.unwrap(),
            plan,
            "a bad layer changed the plan"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn malformed_layer_and_plan_requests_get_400_and_change_nothing() {
        let t = TestApi::start("bad-layers").await;
        let c = &t.client;
        let post = |body: &'static str| c.raw(Method::POST, "/v1/layers", Some(body.into()));
        check(
            post(r#"{"action":"add","label":"x","format":"yaml","layer":"services: ["}"#)
                .await
                .unwrap(),
            400,
            "cannot parse layer YAML: ",
        );
        check(
            post(r#"{"action":"drop","label":"x"}"#).await.unwrap(),
            400,
            "invalid action \"drop\"",
        );
        check(
            c.raw(Method::GET, "/v1/plan?format=json", None)
                .await
                .unwrap(),
            400,
            "invalid format \"json\"",
        );
        assert_eq!(c.plan().await.unwrap(), "{}\n");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_layer_that_cannot_be_persisted_is_a_500_and_is_not_added() {
        let t = TestApi::start("unpersisted-layer").await;
        let c = &t.client;
        // The state file's name taken by a directory: the write fails, even for root.
        let state = t.dir().join(cairn_supervisor::STATE_FILE);
        let _ = std::fs::remove_file(&state);
        std::fs::create_dir_all(state.join("x")).unwrap();
        let (code, _, msg) = api_err(c.add_layer("base", LAYER, false, false).await);
        assert_eq!(code, 500, "{msg}");
        assert!(msg.starts_with("cannot persist state: "), "{msg}");
        assert_eq!(c.plan().await.unwrap(), "{}\n", "the layer was kept");
    }
}
