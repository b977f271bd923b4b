//! Pebble's response envelope: `sync`, `async` and `error` responses with their status
//! codes, reason phrases and error kinds.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The JSON every endpoint but `/v1/logs` answers with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// `sync`, `async` or `error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The HTTP status code, repeated.
    #[serde(rename = "status-code")]
    pub status_code: u16,
    /// The HTTP reason phrase.
    #[serde(default)]
    pub status: String,
    /// The change an async response started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<String>,
    /// The result (for errors, `{message, kind?, value?}`).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub result: Value,
}

/// The result of an error response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorResult {
    /// What went wrong (always present).
    pub message: String,
    /// Pebble's error kind, when there is one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// Extra detail, when there is some.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub value: Value,
}

/// HTTP reason phrase for the codes Pebble uses.
pub fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Request Entity Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        504 => "Gateway Timeout",
        _ => "",
    }
}

/// Bytes of an error message sent back; longer ones (quoting what a caller sent) are cut.
pub const MAX_ERROR_MESSAGE: usize = 1024;

/// The most bytes a thread keeps for writing envelopes between two of them.
const MAX_SCRATCH: usize = 256 << 10;

/// A response ready to send: status code and JSON body.
#[derive(Clone, Debug)]
pub struct Reply {
    /// HTTP status.
    pub code: u16,
    /// Serialized envelope.
    pub body: Bytes,
}

impl Reply {
    /// The envelope written straight into its bytes, the result serialized in place (no
    /// intermediate JSON tree): fields in [`Envelope`]'s (and Pebble's) order. A result that
    /// serializes as `null` (or not at all) is left out, as Pebble leaves it out of sync
    /// and error responses, unless `null_kept` (Pebble's async responses carry
    /// `"result":null`).
    fn envelope(
        kind: &str,
        code: u16,
        change: Option<&str>,
        result: &impl Serialize,
        null_kept: bool,
    ) -> Reply {
        use std::io::Write;
        thread_local! {
            /// Where this thread writes its envelopes: kept, so that a big result is not
            /// written through a string of reallocations each time.
            static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        SCRATCH.with_borrow_mut(|out| {
            out.clear();
            // `kind` and the reason phrase are this crate's own constants: nothing to escape.
            let _ = write!(
                out,
                r#"{{"type":"{kind}","status-code":{code},"status":"{}""#,
                reason(code)
            );
            if let Some(change) = change {
                out.extend_from_slice(br#","change":"#);
                let _ = serde_json::to_writer(&mut *out, change);
            }
            let mark = out.len();
            out.extend_from_slice(br#","result":"#);
            let value = out.len();
            match serde_json::to_writer(&mut *out, result) {
                Ok(()) if null_kept || out[value..] != *b"null" => {}
                Ok(()) => out.truncate(mark),
                Err(_) if null_kept => {
                    out.truncate(value);
                    out.extend_from_slice(b"null");
                }
                Err(_) => out.truncate(mark),
            }
            out.push(b'}');
            let body = Bytes::copy_from_slice(out);
            if out.capacity() > MAX_SCRATCH {
                *out = Vec::new();
            }
            Reply { code, body }
        })
    }

    /// `200 OK` with a result.
    pub fn sync(result: impl Serialize) -> Reply {
        Reply::sync_with(200, result)
    }

    /// A sync response with another code (health answers 502 this way).
    pub fn sync_with(code: u16, result: impl Serialize) -> Reply {
        Reply::envelope("sync", code, None, &result, false)
    }

    /// `202 Accepted` for a change.
    pub fn async_change(change: String) -> Reply {
        Reply::envelope("async", 202, Some(&change), &(), true)
    }

    /// `202 Accepted` for a change, with a result (`POST /v1/exec` returns the task id).
    pub fn async_with(change: String, result: impl Serialize) -> Reply {
        Reply::envelope("async", 202, Some(&change), &result, true)
    }

    /// An error with Pebble's message and, if any, kind.
    pub fn error(code: u16, kind: &str, message: impl Into<String>) -> Reply {
        let kind = if code == 401 && kind.is_empty() {
            "login-required"
        } else {
            kind
        };
        let message: String = message.into();
        let result = ErrorResult {
            message: crate::server::truncate(&message, MAX_ERROR_MESSAGE).into_owned(),
            kind: kind.into(),
            value: Value::Null,
        };
        Reply::envelope("error", code, None, &result, false)
    }

    /// `400 Bad Request`.
    pub fn bad_request(message: impl Into<String>) -> Reply {
        Reply::error(400, "", message)
    }

    /// `404 Not Found`.
    pub fn not_found(message: impl Into<String>) -> Reply {
        Reply::error(404, "", message)
    }

    /// `500 Internal Server Error`.
    pub fn server_error(message: impl Into<String>) -> Reply {
        Reply::error(500, "", message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(r: &Reply) -> Value {
        serde_json::from_slice(&r.body).unwrap()
    }

    #[test]
    fn envelopes_are_written_byte_for_byte_as_the_envelope_type_serializes() {
        let env = |kind: &str, code, change: Option<&str>, result| {
            serde_json::to_vec(&Envelope {
                kind: kind.into(),
                status_code: code,
                status: reason(code).into(),
                change: change.map(Into::into),
                result,
            })
            .unwrap()
        };
        let names = serde_json::json!([{"name": "a\"b", "current": "active"}]);
        assert_eq!(
            Reply::sync(&names).body,
            env("sync", 200, None, names.clone())
        );
        assert_eq!(
            Reply::sync_with(502, "x").body,
            env("sync", 502, None, "x".into())
        );
        assert_eq!(
            Reply::async_with("12".into(), &names).body,
            env("async", 202, Some("12"), names)
        );
        assert_eq!(
            Reply::sync(Value::Null).body,
            env("sync", 200, None, Value::Null)
        );
        // Pebble's own bytes.
        assert_eq!(
            Reply::async_change("1".into()).body,
            r#"{"type":"async","status-code":202,"status":"Accepted","change":"1","result":null}"#
        );
        assert_eq!(
            Reply::sync(()).body,
            r#"{"type":"sync","status-code":200,"status":"OK"}"#
        );
        assert_eq!(
            Reply::error(404, "", "no \"x\"").body,
            env(
                "error",
                404,
                None,
                serde_json::json!({"message": "no \"x\""})
            )
        );
    }

    #[test]
    fn envelopes_have_pebble_shapes() {
        assert_eq!(
            json(&Reply::sync(true)),
            serde_json::json!({"type":"sync","status-code":200,"status":"OK","result":true})
        );
        assert_eq!(
            json(&Reply::async_change("7".into())),
            serde_json::json!({"type":"async","status-code":202,"status":"Accepted","change":"7","result":null})
        );
        assert_eq!(
            json(&Reply::bad_request("nope")),
            serde_json::json!({"type":"error","status-code":400,"status":"Bad Request","result":{"message":"nope"}})
        );
        assert_eq!(
            json(&Reply::error(401, "", "access denied")),
            serde_json::json!({"type":"error","status-code":401,"status":"Unauthorized","result":{"message":"access denied","kind":"login-required"}})
        );
        assert_eq!(
            json(&Reply::sync(Vec::<u8>::new()))["result"],
            serde_json::json!([])
        );
    }
}
