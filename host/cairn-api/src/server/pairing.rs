//! `/v1/pairing`: a client pairing its certificate with the daemon over HTTPS.

use serde::Deserialize;

use super::{Call, decode};
use crate::envelope::Reply;

/// `POST /v1/pairing` (`{"action": "pair"}`): reached only through [`super::Access::Pairing`],
/// which needs an open pairing window. None is ever open (as in stock Pebble), so pairing
/// ends as Pebble's pairing manager ends it without a window.
pub(super) fn post(_call: &Call<'_>, body: &[u8]) -> Reply {
    #[derive(Deserialize)]
    struct Payload {
        #[serde(default)]
        action: String,
    }
    let p: Payload = match decode(body, "cannot decode request body") {
        Ok(p) => p,
        Err(r) => return r,
    };
    match p.action.as_str() {
        "pair" => Reply::bad_request(
            "cannot pair client: cannot pair while pairing window is disabled".to_string(),
        ),
        other => Reply::bad_request(format!("invalid action {other:?}, must be \"pair\"")),
    }
}
