//! `/v1/notices`: list (and long-poll), add custom notices, get one.

use cairn_supervisor::notices::NoticeType;
use serde::Deserialize;

use cairn_supervisor::identities::IdentityAccess;

use super::{Call, Caller, decode, null_default, sup_error};
use crate::envelope::Reply;
use crate::types;

/// `GET /v1/notices`: the caller's notices (an admin's `users=all` or `user-id` widen it),
/// filtered by `types`, `keys` and `after`; with `timeout`, waits that long for a match.
pub(super) async fn list(call: &Call<'_>) -> Reply {
    let (caller, q) = (call.caller, &call.query);
    let Caller::Unix(uid) = caller else {
        return Reply::error(
            403,
            "",
            "cannot determine UID of request, so cannot retrieve notices",
        );
    };
    let admin = call.user == Some(IdentityAccess::Admin);
    let mut user_id = Some(uid);
    let user_ids = q.list("user-id");
    if q.has("user-id") {
        if !admin {
            return Reply::error(403, "", "only admins may use the \"user-id\" filter");
        }
        if user_ids.len() != 1 {
            return Reply::bad_request(
                "invalid \"user-id\" filter: must only include one \"user-id\"",
            );
        }
        match user_ids[0].parse::<i64>() {
            Ok(n) if (0..=u32::MAX as i64).contains(&n) => user_id = Some(n as u32),
            Ok(n) => {
                return Reply::bad_request(format!(
                    "invalid \"user-id\" filter: user ID is not a valid uint32: {n}"
                ));
            }
            Err(_) => {
                return Reply::bad_request(format!(
                    "invalid \"user-id\" filter: strconv.ParseInt: parsing {:?}: invalid syntax",
                    user_ids[0]
                ));
            }
        }
    }
    if q.has("users") {
        if !admin {
            return Reply::error(403, "", "only admins may use the \"users\" filter");
        }
        if q.has("user-id") {
            return Reply::bad_request("cannot use both \"users\" and \"user-id\" parameters");
        }
        if q.get("users") != "all" {
            return Reply::bad_request("invalid \"users\" filter: must be \"all\"");
        }
        user_id = None;
    }
    let requested = q.list("types");
    let mut types: Vec<NoticeType> = Vec::new();
    for t in requested.iter().filter_map(|t| NoticeType::from_name(t)) {
        if !types.contains(&t) {
            types.push(t);
        }
    }
    if types.is_empty() && !requested.is_empty() {
        return Reply::sync(Vec::<types::Notice>::new());
    }
    let after = match q.get("after") {
        "" => None,
        t => match cairn_supervisor::timefmt::parse_rfc3339_go(t) {
            Ok(t) => Some(t),
            Err(e) => {
                return Reply::bad_request(format!("invalid \"after\" timestamp: {e}"));
            }
        },
    };
    let timeout = match q.get("timeout") {
        "" => None,
        t => match cairn_plan::parse_duration(t) {
            Ok(d) => Some(d).filter(|d| !d.is_zero()),
            Err(e) => return Reply::bad_request(format!("invalid timeout: {e}")),
        },
    };
    let filter = cairn_supervisor::notices::NoticeFilter {
        user_id,
        types,
        keys: q.list("keys"),
        after,
    };
    let found = match timeout {
        Some(t) => call.sup().wait_notices(&filter, t).await,
        None => call.sup().notices(&filter),
    };
    Reply::sync(types::wire::<_, types::Notice>(&found))
}

/// `POST /v1/notices`: adds a custom notice owned by the caller.
pub(super) fn post(call: &Call<'_>, body: &[u8]) -> Reply {
    let caller = call.caller;
    let Caller::Unix(uid) = caller else {
        return Reply::error(
            403,
            "",
            "cannot determine UID of request, so cannot create notice",
        );
    };
    #[derive(Deserialize)]
    struct Payload {
        #[serde(default, deserialize_with = "null_default")]
        action: String,
        #[serde(default, rename = "type", deserialize_with = "null_default")]
        type_: String,
        #[serde(default, deserialize_with = "null_default")]
        key: String,
        #[serde(default, rename = "repeat-after", deserialize_with = "null_default")]
        repeat_after: String,
        #[serde(default)]
        data: Option<serde_json::Value>,
    }
    let p: Payload = match decode(body, "cannot decode request body") {
        Ok(p) => p,
        Err(r) => return r,
    };
    if p.action != "add" {
        return Reply::bad_request(format!("invalid action {:?}", p.action));
    }
    if p.type_ != "custom" {
        return Reply::bad_request(format!(
            "invalid type {:?} (can only add \"custom\" notices)",
            p.type_
        ));
    }
    let repeat_after = match p.repeat_after.as_str() {
        "" => None,
        d => match cairn_plan::parse_duration(d) {
            Ok(d) => Some(d),
            Err(e) => return Reply::bad_request(format!("invalid repeat-after: {e}")),
        },
    };
    let raw = p.data.as_ref().map(|v| v.to_string()).unwrap_or_default();
    if raw.len() > cairn_supervisor::notices::MAX_DATA_SIZE {
        return Reply::bad_request(format!(
            "total size of data must be {} bytes or less",
            cairn_supervisor::notices::MAX_DATA_SIZE
        ));
    }
    let data: std::collections::BTreeMap<String, String> = match raw.as_str() {
        "" | "null" => Default::default(),
        raw => match serde_json::from_str(raw) {
            Ok(d) => d,
            Err(e) => return Reply::bad_request(format!("cannot decode notice data: {e}")),
        },
    };
    match call.sup().notify(Some(uid), &p.key, data, repeat_after) {
        Ok(id) => Reply::sync(serde_json::json!({ "id": id })),
        Err(e) => sup_error(e),
    }
}

