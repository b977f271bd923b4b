//! `GET` and `POST /v1/identities`: the container's named users and their access, as
//! Pebble keeps them (secrets masked when listed).

use std::collections::BTreeMap;

use cairn_supervisor::identities::{IdentitiesAction, Identity};
use serde::Deserialize;

use super::{Call, decode, sup_error};
use crate::envelope::Reply;

/// `GET /v1/identities`: every identity by name, passwords and certificates masked.
pub(super) fn list(call: &Call<'_>, _body: &[u8]) -> Reply {
    let shown: BTreeMap<String, Identity> = call
        .sup()
        .identities()
        .iter()
        .map(|(n, i)| (n.clone(), i.masked()))
        .collect();
    Reply::sync(shown)
}

/// `POST /v1/identities`: `add`, `update`, `replace` or `remove` identities (a `null`
/// value removes, where the action allows it).
pub(super) fn post(call: &Call<'_>, body: &[u8]) -> Reply {
    #[derive(Deserialize)]
    struct Payload {
        #[serde(default)]
        action: String,
        #[serde(default)]
        identities: BTreeMap<String, Option<Identity>>,
    }
    let p: Payload = match decode(body, "cannot decode request body") {
        Ok(p) => p,
        Err(r) => return r,
    };
    let action = match IdentitiesAction::parse(&p.action) {
        Ok(a) => a,
        Err(e) => return Reply::bad_request(e),
    };
    match call.sup().change_identities(action, p.identities) {
        Ok(()) => Reply::sync(serde_json::Value::Null),
        Err(e) => sup_error(e),
    }
}
