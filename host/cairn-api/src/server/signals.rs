//! `POST /v1/signals`.

use serde::Deserialize;

use super::{Call, decode, null_default};
use crate::envelope::Reply;

/// `POST /v1/signals`: sends a signal to running services; any failure is a 500, as in
/// Pebble.
pub(super) fn post(call: &Call<'_>, body: &[u8]) -> Reply {
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
    match call.sup().send_signal(&p.signal, &p.services) {
        Ok(()) => Reply::sync(true),
        Err(e) => Reply::server_error(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::{LAYER, TestApi, api_err};

    #[tokio::test(flavor = "multi_thread")]
    async fn signals_reach_running_services_and_name_their_errors() {
        let t = TestApi::start("signals").await;
        let c = &t.client;
        c.add_layer("base", LAYER, false, false).await.unwrap();
        c.run_action("replan", &[]).await.unwrap();
        c.send_signal("SIGCONT", &["srv".into()]).await.unwrap();
        let (code, _, msg) = api_err(c.send_signal("SIGHUP", &["nope".into()]).await);
        assert_eq!(
            (code, msg.as_str()),
            (
                500,
                "cannot send signal to \"nope\": service is not running"
            )
        );
        let (code, _, msg) = api_err(c.send_signal("SIGFOO", &["srv".into()]).await);
        assert_eq!(
            (code, msg.as_str()),
            (
                500,
                "cannot send signal to \"srv\": invalid signal name \"SIGFOO\""
            )
        );
        t.sup.stop_all().await;
    }
}
