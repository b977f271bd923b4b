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

/// A response ready to send: status code and JSON body.
#[derive(Clone, Debug)]
pub struct Reply {
    /// HTTP status.
    pub code: u16,
    /// Serialized envelope.
    pub body: Bytes,
}

impl Reply {
    fn envelope(kind: &str, code: u16, change: Option<String>, result: Value) -> Reply {
        let env = Envelope {
            kind: kind.into(),
            status_code: code,
            status: reason(code).into(),
            change,
            result,
        };
        Reply {
            code,
            body: Bytes::from(serde_json::to_vec(&env).unwrap_or_default()),
        }
    }

    /// `200 OK` with a result.
    pub fn sync(result: impl Serialize) -> Reply {
        Reply::sync_with(200, result)
    }

    /// A sync response with another code (health answers 502 this way).
    pub fn sync_with(code: u16, result: impl Serialize) -> Reply {
        Reply::envelope(
            "sync",
            code,
            None,
            serde_json::to_value(result).unwrap_or(Value::Null),
        )
    }

    /// `202 Accepted` for a change.
    pub fn async_change(change: String) -> Reply {
        Reply::envelope("async", 202, Some(change), Value::Null)
    }

    /// `202 Accepted` for a change, with a result (`POST /v1/exec` returns the task id).
    pub fn async_with(change: String, result: Value) -> Reply {
        Reply::envelope("async", 202, Some(change), result)
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
        Reply::envelope(
            "error",
            code,
            None,
            serde_json::to_value(result).unwrap_or(Value::Null),
        )
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
    fn envelopes_have_pebble_shapes() {
        assert_eq!(
            json(&Reply::sync(true)),
            serde_json::json!({"type":"sync","status-code":200,"status":"OK","result":true})
        );
        assert_eq!(
            json(&Reply::async_change("7".into())),
            serde_json::json!({"type":"async","status-code":202,"status":"Accepted","change":"7"})
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