/// `GET /v1/notices/{id}`: one notice, if the caller may see it.
pub(super) fn get(call: &Call<'_>, _body: &[u8]) -> Reply {
    let (caller, id) = (call.caller, call.var(0));
    let Caller::Unix(uid) = caller else {
        return Reply::error(
            403,
            "",
            "cannot determine UID of request, so cannot retrieve notice",
        );
    };
    let Some(n) = call.sup().notice(id) else {
        return Reply::not_found(format!("cannot find notice with ID {id:?}"));
    };
    let admin = call.user == Some(IdentityAccess::Admin);
    if n.user_id.is_some_and(|owner| owner != uid) && !admin {
        return Reply::error(
            403,
            "",
            format!("not allowed to access notice with id {id:?}"),
        );
    }
    Reply::sync(types::Notice::from(&n))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use hyper::Method;

    use crate::testutil::{TestApi, check};

    #[tokio::test(flavor = "multi_thread")]
    async fn notices_requests_get_pebbles_errors() {
        let t = TestApi::start("notices").await;
        let c = &t.client;
        let post = |body: String| c.raw(Method::POST, "/v1/notices", Some(body.into_bytes()));
        check(
            post(r#"{"action":"add","type":"warning","key":"x"}"#.into())
                .await
                .unwrap(),
            400,
            "invalid type \"warning\" (can only add \"custom\" notices)",
        );
        check(
            post(r#"{"action":"add","type":"custom","key":"nodomain/x"}"#.into())
                .await
                .unwrap(),
            400,
            "invalid key \"nodomain/x\" (must be in \"example.com/path\" format)",
        );
        let long = format!("example.com/{}", "a".repeat(260));
        check(
            post(format!(
                r#"{{"action":"add","type":"custom","key":"{long}"}}"#
            ))
            .await
            .unwrap(),
            400,
            "key must be 256 bytes or less",
        );
        check(
            post(format!(
                r#"{{"action":"add","type":"custom","key":"example.com/x","data":{{"k":"{}"}}}}"#,
                "v".repeat(5000)
            ))
            .await
            .unwrap(),
            400,
            "total size of data must be 4096 bytes or less",
        );
        check(
            post(r#"{"action":"remove"}"#.into()).await.unwrap(),
            400,
            "invalid action \"remove\"",
        );
        check(
            post(
                r#"{"action":"add","type":"custom","key":"example.com/x","repeat-after":"soon"}"#
                    .into(),
            )
            .await
            .unwrap(),
            400,
            "invalid repeat-after: ",
        );
        check(
            c.raw(Method::GET, "/v1/notices?after=yesterday", None)
                .await
                .unwrap(),
            400,
            "invalid \"after\" timestamp: parsing time \"yesterday\" as \"2006-01-02T15:04:05Z07:00\": cannot parse \"yesterday\" as \"2006\"",
        );
        check(
            c.raw(Method::GET, "/v1/notices?users=some", None)
                .await
                .unwrap(),
            400,
            "invalid \"users\" filter: must be \"all\"",
        );
        check(
            c.raw(Method::GET, "/v1/notices/42", None).await.unwrap(),
            404,
            "cannot find notice with ID \"42\"",
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn notices_of_unknown_types_alone_select_nothing() {
        let t = TestApi::start("notice-types").await;
        let c = &t.client;
        c.notify("example.com/x", &Default::default(), None)
            .await
            .unwrap();
        let none = c.notices(&[("types", "bogus".into())], None).await.unwrap();
        assert!(none.is_empty());
        let all = c
            .notices(&[("types", "custom,bogus".into())], None)
            .await
            .unwrap();
        assert_eq!(all.len(), 1);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn notices_long_poll_wakes_on_a_new_notice() {
        let t = TestApi::start("longpoll").await;
        let since = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        let started = std::time::Instant::now();
        let query = [("types", "custom".to_string()), ("after", since)];
        let waiter = t.client.notices(&query, Some(Duration::from_secs(10)));
        let notifier = async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            t.sup
                .notify(
                    Some(0),
                    "example.com/wake",
                    [("a".to_string(), "1".to_string())].into(),
                    None,
                )
                .unwrap();
        };
        let (found, ()) = tokio::join!(waiter, notifier);
        let found = found.unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].key, "example.com/wake");
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
